//! One test per leniency rule and per strictness rule, each checking the exact error field.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use trailwatch_trace::{RenderStyle, Trace, TraceError, TraceRating, Value};

/// A minimal valid trace.
fn base() -> Value {
    json!({
        "trace_name": "login",
        "trace_type": "ConsoleAction",
        "service_type": "IAM",
        "resource_type": "user",
        "time": 1_731_161_042_113_i64
    })
}

fn with(key: &str, value: Value) -> Result<Trace, TraceError> {
    let mut v = base();
    v[key] = value;
    Trace::from_value(v)
}

fn without(key: &str) -> Result<Trace, TraceError> {
    let mut v = base();
    v.as_object_mut().unwrap().remove(key);
    Trace::from_value(v)
}

/// Asserts the error names `field` and its message contains every fragment.
#[track_caller]
fn assert_err(r: Result<Trace, TraceError>, field: &str, fragments: &[&str]) {
    let e = r.expect_err("expected an error");
    assert_eq!(e.field, field, "wrong field in {e}");
    for f in fragments {
        assert!(e.message.contains(f), "message {:?} lacks {f:?}", e.message);
    }
}

// ---- leniency -------------------------------------------------------------------------

#[test]
fn minimal_trace_gets_defaults() {
    let t = Trace::from_value(base()).unwrap();
    assert_eq!(t.trace_rating, TraceRating::Normal);
    assert_eq!(t.trace_id, None);
    assert_eq!(t.record_time, None);
    assert_eq!(t.user, None);
    assert!(t.extra.is_empty());
}

#[test]
fn code_integer_becomes_string() {
    assert_eq!(
        with("code", json!(302)).unwrap().code.as_deref(),
        Some("302")
    );
    assert_eq!(with("code", json!(0)).unwrap().code.as_deref(), Some("0"));
    assert_eq!(with("code", json!(-1)).unwrap().code.as_deref(), Some("-1"));
    assert_eq!(
        with("code", json!(u64::MAX)).unwrap().code.as_deref(),
        Some("18446744073709551615")
    );
    assert_eq!(
        with("code", json!("VPC.0514")).unwrap().code.as_deref(),
        Some("VPC.0514")
    );
}

#[test]
fn ten_digit_time_is_seconds() {
    assert_eq!(
        with("time", json!(1_529_996_047)).unwrap().time,
        1_529_996_047_000
    );
    assert_eq!(
        with("time", json!(99_999_999_999_i64)).unwrap().time,
        99_999_999_999_000
    );
    // From 100 000 000 000 on it is milliseconds.
    assert_eq!(
        with("time", json!(100_000_000_000_i64)).unwrap().time,
        100_000_000_000
    );
    assert_eq!(
        with("time", json!(1_481_166_448_000_i64)).unwrap().time,
        1_481_166_448_000
    );
    // Before 1973-03-03 a value would not survive a round trip (found by fuzzing): refused.
    for early in [0, 5, 99_999_999] {
        let err = with("time", json!(early)).unwrap_err();
        assert_eq!(err.field, "time");
        assert!(err.message.contains("before 1973"), "{err}");
    }
    let t = with("record_time", json!(1_529_996_047)).unwrap();
    assert_eq!(t.record_time, Some(1_529_996_047_000));
}

#[test]
fn digit_string_time_follows_the_same_rule() {
    assert_eq!(
        with("time", json!("1529996047")).unwrap().time,
        1_529_996_047_000
    );
    assert_eq!(
        with("time", json!("1481166448000")).unwrap().time,
        1_481_166_448_000
    );
    let t = with("record_time", json!(" 1481166448000 ")).unwrap();
    assert_eq!(t.record_time, Some(1_481_166_448_000));
}

#[test]
fn console_time_string_is_converted_to_utc() {
    let t = with("time", json!("2016/12/08 11:07:28 GMT+08:00")).unwrap();
    assert_eq!(t.time, 1_481_166_448_000);
    let t = with("record_time", json!("2016/12/08 03:07:28 GMT+00:00")).unwrap();
    assert_eq!(t.record_time, Some(1_481_166_448_000));
    let t = with("time", json!("2016/12/07 22:07:28 GMT-05:00")).unwrap();
    assert_eq!(t.time, 1_481_166_448_000);
}

#[test]
fn legacy_string_user_becomes_name() {
    let t = with("user", json!("aaa/op_service")).unwrap();
    let u = t.user.unwrap();
    assert_eq!(u.name.as_deref(), Some("aaa/op_service"));
    assert_eq!((u.id, u.domain), (None, None));
    assert!(u.extra.is_empty());
}

#[test]
fn user_object_keeps_hw_extras() {
    let t = with(
        "user",
        json!({
            "id": "uid", "name": "alice", "user_name": "alice", "account_id": "acc",
            "principal_urn": "iam::acc:user:alice", "invoked_by": ["service.console"],
            "session_context": {"attributes": {"created_at": "1731161042113", "mfa_authenticated": "false"}},
            "domain": {"id": "did", "name": "OTC0001", "region": "eu-de"}
        }),
    )
    .unwrap();
    assert_eq!(t.user_name(), Some("alice"));
    let u = t.user.unwrap();
    assert_eq!(u.id.as_deref(), Some("uid"));
    assert_eq!(u.extra.len(), 5);
    assert_eq!(u.extra["invoked_by"], json!(["service.console"]));
    let d = u.domain.unwrap();
    assert_eq!(
        (d.id.as_deref(), d.name.as_deref()),
        (Some("did"), Some("OTC0001"))
    );
    assert_eq!(d.extra["region"], "eu-de");
}

#[test]
fn trace_status_stands_in_for_a_missing_rating() {
    let t = with("trace_status", json!("warning")).unwrap();
    assert_eq!(t.trace_rating, TraceRating::Warning);
    assert_eq!(t.extra["trace_status"], "warning");

    let t = with("trace_status", json!("incident")).unwrap();
    assert_eq!(t.trace_rating, TraceRating::Incident);

    // Not a rating: ignored for the rating, still kept.
    let t = with("trace_status", json!("Failed")).unwrap();
    assert_eq!(t.trace_rating, TraceRating::Normal);
    assert_eq!(t.extra["trace_status"], "Failed");

    // An explicit rating wins.
    let mut v = base();
    v["trace_rating"] = json!("normal");
    v["trace_status"] = json!("warning");
    assert_eq!(
        Trace::from_value(v).unwrap().trace_rating,
        TraceRating::Normal
    );
}

#[test]
fn read_only_accepts_bool_and_strings() {
    assert_eq!(
        with("read_only", json!(true)).unwrap().read_only,
        Some(true)
    );
    assert_eq!(
        with("read_only", json!(false)).unwrap().read_only,
        Some(false)
    );
    assert_eq!(
        with("read_only", json!("true")).unwrap().read_only,
        Some(true)
    );
    assert_eq!(
        with("read_only", json!("false")).unwrap().read_only,
        Some(false)
    );
}

#[test]
fn source_ip_is_trimmed_and_may_be_empty() {
    let t = with("source_ip", json!("  10.0.0.1 ")).unwrap();
    assert_eq!(t.source_ip.as_deref(), Some("10.0.0.1"));
    let t = with("source_ip", json!("")).unwrap();
    assert_eq!((t.source_ip.as_deref(), t.source_addr()), (Some(""), None));
    let t = with("source_ip", json!("   ")).unwrap();
    assert_eq!((t.source_ip.as_deref(), t.source_addr()), (Some(""), None));
    let t = with("source_ip", json!("2001:db8::1")).unwrap();
    assert_eq!(t.source_addr(), "2001:db8::1".parse().ok());
}

#[test]
fn null_optional_fields_are_absent() {
    let mut v = base();
    for k in [
        "trace_id",
        "trace_rating",
        "resource_name",
        "resource_id",
        "source_ip",
        "request",
        "response",
        "code",
        "api_version",
        "message",
        "record_time",
        "user",
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
    ] {
        v[k] = Value::Null;
    }
    let t = Trace::from_value(v).unwrap();
    let expected = Trace::from_value(base()).unwrap();
    assert_eq!(t, expected);

    let t = with("user", json!({"id": null, "name": "a", "domain": null})).unwrap();
    let u = t.user.unwrap();
    assert_eq!((u.id, u.domain, u.extra.len()), (None, None, 0));
}

#[test]
fn bodies_and_message_keep_any_json() {
    let t = with("message", json!({"k": [1, 2]})).unwrap();
    assert_eq!(t.message, Some(json!({"k": [1, 2]})));
    let t = with("request", json!([1, "two"])).unwrap();
    assert_eq!(t.request, Some(json!([1, "two"])));
    let t = with("response", json!(42)).unwrap();
    assert_eq!(t.response, Some(json!(42)));
}

#[test]
fn unknown_members_are_kept_as_extras() {
    let mut v = base();
    v["content_length"] = json!(123);
    v["total_time"] = json!(4.5);
    v["future"] = json!({"nested": [null, true]});
    v["nothing"] = Value::Null;
    let t = Trace::from_value(v).unwrap();
    assert_eq!(t.extra.len(), 4);
    assert_eq!(t.extra["content_length"], 123);
    assert_eq!(t.extra["total_time"], 4.5);
    assert_eq!(t.extra["future"], json!({"nested": [null, true]}));
    // A null extra is data we do not understand, so it is kept as is.
    assert!(t.extra["nothing"].is_null());
}

#[test]
fn deserialize_goes_through_the_same_rules() {
    #[derive(serde::Deserialize)]
    struct Event {
        cts: Trace,
    }
    let mut v = base();
    v["time"] = json!(1_529_996_047);
    let e: Event = serde_json::from_value(json!({ "cts": v })).unwrap();
    assert_eq!(e.cts.time, 1_529_996_047_000);

    let err = serde_json::from_value::<Event>(json!({"cts": {"trace_name": "bad name"}}))
        .err()
        .unwrap();
    assert!(err.to_string().contains("field `trace_name`"), "{err}");
}

// ---- strictness -----------------------------------------------------------------------

#[test]
fn top_level_must_be_an_object() {
    assert_err(
        Trace::from_value(json!([1, 2])),
        "",
        &["expected a JSON object", "array"],
    );
    assert_err(
        Trace::from_value(json!("x")),
        "",
        &["expected a JSON object", "string"],
    );
    assert_err(Trace::from_value(Value::Null), "", &["null"]);
}

#[test]
fn json_syntax_errors_report_position() {
    assert_err(
        Trace::from_json_str("{\"trace_name\": "),
        "",
        &["line 1", "column"],
    );
    assert_err(Trace::from_json_str("{}\n}"), "", &["line 2"]);
}

#[test]
fn required_fields_must_be_present() {
    for k in [
        "trace_name",
        "trace_type",
        "service_type",
        "resource_type",
        "time",
    ] {
        assert_err(without(k), k, &["required"]);
        // null counts as absent, so it is "required" too.
        assert_err(with(k, Value::Null), k, &["required"]);
    }
}

#[test]
fn required_types_must_not_be_empty() {
    for k in ["trace_type", "service_type", "resource_type"] {
        assert_err(with(k, json!("")), k, &["empty"]);
        assert_err(with(k, json!("  ")), k, &["empty"]);
    }
}

#[test]
fn wrong_types_name_field_expected_and_found() {
    assert_err(
        with("resource_name", json!(12)),
        "resource_name",
        &["expected a string, found number 12"],
    );
    assert_err(
        with("trace_type", json!(true)),
        "trace_type",
        &["expected a string, found boolean true"],
    );
    assert_err(
        with("resource_id", json!({})),
        "resource_id",
        &["expected a string, found an object"],
    );
    assert_err(
        with("project_id", json!([])),
        "project_id",
        &["expected a string", "array"],
    );
    assert_err(
        with("trace_name", json!(5)),
        "trace_name",
        &["expected a string, found number 5"],
    );
    assert_err(
        with("api_version", json!(3.0)),
        "api_version",
        &["expected a string", "number 3.0"],
    );
}

#[test]
fn strings_must_not_contain_nul() {
    assert_err(
        with("resource_name", json!("a\u{0}b")),
        "resource_name",
        &["NUL"],
    );
    assert_err(
        with("service_type", json!("IAM\u{0}")),
        "service_type",
        &["NUL"],
    );
    assert_err(with("code", json!("3\u{0}2")), "code", &["NUL"]);
    assert_err(
        with("user", json!({"name": "a\u{0}"})),
        "user.name",
        &["NUL"],
    );
    assert_err(with("user", json!("a\u{0}")), "user", &["NUL"]);
    assert_err(with("trace_id", json!("a\u{0}")), "trace_id", &["NUL"]);
}

#[test]
fn length_limits_are_stated() {
    let long = |n: usize| json!("a".repeat(n));
    assert!(with("trace_id", long(128)).is_ok());
    assert_err(
        with("trace_id", long(129)),
        "trace_id",
        &["129", "limit is 128"],
    );
    assert!(with("trace_type", long(256)).is_ok());
    assert_err(
        with("trace_type", long(257)),
        "trace_type",
        &["limit is 256"],
    );
    assert_err(
        with("service_type", long(300)),
        "service_type",
        &["limit is 256"],
    );
    assert_err(
        with("resource_type", long(300)),
        "resource_type",
        &["limit is 256"],
    );
    assert_err(
        with("tracker_name", long(300)),
        "tracker_name",
        &["limit is 256"],
    );
    assert_err(
        with("user", json!({"name": "é".repeat(257)})),
        "user.name",
        &["limit is 256"],
    );
    // Limits count characters, not bytes.
    assert!(with("user", json!({"name": "é".repeat(256)})).is_ok());
}

#[test]
fn trace_id_must_be_printable_ascii() {
    let ok = with("trace_id", json!("f828ab77-d993-11f0-b09f-35adcfa25f3b")).unwrap();
    assert_eq!(
        ok.trace_id.as_deref(),
        Some("f828ab77-d993-11f0-b09f-35adcfa25f3b")
    );
    assert_err(with("trace_id", json!("")), "trace_id", &["empty"]);
    assert_err(
        with("trace_id", json!("a b")),
        "trace_id",
        &["printable ASCII", "\"a b\""],
    );
    assert_err(
        with("trace_id", json!("ä")),
        "trace_id",
        &["printable ASCII"],
    );
    assert_err(
        with("trace_id", json!("a\tb")),
        "trace_id",
        &["printable ASCII"],
    );
    assert_err(
        with("trace_id", json!(7)),
        "trace_id",
        &["expected a string, found number 7"],
    );
}

#[test]
fn trace_name_charset_and_length() {
    for ok in [
        "a",
        "login",
        "loginfailed",
        "createTracker",
        "x.y_z-1",
        &"a".repeat(64),
    ] {
        assert_eq!(with("trace_name", json!(ok)).unwrap().trace_name, ok);
    }
    for bad in [
        "", "9lives", "_login", "log in", "login!", "lögin", " login",
    ] {
        assert_err(
            with("trace_name", json!(bad)),
            "trace_name",
            &[&format!("{bad:?}"), "[A-Za-z0-9._-]", "start with a letter"],
        );
    }
    // Too long: the value is shown, cut at 64 characters.
    let long = format!("a{}", "b".repeat(99));
    let e = with("trace_name", json!(long)).unwrap_err();
    assert_eq!(e.field, "trace_name");
    assert!(
        e.message
            .contains(&format!("\"a{}\"… (truncated)", "b".repeat(63))),
        "{e}"
    );
    assert!(!e.message.contains(&"b".repeat(64)), "{e}");
    assert!(e.message.contains("1 to 64"), "{e}");
}

#[test]
fn trace_rating_is_exact_lower_case() {
    for (s, r) in [
        ("normal", TraceRating::Normal),
        ("warning", TraceRating::Warning),
        ("incident", TraceRating::Incident),
    ] {
        assert_eq!(with("trace_rating", json!(s)).unwrap().trace_rating, r);
    }
    for bad in ["Normal", "WARNING", "ok", ""] {
        assert_err(
            with("trace_rating", json!(bad)),
            "trace_rating",
            &["\"normal\", \"warning\", \"incident\"", &format!("{bad:?}")],
        );
    }
    assert_err(
        with("trace_rating", json!(1)),
        "trace_rating",
        &["normal", "found number 1"],
    );
}

#[test]
fn code_must_be_string_or_integer() {
    assert_err(
        with("code", json!(200.5)),
        "code",
        &["string or an integer", "200.5"],
    );
    assert_err(
        with("code", json!(true)),
        "code",
        &["string or an integer", "boolean"],
    );
    assert_err(
        with("code", json!({"c": 1})),
        "code",
        &["string or an integer", "object"],
    );
}

#[test]
fn time_rejects_other_forms_and_lists_the_accepted_ones() {
    let forms = [
        "milliseconds",
        "seconds",
        "string of digits",
        "2016/12/08 11:07:28 GMT+08:00",
    ];
    for bad in [
        json!(-1),
        json!(1.5e12),
        json!(1_481_166_448_000.0),
        json!("yesterday"),
        json!(""),
        json!("-1481166448000"),
        json!("2016-12-08T03:07:28Z"),
        json!(true),
        json!([1]),
    ] {
        assert_err(with("time", bad.clone()), "time", &forms);
        assert_err(with("record_time", bad), "record_time", &forms);
    }
    // Out-of-range values name the problem.
    assert_err(with("time", json!(u64::MAX)), "time", &["too large"]);
    assert_err(
        with("time", json!("99999999999999999999")),
        "time",
        &["too large"],
    );
    assert_err(
        with("time", json!("2016/02/30 11:07:28 GMT+08:00")),
        "time",
        &["day 30"],
    );
    assert_err(
        with("record_time", json!("2016/12/08 11:07:28 GMT+8")),
        "record_time",
        &["malformed"],
    );
}

#[test]
fn user_wrong_types_name_the_member() {
    assert_err(
        with("user", json!(5)),
        "user",
        &["object or a string", "number 5"],
    );
    assert_err(
        with("user", json!(["a"])),
        "user",
        &["object or a string", "array"],
    );
    assert_err(
        with("user", json!({"id": 5})),
        "user.id",
        &["expected a string, found number 5"],
    );
    assert_err(
        with("user", json!({"name": false})),
        "user.name",
        &["expected a string"],
    );
    assert_err(
        with("user", json!({"domain": "d"})),
        "user.domain",
        &["expected an object, found string \"d\""],
    );
    assert_err(
        with("user", json!({"domain": {"id": 1}})),
        "user.domain.id",
        &["expected a string"],
    );
    assert_err(
        with("user", json!({"domain": {"name": []}})),
        "user.domain.name",
        &["expected a string"],
    );
}

#[test]
fn read_only_rejects_other_values() {
    for bad in [json!("yes"), json!("True"), json!(1), json!({})] {
        assert_err(
            with("read_only", bad),
            "read_only",
            &["boolean", "\"true\"", "\"false\""],
        );
    }
}

#[test]
fn source_ip_must_be_an_address() {
    assert_err(
        with("source_ip", json!("253.252.51.07")),
        "source_ip",
        &["\"253.252.51.07\"", "IPv4 or IPv6"],
    );
    assert_err(
        with("source_ip", json!("example.com")),
        "source_ip",
        &["\"example.com\""],
    );
    assert_err(
        with("source_ip", json!("10.0.0.1:80")),
        "source_ip",
        &["\"10.0.0.1:80\""],
    );
    assert_err(
        with("source_ip", json!("fe80::1%eth0")),
        "source_ip",
        &["fe80::1%eth0"],
    );
    assert_err(
        with("source_ip", json!(10)),
        "source_ip",
        &["expected a string, found number 10"],
    );
}

#[test]
fn trace_rating_from_str_and_names() {
    for r in TraceRating::ALL {
        assert_eq!(r.as_str().parse::<TraceRating>().unwrap(), r);
        assert_eq!(r.to_string(), r.as_str());
    }
    let e = "Incident".parse::<TraceRating>().unwrap_err();
    assert_eq!(e.field, "trace_rating");
    assert_eq!(
        e.to_string(),
        "field `trace_rating`: expected one of \"normal\", \"warning\", \"incident\" (lower case), found \"Incident\""
    );
}

#[test]
fn first_error_wins_in_table_order() {
    let e = Trace::from_value(json!({"trace_name": "ok", "time": "bad"})).unwrap_err();
    assert_eq!(e.field, "trace_type");
}

/// Found by fuzzing: a large number in an extra member must read back identically from the
/// stored form (serde_json's exact float parsing is on for the workspace).
#[test]
fn large_numbers_in_extras_round_trip_exactly() {
    let text = r#"{"trace_name":"a","trace_type":"a","service_type":"a","resource_type":"a","time":1731161042123,"x":-366666666000547618003}"#;
    let t = Trace::from_json_str(text).unwrap();
    let again = Trace::from_json_str(&t.to_json_string(RenderStyle::Stored)).unwrap();
    assert_eq!(t, again);
}
