//! Fuzzes the cloud and platform audit parsers (`trailwatch-sources::cloud`): CloudTrail,
//! Windows Security events as JSON and as XML, Kubernetes audit and the generic JSON mapping
//! (the Keycloak and Okta presets), all read from files other systems wrote.
//!
//! The first byte of the input picks the parser (`byte % 6`, so the seeds start with an ASCII
//! digit: `0` CloudTrail, `1` Windows JSON, `2` Windows XML, `3` Kubernetes, `4` generic with the
//! Keycloak mapping, `5` generic with the Okta mapping); the rest is the text (lossy UTF-8).
//!
//! Checked: no panic; every trace passes `Trace::from_value` (the module promises it); the same
//! input gives the same result twice (trace ids are deterministic); a parser never reports a
//! problem on line 0 (lines and record indexes are 1-based).

#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwatch_sources::Parsed;
use trailwatch_sources::cloud::{cloudtrail, generic, k8s, windows};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (what, parse): (&str, fn(&str) -> Parsed) = match selector % 6 {
        0 => ("cloudtrail", cloudtrail::parse),
        1 => ("windows json", windows::parse_json),
        2 => ("windows xml", windows::parse_xml),
        3 => ("k8s", k8s::parse),
        4 => ("generic keycloak", |t| {
            generic::parse(t, &generic::Mapping::keycloak())
        }),
        _ => ("generic okta", |t| {
            generic::parse(t, &generic::Mapping::okta())
        }),
    };
    let out = parse(&text);
    for t in &out.traces {
        if let Err(e) = trailwatch_trace::Trace::from_value(t.clone()) {
            panic!("{what}: the parser emitted a trace that does not validate: {e:?}\n{t}");
        }
    }
    for p in &out.problems {
        assert!(p.line >= 1, "{what}: problem on line 0: {}", p.reason);
    }
    assert_eq!(parse(&text), out, "{what}: same input, different result");
});
