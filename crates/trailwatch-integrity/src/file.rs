//! Trace files and record files: building them (gzip level 6 + SHA-256) and reading them back.
//!
//! # Format
//!
//! A trace file is one JSON object, one trace per line, gzip-compressed (level 6) unless the
//! tracker asks for plain JSON (`compress_type=json`):
//!
//! ```text
//! {"traces":[
//! {"trace_id":"…","time":1731161042000,…},
//! {"trace_id":"…","time":1731161042123,…}
//! ]}
//! ```
//!
//! CTS does not document the shape inside its files (`cloud-apis.md` §3.1 leaves it unconfirmed);
//! `{"traces":[…]}` is the shape of the CTS query API's answer, so the same tools read both.
//! The reader also accepts a bare JSON array and newline-delimited objects (for real CTS files).
//!
//! A record file (alarms published, delivery receipts) has the same form with its kind first:
//! `{"kind":"alarm","records":[\n…\n]}`. Records are stored exactly as the caller gives them.
//!
//! A file's hash is SHA-256 over the **stored bytes** (compressed, as they are in the bucket), so
//! verification hashes objects without decompressing them. The gzip header has no name and a
//! zero modification time, so the same traces always give the same bytes.

use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::layout::{Compression, FileKind, RecordKind};

/// gzip level used for trace, record and digest files. 3 rather than zlib's default 6: on IAM
/// traces 7.3 % of the JSON instead of ≈ 5 %, at about half the CPU, which the archiver takes
/// from ingest while both run (BENCHMARKS.md); 2 compressed worse (8.0 %) for no measurable gain.
pub const GZIP_LEVEL: u32 = 3;

/// Largest decompressed size [`read_file`] accepts (a guard against gzip bombs).
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

/// Input bytes gathered before each call into the compressor.
const CHUNK: usize = 64 * 1024;

/// A trace or record that cannot go into a file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Item `index` (0-based) is not a JSON object.
    #[error("item {index}: not a JSON object")]
    NotAnObject {
        /// 0-based position in the file.
        index: u64,
    },
    /// Trace `index` has no integer `time` (epoch milliseconds).
    #[error("trace {index}: no integer \"time\" (epoch milliseconds)")]
    NoTime {
        /// 0-based position in the file.
        index: u64,
    },
    /// Item `index` cannot be written as JSON (only maps with non-string keys, which a
    /// `serde_json::Value` cannot hold).
    #[error("item {index}: cannot be written as JSON: {message}")]
    Encode {
        /// 0-based position in the file.
        index: u64,
        /// serde_json's message.
        message: String,
    },
    /// A file must hold at least one item.
    #[error("a file must hold at least one item")]
    Empty,
    /// The compressor failed (writing to memory: only on allocation failure).
    #[error("gzip: {0}")]
    Gzip(#[from] io::Error),
}

/// A finished file: the bytes to store and what the digest says about them.
#[derive(Debug, Clone)]
pub struct BuiltFile {
    /// The object's bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    /// Trace, alarm or receipt.
    pub kind: FileKind,
    /// How `bytes` are stored.
    pub compression: Compression,
    /// Number of traces or records.
    pub count: u64,
    /// Oldest trace or record time (epoch milliseconds).
    pub oldest_time: i64,
    /// Newest trace or record time (epoch milliseconds).
    pub newest_time: i64,
}

impl BuiltFile {
    /// The digest entry for this file once stored as `object` in `bucket`.
    pub fn entry(&self, bucket: &str, object: &str) -> crate::digest::FileEntry {
        crate::digest::FileEntry {
            bucket: bucket.to_owned(),
            object: object.to_owned(),
            log_hash_value: hex::encode(self.sha256),
            log_hash_algorithm: crate::digest::HASH_ALGORITHM.to_owned(),
            kind: self.kind,
            size: self.bytes.len() as u64,
            count: self.count,
            oldest_time: self.oldest_time,
            newest_time: self.newest_time,
        }
    }
}

enum Sink {
    Gzip(Box<GzEncoder<Vec<u8>>>),
    Plain(Vec<u8>),
}

/// The part both builders share: the streaming writer and the counts.
struct Writer {
    kind: FileKind,
    compression: Compression,
    sink: Sink,
    pending: Vec<u8>,
    count: u64,
    oldest: i64,
    newest: i64,
    uncompressed: u64,
}

impl Writer {
    fn new(kind: FileKind, compression: Compression, header: &[u8]) -> Writer {
        let sink = match compression {
            Compression::Gzip => Sink::Gzip(Box::new(new_gzip(Vec::with_capacity(CHUNK)))),
            Compression::Json => Sink::Plain(Vec::with_capacity(CHUNK)),
        };
        let mut pending = Vec::with_capacity(CHUNK + 4096);
        pending.extend_from_slice(header);
        Writer {
            kind,
            compression,
            sink,
            pending,
            count: 0,
            oldest: i64::MAX,
            newest: i64::MIN,
            uncompressed: 0,
        }
    }

    fn push(&mut self, json: &[u8], time_ms: i64) -> Result<(), FileError> {
        self.pending
            .extend_from_slice(if self.count == 0 { b"\n" } else { b",\n" });
        self.pending.extend_from_slice(json);
        self.count += 1;
        self.oldest = self.oldest.min(time_ms);
        self.newest = self.newest.max(time_ms);
        if self.pending.len() >= CHUNK {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), FileError> {
        self.uncompressed += self.pending.len() as u64;
        match &mut self.sink {
            Sink::Gzip(enc) => enc.write_all(&self.pending)?,
            Sink::Plain(out) => out.extend_from_slice(&self.pending),
        }
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<BuiltFile, FileError> {
        if self.count == 0 {
            return Err(FileError::Empty);
        }
        self.pending.extend_from_slice(b"\n]}\n");
        self.drain()?;
        let bytes = match self.sink {
            Sink::Gzip(enc) => enc.finish()?,
            Sink::Plain(out) => out,
        };
        let sha256 = Sha256::digest(&bytes).into();
        Ok(BuiltFile {
            bytes,
            sha256,
            kind: self.kind,
            compression: self.compression,
            count: self.count,
            oldest_time: self.oldest,
            newest_time: self.newest,
        })
    }

    fn size_so_far(&self) -> u64 {
        self.uncompressed + self.pending.len() as u64
    }
}

pub(crate) fn new_gzip(out: Vec<u8>) -> GzEncoder<Vec<u8>> {
    flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::new(GZIP_LEVEL))
}

/// Builds a trace file from traces added one by one (streaming: each trace is compressed as it
/// comes, nothing is kept but the compressed output).
///
/// ```
/// use trailwatch_integrity::{Compression, TraceFileBuilder, read_file};
///
/// let mut file = TraceFileBuilder::new(Compression::Gzip);
/// file.push_json(r#"{"trace_id":"a","time":1700000000000}"#, 1_700_000_000_000)?;
/// file.push(&serde_json::json!({"trace_id":"b","time":1700000000500_i64}))?;
/// let built = file.finish()?;
/// assert_eq!((built.count, built.oldest_time, built.newest_time), (2, 1_700_000_000_000, 1_700_000_000_500));
/// assert_eq!(read_file(&built.bytes)?.items.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TraceFileBuilder {
    w: Writer,
}

impl std::fmt::Debug for TraceFileBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceFileBuilder")
            .field("count", &self.w.count)
            .finish_non_exhaustive()
    }
}

impl TraceFileBuilder {
    /// An empty trace file.
    pub fn new(compression: Compression) -> TraceFileBuilder {
        TraceFileBuilder {
            w: Writer::new(FileKind::Trace, compression, b"{\"traces\":["),
        }
    }

    /// Adds a trace; its `time` (epoch milliseconds) must be an integer.
    pub fn push(&mut self, trace: &Value) -> Result<(), FileError> {
        let index = self.w.count;
        let map = trace.as_object().ok_or(FileError::NotAnObject { index })?;
        let time = map
            .get("time")
            .and_then(Value::as_i64)
            .ok_or(FileError::NoTime { index })?;
        let json = serde_json::to_vec(trace).map_err(|e| FileError::Encode {
            index,
            message: e.to_string(),
        })?;
        self.w.push(&json, time)
    }

    /// Adds a trace already rendered as JSON text (as the trace log stores it), with its time.
    /// The text is checked to be one JSON object.
    pub fn push_json(&mut self, json: &str, time_ms: i64) -> Result<(), FileError> {
        let index = self.w.count;
        let raw: &RawValue =
            serde_json::from_str(json).map_err(|_| FileError::NotAnObject { index })?;
        self.push_parsed_object(raw.get(), time_ms)
    }

    /// Adds a trace whose text the caller has already parsed as one JSON object (the archiver
    /// reads the fields it needs from the trace log's bodies in one pass, which validates them):
    /// only its first byte is checked here, so the text is not scanned a second time.
    pub fn push_parsed_object(&mut self, json: &str, time_ms: i64) -> Result<(), FileError> {
        let index = self.w.count;
        if !json.trim_start().starts_with('{') {
            return Err(FileError::NotAnObject { index });
        }
        self.w.push(json.trim().as_bytes(), time_ms)
    }

    /// Traces added so far.
    pub fn len(&self) -> u64 {
        self.w.count
    }

    /// Whether no trace was added yet.
    pub fn is_empty(&self) -> bool {
        self.w.count == 0
    }

    /// Uncompressed bytes so far (to cut files at a size).
    pub fn uncompressed_len(&self) -> u64 {
        self.w.size_so_far()
    }

    /// Closes the JSON, finishes the gzip stream and hashes the bytes. Fails on an empty file.
    pub fn finish(self) -> Result<BuiltFile, FileError> {
        self.w.finish()
    }
}

/// Builds a record file (alarms or delivery receipts).
pub struct RecordFileBuilder {
    w: Writer,
}

impl std::fmt::Debug for RecordFileBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordFileBuilder")
            .field("kind", &self.w.kind)
            .field("count", &self.w.count)
            .finish_non_exhaustive()
    }
}

impl RecordFileBuilder {
    /// An empty record file of `kind`.
    pub fn new(kind: RecordKind, compression: Compression) -> RecordFileBuilder {
        let header = format!("{{\"kind\":\"{}\",\"records\":[", kind.as_str());
        RecordFileBuilder {
            w: Writer::new(kind.into(), compression, header.as_bytes()),
        }
    }

    /// Adds a record (a JSON object, stored as given) that happened at `time_ms`.
    pub fn push(&mut self, record: &Value, time_ms: i64) -> Result<(), FileError> {
        let index = self.w.count;
        if !record.is_object() {
            return Err(FileError::NotAnObject { index });
        }
        let json = serde_json::to_vec(record).map_err(|e| FileError::Encode {
            index,
            message: e.to_string(),
        })?;
        self.w.push(&json, time_ms)
    }

    /// Records added so far.
    pub fn len(&self) -> u64 {
        self.w.count
    }

    /// Whether no record was added yet.
    pub fn is_empty(&self) -> bool {
        self.w.count == 0
    }

    /// Closes the file. Fails on an empty file.
    pub fn finish(self) -> Result<BuiltFile, FileError> {
        self.w.finish()
    }
}

/// How a file read by [`read_file`] was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileShape {
    /// `{"traces":[…]}` (trailwatch's trace files).
    Traces,
    /// `{"kind":…,"records":[…]}` (trailwatch's record files).
    Records,
    /// A bare JSON array of objects.
    Array,
    /// Newline-delimited JSON objects (one object alone is this shape too).
    Lines,
}

/// What a trace or record file holds.
#[derive(Debug, Clone)]
pub struct FileContents {
    /// The layout found.
    pub shape: FileShape,
    /// `trace` for every shape but record files.
    pub kind: FileKind,
    /// The traces or records, in file order.
    pub items: Vec<Value>,
}

/// Why a file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The data ends early: a gzip stream without its end, or JSON cut off.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The gzip data is damaged (bad header, bad deflate data, CRC or length mismatch).
    #[error("corrupt gzip data: {0}")]
    Corrupt(String),
    /// More than the allowed decompressed size.
    #[error("more than {0} bytes once decompressed")]
    TooLarge(u64),
    /// Not JSON.
    #[error("invalid JSON at line {line} column {column}: {message}")]
    Json {
        /// 1-based line in the decompressed text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// JSON, but not a trace or record file.
    #[error("not a trace file: {0}")]
    Shape(String),
}

/// Decompresses (when the data is gzip) with the default size limit.
pub fn decompress(bytes: &[u8]) -> Result<Vec<u8>, ReadError> {
    decompress_with_limit(bytes, MAX_DECOMPRESSED_BYTES)
}

/// Decompresses gzip data (one or more members), or returns plain data as it is.
pub fn decompress_with_limit(bytes: &[u8], limit: u64) -> Result<Vec<u8>, ReadError> {
    // JSON text never starts with the control byte 0x1f, so one byte tells gzip from JSON (and a
    // gzip file cut after its first byte is still named truncated).
    if bytes.first() != Some(&0x1f) {
        if bytes.len() as u64 > limit {
            return Err(ReadError::TooLarge(limit));
        }
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(64 << 20));
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    match decoder.take(limit.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > limit => Err(ReadError::TooLarge(limit)),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadError::Truncated(format!(
            "the gzip stream ends early ({} compressed bytes, {} bytes decompressed before the end)",
            bytes.len(),
            out.len()
        ))),
        Err(e) => Err(ReadError::Corrupt(e.to_string())),
    }
}

/// Reads a trace or record file: gunzip (if gzip) and parse.
pub fn read_file(bytes: &[u8]) -> Result<FileContents, ReadError> {
    let text = decompress(bytes)?;
    parse_contents(&text)
}

fn json_error(e: &serde_json::Error) -> ReadError {
    if e.is_eof() {
        ReadError::Truncated(format!(
            "the JSON ends early (line {} column {})",
            e.line(),
            e.column()
        ))
    } else {
        ReadError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }
    }
}

fn parse_contents(text: &[u8]) -> Result<FileContents, ReadError> {
    let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<Value>();
    let first = match stream.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(json_error(&e)),
        None => return Err(ReadError::Shape("the file is empty".to_owned())),
    };
    let rest_start = stream.byte_offset();
    let only_whitespace = text[rest_start..].iter().all(u8::is_ascii_whitespace);

    if only_whitespace {
        match first {
            Value::Object(mut map) if map.contains_key("traces") || map.contains_key("records") => {
                let (shape, field) = if map.contains_key("records") {
                    (FileShape::Records, "records")
                } else {
                    (FileShape::Traces, "traces")
                };
                let kind = match (shape, map.get("kind").and_then(Value::as_str)) {
                    (FileShape::Traces, _) => FileKind::Trace,
                    (_, Some("alarm")) => FileKind::Alarm,
                    (_, Some("receipt")) => FileKind::Receipt,
                    (_, other) => {
                        return Err(ReadError::Shape(format!(
                            "record file kind {other:?} is not \"alarm\" or \"receipt\""
                        )));
                    }
                };
                let items = match map.remove(field) {
                    Some(Value::Array(items)) => items,
                    _ => return Err(ReadError::Shape(format!("\"{field}\" is not an array"))),
                };
                check_objects(&items)?;
                Ok(FileContents { shape, kind, items })
            }
            Value::Array(items) => {
                check_objects(&items)?;
                Ok(FileContents {
                    shape: FileShape::Array,
                    kind: FileKind::Trace,
                    items,
                })
            }
            v @ Value::Object(_) => Ok(FileContents {
                shape: FileShape::Lines,
                kind: FileKind::Trace,
                items: vec![v],
            }),
            _ => Err(ReadError::Shape(
                "the file holds neither an object nor an array".to_owned(),
            )),
        }
    } else {
        // Newline-delimited JSON: more values follow the first.
        let mut items = vec![first];
        for v in stream {
            items.push(v.map_err(|e| json_error(&e))?);
        }
        check_objects(&items)?;
        Ok(FileContents {
            shape: FileShape::Lines,
            kind: FileKind::Trace,
            items,
        })
    }
}

fn check_objects(items: &[Value]) -> Result<(), ReadError> {
    match items.iter().position(|v| !v.is_object()) {
        Some(i) => Err(ReadError::Shape(format!("item {i} is not a JSON object"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn trace(i: i64) -> Value {
        json!({"trace_id": format!("id-{i}"), "time": 1_700_000_000_000_i64 + i, "service_type": "ECS", "note": "é\n\"q\""})
    }

    #[test]
    fn round_trip_and_hash_of_the_stored_bytes() -> TestResult {
        let mut b = TraceFileBuilder::new(Compression::Gzip);
        for i in [5, 1, 9] {
            b.push(&trace(i))?;
        }
        let built = b.finish()?;
        assert_eq!(built.sha256, <[u8; 32]>::from(Sha256::digest(&built.bytes)));
        assert_eq!(built.count, 3);
        assert_eq!(built.oldest_time, 1_700_000_000_001);
        assert_eq!(built.newest_time, 1_700_000_000_009);
        assert_eq!(&built.bytes[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&built.bytes[4..8], &[0, 0, 0, 0], "mtime 0");
        let read = read_file(&built.bytes)?;
        assert_eq!(read.shape, FileShape::Traces);
        assert_eq!(read.items, vec![trace(5), trace(1), trace(9)]);
        let text = String::from_utf8(decompress(&built.bytes)?)?;
        assert!(text.starts_with("{\"traces\":[\n{"), "{text}");
        assert!(text.ends_with("}\n]}\n"), "{text}");
        assert_eq!(text.lines().count(), 5);
        Ok(())
    }

    #[test]
    fn same_traces_same_bytes_and_plain_json() -> TestResult {
        let build = |c| -> Result<BuiltFile, FileError> {
            let mut b = TraceFileBuilder::new(c);
            b.push_json(r#"{"time":1,"a":[1,2]}"#, 1)?;
            b.push_json(" {\"time\":2}", 2)?;
            b.finish()
        };
        assert_eq!(
            build(Compression::Gzip)?.bytes,
            build(Compression::Gzip)?.bytes
        );
        let plain = build(Compression::Json)?;
        assert_eq!(
            std::str::from_utf8(&plain.bytes)?,
            "{\"traces\":[\n{\"time\":1,\"a\":[1,2]},\n{\"time\":2}\n]}\n"
        );
        assert_eq!(read_file(&plain.bytes)?.items.len(), 2);
        Ok(())
    }

    #[test]
    fn large_files_stream_through_the_compressor() -> TestResult {
        let mut b = TraceFileBuilder::new(Compression::Gzip);
        for i in 0..5000 {
            b.push(&trace(i))?;
        }
        assert!(b.uncompressed_len() > 3 * CHUNK as u64);
        let built = b.finish()?;
        let read = read_file(&built.bytes)?;
        assert_eq!(read.items.len(), 5000);
        assert_eq!(read.items[4321], trace(4321));
        Ok(())
    }

    #[test]
    fn bad_traces_are_refused() {
        let mut b = TraceFileBuilder::new(Compression::Gzip);
        assert!(matches!(
            b.push(&json!([1])),
            Err(FileError::NotAnObject { index: 0 })
        ));
        assert!(matches!(
            b.push(&json!({"time": "x"})),
            Err(FileError::NoTime { index: 0 })
        ));
        assert!(matches!(
            b.push(&json!({"time": 1.5})),
            Err(FileError::NoTime { index: 0 })
        ));
        assert!(matches!(
            b.push_json("[1]", 0),
            Err(FileError::NotAnObject { .. })
        ));
        assert!(matches!(
            b.push_json("{\"a\":1", 0),
            Err(FileError::NotAnObject { .. })
        ));
        assert!(matches!(
            b.push_json("{} {}", 0),
            Err(FileError::NotAnObject { .. })
        ));
        assert!(b.is_empty());
        assert!(matches!(b.finish(), Err(FileError::Empty)));
    }

    #[test]
    fn record_files() -> TestResult {
        let mut b = RecordFileBuilder::new(RecordKind::Receipt, Compression::Gzip);
        b.push(
            &json!({"message_id": "m1", "endpoint": "ops@example.com", "status": "delivered"}),
            10,
        )?;
        b.push(&json!({"message_id": "m2"}), 7)?;
        assert!(b.push(&json!("x"), 7).is_err());
        let built = b.finish()?;
        assert_eq!(built.kind, FileKind::Receipt);
        assert_eq!(
            (built.count, built.oldest_time, built.newest_time),
            (2, 7, 10)
        );
        let read = read_file(&built.bytes)?;
        assert_eq!(read.shape, FileShape::Records);
        assert_eq!(read.kind, FileKind::Receipt);
        assert_eq!(read.items[1], json!({"message_id": "m2"}));
        let entry = built.entry("bucket", "CloudTraces/x");
        assert_eq!(entry.kind, FileKind::Receipt);
        assert_eq!(entry.size, built.bytes.len() as u64);
        assert_eq!(entry.log_hash_value, hex::encode(built.sha256));
        Ok(())
    }

    #[test]
    fn other_shapes_read_too() -> TestResult {
        let arr = read_file(br#"[{"time":1},{"time":2}]"#)?;
        assert_eq!((arr.shape, arr.items.len()), (FileShape::Array, 2));
        let lines = read_file(b"{\"time\":1}\n{\"time\":2}\n{\"time\":3}\n")?;
        assert_eq!((lines.shape, lines.items.len()), (FileShape::Lines, 3));
        let one = read_file(b"{\"time\":1}")?;
        assert_eq!((one.shape, one.items.len()), (FileShape::Lines, 1));
        Ok(())
    }

    fn built_gzip() -> Result<Vec<u8>, FileError> {
        let mut b = TraceFileBuilder::new(Compression::Gzip);
        for i in 0..200 {
            b.push(&trace(i))?;
        }
        Ok(b.finish()?.bytes)
    }

    #[test]
    fn truncated_gzip_is_named_truncated_at_every_length() -> TestResult {
        let bytes = built_gzip()?;
        for len in [
            1,
            2,
            9,
            10,
            11,
            bytes.len() / 2,
            bytes.len() - 8,
            bytes.len() - 1,
        ] {
            match read_file(&bytes[..len]) {
                Err(ReadError::Truncated(msg)) => assert!(msg.contains("ends early"), "{msg}"),
                other => panic!("length {len} of {}: {other:?}", bytes.len()),
            }
        }
        Ok(())
    }

    #[test]
    fn corrupt_gzip_is_named_corrupt() -> TestResult {
        let bytes = built_gzip()?;
        // A flipped CRC byte in the trailer, and a flipped byte in the deflate data.
        for at in [bytes.len() - 6, bytes.len() / 2] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            match read_file(&bad) {
                Err(ReadError::Corrupt(_) | ReadError::Json { .. } | ReadError::Truncated(_)) => {}
                other => panic!("flip at {at}: {other:?}"),
            }
        }
        let mut bad = bytes.clone();
        let crc_at = bytes.len() - 8;
        bad[crc_at] ^= 1;
        let e = read_file(&bad);
        assert!(
            matches!(&e, Err(ReadError::Corrupt(m)) if m.contains("checksum")),
            "{e:?}"
        );
        // Garbage after the gzip member.
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"junk");
        assert!(read_file(&trailing).is_err());
        Ok(())
    }

    #[test]
    fn json_errors_are_precise() {
        assert!(matches!(
            read_file(b"{\"traces\":[{\"time\":1},"),
            Err(ReadError::Truncated(_))
        ));
        assert!(matches!(
            read_file(b"{\"traces\":[\n{\"time\":1},\n{\"time\":x}]}"),
            Err(ReadError::Json { line: 3, .. })
        ));
        assert!(matches!(read_file(b""), Err(ReadError::Shape(_))));
        assert!(matches!(
            read_file(b"{\"traces\":{}}"),
            Err(ReadError::Shape(_))
        ));
        assert!(matches!(read_file(b"[1,2]"), Err(ReadError::Shape(m)) if m.contains("item 0")));
        assert!(matches!(
            read_file(b"{\"kind\":\"mail\",\"records\":[]}"),
            Err(ReadError::Shape(m)) if m.contains("mail")
        ));
    }

    #[test]
    fn decompression_is_bounded() -> TestResult {
        let bytes = built_gzip()?;
        assert!(matches!(
            decompress_with_limit(&bytes, 1000),
            Err(ReadError::TooLarge(1000))
        ));
        assert!(decompress_with_limit(&bytes, 1 << 20).is_ok());
        assert!(matches!(
            decompress_with_limit(b"[1,2,3]", 3),
            Err(ReadError::TooLarge(3))
        ));
        Ok(())
    }
}
