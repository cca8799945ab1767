#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use trailwatch_notify::{Content, Protocol, PublishRequest, SmnError, cut_for, text_for};

#[track_caller]
fn assert_err(v: Value, status: u16, code: &str) -> SmnError {
    let e = PublishRequest::from_json(&v).unwrap_err();
    assert_eq!((e.status, e.code), (status, code), "{e}");
    e
}

#[track_caller]
fn ok(v: Value) -> PublishRequest {
    PublishRequest::from_json(&v).unwrap()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn documented_examples() {
    let r = ok(
        json!({"subject":"test message v2","message":"Message test message v2","time_to_live":"3600"}),
    );
    assert_eq!(
        r,
        PublishRequest {
            subject: Some("test message v2".into()),
            content: Content::Message("Message test message v2".into()),
            time_to_live_s: 3600,
        }
    );
    let r = ok(
        json!({"subject":"…","message_template_name":"confirm_message","time_to_live":"3600",
        "tags":{"topic_urn":"topic_urn3331","topic_id":"topic_id3332"}}),
    );
    assert_eq!(
        r.content,
        Content::Template {
            name: "confirm_message".into(),
            tags: map(&[("topic_urn", "topic_urn3331"), ("topic_id", "topic_id3332")]),
        }
    );
    // The CTS-trigger function's body.
    let r = ok(
        json!({"message": "Illegal operation[  IP:1.2.3.4,  Action:login]", "subject": "CTSTrigger"}),
    );
    assert_eq!(r.time_to_live_s, 3600);
}

#[test]
fn structure_beats_template_beats_message() {
    let structure = "{\"default\":\"d\",\"sms\":\"s\"}";
    let r = ok(json!({
        "message": "m",
        "message_template_name": "t",
        "tags": {"a": "b"},
        "message_structure": structure,
    }));
    assert_eq!(
        r.content,
        Content::Structure(map(&[("default", "d"), ("sms", "s")]))
    );

    let r = ok(json!({"message": "m", "message_template_name": "t", "tags": {"a": "b"}}));
    assert_eq!(
        r.content,
        Content::Template {
            name: "t".into(),
            tags: map(&[("a", "b")])
        }
    );

    assert_eq!(
        ok(json!({"message": "m"})).content,
        Content::Message("m".into())
    );

    // Only the winner is validated: a template without tags and an over-long message do not
    // matter when message_structure is given.
    let r = ok(json!({
        "message": "m".repeat(300 * 1024),
        "message_template_name": "t",
        "message_structure": structure,
    }));
    assert!(matches!(r.content, Content::Structure(_)));
}

#[test]
fn null_members_are_absent_and_unknown_members_ignored() {
    let r = ok(json!({
        "message": "m",
        "message_structure": null,
        "message_template_name": null,
        "subject": null,
        "time_to_live": null,
        "locale": "en-us",
        "message_attributes": [{"name": "n", "type": "STRING", "value": "v"}],
    }));
    assert_eq!(r.content, Content::Message("m".into()));
    assert_eq!(r.subject, None);
    assert_eq!(r.time_to_live_s, 3600);
}

#[test]
fn content_is_required() {
    for body in [
        json!({}),
        json!({"subject": "s"}),
        json!({"message": null}),
        json!({"tags": {}}),
    ] {
        let e = assert_err(body, 403, "SMN.0009");
        assert!(
            e.message
                .contains("one of message, message_structure or message_template_name"),
            "{e}"
        );
    }
    for body in [json!("message"), json!([]), json!(null)] {
        assert_err(body, 403, "SMN.0009");
    }
}

#[test]
fn subjects() {
    assert_eq!(ok(json!({"message": "m"})).subject, None);
    assert_eq!(ok(json!({"message": "m", "subject": ""})).subject, None);
    let s512 = "s".repeat(512);
    assert_eq!(
        ok(json!({"message": "m", "subject": s512})).subject,
        Some(s512)
    );
    let e = assert_err(
        json!({"message": "m", "subject": "s".repeat(513)}),
        403,
        "SMN.0008",
    );
    assert!(e.message.contains("513"), "{e}");
    // Bytes, not characters: 171 "€" are 513 bytes.
    assert_err(
        json!({"message": "m", "subject": "€".repeat(171)}),
        403,
        "SMN.0008",
    );
    assert_err(json!({"message": "m", "subject": 5}), 403, "SMN.0008");
}

#[test]
fn messages() {
    let max = "m".repeat(256 * 1024);
    assert_eq!(
        ok(json!({"message": max})).content,
        Content::Message(max.clone())
    );
    let e = assert_err(json!({"message": format!("{max}m")}), 403, "SMN.0009");
    assert!(e.message.contains("262145"), "{e}");
    assert_err(json!({"message": ""}), 403, "SMN.0009");
    assert_err(json!({"message": 42}), 403, "SMN.0009");
    assert_err(json!({"message": {"text": "m"}}), 403, "SMN.0009");
}

#[test]
fn message_structures() {
    let cases = [
        (json!("not json"), "not valid JSON"),
        (json!("{\"default\": \"x\""), "not valid JSON"),
        (json!("[\"default\"]"), "JSON object"),
        (json!("\"default\""), "JSON object"),
        (json!("{\"sms\":\"s\"}"), "\"default\" key is required"),
        (json!("{}"), "\"default\" key is required"),
        (json!("{\"default\":\"\"}"), "must not be empty"),
        (
            json!("{\"default\":\"x\",\"sms\":1}"),
            "value of \"sms\" must be a string",
        ),
        (
            json!("{\"default\":{\"a\":\"b\"}}"),
            "value of \"default\" must be a string",
        ),
        (
            json!("{\"default\":null}"),
            "value of \"default\" must be a string",
        ),
        (
            json!({"default": "x"}),
            "must be a string holding a JSON object",
        ),
        (json!(7), "must be a string holding a JSON object"),
    ];
    for (structure, reason) in cases {
        let e = assert_err(json!({"message_structure": structure}), 400, "SMN.0021");
        assert!(e.message.contains(reason), "{e} / wanted {reason}");
    }
    let big = format!("{{\"default\":\"{}\"}}", "x".repeat(256 * 1024));
    assert_err(json!({"message_structure": big}), 400, "SMN.0021");

    let r =
        ok(json!({"message_structure": "{\"default\":\"d\",\"email\":\"e\",\"custom\":\"c\"}"}));
    assert_eq!(
        r.content,
        Content::Structure(map(&[("default", "d"), ("email", "e"), ("custom", "c")]))
    );
}

#[test]
fn templates() {
    assert_err(
        json!({"message_template_name": "bad name", "tags": {}}),
        400,
        "SMN.0032",
    );
    assert_err(
        json!({"message_template_name": 1, "tags": {}}),
        400,
        "SMN.0032",
    );
    let e = assert_err(json!({"message_template_name": "t"}), 400, "SMN.0038");
    assert!(e.message.contains("tags are required"), "{e}");
    assert_err(
        json!({"message_template_name": "t", "tags": ["a"]}),
        400,
        "SMN.0038",
    );
    assert_err(
        json!({"message_template_name": "t", "tags": "a=b"}),
        400,
        "SMN.0038",
    );
    let e = assert_err(
        json!({"message_template_name": "t", "tags": {"a": 1}}),
        400,
        "SMN.0038",
    );
    assert!(e.message.contains("\"a\""), "{e}");
    assert_err(
        json!({"message_template_name": "t", "tags": {"k".repeat(22): "v"}}),
        400,
        "SMN.0038",
    );
    assert_err(
        json!({"message_template_name": "t", "tags": {"k": "v".repeat(1025)}}),
        400,
        "SMN.0038",
    );
    let r = ok(json!({"message_template_name": "t", "tags": {}}));
    assert_eq!(
        r.content,
        Content::Template {
            name: "t".into(),
            tags: BTreeMap::new()
        }
    );
}

#[test]
fn time_to_live_forms_and_bounds() {
    for (ttl, want) in [
        (json!("3600"), 3600),
        (json!(3600), 3600),
        (json!("1"), 1),
        (json!(1), 1),
        (json!("604800"), 604_800),
        (json!(604_800), 604_800),
        (json!("0060"), 60),
    ] {
        assert_eq!(
            ok(json!({"message": "m", "time_to_live": ttl})).time_to_live_s,
            want
        );
    }
    let cases = [
        (json!("0"), "minimum of 1"),
        (json!(0), "minimum of 1"),
        (json!(-5), "minimum of 1"),
        (json!("604801"), "maximum of 604800"),
        (json!(604_801), "maximum of 604800"),
        (json!("99999999999999999999999"), "maximum of 604800"),
        (json!(u64::MAX), "maximum of 604800"),
        (json!(""), "not a whole number"),
        (json!("abc"), "not a whole number"),
        (json!("-5"), "not a whole number"),
        (json!("1.5"), "not a whole number"),
        (json!(" 60"), "not a whole number"),
        (json!(1.5), "not a whole number"),
        (json!(true), "string or an integer"),
        (json!({"s": 1}), "string or an integer"),
    ];
    for (ttl, reason) in cases {
        let e = assert_err(
            json!({"message": "m", "time_to_live": ttl}),
            403,
            "SMN.0009",
        );
        assert!(e.message.starts_with("Invalid time_to_live"), "{e}");
        assert!(e.message.contains(reason), "{e} / wanted {reason}");
    }
}

#[test]
fn text_for_each_protocol() {
    let message = Content::Message("hello".into());
    for p in Protocol::ALL {
        assert_eq!(text_for(p, &message), "hello");
    }
    let structure = Content::Structure(map(&[
        ("default", "D"),
        ("email", "E"),
        ("sms", "S"),
        ("https", "HS"),
        ("functionstage", "F"),
    ]));
    assert_eq!(text_for(Protocol::Email, &structure), "E");
    assert_eq!(text_for(Protocol::Sms, &structure), "S");
    assert_eq!(text_for(Protocol::Https, &structure), "HS");
    assert_eq!(
        text_for(Protocol::Http, &structure),
        "D",
        "no http key: default"
    );
    assert_eq!(text_for(Protocol::FunctionStage, &structure), "F");

    let only_default = Content::Structure(map(&[("default", "D")]));
    for p in Protocol::ALL {
        assert_eq!(text_for(p, &only_default), "D");
    }
    let template = Content::Template {
        name: "t".into(),
        tags: BTreeMap::new(),
    };
    assert_eq!(text_for(Protocol::Email, &template), "");
}

#[test]
fn sms_is_cut_to_490_characters() {
    // Multi-byte text: the cut counts characters and never splits one.
    let long = "é€😀".repeat(200);
    let sms = text_for(Protocol::Sms, &Content::Message(long.clone()));
    assert_eq!(sms.chars().count(), 490);
    assert!(long.starts_with(&sms));
    assert_eq!(
        text_for(Protocol::Email, &Content::Message(long.clone())),
        long
    );
    assert_eq!(
        text_for(Protocol::Https, &Content::Message(long.clone())),
        long
    );

    let structure = Content::Structure(map(&[("default", "short"), ("sms", &"ü".repeat(491))]));
    assert_eq!(text_for(Protocol::Sms, &structure), "ü".repeat(490));
    assert_eq!(text_for(Protocol::Email, &structure), "short");

    let exactly = "x".repeat(490);
    assert_eq!(
        text_for(Protocol::Sms, &Content::Message(exactly.clone())),
        exactly
    );
    assert_eq!(cut_for(Protocol::Sms, &"ß".repeat(500)), "ß".repeat(490));
    assert_eq!(cut_for(Protocol::Email, &"ß".repeat(500)), "ß".repeat(500));
}
