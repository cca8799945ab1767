//! The constructed "realistic IAM login trace" (cloud-apis.md §1.4), kept in `tests/data`.

#![allow(clippy::unwrap_used)]

use trailwatch_trace::{RenderStyle, Trace, TraceRating, Value};

const IAM_LOGIN: &str = include_str!("data/iam_login.json");

#[test]
fn parses_every_field() {
    let t = Trace::from_json_str(IAM_LOGIN).unwrap();
    assert_eq!(
        t.trace_id.as_deref(),
        Some("8c2d6a10-9e41-11ef-b3a7-0255ac10003f")
    );
    assert_eq!(t.trace_name, "login");
    assert_eq!(t.trace_rating, TraceRating::Normal);
    assert_eq!(t.trace_type, "ConsoleAction");
    assert_eq!(t.service_type, "IAM");
    assert_eq!(t.resource_type, "user");
    assert_eq!(t.resource_name.as_deref(), Some("alice"));
    assert_eq!(
        t.resource_id.as_deref(),
        Some("e14aed517380466cac2d109877a5ac6b")
    );
    assert_eq!(t.source_ip.as_deref(), Some("203.0.113.17"));
    assert_eq!(t.source_addr(), "203.0.113.17".parse().ok());
    assert_eq!(t.code.as_deref(), Some("302"));
    assert_eq!(t.api_version.as_deref(), Some(""));
    assert_eq!(t.message, Some(Value::from("")));
    assert_eq!(t.request, Some(Value::from("")));
    assert_eq!(t.response, Some(Value::from("")));
    assert_eq!(t.time, 1_731_161_042_113);
    assert_eq!(t.record_time, Some(1_731_161_042_187));
    assert_eq!(t.request_id.as_deref(), Some(""));
    assert_eq!(t.location_info.as_deref(), Some(""));
    assert_eq!(t.endpoint.as_deref(), Some(""));
    assert_eq!(t.resource_url.as_deref(), Some(""));
    assert_eq!(t.read_only, Some(false));
    assert_eq!(t.tracker_name, None);
    assert!(t.extra.is_empty());

    let user = t.user.as_ref().unwrap();
    assert_eq!(user.id.as_deref(), Some("e14aed517380466cac2d109877a5ac6b"));
    assert_eq!(t.user_name(), Some("alice"));
    let domain = user.domain.as_ref().unwrap();
    assert_eq!(
        domain.id.as_deref(),
        Some("e51dfca1c18747919f6c16af2721f35d")
    );
    assert_eq!(domain.name.as_deref(), Some("OTC00000000001000100974"));
}

#[test]
fn stored_rendering_reproduces_the_document() {
    // The example is already in table order with `user` last, so the compact rendering is the
    // file itself minus whitespace.
    let t = Trace::from_json_str(IAM_LOGIN).unwrap();
    let original: Value = serde_json::from_str(IAM_LOGIN).unwrap();
    assert_eq!(t.to_value(RenderStyle::Stored), original);
    assert_eq!(t.to_value(RenderStyle::CtsV3), original);
    let compact = t.to_json_string(RenderStyle::Stored);
    assert!(compact.starts_with(
        r#"{"trace_id":"8c2d6a10-9e41-11ef-b3a7-0255ac10003f","trace_name":"login","#
    ));
    assert!(compact.ends_with(
        r#""read_only":false,"user":{"id":"e14aed517380466cac2d109877a5ac6b","name":"alice","domain":{"id":"e51dfca1c18747919f6c16af2721f35d","name":"OTC00000000001000100974"}}}"#
    ));
    assert_eq!(Trace::from_json_str(&compact).unwrap(), t);
}

#[test]
fn fill_defaults_only_adds_tracker_name() {
    let mut t = Trace::from_json_str(IAM_LOGIN).unwrap();
    let before = t.clone();
    t.fill_defaults(1);
    assert_eq!(t.trace_id, before.trace_id);
    assert_eq!(t.record_time, before.record_time);
    assert_eq!(t.tracker_name.as_deref(), Some("system"));
}
