//! Differential tests: the fast parse paths (`Trace::from_json_str`, `parse_batch`) must give
//! exactly what the reference paths give (`Trace::from_value(serde_json::from_str(s)?)`,
//! `parse_batch_slow`): the same trace on success, the same error field and message on failure.
//!
//! Inputs: the fixtures in tests/data, the fuzz seeds, the shared corpus (when present), 20 000
//! lines of /tmp/t200k.jsonl (when present), and seeded random mutations of real traces. The
//! mutations use the small seeded PRNG of tests/property.rs rather than proptest, which is not a
//! dependency of this workspace; a failure prints the input, and the seeds are fixed, so every
//! case reproduces.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use std::cell::Cell;

use trailwatch_trace::{__fast_only, Trace, TraceError, parse_batch, parse_batch_slow};

thread_local! {
    /// How many inputs checked on this thread (each test has its own) the fast code decided
    /// itself, and how many it left to the slow path.
    static DECIDED: Cell<usize> = const { Cell::new(0) };
    static DEFERRED: Cell<usize> = const { Cell::new(0) };
}

/// The reference: what `Trace::from_json_str` did before the fast path.
fn slow(s: &str) -> Result<Trace, TraceError> {
    match serde_json::from_str::<Value>(s) {
        Ok(v) => Trace::from_value(v),
        Err(e) => Err(TraceError {
            field: String::new(),
            message: e.to_string(),
        }),
    }
}

/// Checks one document both as a single trace and as an ingest body; returns whether the
/// trace parsed (so callers can check that a test set is not all errors).
fn assert_same(s: &str) -> bool {
    let reference = slow(s);
    let fast = Trace::from_json_str(s);
    assert_eq!(fast, reference, "from_json_str differs for input:\n{s}");
    // The fast code on its own, where it decides (the fallback alone would pass the above).
    match __fast_only::from_json_str(s) {
        Some(own) => {
            assert_eq!(own, reference, "fast code differs for input:\n{s}");
            DECIDED.set(DECIDED.get() + 1);
        }
        None => {
            DEFERRED.set(DEFERRED.get() + 1);
        }
    }
    assert_same_batch(s.as_bytes());
    fast.is_ok()
}

/// The ingest handler's limit, and small ones so that the size checks are hit often.
const MAX_RECORDS: [usize; 4] = [1000, 0, 1, 2];

fn assert_same_batch(body: &[u8]) {
    let show = || String::from_utf8_lossy(body).into_owned();
    for max in MAX_RECORDS {
        let reference = parse_batch_slow(body, max);
        assert_eq!(
            parse_batch(body, max),
            reference,
            "parse_batch (max {max}) differs for body:\n{}",
            show()
        );
        if let Some(own) = __fast_only::parse_batch(body, max) {
            assert_eq!(
                own,
                reference,
                "fast batch code (max {max}) differs for body:\n{}",
                show()
            );
        }
    }
}

/// Asserts that the fast code decided at least `share` of the inputs checked since `before`
/// (a `(decided, deferred)` snapshot), so the tests exercise it rather than the fallback.
fn assert_mostly_decided(before: (usize, usize), share: f64) {
    let decided = DECIDED.get() - before.0;
    let deferred = DEFERRED.get() - before.1;
    println!("the fast code decided {decided} inputs and deferred {deferred}");
    let total = (decided + deferred).max(1) as f64;
    assert!(
        decided as f64 / total >= share,
        "the fast code decided only {decided} of {} inputs",
        decided + deferred
    );
}

fn snapshot() -> (usize, usize) {
    (DECIDED.get(), DEFERRED.get())
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn fixtures_and_fuzz_seeds() {
    let mut count = 0;
    let mut parsed = 0;
    let before = snapshot();
    for dir in [
        manifest_dir().join("tests/data"),
        manifest_dir().join("../../fuzz/seeds/trace_parse"),
    ] {
        for path in json_files(&dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            parsed += usize::from(assert_same(&text));
            count += 1;
        }
    }
    assert!(count >= 7, "only {count} fixture files found");
    assert!(parsed >= 5, "only {parsed} fixtures parse");
    assert_mostly_decided(before, 1.0);
}

#[test]
fn shared_corpus_documents_and_their_traces() {
    let dir = manifest_dir().join("../../../shared/corpus/huaweicloud-cts");
    if !dir.is_dir() {
        println!(
            "SKIPPED: corpus folder {} does not exist; the corpus part did not run",
            dir.display()
        );
        return;
    }
    let mut parsed = 0;
    for path in json_files(&dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        // Whole documents: list responses are batch bodies with extra members, events are
        // objects without the required fields; both must fail (or pass) the same way.
        assert_same(&text);
        let doc: Value = serde_json::from_str(&text).unwrap();
        let mut traces = Vec::new();
        if let Some(list) = doc.get("traces").and_then(Value::as_array) {
            traces.extend(list.iter().cloned());
            assert_same_batch(format!("{{\"traces\":{}}}", Value::Array(list.clone())).as_bytes());
        }
        if let Some(cts) = doc.get("cts") {
            traces.push(cts.clone());
        }
        if doc.get("trace_name").is_some() {
            traces.push(doc.clone());
        }
        for t in traces {
            parsed += usize::from(assert_same(&t.to_string()));
            parsed += usize::from(assert_same(&serde_json::to_string_pretty(&t).unwrap()));
        }
    }
    assert!(parsed >= 14, "only {parsed} corpus traces parse");
}

/// Up to 20 000 non-empty lines of the generated trace file, or None (with a note).
fn t200k() -> Option<Vec<String>> {
    let path = Path::new("/tmp/t200k.jsonl");
    let Ok(text) = std::fs::read_to_string(path) else {
        println!(
            "SKIPPED: {} does not exist; the t200k part did not run",
            path.display()
        );
        return None;
    };
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .take(20_000)
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn t200k_lines_singly_and_in_batches() {
    let Some(lines) = t200k() else { return };
    let mut parsed = 0;
    for line in &lines {
        let reference = slow(line);
        assert_eq!(
            Trace::from_json_str(line),
            reference,
            "from_json_str differs for input:\n{line}"
        );
        // Real traces must never need the fallback.
        assert_eq!(
            __fast_only::from_json_str(line),
            Some(reference.clone()),
            "fast code differs or defers for input:\n{line}"
        );
        parsed += usize::from(reference.is_ok());
    }
    assert!(parsed > 0, "no line of /tmp/t200k.jsonl parses");
    for chunk in lines.chunks(1000) {
        assert_same_batch(format!("{{\"traces\":[{}]}}", chunk.join(",")).as_bytes());
    }
    assert_same_batch(lines[0].as_bytes());
}

/// xorshift64*, as in tests/property.rs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Members a trace can have: every known one, some that steer rules (`trace_status`), the
/// batch envelope's `traces`, serde_json's private key, and plain unknown ones.
const KEYS: &[&str] = &[
    "trace_id",
    "trace_name",
    "trace_rating",
    "trace_type",
    "service_type",
    "resource_type",
    "resource_name",
    "resource_id",
    "source_ip",
    "request",
    "response",
    "code",
    "api_version",
    "message",
    "time",
    "record_time",
    "request_id",
    "location_info",
    "endpoint",
    "resource_url",
    "enterprise_project_id",
    "resource_account_id",
    "read_only",
    "operation_id",
    "tracker_name",
    "event_type",
    "project_id",
    "domain_id",
    "user_agent",
    "user",
    "trace_status",
    "traces",
    "content_length",
    "zzz",
    "aaa",
    "$serde_json::private::RawValue",
    "trace\\u005fname",
    "us\\u0065r",
    "ti\\u006de",
    "\\u00e9t\\u00e9",
];

/// JSON value texts, valid or not, chosen to hit every rule and every serde_json corner.
const VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1.5",
    "-1.5e3",
    "1e2",
    "1E400",
    "-1e400",
    "1e-400",
    "200",
    "302",
    "9999999999",
    "99999999999",
    "100000000000",
    "1731161042",
    "1731161042000",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "01",
    "1.",
    "+1",
    "\"\"",
    "\" \"",
    "\"a\\u0000b\"",
    "\"\\ud800\"",
    "\"\\udc00x\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud83d\"",
    "\"é漢\"",
    "\"\\u00e9\"",
    "\"a\\\"b\\\\c\\n\"",
    "\"\\x\"",
    "\"tab\there\"",
    "\"2016/12/08 11:07:28 GMT+08:00\"",
    "\"2016/13/08 11:07:28 GMT+08:00\"",
    "\"1970/01/01 00:00:00 GMT+01:00\"",
    "\" 1731161042 \"",
    "\"1731161042000\"",
    "\"99999999999999999999999\"",
    "\"GMT\"",
    "\"normal\"",
    "\"warning\"",
    "\"incident\"",
    "\"Normal\"",
    "\"true\"",
    "\"false\"",
    "\"login\"",
    "\"9lives\"",
    "\"a b\"",
    "\"ConsoleAction\"",
    "\"192.0.2.1\"",
    "\" 192.0.2.1 \"",
    "\"::ffff:203.0.113.17\"",
    "\"253.252.51.07\"",
    "\"2001:db8::1\"",
    "\"abc-123_XYZ.ok\"",
    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
    "[]",
    "[1,\"a\",null]",
    "[1,]",
    "{}",
    "{\"name\":\"alice\"}",
    "{\"name\":\"alice\",\"name\":\"bob\",\"x\":1,\"x\":2}",
    "{\"id\":1}",
    "{\"id\":null,\"name\":null,\"domain\":null}",
    "{\"name\":\"a\\u0000\"}",
    "{\"domain\":5}",
    "{\"domain\":{\"id\":\"d\",\"name\":7}}",
    "{\"domain\":{\"id\":\"d\",\"name\":\"n\",\"extra\":[1],\"id\":\"e\"}}",
    "{\"type\":\"User\",\"principal_urn\":\"iam::1:user:x\",\"name\":\"a\"}",
    "{\"$serde_json::private::RawValue\":\"5\"}",
    "{\"$serde_json::private::RawValue\":\"{\\\"a\\\":1}\"}",
    "{\"$serde_json::private::RawValue\":5}",
    "{\"a\":{\"$serde_json::private::RawValue\":\"[1]\"}}",
    "{\"$serde_json::private::Number\":\"5\"}",
    "{\"a\":1,}",
    "{\"a\" 1}",
    "nul",
    "tru",
    "\"unterminated",
    "",
];

/// A document as a list of raw member texts, so duplicates, bad keys and bad values can be
/// written that no `Value` could hold.
fn render(members: &[(String, String)]) -> String {
    let inner: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// The members of a real trace line, as raw texts.
fn members_of(line: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(line).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (Value::from(k.as_str()).to_string(), v.to_string()))
        .collect()
}

/// A deeply nested array: serde_json refuses more than 128 levels, wherever they are.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn mutate(r: &mut Rng, base: &[(String, String)]) -> String {
    let mut m = base.to_vec();
    for _ in 0..=r.below(4) {
        let key = format!("\"{}\"", r.pick(KEYS));
        let value = match r.below(20) {
            0 => nested(r.pick(&["126", "127", "128", "129"]).parse().unwrap()),
            1 => format!(
                "\"{}\"",
                "x".repeat(r.pick(&["64", "65", "256", "257", "1025"]).parse().unwrap())
            ),
            _ => r.pick(VALUES).to_owned(),
        };
        match r.below(6) {
            // Replace an existing member's value (or add the member).
            0 | 1 => match m.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => m.push((key, value)),
            },
            // Append, possibly duplicating a key: the last one must win.
            2 => m.push((key, value)),
            // Insert at a random position.
            3 => {
                let at = r.below(m.len() + 1);
                m.insert(at, (key, value));
            }
            // Remove a member.
            4 if !m.is_empty() => {
                let at = r.below(m.len());
                m.remove(at);
            }
            // Move a member to the end (member order must not matter).
            _ if !m.is_empty() => {
                let at = r.below(m.len());
                let moved = m.remove(at);
                m.push(moved);
            }
            _ => {}
        }
    }
    let text = render(&m);
    match r.below(30) {
        // Truncated: a syntax error somewhere.
        0 => text[..text.floor_char_boundary(r.below(text.len() + 1))].to_owned(),
        // Not an object at all.
        1 => r.pick(VALUES).to_owned(),
        2 => format!("[{text}]"),
        // Trailing garbage, whitespace around.
        3 => format!("{text} x"),
        4 => format!(" \n{text}\t "),
        _ => text,
    }
}

/// Bases for mutation: fixture traces, plus t200k lines when present.
fn bases() -> Vec<Vec<(String, String)>> {
    let mut bases = Vec::new();
    let seeds = manifest_dir().join("../../fuzz/seeds/trace_parse");
    for path in json_files(&manifest_dir().join("tests/data"))
        .into_iter()
        .chain(json_files(&seeds))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        if serde_json::from_str::<Value>(&text).is_ok_and(|v| v.is_object()) {
            bases.push(members_of(&text));
        }
    }
    if let Ok(text) = std::fs::read_to_string("/tmp/t200k.jsonl") {
        bases.extend(text.lines().take(200).map(members_of));
    }
    bases
}

#[test]
fn mutated_traces() {
    let bases = bases();
    assert!(bases.len() >= 5, "only {} bases", bases.len());
    let mut r = Rng(0x5eed_f00d_cafe_0001);
    let before = snapshot();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..20_000 {
        let base = &bases[r.below(bases.len())];
        if assert_same(&mutate(&mut r, base)) {
            ok += 1;
        } else {
            err += 1;
        }
    }
    // Both outcomes must be well represented, or the mutations test only one side.
    println!("{ok} mutated traces parsed, {err} were refused");
    assert!(ok > 2_000 && err > 2_000, "ok {ok}, err {err}");
    assert_mostly_decided(before, 0.5);
}

#[test]
fn mutated_batches() {
    let bases = bases();
    let mut r = Rng(0x5eed_f00d_cafe_0002);
    for _ in 0..2_000 {
        let records: Vec<String> = (0..r.below(5))
            .map(|_| {
                let base = &bases[r.below(bases.len())];
                if r.below(2) == 0 {
                    render(base)
                } else {
                    mutate(&mut r, base)
                }
            })
            .collect();
        let list = format!("[{}]", records.join(","));
        let body = match r.below(12) {
            0 => format!("{{\"traces\":{list},\"other\":1,\"aaa\":null,\"zzz\":[]}}"),
            1 => format!("{{\"b\":1,\"traces\":{list},\"a\":2,\"c\":3,\"d\":4}}"),
            2 => format!("{{\"traces\":{},\"traces\":{list}}}", r.pick(VALUES)),
            3 => format!("{{\"traces\":{list},\"traces\":{}}}", r.pick(VALUES)),
            4 => format!("{{\"traces\":{}}}", r.pick(VALUES)),
            5 => format!("{{\"tr\\u0061ces\":{list}}}"),
            6 => list.clone(),
            7 => r
                .pick(&["", " ", "\n\t ", "{}", "[]", "{\"traces\":[]}", "x"])
                .to_owned(),
            8 => format!("{{\"traces\":{list}}}{}", r.pick(&["", " ", "x", ",", "]"])),
            _ => format!("{{\"traces\":{list}}}"),
        };
        assert_same_batch(body.as_bytes());
        // A body that is not valid UTF-8 inside a string.
        if r.below(20) == 0 {
            let mut bytes = body.into_bytes();
            if let Some(i) = bytes.iter().position(|&b| b == b'"') {
                bytes.insert(i + 1, 0xff);
            }
            assert_same_batch(&bytes);
        }
    }
}

#[test]
fn hand_picked_corners() {
    let base = r#""trace_name":"login","trace_type":"ConsoleAction","service_type":"IAM","resource_type":"user","time":1731161042"#;
    let cases = [
        format!("{{{base}}}"),
        format!("{{{base},\"trace_name\":\"other\"}}"),
        format!("{{{base},\"trace_name\":null}}"),
        format!("{{\"trace_name\":null,{base}}}"),
        format!("{{{base},\"user\":{{\"name\":\"a\"}},\"user\":\"b\"}}"),
        format!("{{{base},\"user\":\"b\",\"user\":{{\"name\":\"a\"}}}}"),
        format!("{{{base},\"x\":1,\"y\":2,\"x\":3}}"),
        format!("{{{base},\"trace_status\":\"incident\"}}"),
        format!("{{{base},\"trace_status\":\"incident\",\"trace_rating\":null}}"),
        format!("{{\"$serde_json::private::RawValue\":\"5\",{base}}}"),
        format!("{{{base},\"$serde_json::private::RawValue\":\"5\"}}"),
        format!("{{{base},\"user\":{{\"$serde_json::private::RawValue\":\"\\\"bob\\\"\"}}}}"),
        format!("{{{base},\"request\":{}}}", nested(127)),
        format!("{{{base},\"request\":{}}}", nested(128)),
        format!("{{{base},\"user\":{{\"x\":{}}}}}", nested(126)),
        format!("{{{base},\"user\":{{\"x\":{}}}}}", nested(127)),
        format!("{{{base},\"code\":1e400}}"),
        format!("{{{base},\"code\":-5}}"),
        format!("{{{base},\"code\":5.0}}"),
        format!("{{{base},\"time\":\"\\ud800\"}}"),
        "{\"$serde_json::private::RawValue\":\"{\\\"trace_name\\\":\\\"x\\\"}\"}".to_owned(),
        "[]".to_owned(),
        "5".to_owned(),
        "\"x\"".to_owned(),
        String::new(),
    ];
    for c in &cases {
        assert_same(c);
        assert_same_batch(format!("{{\"traces\":[{c}]}}").as_bytes());
        assert_same_batch(format!("{{\"traces\":[{c},{c}]}}").as_bytes());
    }
    // Nesting counts from the body's root: a record that is fine alone can be too deep in a
    // batch, and then the whole body is refused.
    let deep = format!("{{{base},\"request\":{}}}", nested(126));
    assert!(Trace::from_json_str(&deep).is_ok());
    assert_same_batch(format!("{{\"traces\":[{deep}]}}").as_bytes());
    assert!(parse_batch(format!("{{\"traces\":[{deep}]}}").as_bytes(), 1000).is_err());
}
