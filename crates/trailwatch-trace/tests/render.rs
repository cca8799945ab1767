//! Rendering styles, member order, ingest defaults and address helpers.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use serde_json::json;
use trailwatch_trace::{RenderStyle, Trace, Value, normalize_ip};

fn sample() -> Trace {
    Trace::from_value(json!({
        "custom": 1,
        "user": {"name": "alice", "id": "u1"},
        "time": 1_765_788_999,
        "code": 204,
        "request": {"a": [1, "x"], "b": 2},
        "response": "already text",
        "message": {"note": "kept"},
        "resource_type": "Functions",
        "service_type": "FunctionGraph",
        "trace_type": "ConsoleAction",
        "trace_name": "createFunction",
        "trace_status": "normal",
    }))
    .unwrap()
}

#[test]
fn cts_v3_stringifies_object_bodies_only() {
    let t = sample();
    let v3 = t.to_value(RenderStyle::CtsV3);
    assert_eq!(v3["request"], r#"{"a":[1,"x"],"b":2}"#);
    assert_eq!(v3["response"], "already text");
    // Only request/response change; message stays an object.
    assert_eq!(v3["message"], json!({"note": "kept"}));
    let stringified: Value = serde_json::from_str(v3["request"].as_str().unwrap()).unwrap();
    assert_eq!(stringified, json!({"b": 2, "a": [1, "x"]}));
    let text: Value = serde_json::from_str(&t.to_json_string(RenderStyle::CtsV3)).unwrap();
    assert_eq!(text, v3);
}

#[test]
fn stored_keeps_bodies_as_given() {
    let t = sample();
    let v = t.to_value(RenderStyle::Stored);
    assert_eq!(v["request"], json!({"b": 2, "a": [1, "x"]}));
    assert_eq!(v["response"], "already text");
    assert_eq!(v["code"], "204");
    assert_eq!(v["time"], 1_765_788_999_000_i64);
    assert_eq!(v["trace_rating"], "normal");
    assert_eq!(v["trace_status"], "normal");
    // Absent options are omitted, never null.
    let obj = v.as_object().unwrap();
    assert!(obj.values().all(|v| !v.is_null()));
    for absent in [
        "trace_id",
        "record_time",
        "source_ip",
        "tracker_name",
        "read_only",
    ] {
        assert!(!obj.contains_key(absent), "{absent}");
    }
    // Serialize is the Stored style.
    assert_eq!(serde_json::to_value(&t).unwrap(), v);
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        t.to_json_string(RenderStyle::Stored)
    );
}

#[test]
fn member_order_is_table_then_user_then_extras() {
    let json = sample().to_json_string(RenderStyle::Stored);
    assert_eq!(
        json,
        concat!(
            r#"{"trace_name":"createFunction","trace_rating":"normal","trace_type":"ConsoleAction","#,
            r#""service_type":"FunctionGraph","resource_type":"Functions","#,
            r#""request":{"a":[1,"x"],"b":2},"response":"already text","code":"204","#,
            r#""message":{"note":"kept"},"time":1765788999000,"#,
            r#""user":{"id":"u1","name":"alice"},"custom":1,"trace_status":"normal"}"#
        )
    );
}

#[test]
fn round_trips_through_both_renderings() {
    let t = sample();
    assert_eq!(
        Trace::from_value(t.to_value(RenderStyle::Stored)).unwrap(),
        t
    );
    assert_eq!(
        Trace::from_json_str(&t.to_json_string(RenderStyle::Stored)).unwrap(),
        t
    );
    let back: Trace = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(back, t);
    // CtsV3 differs only in the body types.
    let mut v3 = Trace::from_value(t.to_value(RenderStyle::CtsV3)).unwrap();
    v3.request = t.request.clone();
    assert_eq!(v3, t);
}

#[test]
fn fill_defaults_sets_missing_ingest_fields() {
    let mut t = sample();
    t.fill_defaults(1_765_789_000_123);
    let id = t.trace_id.clone().unwrap();
    let parsed = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(parsed.get_version_num(), 7);
    // Time-ordered: an id made later sorts after this one.
    let mut later = sample();
    std::thread::sleep(std::time::Duration::from_millis(2));
    later.fill_defaults(1_765_789_000_124);
    assert!(later.trace_id.clone().unwrap() > id);
    assert_eq!(id, parsed.hyphenated().to_string());
    assert_eq!(id, id.to_lowercase());
    assert_eq!(id.len(), 36);
    assert_eq!(t.record_time, Some(1_765_789_000_123));
    assert_eq!(t.tracker_name.as_deref(), Some("system"));

    // Idempotent: nothing changes on a second call.
    let before = t.clone();
    t.fill_defaults(5);
    assert_eq!(t, before);

    // An empty trace_id (possible in hand-built traces) is replaced; each id is fresh.
    let mut a = sample();
    a.trace_id = Some(String::new());
    a.fill_defaults(0);
    let mut b = sample();
    b.fill_defaults(0);
    assert_eq!(a.trace_id.as_ref().unwrap().len(), 36);
    assert_ne!(a.trace_id, b.trace_id);

    // Existing values are kept.
    let mut c = sample();
    c.trace_id = Some("given".into());
    c.record_time = Some(7);
    c.tracker_name = Some("data-tracker".into());
    c.fill_defaults(0);
    assert_eq!(c.trace_id.as_deref(), Some("given"));
    assert_eq!(c.record_time, Some(7));
    assert_eq!(c.tracker_name.as_deref(), Some("data-tracker"));
}

#[test]
fn ipv4_mapped_addresses_are_normalised() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(normalize_ip(ip("::ffff:203.0.113.17")), ip("203.0.113.17"));
    assert_eq!(normalize_ip(ip("::ffff:cb00:7111")), ip("203.0.113.17"));
    assert_eq!(normalize_ip(ip("203.0.113.17")), ip("203.0.113.17"));
    assert_eq!(normalize_ip(ip("2001:db8::1")), ip("2001:db8::1"));
    assert_eq!(normalize_ip(ip("::1")), ip("::1"));
    // IPv4-compatible (deprecated) addresses are not mapped ones.
    assert_eq!(normalize_ip(ip("::203.0.113.17")), ip("::203.0.113.17"));

    let mut t = sample();
    t.source_ip = Some("::ffff:203.0.113.17".into());
    assert_eq!(t.source_addr(), Some(ip("203.0.113.17")));
    // The stored text stays as given.
    assert_eq!(
        t.to_value(RenderStyle::Stored)["source_ip"],
        "::ffff:203.0.113.17"
    );
    // Hand-built garbage yields no address rather than a panic.
    t.source_ip = Some("not an ip".into());
    assert_eq!(t.source_addr(), None);
    t.source_ip = None;
    assert_eq!(t.source_addr(), None);
}

#[test]
fn user_name_helper() {
    let mut t = sample();
    assert_eq!(t.user_name(), Some("alice"));
    t.user.as_mut().unwrap().name = None;
    assert_eq!(t.user_name(), None);
    t.user = None;
    assert_eq!(t.user_name(), None);
}
