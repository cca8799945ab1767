//! Digest files: the signed, hash-chained list of every file a tracker wrote in a period.
//!
//! # Format
//!
//! A digest is gzip (level 6) of one JSON object with CTS's digest fields (`cloud-apis.md` §3.3),
//! SHA-256 in place of MD5, Ed25519 in place of RSA, and four additions (`digest_format_version`,
//! `sequence`, `digest_public_key_id`, `digest_signature`, plus `kind`/`size`/`count`/time
//! bounds per file):
//!
//! ```json
//! {"digest_bucket":"audit","digest_end":false,"digest_end_time":"2026-03-05T11-00-00Z",
//!  "digest_format_version":1,
//!  "digest_object":"CloudTraces/eu-de/2026/3/5/system/Digest/CloudTrace-Digest_eu-de_2026-03-05T11-00-00Z.json.gz",
//!  "digest_public_key_id":"3f1c0e9a5b7d2c41","digest_signature":"<128 hex>",
//!  "digest_signature_algorithm":"Ed25519","digest_start_time":"2026-03-05T10-00-00Z",
//!  "log_files":[{"bucket":"audit","count":412,"kind":"trace","log_hash_algorithm":"SHA-256",
//!    "log_hash_value":"<64 hex>","newest_time":1772708399000,"object":"CloudTraces/…json.gz",
//!    "oldest_time":1772704800000,"size":30211}],
//!  "previous_digest_bucket":"audit","previous_digest_end":false,
//!  "previous_digest_hash_algorithm":"SHA-256","previous_digest_hash_value":"<64 hex>",
//!  "previous_digest_object":"CloudTraces/…T10-00-00Z.json.gz","previous_digest_signature":"<128 hex>",
//!  "project_id":"…","sequence":41}
//! ```
//!
//! - Times of the period are CTS's `YYYY-MM-DDTHH-mm-ssZ`; file times are epoch milliseconds
//!   (CTS's trace `time`).
//! - `log_hash_value` is the hex SHA-256 of the file's stored bytes; `size` their length.
//! - `sequence` starts at 0 and grows by one per digest of the chain. The starting digest has
//!   empty `previous_digest_bucket/object/hash_value/signature` and `previous_digest_end: false`.
//! - `previous_digest_hash_value` is the hex SHA-256 of the previous digest object's stored
//!   (compressed) bytes and `previous_digest_signature` its `digest_signature`.
//! - `digest_start_time` equals the previous digest's `digest_end_time`: periods are contiguous.
//!   A period normally ends on the hour; on shutdown (or when a tracker is disabled) the archiver
//!   closes it early with `digest_end: true`. Every file listed has its key time within
//!   [start, end].
//!
//! # What is signed
//!
//! ```text
//! signed bytes = "trailwatch-digest-v1\n" || JCS(digest object without "digest_signature")
//! digest_signature = hex(Ed25519-sign(private key, signed bytes))      (RFC 8032, 64 bytes)
//! ```
//!
//! `JCS` is RFC 8785 canonical JSON ([`crate::canonical`]): members sorted, no whitespace,
//! integers only. The signature therefore covers every field of the digest, including the
//! previous digest's hash and signature (the chain), the sequence number and the key id. The
//! stored file is itself the canonical JSON of the whole object (signature included), so
//! `zcat digest.json.gz` shows exactly what was hashed, apart from the one signature member.
//!
//! The signature lives in the file, not in object metadata (CTS's `meta-signature`): copying a
//! bucket to a folder keeps it, so verification needs only the objects and the public key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::canonical::{self, CanonicalError};
use crate::file::{self, ReadError};
use crate::keys::{KeyId, PublicKey, SigningKey};
use crate::layout::{self, FileKind, Layout, LayoutError, ObjectKind};

/// `digest_format_version` of the digests this crate writes.
pub const FORMAT_VERSION: u32 = 1;
/// `log_hash_algorithm` and `previous_digest_hash_algorithm`.
pub const HASH_ALGORITHM: &str = "SHA-256";
/// `digest_signature_algorithm`.
pub const SIGNATURE_ALGORITHM: &str = "Ed25519";
/// Prepended to the canonical JSON before signing (domain separation).
pub const SIGNING_CONTEXT: &[u8] = b"trailwatch-digest-v1\n";
/// The member of the stored JSON that holds the signature (not part of the signed bytes).
pub const SIGNATURE_FIELD: &str = "digest_signature";
/// Largest decompressed digest accepted when reading.
pub const MAX_DIGEST_BYTES: u64 = 256 << 20;

/// One file listed in a digest (an element of `log_files`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Bucket of the file.
    pub bucket: String,
    /// Object key of the file.
    pub object: String,
    /// Hex SHA-256 of the stored bytes.
    pub log_hash_value: String,
    /// `SHA-256`.
    pub log_hash_algorithm: String,
    /// Trace, alarm or receipt file.
    pub kind: FileKind,
    /// Stored size in bytes.
    pub size: u64,
    /// Traces or records in the file.
    pub count: u64,
    /// Oldest trace or record time, epoch milliseconds.
    pub oldest_time: i64,
    /// Newest trace or record time, epoch milliseconds.
    pub newest_time: i64,
}

/// The signed content of a digest (every member of the stored JSON but `digest_signature`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// Format version, [`FORMAT_VERSION`].
    pub digest_format_version: u32,
    /// Project whose traces these are.
    pub project_id: String,
    /// Position in the chain, from 0.
    pub sequence: u64,
    /// Start of the period (inclusive).
    #[serde(with = "cts_time")]
    pub digest_start_time: DateTime<Utc>,
    /// End of the period (inclusive for file times; the next period starts here).
    #[serde(with = "cts_time")]
    pub digest_end_time: DateTime<Utc>,
    /// Bucket holding this digest.
    pub digest_bucket: String,
    /// Key of this digest.
    pub digest_object: String,
    /// `Ed25519`.
    pub digest_signature_algorithm: String,
    /// Key id of the signing key (16 hex digits).
    pub digest_public_key_id: String,
    /// Whether the chain stopped here (shutdown, tracker disabled).
    pub digest_end: bool,
    /// Bucket of the previous digest, empty for the first.
    pub previous_digest_bucket: String,
    /// Key of the previous digest, empty for the first.
    pub previous_digest_object: String,
    /// Hex SHA-256 of the previous digest's stored bytes, empty for the first.
    pub previous_digest_hash_value: String,
    /// `SHA-256`.
    pub previous_digest_hash_algorithm: String,
    /// The previous digest's `digest_signature`, empty for the first.
    pub previous_digest_signature: String,
    /// The previous digest's `digest_end`.
    pub previous_digest_end: bool,
    /// The files written in the period.
    pub log_files: Vec<FileEntry>,
}

/// Why a digest cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The input breaks a rule of the format (named in the message).
    #[error("invalid digest: {0}")]
    Invalid(String),
    /// A key could not be built.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A value outside canonical JSON.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// The stored bytes cannot be decompressed or are not JSON.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// JSON, but not a digest (a member missing, unknown or of the wrong type).
    #[error("not a digest: {0}")]
    Shape(String),
    /// The signature does not verify (or is missing or malformed).
    #[error("the digest signature does not verify with key {0}")]
    BadSignature(KeyId),
    /// The digest names another signing key.
    #[error("the digest is signed by key {found}, not by key {expected}")]
    WrongKey {
        /// The key id the verifier holds.
        expected: KeyId,
        /// `digest_public_key_id` of the digest.
        found: String,
    },
}

/// The previous digest of a chain, as the next digest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousDigest {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub object: String,
    /// SHA-256 of its stored bytes.
    pub sha256: [u8; 32],
    /// Its signature.
    pub signature: [u8; 64],
    /// Its sequence number.
    pub sequence: u64,
    /// Its period end (the next period's start).
    pub end_time: DateTime<Utc>,
    /// Its `digest_end`.
    pub ending: bool,
}

impl PreviousDigest {
    /// Reads a stored digest back (e.g. the newest one, when the archiver starts) and checks
    /// that it is signed by `public_key` and stored where it says it is.
    pub fn from_object(
        key: &str,
        bytes: &[u8],
        public_key: &PublicKey,
    ) -> Result<PreviousDigest, DigestError> {
        let file = read_digest(bytes)?;
        file.check_signature(public_key)?;
        if file.digest.digest_object != key {
            return Err(DigestError::Invalid(format!(
                "the digest stored at {key} says it is {}",
                file.digest.digest_object
            )));
        }
        let signature = file
            .signature
            .ok_or(DigestError::BadSignature(public_key.key_id()))?;
        Ok(PreviousDigest {
            bucket: file.digest.digest_bucket,
            object: file.digest.digest_object,
            sha256: file.sha256,
            signature,
            sequence: file.digest.sequence,
            end_time: file.digest.digest_end_time,
            ending: file.digest.digest_end,
        })
    }
}

/// What the archiver knows when it closes a period.
#[derive(Debug, Clone)]
pub struct DigestInput<'a> {
    /// The tracker's layout (the chain).
    pub layout: &'a Layout,
    /// The project.
    pub project_id: &'a str,
    /// The bucket the digest goes to.
    pub bucket: &'a str,
    /// Period start. Must equal `previous.end_time` when there is a previous digest.
    pub start: DateTime<Utc>,
    /// Period end; the digest key is built from it. Later than `start` (whole seconds).
    pub end: DateTime<Utc>,
    /// Whether the chain stops here (shutdown, tracker disabled).
    pub ending: bool,
    /// The previous digest, `None` for the first of the chain.
    pub previous: Option<&'a PreviousDigest>,
    /// Every file written in the period (possibly none).
    pub files: Vec<FileEntry>,
}

/// A signed digest, ready to store at `key`.
#[derive(Debug, Clone)]
pub struct SignedDigest {
    /// Where it goes.
    pub key: String,
    /// The stored bytes (gzip).
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    /// The signature.
    pub signature: [u8; 64],
    /// The signed content.
    pub digest: Digest,
}

impl SignedDigest {
    /// What the next digest of the chain records about this one.
    pub fn previous(&self) -> PreviousDigest {
        PreviousDigest {
            bucket: self.digest.digest_bucket.clone(),
            object: self.key.clone(),
            sha256: self.sha256,
            signature: self.signature,
            sequence: self.digest.sequence,
            end_time: self.digest.digest_end_time,
            ending: self.digest.digest_end,
        }
    }
}

/// Builds, checks and signs the digest of one period.
pub fn sign_digest(input: DigestInput<'_>, key: &SigningKey) -> Result<SignedDigest, DigestError> {
    let invalid = |m: String| Err(DigestError::Invalid(m));
    let start = layout::whole_seconds(input.start);
    let end = layout::whole_seconds(input.end);
    if end <= start {
        return invalid(format!(
            "the period must end after it starts (start {}, end {})",
            layout::format_time(start)?,
            layout::format_time(end)?
        ));
    }
    if input.bucket.is_empty() || input.project_id.is_empty() {
        return invalid("bucket and project id must not be empty".to_owned());
    }
    let digest_object = input.layout.digest_key(end)?;
    if let Some(prev) = input.previous {
        if prev.end_time != start {
            return invalid(format!(
                "the period must start where the previous one ended ({}), not at {}",
                layout::format_time(prev.end_time)?,
                layout::format_time(start)?
            ));
        }
        match layout::parse_key(&prev.object) {
            Ok(p) if p.kind == ObjectKind::Digest && p.layout == *input.layout => {}
            _ => {
                return invalid(format!(
                    "the previous digest {} is not a digest of this chain",
                    prev.object
                ));
            }
        }
    }
    for (i, f) in input.files.iter().enumerate() {
        let parsed = layout::parse_key(&f.object)
            .map_err(|e| DigestError::Invalid(format!("log_files[{i}]: {e}")))?;
        if parsed.layout != *input.layout {
            return invalid(format!(
                "log_files[{i}]: {} belongs to another tracker or prefix",
                f.object
            ));
        }
        if parsed.file_kind() != Some(f.kind) {
            return invalid(format!(
                "log_files[{i}]: kind {:?} does not match the key {}",
                f.kind.as_str(),
                f.object
            ));
        }
        if parsed.time < start || parsed.time > end {
            return invalid(format!(
                "log_files[{i}]: {} was written outside the period",
                f.object
            ));
        }
        if f.log_hash_algorithm != HASH_ALGORITHM || !is_lower_hex(&f.log_hash_value, 64) {
            return invalid(format!("log_files[{i}]: the hash must be a hex SHA-256"));
        }
    }

    let (prev_bucket, prev_object, prev_hash, prev_sig, prev_end, sequence) = match input.previous {
        Some(p) => (
            p.bucket.clone(),
            p.object.clone(),
            hex::encode(p.sha256),
            hex::encode(p.signature),
            p.ending,
            p.sequence + 1,
        ),
        None => (
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            false,
            0,
        ),
    };
    let digest = Digest {
        digest_format_version: FORMAT_VERSION,
        project_id: input.project_id.to_owned(),
        sequence,
        digest_start_time: start,
        digest_end_time: end,
        digest_bucket: input.bucket.to_owned(),
        digest_object: digest_object.clone(),
        digest_signature_algorithm: SIGNATURE_ALGORITHM.to_owned(),
        digest_public_key_id: key.public_key().key_id().to_string(),
        digest_end: input.ending,
        previous_digest_bucket: prev_bucket,
        previous_digest_object: prev_object,
        previous_digest_hash_value: prev_hash,
        previous_digest_hash_algorithm: HASH_ALGORITHM.to_owned(),
        previous_digest_signature: prev_sig,
        previous_digest_end: prev_end,
        log_files: input.files,
    };
    let mut value = serde_json::to_value(&digest)
        .map_err(|e| DigestError::Invalid(format!("cannot encode: {e}")))?;
    let signed = signed_bytes(&value)?;
    let signature = key.sign(&signed);
    if let Value::Object(map) = &mut value {
        map.insert(
            SIGNATURE_FIELD.to_owned(),
            Value::String(hex::encode(signature)),
        );
    }
    let json = canonical::to_canonical(&value)?;
    let mut enc = file::new_gzip(Vec::with_capacity(json.len() / 3 + 64));
    std::io::Write::write_all(&mut enc, &json)
        .and_then(|()| std::io::Write::write_all(&mut enc, b"\n"))
        .map_err(|e| DigestError::Invalid(format!("gzip: {e}")))?;
    let bytes = enc
        .finish()
        .map_err(|e| DigestError::Invalid(format!("gzip: {e}")))?;
    let sha256 = Sha256::digest(&bytes).into();
    Ok(SignedDigest {
        key: digest_object,
        bytes,
        sha256,
        signature,
        digest,
    })
}

/// `SIGNING_CONTEXT || JCS(value without digest_signature)`.
pub fn signed_bytes(value: &Value) -> Result<Vec<u8>, DigestError> {
    let canonical = match value {
        Value::Object(map) if map.contains_key(SIGNATURE_FIELD) => {
            let mut without = map.clone();
            without.remove(SIGNATURE_FIELD);
            canonical::to_canonical(&Value::Object(without))?
        }
        other => canonical::to_canonical(other)?,
    };
    let mut out = Vec::with_capacity(SIGNING_CONTEXT.len() + canonical.len());
    out.extend_from_slice(SIGNING_CONTEXT);
    out.extend_from_slice(&canonical);
    Ok(out)
}

/// A stored digest, read back but not yet trusted.
#[derive(Debug, Clone)]
pub struct DigestFile {
    /// The content.
    pub digest: Digest,
    /// The signature, `None` when missing or not 128 hex digits.
    pub signature: Option<[u8; 64]>,
    /// The bytes the signature is over.
    pub signed_bytes: Vec<u8>,
    /// SHA-256 of the stored bytes.
    pub sha256: [u8; 32],
}

impl DigestFile {
    /// Checks the key id, then the signature.
    pub fn check_signature(&self, public_key: &PublicKey) -> Result<(), DigestError> {
        let expected = public_key.key_id();
        if self.digest.digest_public_key_id != expected.to_string() {
            return Err(DigestError::WrongKey {
                expected,
                found: self.digest.digest_public_key_id.clone(),
            });
        }
        match &self.signature {
            Some(sig)
                if self.digest.digest_signature_algorithm == SIGNATURE_ALGORITHM
                    && public_key.verify(&self.signed_bytes, sig) =>
            {
                Ok(())
            }
            _ => Err(DigestError::BadSignature(expected)),
        }
    }
}

/// Reads a stored digest: gunzip, parse, rebuild the signed bytes. Does not check the signature
/// ([`DigestFile::check_signature`]).
pub fn read_digest(bytes: &[u8]) -> Result<DigestFile, DigestError> {
    let sha256 = Sha256::digest(bytes).into();
    let text = file::decompress_with_limit(bytes, MAX_DIGEST_BYTES)?;
    let value: Value = serde_json::from_slice(&text).map_err(|e| {
        if e.is_eof() {
            DigestError::Read(ReadError::Truncated(format!("the JSON ends early ({e})")))
        } else {
            DigestError::Read(ReadError::Json {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })
        }
    })?;
    let Value::Object(mut map) = value else {
        return Err(DigestError::Shape("not a JSON object".to_owned()));
    };
    let signature = match map.get(SIGNATURE_FIELD) {
        Some(Value::String(s)) if is_lower_hex(s, 128) => {
            let mut sig = [0u8; 64];
            hex::decode_to_slice(s, &mut sig).ok().map(|()| sig)
        }
        _ => None,
    };
    map.remove(SIGNATURE_FIELD);
    let value = Value::Object(map);
    let signed = signed_bytes(&value)?;
    let digest: Digest =
        serde_json::from_value(value).map_err(|e| DigestError::Shape(e.to_string()))?;
    Ok(DigestFile {
        digest,
        signature,
        signed_bytes: signed,
        sha256,
    })
}

pub(crate) fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Serde for CTS times (`YYYY-MM-DDTHH-mm-ssZ`).
mod cts_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let text = crate::layout::format_time(*t).map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        crate::layout::parse_time(&text)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not YYYY-MM-DDTHH-mm-ssZ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::TraceFileBuilder;
    use crate::layout::Compression;
    use chrono::TimeZone;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 5, h, m, s)
            .single()
            .unwrap_or_else(|| panic!("bad time"))
    }

    fn key() -> SigningKey {
        SigningKey::from_seed(&[42; 32])
    }

    fn layout() -> Layout {
        Layout::new("eu-de", "system", "audit").unwrap_or_else(|e| panic!("{e}"))
    }

    fn one_file(
        layout: &Layout,
        at: DateTime<Utc>,
    ) -> Result<FileEntry, Box<dyn std::error::Error>> {
        let mut b = TraceFileBuilder::new(Compression::Gzip);
        b.push(&serde_json::json!({"time": at.timestamp_millis(), "trace_id": "x"}))?;
        let built = b.finish()?;
        let object = layout.trace_file_key(Some("ECS"), at, [1; 8], Compression::Gzip)?;
        Ok(built.entry("bucket", &object))
    }

    fn input<'a>(layout: &'a Layout, previous: Option<&'a PreviousDigest>) -> DigestInput<'a> {
        DigestInput {
            layout,
            project_id: "p1",
            bucket: "bucket",
            start: t(10, 0, 0),
            end: t(11, 0, 0),
            ending: false,
            previous,
            files: vec![],
        }
    }

    #[test]
    fn sign_read_check_and_chain() -> TestResult {
        let layout = layout();
        let mut first = input(&layout, None);
        first.files.push(one_file(&layout, t(10, 5, 0))?);
        let d0 = sign_digest(first, &key())?;
        assert_eq!(
            d0.key,
            "CloudTraces/eu-de/2026/3/5/system/Digest/audit_CloudTrace-Digest_eu-de_2026-03-05T11-00-00Z.json.gz"
        );
        let read = read_digest(&d0.bytes)?;
        assert_eq!(read.digest, d0.digest);
        assert_eq!(read.signature, Some(d0.signature));
        assert_eq!(read.sha256, d0.sha256);
        read.check_signature(&key().public_key())?;
        assert_eq!(read.digest.sequence, 0);
        assert_eq!(read.digest.previous_digest_object, "");

        let prev = PreviousDigest::from_object(&d0.key, &d0.bytes, &key().public_key())?;
        assert_eq!(prev, d0.previous());
        let mut second = input(&layout, Some(&prev));
        second.start = t(11, 0, 0);
        second.end = t(11, 20, 7);
        second.ending = true;
        let d1 = sign_digest(second, &key())?;
        assert_eq!(d1.digest.sequence, 1);
        assert_eq!(d1.digest.previous_digest_object, d0.key);
        assert_eq!(d1.digest.previous_digest_hash_value, hex::encode(d0.sha256));
        assert_eq!(
            d1.digest.previous_digest_signature,
            hex::encode(d0.signature)
        );
        assert!(d1.digest.digest_end);
        assert!(d1.digest.log_files.is_empty());
        read_digest(&d1.bytes)?.check_signature(&key().public_key())?;
        Ok(())
    }

    #[test]
    fn the_signed_bytes_are_the_documented_ones() -> TestResult {
        let layout = layout();
        let d = sign_digest(input(&layout, None), &key())?;
        let text = String::from_utf8(file::decompress(&d.bytes)?)?;
        // The stored file is canonical JSON; removing the signature member gives the signed JSON.
        let sig_member = format!(",\"digest_signature\":\"{}\"", hex::encode(d.signature));
        assert!(text.contains(&sig_member), "{text}");
        let signed_json = text.trim_end().replacen(&sig_member, "", 1);
        let expected = format!(
            "{{\"digest_bucket\":\"bucket\",\"digest_end\":false,\"digest_end_time\":\"2026-03-05T11-00-00Z\",\
\"digest_format_version\":1,\"digest_object\":\"{}\",\"digest_public_key_id\":\"{}\",\
\"digest_signature_algorithm\":\"Ed25519\",\"digest_start_time\":\"2026-03-05T10-00-00Z\",\"log_files\":[],\
\"previous_digest_bucket\":\"\",\"previous_digest_end\":false,\"previous_digest_hash_algorithm\":\"SHA-256\",\
\"previous_digest_hash_value\":\"\",\"previous_digest_object\":\"\",\"previous_digest_signature\":\"\",\
\"project_id\":\"p1\",\"sequence\":0}}",
            d.key,
            key().public_key().key_id()
        );
        assert_eq!(signed_json, expected);
        let mut message = b"trailwatch-digest-v1\n".to_vec();
        message.extend_from_slice(expected.as_bytes());
        assert!(key().public_key().verify(&message, &d.signature));
        Ok(())
    }

    #[test]
    fn any_change_breaks_the_signature() -> TestResult {
        let layout = layout();
        let mut i = input(&layout, None);
        i.files.push(one_file(&layout, t(10, 5, 0))?);
        let d = sign_digest(i, &key())?;
        let text = String::from_utf8(file::decompress(&d.bytes)?)?;
        for (from, to) in [
            ("\"sequence\":0", "\"sequence\":1"),
            ("\"count\":1", "\"count\":2"),
            ("\"digest_end\":false", "\"digest_end\":true"),
            ("\"project_id\":\"p1\"", "\"project_id\":\"p2\""),
            ("\"log_hash_value\":\"", "\"log_hash_value\":\"0"),
        ] {
            assert!(text.contains(from), "{from}");
            let changed = text.replacen(from, to, 1);
            match read_digest(changed.as_bytes()) {
                Ok(f) => assert!(
                    matches!(
                        f.check_signature(&key().public_key()),
                        Err(DigestError::BadSignature(_))
                    ),
                    "{from} -> {to}"
                ),
                Err(e) => panic!("{from} -> {to}: {e}"),
            }
        }
        // Another key: named as such.
        let other = SigningKey::from_seed(&[9; 32]).public_key();
        assert!(matches!(
            read_digest(&d.bytes)?.check_signature(&other),
            Err(DigestError::WrongKey { found, .. }) if found == key().public_key().key_id().to_string()
        ));
        // No signature at all.
        let unsigned = text.replacen(
            &format!(",\"digest_signature\":\"{}\"", hex::encode(d.signature)),
            "",
            1,
        );
        assert!(matches!(
            read_digest(unsigned.as_bytes())?.check_signature(&key().public_key()),
            Err(DigestError::BadSignature(_))
        ));
        // An unknown member is a shape error, not silently ignored.
        let extra = text.replacen("{", "{\"zz\":1,", 1);
        assert!(
            matches!(read_digest(extra.as_bytes()), Err(DigestError::Shape(m)) if m.contains("zz"))
        );
        Ok(())
    }

    #[test]
    fn inputs_that_would_break_the_chain_are_refused() -> TestResult {
        let layout = layout();
        let d0 = sign_digest(input(&layout, None), &key())?;
        let prev = d0.previous();
        let err = |i: DigestInput<'_>| match sign_digest(i, &key()) {
            Err(e) => e.to_string(),
            Ok(d) => panic!("signed {:?}", d.key),
        };
        // Not contiguous with the previous period.
        let mut i = input(&layout, Some(&prev));
        i.start = t(11, 0, 1);
        i.end = t(12, 0, 0);
        assert!(err(i).contains("must start where the previous one ended"));
        // Empty or negative period.
        let mut i = input(&layout, None);
        i.end = i.start;
        assert!(err(i).contains("must end after it starts"));
        // A file outside the period, of another tracker, or of the wrong kind.
        let mut i = input(&layout, None);
        i.files.push(one_file(&layout, t(11, 0, 1))?);
        assert!(err(i).contains("outside the period"));
        let other = Layout::new("eu-de", "other", "audit")?;
        let mut i = input(&layout, None);
        i.files.push(one_file(&other, t(10, 30, 0))?);
        assert!(err(i).contains("another tracker"));
        let mut i = input(&layout, None);
        let mut f = one_file(&layout, t(10, 30, 0))?;
        f.kind = FileKind::Alarm;
        i.files.push(f);
        assert!(err(i).contains("kind \"alarm\" does not match"));
        let mut i = input(&layout, None);
        let mut f = one_file(&layout, t(10, 30, 0))?;
        f.size = 1 << 60;
        i.files.push(f);
        assert!(err(i).contains("2^53"));
        Ok(())
    }

    #[test]
    fn truncated_and_garbage_digests_are_told_apart() -> TestResult {
        let layout = layout();
        let d = sign_digest(input(&layout, None), &key())?;
        assert!(matches!(
            read_digest(&d.bytes[..d.bytes.len() - 3]),
            Err(DigestError::Read(ReadError::Truncated(_)))
        ));
        assert!(matches!(read_digest(b"[1]"), Err(DigestError::Shape(_))));
        assert!(matches!(
            read_digest(b"{\"a\":"),
            Err(DigestError::Read(ReadError::Truncated(_)))
        ));
        assert!(matches!(
            read_digest(b"nope"),
            Err(DigestError::Read(ReadError::Json { .. }))
        ));
        Ok(())
    }
}
