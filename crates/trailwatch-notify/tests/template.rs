#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use trailwatch_notify::{SmnError, Template, check_tags, check_template_name};

#[track_caller]
fn assert_err<T: std::fmt::Debug>(r: Result<T, SmnError>, status: u16, code: &str) -> SmnError {
    let e = r.unwrap_err();
    assert_eq!((e.status, e.code), (status, code), "{e}");
    e
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn template_names() {
    for ok in ["confirm_message", "a", "0-x_Y", &"n".repeat(64)] {
        check_template_name(ok).unwrap();
    }
    for bad in ["", "_a", "-a", "a b", "a.b", "ä", &"n".repeat(65)] {
        assert_err(check_template_name(bad), 400, "SMN.0032");
    }
}

#[test]
fn tag_names_are_distinct_in_first_appearance_order() {
    let t = Template::parse(
        "You are invited to subscribe to topic({topic_id}) {topic_urn}; {topic_id} again, then {a_1}.",
    )
    .unwrap();
    assert_eq!(t.tag_names(), ["topic_id", "topic_urn", "a_1"]);
    assert_eq!(
        t.content(),
        "You are invited to subscribe to topic({topic_id}) {topic_urn}; {topic_id} again, then {a_1}."
    );
}

#[test]
fn render_fills_every_occurrence_and_ignores_extra_tags() {
    let t = Template::parse("{a}-{b}-{a}: Grüße {name}!").unwrap();
    let out = t
        .render(&tags(&[
            ("a", "1"),
            ("b", "2"),
            ("name", "Jörg"),
            ("unused", "x"),
        ]))
        .unwrap();
    assert_eq!(out, "1-2-1: Grüße Jörg!");
}

#[test]
fn braces_that_are_not_variables_are_literal() {
    let cases: &[(&str, &[&str], &str)] = &[
        // "{{" and "}}" are not escapes: "{{a}}" is a brace, the variable a, a brace.
        ("{{a}}", &["a"], "{X}"),
        ("{}", &[], "{}"),
        ("{ a}", &[], "{ a}"),
        ("{a }", &[], "{a }"),
        ("{a-b}", &[], "{a-b}"),
        ("{a.b}", &[], "{a.b}"),
        ("{ä}", &[], "{ä}"),
        ("{a", &[], "{a"),
        ("a}", &[], "a}"),
        ("{", &[], "{"),
        ("}{", &[], "}{"),
        ("{{{a}", &["a"], "{{X"),
        ("{\"k\": \"{a}\"}", &["a"], "{\"k\": \"X\"}"),
        ("{aaaaaaaaaaaaaaaaaaaaa}", &["aaaaaaaaaaaaaaaaaaaaa"], "X"),
        ("{aaaaaaaaaaaaaaaaaaaaaa}", &[], "{aaaaaaaaaaaaaaaaaaaaaa}"),
        ("€{a}€", &["a"], "€X€"),
    ];
    for (content, names, rendered) in cases {
        let t = Template::parse(content).unwrap();
        assert_eq!(&t.tag_names(), names, "{content}");
        let values: BTreeMap<String, String> = names
            .iter()
            .map(|n| ((*n).to_owned(), "X".to_owned()))
            .collect();
        assert_eq!(&t.render(&values).unwrap(), rendered, "{content}");
    }
}

#[test]
fn missing_tags_are_all_named() {
    let t = Template::parse("{a} {b} {c} {a} {d}").unwrap();
    let e = assert_err(t.render(&tags(&[("b", "x")])), 400, "SMN.0038");
    assert!(e.message.contains("missing: a, c, d."), "{e}");
    let e = assert_err(t.render(&BTreeMap::new()), 400, "SMN.0038");
    assert!(e.message.contains("missing: a, b, c, d."), "{e}");
}

#[test]
fn tag_limits() {
    let t = Template::parse("{a}").unwrap();
    let long_key = "k".repeat(22);
    let e = assert_err(
        t.render(&tags(&[("a", "x"), (&long_key, "y")])),
        400,
        "SMN.0038",
    );
    assert!(e.message.contains("1 to 21"), "{e}");
    assert_err(t.render(&tags(&[("a", "x"), ("", "y")])), 400, "SMN.0038");
    assert!(check_tags(&tags(&[(&"k".repeat(21), "y")])).is_ok());

    let kb = "v".repeat(1024);
    assert_eq!(t.render(&tags(&[("a", &kb)])).unwrap(), kb);
    let too_big = format!("{kb}v");
    assert_err(t.render(&tags(&[("a", &too_big)])), 400, "SMN.0038");
    // The value limit is in bytes: 342 "€" are 1026 bytes.
    assert_err(t.render(&tags(&[("a", &"€".repeat(342))])), 400, "SMN.0038");
}

#[test]
fn content_limits() {
    let e = assert_err(Template::parse(""), 400, "SMN.0024");
    assert!(e.message.contains("empty"), "{e}");
    let max = "c".repeat(256 * 1024);
    assert!(Template::parse(&max).is_ok());
    let e = assert_err(Template::parse(&format!("{max}c")), 400, "SMN.0024");
    assert!(e.message.contains("262144"), "{e}");
}

#[test]
fn at_most_90_distinct_variables() {
    let ninety: String = (0..90).map(|i| format!("{{v{i}}}{{v{i}}}")).collect();
    assert_eq!(Template::parse(&ninety).unwrap().tag_names().len(), 90);
    let ninety_one = format!("{ninety}{{v90}}");
    let e = assert_err(Template::parse(&ninety_one), 403, "SMN.0075");
    assert!(e.message.contains("91"), "{e}");
}

#[test]
fn rendered_output_is_bounded() {
    // 300 uses of a 1 KB value would make 300 KB from a 900-byte template.
    let t = Template::parse(&"{a}".repeat(300)).unwrap();
    let e = assert_err(
        t.render(&tags(&[("a", &"v".repeat(1024))])),
        403,
        "SMN.0009",
    );
    assert!(e.message.contains("262144"), "{e}");
    // 256 uses fit exactly.
    let t = Template::parse(&"{a}".repeat(256)).unwrap();
    assert_eq!(
        t.render(&tags(&[("a", &"v".repeat(1024))])).unwrap().len(),
        256 * 1024
    );
}
