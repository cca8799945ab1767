//! Fuzzes the CTS trace parser, the input that arrives from outside on every ingest.
//!
//! Any input: parsing must not panic. Any input that parses: the trace must survive a round trip
//! through its stored JSON form unchanged, `to_value` and `to_json_string` must agree, and the
//! CTS v3 rendering must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trailwatch_trace::{RenderStyle, Trace};

fuzz_target!(|data: &[u8]| {
    // Both entry points ingest uses: JSON text, and an already-parsed value (e.g. the `cts`
    // member of a FunctionGraph event, or one element of a batch).
    let from_value = serde_json::from_slice::<Value>(data)
        .ok()
        .map(Trace::from_value);
    if let Ok(text) = std::str::from_utf8(data) {
        let from_text = Trace::from_json_str(text);
        if let Some(from_value) = &from_value {
            // Same document, so the same verdict (error messages may differ in wording).
            match (&from_text, from_value) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "from_json_str and from_value disagree"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("from_json_str gave {a:?} but from_value gave {b:?}"),
            }
        }
        if let Ok(trace) = &from_text {
            check(trace);
            return;
        }
    }
    if let Some(Ok(trace)) = &from_value {
        check(trace);
    }
});

/// The properties every successfully parsed trace must have.
fn check(trace: &Trace) {
    let stored = trace.to_json_string(RenderStyle::Stored);
    match Trace::from_json_str(&stored) {
        Ok(back) => assert_eq!(
            &back, trace,
            "the stored form parses back to a different trace; stored form: {stored}"
        ),
        Err(e) => panic!("the stored form does not parse back: {e}; stored form: {stored}"),
    }

    // The crate promises one member walk behind both renderings, so their content is equal
    // (member order aside, which `Value` equality ignores).
    for style in [RenderStyle::Stored, RenderStyle::CtsV3] {
        let value = trace.to_value(style);
        let text = trace.to_json_string(style);
        let reparsed: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => panic!("to_json_string({style:?}) is not valid JSON: {e}; text: {text}"),
        };
        assert_eq!(
            reparsed, value,
            "to_value({style:?}) and to_json_string({style:?}) disagree"
        );
    }
}
