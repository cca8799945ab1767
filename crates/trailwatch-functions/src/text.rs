//! Small text helpers shared by the modules: quoting user input in error messages, describing
//! JSON values, name character classes, hex.

use serde_json::Value;

/// Longest excerpt of a user-supplied string quoted in an error message.
const QUOTE_MAX: usize = 64;

/// Quotes (and escapes) a user-supplied string for an error message, truncated so a huge
/// input cannot produce a huge error.
pub(crate) fn quote(s: &str) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(QUOTE_MAX).collect();
    if chars.next().is_some() {
        format!("{head:?}… (truncated)")
    } else {
        format!("{head:?}")
    }
}

/// What a JSON value is, for "expected X, found Y" messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", quote(s)),
        Value::Array(a) => format!("an array of {} element(s)", a.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// `[A-Za-z0-9_-]`.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Checks `s` against "1..=max characters of `allowed`, the first one `first`"; on failure
/// says which rule broke, for error messages.
pub(crate) fn check_name(
    s: &str,
    max: usize,
    first: fn(char) -> bool,
    first_rule: &str,
    allowed: fn(char) -> bool,
    allowed_rule: &str,
) -> Result<(), String> {
    let Some(c0) = s.chars().next() else {
        return Err("is empty".to_owned());
    };
    let n = s.chars().count();
    if n > max {
        return Err(format!(
            "{} is {n} characters long, at most {max} are allowed",
            quote(s)
        ));
    }
    if !first(c0) {
        return Err(format!("{} must start with {first_rule}", quote(s)));
    }
    if let Some(bad) = s.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "{} contains {bad:?}; allowed are {allowed_rule}",
            quote(s)
        ));
    }
    Ok(())
}

/// A trace/operation name: 1–64 chars `[A-Za-z0-9._-]`, first char a letter (the
/// `trailwatch-trace` rule for `trace_name`).
pub(crate) fn check_trace_name(s: &str) -> Result<(), String> {
    check_name(
        s,
        64,
        |c| c.is_ascii_alphabetic(),
        "a letter",
        |c| is_name_char(c) || c == '.',
        "letters, digits, '.', '_' and '-'",
    )
}

/// An SMN topic name: 1–255 chars `[A-Za-z0-9_-]`, first char a letter or digit (the
/// `trailwatch-notify` rule).
pub(crate) fn check_topic_name(s: &str) -> Result<(), String> {
    check_name(
        s,
        255,
        |c| c.is_ascii_alphanumeric(),
        "a letter or digit",
        is_name_char,
        "letters, digits, '_' and '-'",
    )
}

/// A region id: 1–64 chars `[A-Za-z0-9_-]`, first char a letter or digit (as in SMN URNs).
pub(crate) fn check_region(s: &str) -> Result<(), String> {
    check_name(
        s,
        64,
        |c| c.is_ascii_alphanumeric(),
        "a letter or digit",
        is_name_char,
        "letters, digits, '_' and '-'",
    )
}

/// A project id: 1–64 ASCII letters and digits (OTC ids are 32 lower-case hex characters).
pub(crate) fn check_project_id(s: &str) -> Result<(), String> {
    check_name(
        s,
        64,
        |c| c.is_ascii_alphanumeric(),
        "a letter or digit",
        |c| c.is_ascii_alphanumeric(),
        "letters and digits",
    )
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quote_truncates_long_input() {
        let long = "x".repeat(100);
        let q = quote(&long);
        assert!(q.ends_with("… (truncated)"), "{q}");
        assert!(q.len() < 90, "{q}");
        assert_eq!(quote("a\"b"), r#""a\"b""#);
    }

    #[test]
    fn name_rules_say_what_broke() {
        assert_eq!(check_trace_name("login"), Ok(()));
        assert_eq!(check_trace_name(""), Err("is empty".to_owned()));
        assert!(
            check_trace_name("9lives")
                .unwrap_err()
                .contains("start with a letter")
        );
        assert!(check_trace_name("log in").unwrap_err().contains("' '"));
        assert!(
            check_trace_name(&"a".repeat(65))
                .unwrap_err()
                .contains("65 characters")
        );
        assert_eq!(check_topic_name("9_topic-x"), Ok(()));
        assert!(check_project_id("abc-def").is_err());
    }

    #[test]
    fn hex_is_lower_case_and_complete() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
