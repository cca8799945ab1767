//! Differential fuzzing of the fast trace parse paths against the reference paths.
//!
//! Any input: `Trace::from_json_str` must give exactly what
//! `Trace::from_value(serde_json::from_str(s)?)` gives (the same trace, or the same error field
//! and message), and `parse_batch` exactly what `parse_batch_slow` gives (the same envelope or
//! size error, or the same per-record verdicts), with the ingest limit and with a limit of 1.
//! The fast code alone (without its fallback to the slow path) must agree too wherever it
//! decides. The input is also tried wrapped as a batch record, where nesting depth and envelope
//! rules differ.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trailwatch_trace::{__fast_only, Trace, TraceError, parse_batch, parse_batch_slow};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let reference = match serde_json::from_str::<Value>(text) {
            Ok(v) => Trace::from_value(v),
            Err(e) => Err(TraceError {
                field: String::new(),
                message: e.to_string(),
            }),
        };
        assert_eq!(
            Trace::from_json_str(text),
            reference,
            "from_json_str differs for {text:?}"
        );
        if let Some(own) = __fast_only::from_json_str(text) {
            assert_eq!(own, reference, "the fast code differs for {text:?}");
        }
    }
    check_batch(data);
    let mut wrapped = b"{\"traces\":[".to_vec();
    wrapped.extend_from_slice(data);
    wrapped.extend_from_slice(b"]}");
    check_batch(&wrapped);
});

fn check_batch(body: &[u8]) {
    // The ingest handler's limit, and 1 so the size checks are reached too.
    for max in [1000, 1] {
        let reference = parse_batch_slow(body, max);
        assert_eq!(
            parse_batch(body, max),
            reference,
            "parse_batch (max {max}) differs for {:?}",
            String::from_utf8_lossy(body)
        );
        if let Some(own) = __fast_only::parse_batch(body, max) {
            assert_eq!(
                own,
                reference,
                "the fast batch code (max {max}) differs for {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
