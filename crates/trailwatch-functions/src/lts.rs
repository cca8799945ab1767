//! Decoding an LTS trigger event (cloud-apis.md §4.2).
//!
//! The event is `{"lts": {"data": "<base64>"}}`. `data` decodes to a JSON object
//! `{"logs": "<JSON text of an array>", "owner", "log_group_id", "log_topic_id"}` — `logs` is
//! double-encoded, a *string* holding the array. [`decode_event`] accepts that and, leniently,
//! a real array in `logs` too. Each record is an object:
//!
//! | field | type | |
//! |---|---|---|
//! | `message` | string | required: the raw log line |
//! | `time` | integer ms (or a string of digits) | optional |
//! | `host_name`, `ip`, `path`, `log_uid` | string | optional |
//! | `line_no` | integer (or a string of digits) | optional |
//! | anything else | any | kept in [`LogRecord::extra`] |
//!
//! `null` counts as absent. The base64 text may contain ASCII whitespace (line-wrapped
//! encoders) and may omit padding; any other non-alphabet character is an error. Every error
//! says which layer failed (not an LTS event, not base64, not JSON, `logs` missing or of the
//! wrong type, record *n* not an object or with a bad field).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::text::{describe, quote};

/// One log line as LTS delivers it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LogRecord {
    /// The raw log line.
    pub message: String,
    /// When it was collected, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// The host that produced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// The host's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The log file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// LTS's id of the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_uid: Option<String>,
    /// Line number in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_no: Option<i64>,
    /// Other members, kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A decoded LTS event.
#[derive(Debug, Clone, PartialEq)]
pub struct LtsData {
    /// The project id that owns the log group.
    pub owner: Option<String>,
    /// The log group id.
    pub log_group_id: Option<String>,
    /// The log stream (topic) id.
    pub log_topic_id: Option<String>,
    /// The records, in order.
    pub logs: Vec<LogRecord>,
    /// SHA-256 of the base64-decoded `data` bytes: identifies the event's content (e.g. for
    /// idempotency keys), independent of base64 padding or line wrapping.
    pub digest: [u8; 32],
}

/// Why an LTS event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LtsError {
    /// The event is not `{"lts": {"data": "<string>"}}`.
    #[error("not an LTS trigger event: {0}")]
    NotLtsEvent(String),
    /// `data` is not base64.
    #[error("lts.data is not base64: {0}")]
    NotBase64(String),
    /// The decoded bytes are not a JSON object.
    #[error("lts.data does not decode to a JSON object: {0}")]
    NotJsonObject(String),
    /// A top-level member of the decoded object is wrong.
    #[error("lts.data member `{field}`: {reason}")]
    Field {
        /// `logs`, `owner`, `log_group_id` or `log_topic_id`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A record is wrong.
    #[error("lts.data logs[{index}]{field}: {reason}")]
    Record {
        /// 0-based index in `logs`.
        index: usize,
        /// `.member` at fault, or empty when the record itself is.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes `{"lts": {"data": "<base64>"}}`.
pub fn decode_event(event: &Value) -> Result<LtsData, LtsError> {
    let Some(obj) = event.as_object() else {
        return Err(LtsError::NotLtsEvent(format!(
            "expected a JSON object, found {}",
            describe(event)
        )));
    };
    let Some(lts) = obj.get("lts") else {
        return Err(LtsError::NotLtsEvent("no \"lts\" member".to_owned()));
    };
    let Some(lts) = lts.as_object() else {
        return Err(LtsError::NotLtsEvent(format!(
            "\"lts\" must be an object, found {}",
            describe(lts)
        )));
    };
    match lts.get("data") {
        Some(Value::String(data)) => decode_data(data),
        Some(other) => Err(LtsError::NotLtsEvent(format!(
            "\"lts.data\" must be a base64 string, found {}",
            describe(other)
        ))),
        None => Err(LtsError::NotLtsEvent("no \"lts.data\" member".to_owned())),
    }
}

/// Decodes the base64 `data` string of an LTS event.
pub fn decode_data(data: &str) -> Result<LtsData, LtsError> {
    let compact: String;
    let text = if data.bytes().any(|b| b.is_ascii_whitespace()) {
        compact = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        compact.as_str()
    } else {
        data
    };
    let bytes = BASE64
        .decode(text)
        .map_err(|e| LtsError::NotBase64(e.to_string()))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| LtsError::NotJsonObject(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(LtsError::NotJsonObject(format!(
            "found {}",
            describe(&value)
        )));
    };
    let owner = opt_string(&mut obj, "owner")?;
    let log_group_id = opt_string(&mut obj, "log_group_id")?;
    let log_topic_id = opt_string(&mut obj, "log_topic_id")?;
    let items = match obj.remove("logs") {
        None | Some(Value::Null) => {
            return Err(LtsError::Field {
                field: "logs",
                reason: "is missing".to_owned(),
            });
        }
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(a)) => a,
            Ok(other) => {
                return Err(LtsError::Field {
                    field: "logs",
                    reason: format!(
                        "the string must hold a JSON array, it holds {}",
                        describe(&other)
                    ),
                });
            }
            Err(e) => {
                return Err(LtsError::Field {
                    field: "logs",
                    reason: format!("the string is not JSON ({e}): {}", quote(&s)),
                });
            }
        },
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(LtsError::Field {
                field: "logs",
                reason: format!(
                    "expected a JSON-encoded array (string) or an array, found {}",
                    describe(&other)
                ),
            });
        }
    };
    let logs = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| record(i, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LtsData {
        owner,
        log_group_id,
        log_topic_id,
        logs,
        digest,
    })
}

fn opt_string(
    obj: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, LtsError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(LtsError::Field {
            field,
            reason: format!("expected a string, found {}", describe(&other)),
        }),
    }
}

fn record(index: usize, v: Value) -> Result<LogRecord, LtsError> {
    let err = |field: &str, reason: String| LtsError::Record {
        index,
        field: if field.is_empty() {
            String::new()
        } else {
            format!(".{field}")
        },
        reason,
    };
    let Value::Object(mut m) = v else {
        return Err(err(
            "",
            format!("expected an object, found {}", describe(&v)),
        ));
    };
    let string = |m: &mut Map<String, Value>, key: &str| match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(err(
            key,
            format!("expected a string, found {}", describe(&other)),
        )),
    };
    let message =
        string(&mut m, "message")?.ok_or_else(|| err("message", "is missing".to_owned()))?;
    let host_name = string(&mut m, "host_name")?;
    let ip = string(&mut m, "ip")?;
    let path = string(&mut m, "path")?;
    let log_uid = string(&mut m, "log_uid")?;
    let integer = |m: &mut Map<String, Value>, key: &str| match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| err(key, format!("expected an integer, found number {n}"))),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| err(key, format!("{} is out of range", quote(&s)))),
        Some(other) => Err(err(
            key,
            format!("expected an integer, found {}", describe(&other)),
        )),
    };
    let time = integer(&mut m, "time")?;
    let line_no = integer(&mut m, "line_no")?;
    Ok(LogRecord {
        message,
        time,
        host_name,
        ip,
        path,
        log_uid,
        line_no,
        extra: m,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    /// The §4.2 sample, double-encoded.
    const SAMPLE: &str = r#"{"logs": "[{\"message\":\"2018-08-08/08:08:08 [WRN] [test.go:08]This is a test message.\",\"time\":1530009653059,\"host_name\":\"ecs-test\",\"ip\":\"192.168.1.1\",\"path\":\"var/log/test.log\",\"log_uid\":\"663d6930-792d-11e8-8b08-286ed488ce70\",\"line_no\":1}]",
 "owner": "6280e170bd934f60a4d851cf5ca05129",
 "log_group_id": "97a9d284-4448-11e8-8fa4-286ed488ce70",
 "log_topic_id": "1a9675a7-784d-11e8-9f70-286ed488ce70"}"#;

    fn event(inner: &str) -> Value {
        json!({"lts": {"data": STANDARD.encode(inner)}})
    }

    #[test]
    fn decodes_the_double_encoded_sample() {
        let d = decode_event(&event(SAMPLE)).unwrap();
        assert_eq!(d.owner.as_deref(), Some("6280e170bd934f60a4d851cf5ca05129"));
        assert_eq!(
            d.log_group_id.as_deref(),
            Some("97a9d284-4448-11e8-8fa4-286ed488ce70")
        );
        assert_eq!(
            d.log_topic_id.as_deref(),
            Some("1a9675a7-784d-11e8-9f70-286ed488ce70")
        );
        assert_eq!(d.logs.len(), 1);
        let r = &d.logs[0];
        assert_eq!(
            r.message,
            "2018-08-08/08:08:08 [WRN] [test.go:08]This is a test message."
        );
        assert_eq!(r.time, Some(1_530_009_653_059));
        assert_eq!(r.host_name.as_deref(), Some("ecs-test"));
        assert_eq!(r.ip.as_deref(), Some("192.168.1.1"));
        assert_eq!(r.path.as_deref(), Some("var/log/test.log"));
        assert_eq!(r.line_no, Some(1));
        assert!(r.extra.is_empty());
        assert_eq!(
            d.digest,
            <[u8; 32]>::from(Sha256::digest(SAMPLE.as_bytes()))
        );
    }

    #[test]
    fn accepts_a_real_array_and_lenient_base64() {
        let inner = r#"{"logs":[{"message":"a","time":"17","line_no":"3","level":"x"},{"message":"b"}],"owner":"p"}"#;
        let d = decode_event(&event(inner)).unwrap();
        assert_eq!(d.logs.len(), 2);
        assert_eq!(d.logs[0].time, Some(17));
        assert_eq!(d.logs[0].line_no, Some(3));
        assert_eq!(d.logs[0].extra.get("level"), Some(&json!("x")));
        assert_eq!(d.logs[1].message, "b");
        assert_eq!(d.log_group_id, None);

        // wrapped, unpadded: same content, same digest
        let enc = STANDARD.encode(inner);
        let wrapped: String = enc
            .trim_end_matches('=')
            .as_bytes()
            .chunks(10)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        let d2 = decode_data(&wrapped).unwrap();
        assert_eq!(d2, d);
    }

    #[test]
    fn wrong_shapes_say_which_layer() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!([1]),
                "not an LTS trigger event: expected a JSON object",
            ),
            (
                json!({"cts": {}}),
                "not an LTS trigger event: no \"lts\" member",
            ),
            (json!({"lts": "x"}), "\"lts\" must be an object"),
            (json!({"lts": {}}), "no \"lts.data\" member"),
            (
                json!({"lts": {"data": 5}}),
                "must be a base64 string, found number 5",
            ),
            (
                json!({"lts": {"data": "not base64!"}}),
                "lts.data is not base64",
            ),
            (
                event("not json"),
                "lts.data does not decode to a JSON object: expected",
            ),
            (
                event("[1,2]"),
                "does not decode to a JSON object: found an array",
            ),
            (
                event(r#"{"owner":"p"}"#),
                "lts.data member `logs`: is missing",
            ),
            (
                event(r#"{"logs":"[{"}"#),
                "lts.data member `logs`: the string is not JSON",
            ),
            (
                event(r#"{"logs":"{}"}"#),
                "the string must hold a JSON array, it holds an object",
            ),
            (event(r#"{"logs":7}"#), "found number 7"),
            (
                event(r#"{"logs":[],"owner":1}"#),
                "member `owner`: expected a string",
            ),
            (
                event(r#"{"logs":[{"message":"a"},"b"]}"#),
                "logs[1]: expected an object, found string \"b\"",
            ),
            (
                event(r#"{"logs":[{"time":1}]}"#),
                "logs[0].message: is missing",
            ),
            (
                event(r#"{"logs":[{"message":1}]}"#),
                "logs[0].message: expected a string",
            ),
            (
                event(r#"{"logs":[{"message":"a","time":1.5}]}"#),
                "logs[0].time: expected an integer, found number 1.5",
            ),
            (
                event(r#"{"logs":[{"message":"a","line_no":"x"}]}"#),
                "logs[0].line_no: expected an integer",
            ),
            (
                event(r#"{"logs":[{"message":"a","host_name":[]}]}"#),
                "logs[0].host_name: expected a string",
            ),
        ];
        for (ev, want) in cases {
            let e = decode_event(&ev).unwrap_err().to_string();
            assert!(e.contains(want), "{ev}: {e}");
        }
    }

    #[test]
    fn empty_logs_are_fine() {
        let d = decode_event(&event(r#"{"logs":"[]"}"#)).unwrap();
        assert!(d.logs.is_empty());
    }
}
