//! `cloud::windows::parse_evtx` over the corpus's real binary EVTX file: the same traces (and
//! trace ids) as `parse_json` over the JSON Lines the `evtx` crate's Python binding made from it,
//! and the corpus README's counts. Fails when the corpus is absent unless `TW_SKIP_CORPUS=1`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use trailwatch_sources::cloud::windows;

fn corpus_file(rel: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    if dir.join("README.md").is_file() {
        return Some(dir.join(rel));
    }
    if std::env::var("TW_SKIP_CORPUS").as_deref() == Ok("1") {
        eprintln!("evtx corpus test DID NOT RUN: the corpus is absent and TW_SKIP_CORPUS=1");
        return None;
    }
    panic!(
        "the shared corpus is missing at {} (set TW_SKIP_CORPUS=1 to skip)",
        dir.display()
    );
}

/// A trace without `request` (the record's JSON text, whose formatting differs between the
/// Rust and Python renderings) keyed by its id.
fn by_id(traces: &[Value]) -> BTreeMap<String, Value> {
    traces
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.as_object_mut().unwrap().remove("request");
            (t["trace_id"].as_str().unwrap().to_owned(), t)
        })
        .collect()
}

#[test]
fn evtx_maps_exactly_as_its_json_rendering() {
    let Some(evtx) = corpus_file("windows-security/evtx-rs_Security_with_size_t.evtx") else {
        return;
    };
    let Some(jsonl) = corpus_file("windows-security/evtx-rs_Security_with_size_t.evtx.jsonl")
    else {
        return;
    };
    let from_evtx = windows::parse_evtx(&std::fs::read(evtx).unwrap());
    let from_json = windows::parse_json(&std::fs::read_to_string(jsonl).unwrap());
    assert!(from_evtx.problems.is_empty(), "{:?}", from_evtx.problems);
    // 4624 ×126, 4625 ×15, 4634 ×17, 4647 ×1, 4648 ×92, 4672 ×109 of 636 records.
    assert_eq!(from_evtx.traces.len(), 360);
    assert_eq!(from_evtx.skipped, 636 - 360);
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for t in &from_evtx.traces {
        *names
            .entry(t["trace_name"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(names["login"], 126);
    assert_eq!(names["loginfailed"], 15);
    assert_eq!(names["logout"], 18);
    assert_eq!(names["explicitCredentialLogon"], 92);
    assert_eq!(names["assignPrivileges"], 109);
    assert_eq!(by_id(&from_evtx.traces), by_id(&from_json.traces));
    // The original record is kept, as for every source.
    let request: Value =
        serde_json::from_str(from_evtx.traces[0]["request"].as_str().unwrap()).unwrap();
    assert!(request["Event"]["System"]["EventRecordID"].is_u64());
}

#[test]
fn bytes_that_are_not_evtx_are_one_problem_not_a_panic() {
    let p = windows::parse_evtx(b"ElfFile\0 but truncated");
    assert!(p.traces.is_empty());
    assert_eq!(p.problems.len(), 1);
    assert!(p.problems[0].reason.contains("EVTX"), "{:?}", p.problems);
    let empty = windows::parse_evtx(b"");
    assert_eq!(empty.problems.len(), 1);
}
