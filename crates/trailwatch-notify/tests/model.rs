#![allow(clippy::unwrap_used)]

use serde_json::json;
use trailwatch_notify::{
    Endpoint, ExtensionHeaders, Protocol, SmnError, SubscriptionStatus, SubscriptionUrn, TopicName,
    TopicUrn, check_display_name, check_remark,
};

const PROJECT: &str = "762bdb3251034f268af0e395c53ea09b";

#[track_caller]
fn assert_err<T: std::fmt::Debug>(r: Result<T, SmnError>, status: u16, code: &str) -> SmnError {
    let e = r.unwrap_err();
    assert_eq!((e.status, e.code), (status, code), "{e}");
    e
}

#[test]
fn topic_names() {
    for ok in [
        "a",
        "A",
        "0",
        "test_topic_v2",
        "a-b_c",
        "9-_-",
        &"x".repeat(255),
    ] {
        assert_eq!(TopicName::parse(ok).unwrap().as_str(), ok);
    }
    for bad in [
        "",
        "-a",
        "_a",
        "a b",
        "a:b",
        "a.b",
        "ä",
        "a/b",
        &"x".repeat(256),
    ] {
        assert_err(TopicName::parse(bad), 400, "SMN.0002");
    }
}

#[test]
fn topic_urn_round_trips() {
    for s in [
        "urn:smn:regionId:762bdb3251034f268af0e395c53ea09b:test_topic_v1",
        "urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b:my-topic_2",
        "urn:smn:cn-north-4:0a419ac94f80f2c62f14c01e34aaaaaa:a",
        "urn:smn:region01:P1:0-_-",
    ] {
        let urn = TopicUrn::parse(s).unwrap();
        assert_eq!(urn.to_string(), s);
    }
    let urn = TopicUrn::parse("urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b:my-topic_2").unwrap();
    assert_eq!(urn.region, "eu-de");
    assert_eq!(urn.project_id, PROJECT);
    assert_eq!(urn.name.as_str(), "my-topic_2");
    let built = TopicUrn::new("eu-de", PROJECT, TopicName::parse("my-topic_2").unwrap());
    assert_eq!(built, urn);
}

#[test]
fn topic_urn_rejects() {
    for bad in [
        "",
        "urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b",
        "urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b:t:extra",
        "urn:sms:eu-de:762bdb3251034f268af0e395c53ea09b:t",
        "URN:smn:eu-de:762bdb3251034f268af0e395c53ea09b:t",
        "urn:smn::762bdb3251034f268af0e395c53ea09b:t",
        "urn:smn:eu de:762bdb3251034f268af0e395c53ea09b:t",
        "urn:smn:-eu:762bdb3251034f268af0e395c53ea09b:t",
        "urn:smn:eu/de:762bdb3251034f268af0e395c53ea09b:t",
        "urn:smn:eu-de::t",
        "urn:smn:eu-de:762bdb32-5103:t",
        "urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b/x:t",
        &format!("urn:smn:eu-de:{}:t", "a".repeat(65)),
        "urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b:",
        "urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b:-t",
        "urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b:t t",
    ] {
        assert_err(TopicUrn::parse(bad), 400, "SMN.0005");
    }
    let e = assert_err(TopicUrn::parse("urn:smn:eu de:p:t"), 400, "SMN.0005");
    assert!(e.message.contains("region"), "{e}");
    let e = assert_err(TopicUrn::parse("urn:smn:eu-de:p-1:t"), 400, "SMN.0005");
    assert!(e.message.contains("project"), "{e}");
}

#[test]
fn subscription_urns() {
    let s = "urn:smn:regionId:762bdb3251034f268af0e395c53ea09b:test_topic_v1:2e778e84408e44058e6cbc6d3c377837";
    let urn = SubscriptionUrn::parse(s).unwrap();
    assert_eq!(urn.id, "2e778e84408e44058e6cbc6d3c377837");
    assert_eq!(urn.topic.name.as_str(), "test_topic_v1");
    assert_eq!(urn.to_string(), s);

    let topic = TopicUrn::parse("urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b:a-b_c").unwrap();
    let a = SubscriptionUrn::generate(&topic);
    let b = SubscriptionUrn::generate(topic.clone());
    assert_ne!(a.id, b.id);
    for g in [&a, &b] {
        assert_eq!(g.id.len(), 32);
        assert!(
            g.id.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(g.topic, topic);
        assert_eq!(&SubscriptionUrn::parse(&g.to_string()).unwrap(), g);
    }
}

#[test]
fn subscription_urn_rejects() {
    let topic = "urn:smn:eu-de:762bdb3251034f268af0e395c53ea09b:t";
    for bad in [
        String::new(),
        topic.to_owned(),
        format!("{topic}:"),
        format!("{topic}:2e778e84408e44058e6cbc6d3c37783"),
        format!("{topic}:2e778e84408e44058e6cbc6d3c3778377"),
        format!("{topic}:2E778E84408E44058E6CBC6D3C377837"),
        format!("{topic}:2e778e84408e44058e6cbc6d3c37783g"),
        "urn:smn:eu de:762bdb3251034f268af0e395c53ea09b:t:2e778e84408e44058e6cbc6d3c377837"
            .to_owned(),
        "2e778e84408e44058e6cbc6d3c377837".to_owned(),
    ] {
        assert_err(SubscriptionUrn::parse(&bad), 400, "SMN.0014");
    }
}

#[test]
fn protocols() {
    for (s, p) in [
        ("email", Protocol::Email),
        ("sms", Protocol::Sms),
        ("http", Protocol::Http),
        ("https", Protocol::Https),
        ("functionstage", Protocol::FunctionStage),
    ] {
        assert_eq!(Protocol::parse(s).unwrap(), p);
        assert_eq!(p.as_str(), s);
        assert_eq!(p.to_string(), s);
    }
    for bad in [
        "",
        "EMAIL",
        "Https",
        "functiongraph",
        "default",
        "wechat",
        " sms",
    ] {
        let e = assert_err(Protocol::parse(bad), 400, "SMN.0011");
        assert!(
            e.message.contains("email, sms, http, https, functionstage"),
            "{e}"
        );
    }
}

#[test]
fn subscription_status_numbers() {
    for (n, s) in [
        (0, SubscriptionStatus::Unconfirmed),
        (1, SubscriptionStatus::Confirmed),
        (3, SubscriptionStatus::Canceled),
    ] {
        assert_eq!(s.as_i64(), n);
        assert_eq!(SubscriptionStatus::from_i64(n), Some(s));
    }
    for n in [-1, 2, 4, i64::MAX] {
        assert_eq!(SubscriptionStatus::from_i64(n), None);
    }
}

#[track_caller]
fn endpoint_ok(p: Protocol, s: &str) {
    assert_eq!(Endpoint::parse(p, s).unwrap().as_str(), s);
}

#[track_caller]
fn endpoint_bad(p: Protocol, s: &str) {
    assert_err(Endpoint::parse(p, s), 400, "SMN.0012");
}

#[test]
fn email_endpoints() {
    let local64 = "l".repeat(64);
    let long_ok = format!(
        "{}@{}.com",
        "a".repeat(64),
        "d".repeat(63) + "." + &"e".repeat(63) + "." + &"f".repeat(57)
    );
    assert_eq!(long_ok.len(), 254);
    for ok in [
        "user@example.com",
        "first.last+tag@mail.example.co.uk",
        "o'brien_x-y@sub-domain.example.org",
        "ünïcode@example.com",
        &format!("{local64}@example.com"),
        &long_ok,
    ] {
        endpoint_ok(Protocol::Email, ok);
    }
    for bad in [
        "",
        "user",
        "@example.com",
        "user@",
        "user@localhost",
        "a@b@example.com",
        "user name@example.com",
        "user@exa mple.com",
        "user@example.com\n",
        "user\r\nRCPT TO:<x@y.z>@example.com",
        "\u{7}user@example.com",
        ".user@example.com",
        "user.@example.com",
        "us..er@example.com",
        "\"quoted\"@example.com",
        "<user>@example.com",
        "user@-example.com",
        "user@example-.com",
        "user@example..com",
        "user@.example.com",
        "user@example.com.",
        "user@exa_mple.com",
        &format!("{}l@example.com", local64),
        &format!("{long_ok}x"),
    ] {
        endpoint_bad(Protocol::Email, bad);
    }
}

#[test]
fn sms_endpoints() {
    for ok in [
        "+12345678",
        "+8613800138000",
        "+491701234567",
        "+123456789012345",
    ] {
        endpoint_ok(Protocol::Sms, ok);
    }
    for bad in [
        "",
        "+",
        "8613800138000",
        "+1234567",
        "+1234567890123456",
        "+0123456789",
        "+86 13800138000",
        "+86-13800138000",
        "++8613800138000",
        "+8613800138000x",
        "+８613800138000",
    ] {
        endpoint_bad(Protocol::Sms, bad);
    }
}

#[test]
fn http_endpoints() {
    for ok in [
        "https://audit.example.com/smn",
        "https://example.com",
        "https://example.com:8443/a/b?x=1&y=%20",
        "https://10.0.0.1/hook",
        "https://[::1]:8080/hook",
        "https://[2001:db8::1]/",
        "https://localhost?x",
    ] {
        endpoint_ok(Protocol::Https, ok);
    }
    for ok in ["http://example.com/hook", "http://127.0.0.1:9000"] {
        endpoint_ok(Protocol::Http, ok);
    }
    let long = format!("https://example.com/{}", "a".repeat(2048 - 20));
    assert_eq!(long.len(), 2048);
    endpoint_ok(Protocol::Https, &long);
    for bad in [
        "",
        "example.com",
        "http://example.com",
        "HTTPS://example.com",
        "https:/example.com",
        "https://",
        "https:///path",
        "https://user:pw@example.com/",
        "https://user@example.com/",
        "https://example.com/#frag",
        "https://example.com/a b",
        "https://example.com/\n",
        "https://exa mple.com/",
        "https://example.com:/",
        "https://example.com:0/",
        "https://example.com:65536/",
        "https://example.com:8x/",
        "https://[::1/",
        "https://[zz::1]/",
        "https://[::1]x/",
        "https://exa_mple.com/",
        "ftp://example.com/",
        &format!("{long}a"),
    ] {
        endpoint_bad(Protocol::Https, bad);
    }
    endpoint_bad(Protocol::Http, "https://example.com/");
}

#[test]
fn function_endpoints() {
    for ok in [
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:function:default:my_func",
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:function:default:my-func:latest",
        "urn:fss:cn-north-4:762bdb3251034f268af0e395c53ea09b:function:pkg_1:f:v1.2",
    ] {
        endpoint_ok(Protocol::FunctionStage, ok);
    }
    for bad in [
        "",
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:function:default",
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:func:default:f",
        "urn:fgs:eu-de:762bdb3251034f268af0e395c53ea09b:function:default:f",
        "urn:fss:eu de:762bdb3251034f268af0e395c53ea09b:function:default:f",
        "urn:fss:eu-de::function:default:f",
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:function::f",
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:function:default:1f",
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:function:default:f:",
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:function:default:f:v 1",
        "urn:fss:eu-de:762bdb3251034f268af0e395c53ea09b:function:default:f:v1:x",
        "https://example.com/",
    ] {
        endpoint_bad(Protocol::FunctionStage, bad);
    }
}

#[test]
fn endpoint_is_checked_against_its_protocol() {
    endpoint_bad(Protocol::Email, "+8613800138000");
    endpoint_bad(Protocol::Sms, "user@example.com");
    endpoint_bad(Protocol::FunctionStage, "user@example.com");
}

#[test]
fn extension_headers_accepted() {
    let h = ExtensionHeaders::parse(&json!({"x-abc": "value", "x-Trace-Id-2": "a b ~!"})).unwrap();
    assert_eq!(h.len(), 2);
    assert!(!h.is_empty());
    let pairs: Vec<(&str, &str)> = h.iter().collect();
    assert!(pairs.contains(&("x-abc", "value")));
    assert!(pairs.contains(&("x-Trace-Id-2", "a b ~!")));
    assert_eq!(
        ExtensionHeaders::parse(&h.to_json()).unwrap(),
        h,
        "to_json round trips"
    );
    assert_eq!(
        h.to_json(),
        json!({"x-abc": "value", "x-Trace-Id-2": "a b ~!"})
    );

    assert!(ExtensionHeaders::parse(&json!({})).unwrap().is_empty());
    assert!(ExtensionHeaders::parse(&json!(null)).unwrap().is_empty());
    assert_eq!(
        ExtensionHeaders::parse(&json!({"x-e": ""})).unwrap().len(),
        1
    );

    let ten: serde_json::Map<_, _> = (0..10).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    assert_eq!(ExtensionHeaders::parse(&ten.into()).unwrap().len(), 10);

    // Exactly 1024 characters of names and values together.
    let exact = json!({"x-a": "v".repeat(1024 - 3)});
    assert!(ExtensionHeaders::parse(&exact).is_ok());
}

#[test]
fn extension_headers_rejected() {
    let eleven: serde_json::Map<_, _> = (0..11).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    for bad in [
        json!("x-a: b"),
        json!(["x-a", "b"]),
        json!({"abc": "v"}),
        json!({"X-abc": "v"}),
        json!({"x-": "v"}),
        json!({"x-a_b": "v"}),
        json!({"x-a b": "v"}),
        json!({"x-ä": "v"}),
        json!({"x-smn": "v"}),
        json!({"x-smn-topic-urn": "v"}),
        json!({"x-SMN-foo": "v"}),
        json!({"x-Smnfoo": "v"}),
        json!({"x-a": "v", "x-A": "w"}),
        json!({"x-a": 1}),
        json!({"x-a": null}),
        json!({"x-a": "line\nbreak"}),
        json!({"x-a": "tab\there"}),
        json!({"x-a": "naïve"}),
        json!({"x-a": "v".repeat(1024 - 3 + 1)}),
        eleven.into(),
    ] {
        let e = assert_err(ExtensionHeaders::parse(&bad), 400, "SMN.0043");
        assert!(e.message.starts_with("Invalid extension.header"), "{e}");
    }
}

#[test]
fn display_names() {
    for ok in [
        "",
        "testtest",
        &"a".repeat(192),
        &"€".repeat(64),
        "Ops 24/7 — alerts",
    ] {
        check_display_name(ok).unwrap();
    }
    for bad in [
        &"a".repeat(193) as &str,
        &"€".repeat(65),
        "a\nb",
        "a\rb",
        "\u{0}",
        "tab\t",
    ] {
        assert_err(check_display_name(bad), 400, "SMN.0003");
    }
}

#[test]
fn remarks() {
    for ok in ["", "O&M", &"r".repeat(128), &"ü".repeat(64)] {
        check_remark(ok).unwrap();
    }
    for bad in [
        &"r".repeat(129) as &str,
        &"ü".repeat(65),
        &format!("{}€", "r".repeat(126)),
    ] {
        assert_err(check_remark(bad), 400, "SMN.0017");
    }
}
