//! The trigger event payloads handed to functions (cloud-apis.md §4.2).
//!
//! - [`cts_event`]: `{"cts": <trace>}`, the trace in the CTS v3 shape plus `trace_status`.
//! - [`lts_event`] / [`lts_batches`]: `{"lts": {"data": base64(JSON)}}` where the JSON is
//!   `{"logs": "<JSON text of the record array>", "owner", "log_group_id", "log_topic_id"}`.
//!   [`lts_batches`] splits records into events of at most [`LTS_EVENT_MAX_BYTES`] (75 KiB,
//!   counted on the whole compact event JSON), in order, never dropping a record.
//! - [`timer_event`]: `{"version": "v1.0", "time", "trigger_type": "TIMER", "trigger_name",
//!   "user_event"}`.
//! - [`smn_event`]: the SMN trigger `{"record": [...], "functionname", "requestId",
//!   "timestamp"}`.
//!
//! Times: the timer `time` is RFC 3339 with a numeric offset (`2024-01-05T08:30:00+00:00`,
//! like FunctionGraph's `+08:00`; a `Z` would not parse with Python < 3.11's
//! `datetime.fromisoformat`). SMN's `smn.timestamp` is `2018-01-09T07:11:40Z` and the top-level
//! `timestamp` the JavaScript `Date` rendering `Tue Jan 09 2018 07:11:40 GMT+0000 (UTC)`.

use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use trailwatch_trace::{RenderStyle, Trace};

use crate::lts::LogRecord;

/// The CTS trigger event: `{"cts": <trace>}`.
///
/// The trace is rendered by `trailwatch-trace` in its CTS v3 shape (`request`/`response`
/// objects become JSON text, `code` a string). That shape has `trace_rating` but no
/// `trace_status`, which FunctionGraph events carry (same values: `normal`, `warning`,
/// `incident`); it is added from the rating unless the trace already has one (then it is kept
/// as received).
pub fn cts_event(trace: &Trace) -> Value {
    let mut v = trace.to_value(RenderStyle::CtsV3);
    if let Value::Object(m) = &mut v
        && !m.contains_key("trace_status")
    {
        m.insert(
            "trace_status".to_owned(),
            Value::String(trace.trace_rating.as_str().to_owned()),
        );
    }
    json!({ "cts": v })
}

/// Where LTS records come from; the non-`logs` members of the decoded `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LtsMeta {
    /// The owning project id.
    pub owner: String,
    /// The log group id.
    pub log_group_id: String,
    /// The log stream (topic) id.
    pub log_topic_id: String,
}

/// The largest LTS event FunctionGraph delivers: 75 KiB of event JSON.
pub const LTS_EVENT_MAX_BYTES: usize = 75 * 1024;

/// Appended to a message shortened to fit one event; `{}` is the original length in bytes.
pub const TRUNCATION_MARKER: &str =
    " [trailwatch: message truncated to fit a 75 KB LTS event; original length {} bytes]";

/// The decoded `data` object, in the documented member order.
#[derive(Serialize)]
struct LtsInner<'a> {
    logs: &'a str,
    owner: &'a str,
    log_group_id: &'a str,
    log_topic_id: &'a str,
}

/// Bytes of `{"lts":{"data":""}}` around the base64 text.
const EVENT_OVERHEAD: usize = r#"{"lts":{"data":""}}"#.len();

/// One event of [`lts_batches`].
#[derive(Debug, Clone, PartialEq)]
pub struct LtsBatch {
    /// The event, `{"lts": {"data": "<base64>"}}`.
    pub event: Value,
    /// Its compact JSON length in bytes (≤ the limit).
    pub size: usize,
    /// Which input records it carries (consecutive, in order).
    pub records: Range<usize>,
    /// Input indices of records whose message was shortened to fit (see [`lts_batches`]).
    pub truncated: Vec<usize>,
}

/// Why LTS records could not be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The metadata alone (owner, ids) leaves no room for a record under the limit.
    #[error(
        "LTS event metadata is {meta} bytes after encoding, which leaves no room for a record in a {limit}-byte event"
    )]
    MetaTooLarge {
        /// Encoded bytes used without records.
        meta: usize,
        /// The limit.
        limit: usize,
    },
}

/// Length of `s` once written inside a JSON string by serde_json (`"`, `\` and control
/// characters escaped; nothing else is).
fn escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// Encoded event size for a `data` JSON of `inner` bytes.
fn event_len(inner: usize) -> usize {
    EVENT_OVERHEAD + inner.div_ceil(3) * 4
}

fn record_json(r: &LogRecord) -> String {
    // A struct of strings, integers and a JSON map always serializes.
    serde_json::to_string(r).unwrap_or_else(|_| "{}".to_owned())
}

fn encode(meta: &LtsMeta, logs_json: &str) -> Value {
    let inner = LtsInner {
        logs: logs_json,
        owner: &meta.owner,
        log_group_id: &meta.log_group_id,
        log_topic_id: &meta.log_topic_id,
    };
    let text = serde_json::to_string(&inner).unwrap_or_default();
    json!({"lts": {"data": STANDARD.encode(text)}})
}

/// One LTS event holding all `records`, whatever its size.
pub fn lts_event(meta: &LtsMeta, records: &[LogRecord]) -> Value {
    let items: Vec<String> = records.iter().map(record_json).collect();
    encode(meta, &format!("[{}]", items.join(",")))
}

/// Largest `i ≤ max` on a char boundary of `s`.
fn floor_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Shrinks `r` so that its escaped JSON is at most `budget` bytes: first the message (keeping
/// the longest prefix that fits, plus [`TRUNCATION_MARKER`]), then, if even an empty message
/// does not fit, the optional string fields and extras as well. `None` if nothing fits.
fn fit_record(r: &LogRecord, budget: usize) -> Option<LogRecord> {
    let original = r.message.len();
    let marker = TRUNCATION_MARKER.replace("{}", &original.to_string());
    let fits = |c: &LogRecord| escaped_len(&record_json(c)) <= budget;
    let with_prefix = |base: &LogRecord, n: usize| {
        let mut c = base.clone();
        c.message = format!("{}{marker}", &r.message[..floor_boundary(&r.message, n)]);
        c
    };
    let mut base = r.clone();
    if !fits(&with_prefix(&base, 0)) {
        base.host_name = None;
        base.ip = None;
        base.path = None;
        base.log_uid = None;
        base.extra.clear();
        if !fits(&with_prefix(&base, 0)) {
            return None;
        }
    }
    // Binary search for the longest prefix that fits; escaped size grows with the prefix.
    let (mut lo, mut hi) = (0usize, original);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(&with_prefix(&base, mid)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(with_prefix(&base, lo))
}

/// Packs `records` into LTS events of at most `max_bytes` (use [`LTS_EVENT_MAX_BYTES`]) of
/// compact event JSON each.
///
/// Records stay in order and each appears in exactly one event; an event holds as many
/// consecutive records as fit. A record that does not fit in an event on its own is **not
/// dropped**: its message is cut to the longest prefix that fits and [`TRUNCATION_MARKER`]
/// (with the original length) is appended; if even that is too large (enormous `path` or
/// extras), its optional fields and extras are removed too. Such records are listed in
/// [`LtsBatch::truncated`] so the caller can log them. An empty input gives no events.
pub fn lts_batches(
    meta: &LtsMeta,
    records: &[LogRecord],
    max_bytes: usize,
) -> Result<Vec<LtsBatch>, EventError> {
    let meta_len = serde_json::to_string(&LtsInner {
        logs: "",
        owner: &meta.owner,
        log_group_id: &meta.log_group_id,
        log_topic_id: &meta.log_topic_id,
    })
    .map(|s| s.len())
    .unwrap_or(0);
    // Escaped bytes available inside "logs" for "[...]" in an event of max_bytes.
    let inner_max = (max_bytes.saturating_sub(EVENT_OVERHEAD) / 4) * 3;
    let logs_max = inner_max.saturating_sub(meta_len);
    if logs_max < 3 {
        return Err(EventError::MetaTooLarge {
            meta: event_len(meta_len + 2),
            limit: max_bytes,
        });
    }
    let single_budget = logs_max - 2; // "[" + item + "]"

    let mut out = Vec::new();
    let mut items: Vec<String> = Vec::new();
    let mut esc_sum = 0usize; // escaped bytes of items and commas
    let mut start = 0usize;
    let mut truncated = Vec::new();

    let flush = |items: &mut Vec<String>,
                 start: usize,
                 end: usize,
                 truncated: &mut Vec<usize>,
                 out: &mut Vec<LtsBatch>| {
        let logs = format!("[{}]", items.join(","));
        let event = encode(meta, &logs);
        let size = serde_json::to_string(&event).map(|s| s.len()).unwrap_or(0);
        out.push(LtsBatch {
            event,
            size,
            records: start..end,
            truncated: std::mem::take(truncated),
        });
        items.clear();
    };

    for (i, r) in records.iter().enumerate() {
        let mut json = record_json(r);
        let mut esc = escaped_len(&json);
        let mut was_cut = false;
        if esc > single_budget {
            let Some(fitted) = fit_record(r, single_budget) else {
                return Err(EventError::MetaTooLarge {
                    meta: event_len(meta_len + 2),
                    limit: max_bytes,
                });
            };
            json = record_json(&fitted);
            esc = escaped_len(&json);
            was_cut = true;
        }
        let comma = usize::from(!items.is_empty());
        if !items.is_empty() && esc_sum + comma + esc + 2 > logs_max {
            flush(&mut items, start, i, &mut truncated, &mut out);
            start = i;
            esc_sum = 0;
        }
        let comma = usize::from(!items.is_empty());
        esc_sum += comma + esc;
        items.push(json);
        if was_cut {
            truncated.push(i);
        }
    }
    if !items.is_empty() {
        flush(&mut items, start, records.len(), &mut truncated, &mut out);
    }
    Ok(out)
}

/// The TIMER trigger event. `time` is rendered RFC 3339 with `+00:00` (module docs).
pub fn timer_event(time: DateTime<Utc>, trigger_name: &str, user_event: &str) -> Value {
    json!({
        "version": "v1.0",
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, false),
        "trigger_type": "TIMER",
        "trigger_name": trigger_name,
        "user_event": user_event,
    })
}

/// What an SMN trigger event reports: one delivered notification.
#[derive(Debug, Clone, PartialEq)]
pub struct SmnDelivery {
    /// `urn:smn:{region}:{project}:{topic}`.
    pub topic_urn: String,
    /// The message id SMN assigned at publish.
    pub message_id: String,
    /// The subject (may be empty).
    pub subject: String,
    /// The message text.
    pub message: String,
    /// `message_attributes`; `None` renders as `null` as in the runtime sample.
    pub message_attributes: Option<Value>,
    /// When it was published.
    pub timestamp: DateTime<Utc>,
    /// The function subscription's URN (`event_subscription_urn`), normally the function URN.
    pub subscription_urn: String,
    /// The invoked function's name (`functionname`).
    pub function_name: String,
    /// The invocation's request id (`requestId`).
    pub request_id: String,
}

/// The SMN trigger event (the runtime sample's shape, with `type` lower-case
/// `"notification"`).
pub fn smn_event(d: &SmnDelivery) -> Value {
    json!({
        "record": [{
            "event_version": "1.0",
            "smn": {
                "topic_urn": d.topic_urn,
                "timestamp": d.timestamp.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "message_attributes": d.message_attributes.clone().unwrap_or(Value::Null),
                "message": d.message,
                "type": "notification",
                "message_id": d.message_id,
                "subject": d.subject,
            },
            "event_subscription_urn": d.subscription_urn,
            "event_source": "smn",
        }],
        "functionname": d.function_name,
        "requestId": d.request_id,
        "timestamp": d.timestamp.format("%a %b %d %Y %H:%M:%S GMT+0000 (UTC)").to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lts;

    fn meta() -> LtsMeta {
        LtsMeta {
            owner: "6280e170bd934f60a4d851cf5ca05129".into(),
            log_group_id: "97a9d284-4448-11e8-8fa4-286ed488ce70".into(),
            log_topic_id: "1a9675a7-784d-11e8-9f70-286ed488ce70".into(),
        }
    }

    fn rec(i: usize, msg: String) -> LogRecord {
        LogRecord {
            message: msg,
            time: Some(1_530_009_653_059 + i64::try_from(i).unwrap()),
            host_name: Some("ecs-test".into()),
            ip: Some("192.168.1.1".into()),
            path: Some("var/log/test.log".into()),
            log_uid: Some(format!("uid-{i}")),
            line_no: Some(i64::try_from(i).unwrap()),
            extra: Default::default(),
        }
    }

    #[test]
    fn cts_event_adds_trace_status_and_uses_cts_v3() {
        let t = Trace::from_value(json!({"trace_name": "login", "trace_type": "ConsoleAction",
            "service_type": "IAM", "resource_type": "user", "time": 1_732_390_000_000_i64,
            "trace_rating": "warning", "request": {"a": 1}, "source_ip": "1.2.3.4"}))
        .unwrap();
        let e = cts_event(&t);
        assert_eq!(e["cts"]["trace_status"], "warning");
        assert_eq!(e["cts"]["trace_rating"], "warning");
        assert_eq!(e["cts"]["request"], r#"{"a":1}"#); // CTS v3: JSON text
        assert_eq!(e["cts"]["trace_name"], "login");
        assert_eq!(e.as_object().unwrap().len(), 1);
        // round trip: the event's trace parses back to the same operation
        let back = Trace::from_value(e["cts"].clone()).unwrap();
        assert_eq!(back.trace_rating, t.trace_rating);
        assert_eq!(back.source_ip, t.source_ip);

        // a received trace_status is kept
        let t = Trace::from_value(json!({"trace_name": "login", "trace_type": "ConsoleAction",
            "service_type": "IAM", "resource_type": "user", "time": 1_732_390_000_000_i64,
            "trace_status": "incident"}))
        .unwrap();
        assert_eq!(cts_event(&t)["cts"]["trace_status"], "incident");
    }

    #[test]
    fn lts_event_round_trips_through_the_decoder() {
        let records = vec![
            rec(0, "first \"quoted\"\n".into()),
            rec(1, "second\\".into()),
        ];
        let e = lts_event(&meta(), &records);
        let d = lts::decode_event(&e).unwrap();
        assert_eq!(d.logs, records);
        assert_eq!(d.owner.as_deref(), Some(meta().owner.as_str()));
        // double-encoded: logs is a string
        let data = STANDARD.decode(e["lts"]["data"].as_str().unwrap()).unwrap();
        let inner: Value = serde_json::from_slice(&data).unwrap();
        assert!(inner["logs"].is_string());
    }

    #[test]
    fn escaped_len_agrees_with_serde_json() {
        for s in [
            "plain",
            "q\"b\\s",
            "ctl\u{1}\u{1f}\u{7f}",
            "nl\n\r\t\u{8}\u{c}",
            "ünï €😀",
        ] {
            assert_eq!(
                escaped_len(s),
                serde_json::to_string(s).unwrap().len() - 2,
                "{s:?}"
            );
        }
    }

    #[test]
    fn batches_respect_the_limit_keep_order_and_lose_nothing() {
        // ~2.3 KB per record, with characters that need escaping
        let records: Vec<LogRecord> = (0..200)
            .map(|i| {
                rec(
                    i,
                    format!("{i:04} [ERR] \"x\"\\ {}", "abcdefghij\t".repeat(200)),
                )
            })
            .collect();
        let batches = lts_batches(&meta(), &records, LTS_EVENT_MAX_BYTES).unwrap();
        assert!(batches.len() > 5, "{}", batches.len());
        let mut next = 0;
        let mut decoded = Vec::new();
        for b in &batches {
            assert_eq!(serde_json::to_string(&b.event).unwrap().len(), b.size);
            assert!(b.size <= LTS_EVENT_MAX_BYTES, "{}", b.size);
            assert_eq!(b.records.start, next);
            assert!(b.truncated.is_empty());
            next = b.records.end;
            let d = lts::decode_event(&b.event).unwrap();
            assert_eq!(d.logs.len(), b.records.len());
            decoded.extend(d.logs);
        }
        assert_eq!(next, records.len());
        assert_eq!(decoded, records);
        // greedy packing: adding the next record to any batch would have crossed the limit
        for w in batches.windows(2) {
            let mut more: Vec<LogRecord> = records[w[0].records.clone()].to_vec();
            more.push(records[w[1].records.start].clone());
            let size = serde_json::to_string(&lts_event(&meta(), &more))
                .unwrap()
                .len();
            assert!(size > LTS_EVENT_MAX_BYTES, "{size}");
        }
    }

    #[test]
    fn an_oversized_record_is_truncated_not_dropped() {
        let big = "y".repeat(200 * 1024);
        let records = vec![
            rec(0, "small before".into()),
            rec(1, big.clone()),
            rec(2, "small after".into()),
        ];
        let batches = lts_batches(&meta(), &records, LTS_EVENT_MAX_BYTES).unwrap();
        let all: Vec<LogRecord> = batches
            .iter()
            .flat_map(|b| lts::decode_event(&b.event).unwrap().logs)
            .collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], records[0]);
        assert_eq!(all[2], records[2]);
        let cut = &all[1];
        assert!(cut.message.starts_with("yyyy"));
        assert!(
            cut.message.ends_with("original length 204800 bytes]"),
            "{}",
            &cut.message[cut.message.len() - 80..]
        );
        assert!(cut.message.len() < big.len());
        assert_eq!(cut.log_uid.as_deref(), Some("uid-1")); // other fields kept
        let holder = batches.iter().find(|b| b.records.contains(&1)).unwrap();
        assert_eq!(holder.truncated, vec![1]);
        assert!(holder.size <= LTS_EVENT_MAX_BYTES);
        // the cut is tight: within a few bytes of the limit
        assert!(holder.size > LTS_EVENT_MAX_BYTES - 8, "{}", holder.size);
        for b in &batches {
            assert!(b.size <= LTS_EVENT_MAX_BYTES);
        }
    }

    #[test]
    fn multibyte_messages_are_cut_on_char_boundaries() {
        let records = vec![rec(0, "é😀".repeat(30_000))];
        let batches = lts_batches(&meta(), &records, 10 * 1024).unwrap();
        assert_eq!(batches.len(), 1);
        assert!(batches[0].size <= 10 * 1024);
        let d = lts::decode_event(&batches[0].event).unwrap();
        assert!(d.logs[0].message.contains("[trailwatch: message truncated"));
    }

    #[test]
    fn huge_other_fields_are_dropped_before_giving_up() {
        let mut r = rec(0, "m".into());
        r.path = Some("p".repeat(100_000));
        let batches = lts_batches(&meta(), &[r], LTS_EVENT_MAX_BYTES).unwrap();
        let d = lts::decode_event(&batches[0].event).unwrap();
        assert_eq!(d.logs[0].path, None);
        assert!(d.logs[0].message.starts_with("m [trailwatch"));
        assert_eq!(batches[0].truncated, vec![0]);
    }

    #[test]
    fn metadata_too_large_is_an_error_and_empty_input_no_events() {
        let mut m = meta();
        m.owner = "o".repeat(2000);
        assert!(matches!(
            lts_batches(&m, &[rec(0, "x".into())], 1024),
            Err(EventError::MetaTooLarge { .. })
        ));
        assert!(
            lts_batches(&meta(), &[], LTS_EVENT_MAX_BYTES)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn timer_and_smn_events() {
        let t = DateTime::parse_from_rfc3339("2018-01-09T07:11:40Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            timer_event(t, "Timer_001", "Hello world"),
            json!({"version": "v1.0", "time": "2018-01-09T07:11:40+00:00",
                   "trigger_type": "TIMER", "trigger_name": "Timer_001",
                   "user_event": "Hello world"})
        );
        let d = SmnDelivery {
            topic_urn: "urn:smn:eu-de:66e0f4622d6f4e3fb2db2e495298a61a:smn_123".into(),
            message_id: "a51671f77d4a479cacb09e2cd591a983".into(),
            subject: "this is smn message subject".into(),
            message: "this is smn message content".into(),
            message_attributes: None,
            timestamp: t,
            subscription_urn:
                "urn:fss:eu-de:66e0f4622d6f4e3fb2db2e495298a61a:function:default:mytest:latest"
                    .into(),
            function_name: "test".into(),
            request_id: "7c307f6a-cf68-4e65-8be0-4c77405a1b2c".into(),
        };
        assert_eq!(
            smn_event(&d),
            json!({"record": [{"event_version": "1.0",
               "smn": {"topic_urn": "urn:smn:eu-de:66e0f4622d6f4e3fb2db2e495298a61a:smn_123",
                       "timestamp": "2018-01-09T07:11:40Z",
                       "message_attributes": null, "message": "this is smn message content",
                       "type": "notification",
                       "message_id": "a51671f77d4a479cacb09e2cd591a983",
                       "subject": "this is smn message subject"},
               "event_subscription_urn": "urn:fss:eu-de:66e0f4622d6f4e3fb2db2e495298a61a:function:default:mytest:latest",
               "event_source": "smn"}],
             "functionname": "test", "requestId": "7c307f6a-cf68-4e65-8be0-4c77405a1b2c",
             "timestamp": "Tue Jan 09 2018 07:11:40 GMT+0000 (UTC)"})
        );
    }
}
