//! A function's environment variables: the FunctionGraph `user_data` field (cloud-apis.md §4.4).
//!
//! `user_data` is a *string* holding a JSON object, e.g.
//! `"{\"SMN_Topic\":\"cts_test\",\"RegionName\":\"eu-de\",\"IP\":\"1.2.3.4\"}"`.
//! [`UserData::parse`] accepts it when:
//!
//! - the string is at most [`MAX_BYTES`] (4096) bytes long, measured on the string as submitted
//!   (the only size both the client and the server see the same way);
//! - it is empty / all whitespace (no variables), or a JSON object;
//! - the object has at most [`MAX_KEYS`] (20) members and no key twice (JSON would silently keep
//!   the last one; here that is an error naming the key);
//! - every key is 1–64 characters `[A-Za-z0-9_.-]` starting with a letter or `_`;
//! - every value is a JSON **string**. Numbers, booleans, null, arrays and objects are refused
//!   with an error naming the key: FunctionGraph stores and returns strings, and silently
//!   turning `1.0` into `"1.0"` or `"1"` would make the value depend on the client's JSON
//!   encoder. The error says how to quote the value.
//!
//! The map is ordered by key ([`BTreeMap`]), so [`UserData::to_json_string`] is canonical.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::text::{check_name, describe, quote};

/// At most this many variables.
pub const MAX_KEYS: usize = 20;
/// The `user_data` string may be at most this many bytes.
pub const MAX_BYTES: usize = 4096;
/// The longest key, in characters.
pub const KEY_MAX: usize = 64;

/// Environment variables by name. Every constructor validates, so a value you hold obeys the
/// module rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserData(BTreeMap<String, String>);

/// Why a `user_data` string (or a variable) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    /// The string is longer than [`MAX_BYTES`].
    #[error("user_data is {len} bytes long, at most {MAX_BYTES} are allowed")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// Not a JSON object (syntax error or another JSON type).
    #[error("user_data must be a JSON object of string values: {reason}")]
    NotAnObject {
        /// The parser's message, or what the value was.
        reason: String,
    },
    /// More than [`MAX_KEYS`] variables.
    #[error("user_data has {count} variables, at most {MAX_KEYS} are allowed")]
    TooManyKeys {
        /// How many there were.
        count: usize,
    },
    /// A key appears twice.
    #[error("user_data key {key} appears more than once")]
    DuplicateKey {
        /// The key, quoted.
        key: String,
    },
    /// A key breaks the naming rule.
    #[error("user_data key {reason}")]
    BadKey {
        /// What is wrong, quoting the key.
        reason: String,
    },
    /// A value is not a string.
    #[error(
        "user_data value of {key} must be a string, found {found}; quote it, e.g. \"{key_hint}\": \"...\""
    )]
    NotAString {
        /// The key, quoted.
        key: String,
        /// What the value was.
        found: String,
        /// The key unquoted, for the hint.
        key_hint: String,
    },
}

fn check_key(key: &str) -> Result<(), UserDataError> {
    check_name(
        key,
        KEY_MAX,
        |c| c.is_ascii_alphabetic() || c == '_',
        "a letter or '_'",
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "letters, digits, '_', '.' and '-'",
    )
    .map_err(|reason| UserDataError::BadKey { reason })
}

/// The members of a JSON object in document order, duplicates kept (serde_json's `Map` would
/// drop them silently).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl UserData {
    /// No variables.
    pub fn new() -> UserData {
        UserData::default()
    }

    /// Parses the `user_data` string (rules in the module docs).
    pub fn parse(text: &str) -> Result<UserData, UserDataError> {
        if text.len() > MAX_BYTES {
            return Err(UserDataError::TooLarge { len: text.len() });
        }
        if text.trim().is_empty() {
            return Ok(UserData::new());
        }
        let members: Members = serde_json::from_str(text).map_err(|e| {
            // A JSON value of the wrong type reaches the visitor's `expecting`; say what it was.
            let reason = match serde_json::from_str::<Value>(text) {
                Ok(v) => format!("found {}", describe(&v)),
                Err(_) => e.to_string(),
            };
            UserDataError::NotAnObject { reason }
        })?;
        if members.0.len() > MAX_KEYS {
            return Err(UserDataError::TooManyKeys {
                count: members.0.len(),
            });
        }
        let mut map = BTreeMap::new();
        for (k, v) in members.0 {
            check_key(&k)?;
            let Value::String(s) = v else {
                return Err(UserDataError::NotAString {
                    key: quote(&k),
                    found: describe(&v),
                    key_hint: k,
                });
            };
            if map.contains_key(&k) {
                return Err(UserDataError::DuplicateKey { key: quote(&k) });
            }
            map.insert(k, s);
        }
        Ok(UserData(map))
    }

    /// Builds from pairs with the same rules as [`UserData::parse`] (key rule, key count, no
    /// duplicates, and the size of [`UserData::to_json_string`]). Handy for tests and for
    /// configuration that does not arrive as a string.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<UserData, UserDataError> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            let k = k.into();
            check_key(&k)?;
            if map.contains_key(&k) {
                return Err(UserDataError::DuplicateKey { key: quote(&k) });
            }
            map.insert(k, v.into());
            if map.len() > MAX_KEYS {
                return Err(UserDataError::TooManyKeys { count: map.len() });
            }
        }
        let data = UserData(map);
        let len = data.to_json_string().len();
        if len > MAX_BYTES {
            return Err(UserDataError::TooLarge { len });
        }
        Ok(data)
    }

    /// The value of `key`, as stored (not trimmed).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key` trimmed of surrounding whitespace; `None` when absent or blank.
    pub fn get_non_blank(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|s| !s.is_empty())
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no variables.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The variables in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The variables as a map.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Compact JSON object text in key order, the form FunctionGraph returns and a runtime's
    /// `RUNTIME_USERDATA` holds.
    pub fn to_json_string(&self) -> String {
        // A map of strings always serializes; the fallback keeps this total without a panic path.
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tutorial_variables() {
        let u = UserData::parse(r#"{"SMN_Topic":"cts_test","RegionName":"eu-de","IP":"1.2.3.4"}"#)
            .unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(u.get("IP"), Some("1.2.3.4"));
        assert_eq!(u.get("ip"), None);
        // key order, compact
        assert_eq!(
            u.to_json_string(),
            r#"{"IP":"1.2.3.4","RegionName":"eu-de","SMN_Topic":"cts_test"}"#
        );
        assert_eq!(UserData::parse(&u.to_json_string()).unwrap(), u);
    }

    #[test]
    fn empty_string_is_no_variables_and_blank_values_are_absent() {
        assert!(UserData::parse("").unwrap().is_empty());
        assert!(UserData::parse("  \n").unwrap().is_empty());
        assert!(UserData::parse("{}").unwrap().is_empty());
        let u = UserData::parse(r#"{"A":"  ","B":" x "}"#).unwrap();
        assert_eq!(u.get("A"), Some("  "));
        assert_eq!(u.get_non_blank("A"), None);
        assert_eq!(u.get_non_blank("B"), Some("x"));
    }

    #[test]
    fn non_objects_are_refused_with_what_they_were() {
        let e = UserData::parse(r#"["a"]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "user_data must be a JSON object of string values: found an array of 1 element(s)"
        );
        let e = UserData::parse(r#"{"a":"b""#).unwrap_err();
        assert!(matches!(e, UserDataError::NotAnObject { .. }), "{e}");
        assert!(e.to_string().contains("EOF"), "{e}");
    }

    #[test]
    fn non_string_values_name_the_key() {
        let e = UserData::parse(r#"{"SMN_Topic":"t","Retries":3}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "user_data value of \"Retries\" must be a string, found number 3; quote it, e.g. \"Retries\": \"...\""
        );
        for v in ["true", "null", "[]", "{}"] {
            let e = UserData::parse(&format!(r#"{{"K":{v}}}"#)).unwrap_err();
            assert!(matches!(e, UserDataError::NotAString { .. }), "{v}: {e}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let twenty: Vec<String> = (0..20).map(|i| format!(r#""K{i}":"v""#)).collect();
        assert_eq!(
            UserData::parse(&format!("{{{}}}", twenty.join(",")))
                .unwrap()
                .len(),
            20
        );
        let mut twenty_one = twenty.clone();
        twenty_one.push(r#""K20":"v""#.into());
        assert_eq!(
            UserData::parse(&format!("{{{}}}", twenty_one.join(","))),
            Err(UserDataError::TooManyKeys { count: 21 })
        );

        let fits = format!(r#"{{"K":"{}"}}"#, "x".repeat(MAX_BYTES - 8));
        assert_eq!(fits.len(), MAX_BYTES);
        assert!(UserData::parse(&fits).is_ok());
        let over = format!(r#"{{"K":"{}"}}"#, "x".repeat(MAX_BYTES - 7));
        assert_eq!(
            UserData::parse(&over),
            Err(UserDataError::TooLarge { len: MAX_BYTES + 1 })
        );
    }

    #[test]
    fn duplicate_and_bad_keys_are_named() {
        let e = UserData::parse(r#"{"IP":"1.1.1.1","IP":"2.2.2.2"}"#).unwrap_err();
        assert_eq!(e.to_string(), "user_data key \"IP\" appears more than once");
        let e = UserData::parse(r#"{"1IP":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("\"1IP\" must start with"), "{e}");
        let e = UserData::parse(r#"{"my key":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("' '"), "{e}");
        let e = UserData::parse(r#"{"":"x"}"#).unwrap_err();
        assert_eq!(e.to_string(), "user_data key is empty");
        assert!(UserData::parse(r#"{"_a.b-c":"x"}"#).is_ok());
    }

    #[test]
    fn from_pairs_applies_the_same_rules() {
        let u = UserData::from_pairs([("B", "2"), ("A", "1")]).unwrap();
        assert_eq!(u.iter().collect::<Vec<_>>(), vec![("A", "1"), ("B", "2")]);
        assert!(matches!(
            UserData::from_pairs([("A", "1"), ("A", "2")]),
            Err(UserDataError::DuplicateKey { .. })
        ));
        assert!(matches!(
            UserData::from_pairs([("A", "x".repeat(MAX_BYTES))]),
            Err(UserDataError::TooLarge { .. })
        ));
        assert!(matches!(
            UserData::from_pairs([("9", "x")]),
            Err(UserDataError::BadKey { .. })
        ));
    }
}
