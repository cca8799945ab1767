//! Canonical JSON (RFC 8785, "JCS") for the values a digest holds.
//!
//! The signed bytes of a digest are its canonical JSON, so any verifier with a JCS library (or
//! Python's `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, which
//! gives the same bytes for the keys and integers a digest holds) can rebuild them.
//!
//! Rules, as RFC 8785 states them for the subset used here:
//! - no whitespace; object members sorted by their names compared as UTF-16 code units;
//! - strings: `"` and `\` escaped, control characters as `\b \t \n \f \r` or `\u00xx` (lowercase
//!   hex), every other character as itself (UTF-8);
//! - numbers: integers only, with magnitude at most 2^53 − 1 (I-JSON's exact range), written
//!   in plain decimal. A digest never holds fractions, so a fraction is an error here rather than
//!   a case of ECMAScript number formatting to get right.
//!
//! The writer sorts members itself, so the result does not depend on whether `serde_json` keeps
//! insertion order (its `preserve_order` feature) anywhere in the build.

use std::cmp::Ordering;

use serde_json::Value;

/// Largest integer magnitude that canonical JSON (and every JSON implementation) keeps exact.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A value that canonical JSON as used here cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A number with a fraction or an exponent.
    #[error("{path}: {number} is not an integer")]
    NotAnInteger {
        /// JSON path of the value (`$.log_files[3].size`).
        path: String,
        /// The number as written.
        number: String,
    },
    /// An integer outside ±(2^53 − 1).
    #[error("{path}: {number} is outside ±(2^53 - 1)")]
    OutOfRange {
        /// JSON path of the value.
        path: String,
        /// The number.
        number: String,
    },
}

/// Writes `value` as canonical JSON.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(1024);
    write_value(&mut out, value, &mut String::from("$"))?;
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value, path: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let magnitude = if let Some(u) = n.as_u64() {
                u
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs()
            } else {
                return Err(CanonicalError::NotAnInteger {
                    path: path.clone(),
                    number: n.to_string(),
                });
            };
            if magnitude > MAX_SAFE_INTEGER {
                return Err(CanonicalError::OutOfRange {
                    path: path.clone(),
                    number: n.to_string(),
                });
            }
            // An integer `Number` displays as plain decimal (`-0` cannot occur: it parses as f64).
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                write_value(out, item, path)?;
                path.truncate(len);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| utf16_cmp(a.0, b.0));
            out.push(b'{');
            for (i, (name, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, name);
                out.push(b':');
                let len = path.len();
                path.push('.');
                path.push_str(name);
                write_value(out, item, path)?;
                path.truncate(len);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            // Multi-byte UTF-8 sequences are copied byte by byte: they never contain bytes < 0x80.
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: &Value) -> String {
        String::from_utf8(to_canonical(v).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn members_are_sorted_and_whitespace_dropped() {
        let v = json!({"b": [1, {"z": true, "a": null}], "a": "x", "A": -5});
        assert_eq!(canon(&v), r#"{"A":-5,"a":"x","b":[1,{"a":null,"z":true}]}"#);
    }

    #[test]
    fn strings_are_escaped_as_rfc_8785_says() {
        let v = json!("q\" b\\ \u{8}\t\n\u{c}\r \u{1} \u{1f} \u{7f} é € 😀 / <");
        assert_eq!(
            canon(&v),
            "\"q\\\" b\\\\ \\b\\t\\n\\f\\r \\u0001 \\u001f \u{7f} é € 😀 / <\""
        );
    }

    #[test]
    fn names_sort_by_utf16_code_units() {
        // UTF-8 byte order puts U+FB01 (EF AC 81) before U+1F600 (F0 9F 98 80); UTF-16 puts
        // U+1F600 (D83D DE00) before U+FB01.
        let v = json!({"\u{FB01}": 2, "\u{1F600}": 1});
        assert_eq!(canon(&v), "{\"\u{1F600}\":1,\"\u{FB01}\":2}");
    }

    #[test]
    fn only_safe_integers() {
        assert_eq!(
            canon(&json!([9007199254740991_u64, -9007199254740991_i64, 0])),
            "[9007199254740991,-9007199254740991,0]"
        );
        assert!(matches!(
            to_canonical(&json!({"a": [1.5]})),
            Err(CanonicalError::NotAnInteger { path, .. }) if path == "$.a[0]"
        ));
        assert!(matches!(
            to_canonical(&json!({"n": 9007199254740992_u64})),
            Err(CanonicalError::OutOfRange { path, .. }) if path == "$.n"
        ));
        assert!(to_canonical(&json!(-9007199254740992_i64)).is_err());
    }
}
