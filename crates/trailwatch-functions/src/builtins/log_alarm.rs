//! `log_alarm`: alarm on warning/error log lines delivered by an LTS trigger, and archive them
//! to an object (the tutorial's LTS-trigger function, fixed).
//!
//! The tutorial iterated over `text["logs"]` — a JSON *string* (§4.2), so it looped over
//! characters — and matched `"ERR" in json.dumps(log)`, a substring test over the whole
//! record. Here the event is decoded by [`crate::lts`] and each record's `message` is judged by
//! [`LevelMatcher`] (JSON/logfmt level fields, else whole words).
//!
//! **Configuration** (`user_data`):
//!
//! | key | | |
//! |---|---|---|
//! | `SMN_Topic` | required | topic name (in the function's project) or `urn:smn:…` URN |
//! | `RegionName` | required | region of the topic URN built from a name |
//! | `obs_store_bucket` | required | bucket of the archive object (3–63 chars `[a-z0-9.-]`, starting and ending with a letter or digit) |
//! | `obs_store_objName` | required | archive object key (1–1024 bytes, no control characters) |
//! | `obs_address` | optional | the tutorial's OBS endpoint; kept for compatibility, the engine uses its own |
//! | `Levels` | optional | comma-separated levels ([`crate::levels`]), default `WARN,WARNING,WRN,ERROR,ERR,FATAL,CRITICAL` |
//!
//! **Invocation.**
//!
//! | event | result | effects |
//! |---|---|---|
//! | not LTS / TIMER, or an undecodable LTS event | `Err` naming the problem | none |
//! | TIMER | `timer event: nothing to scan (log_alarm reads LTS events)` | none |
//! | LTS, nothing selected | `no need to send alarm message` (the tutorial's wording) | none |
//! | LTS, n records selected | `alarm: n log line(s) selected` | [`Effect::Publish`] then [`Effect::AppendObject`] |
//!
//! The publish goes to the topic URN with subject `TimeTrigger` and the message
//! `Get warning message. <n> log line(s) at levels <levels>:` followed by one line per
//! selected record: its `message` with `\r` and `\n` written as `\r`/`\n` escapes so each
//! record stays on one line. If that exceeds [`SMN_MESSAGE_BUDGET`] bytes the remaining lines
//! are replaced by `… and <k> more line(s) in obs://<bucket>/<key>`.
//!
//! The append writes one line per selected record: the record as compact JSON (`message`,
//! `time` in ms, `host_name`, `ip`, `path`, `log_uid`, `line_no` and any extra members, absent
//! ones omitted) — the tutorial also wrote `json.dumps(log)` per line — so the archive is JSON
//! Lines and every line carries the time and the message.
//!
//! Idempotency keys are derived from the event content, SHA-256 of the decoded `data`:
//! `log_alarm:publish:<hex>` and `log_alarm:append:<hex>`. A retried invocation of the same
//! event produces the same keys, so nothing is published or appended twice.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{TopicRef, optional, region, required, topic};
use crate::levels::LevelMatcher;
use crate::lts::{self, LogRecord, LtsData};
use crate::runtime::{Builtin, ConfigError, Context, Effect, Outcome};
use crate::text::{check_name, describe, hex, quote};
use crate::user_data::UserData;

/// The SMN message is kept under this many bytes (SMN's limit is 256 KiB).
pub const SMN_MESSAGE_BUDGET: usize = 240 * 1024;

/// A validated `log_alarm` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAlarm {
    topic: TopicRef,
    region: String,
    bucket: String,
    object_key: String,
    obs_address: Option<String>,
    levels: LevelMatcher,
}

fn check_bucket(s: &str) -> Result<(), ConfigError> {
    fn alnum(c: char) -> bool {
        c.is_ascii_lowercase() || c.is_ascii_digit()
    }
    check_name(
        s,
        63,
        alnum,
        "a lower-case letter or digit",
        |c| alnum(c) || c == '.' || c == '-',
        "lower-case letters, digits, '.' and '-'",
    )
    .map_err(|why| ConfigError::new("obs_store_bucket", why))?;
    if s.len() < 3 {
        return Err(ConfigError::new(
            "obs_store_bucket",
            format!("{} is shorter than 3 characters", quote(s)),
        ));
    }
    if !s.ends_with(alnum) {
        return Err(ConfigError::new(
            "obs_store_bucket",
            format!("{} must end with a lower-case letter or digit", quote(s)),
        ));
    }
    Ok(())
}

fn check_object_key(s: &str) -> Result<(), ConfigError> {
    if s.len() > 1024 {
        return Err(ConfigError::new(
            "obs_store_objName",
            format!("is {} bytes long, at most 1024 are allowed", s.len()),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(ConfigError::new(
            "obs_store_objName",
            format!("{} contains the control character {c:?}", quote(s)),
        ));
    }
    Ok(())
}

/// One archive line: the record as compact JSON.
pub fn object_line(r: &LogRecord) -> String {
    serde_json::to_string(r).unwrap_or_else(|_| "{}".to_owned())
}

/// One SMN message line: the record's message with CR/LF escaped.
fn message_line(r: &LogRecord) -> String {
    r.message.replace('\r', "\\r").replace('\n', "\\n")
}

impl LogAlarm {
    /// Reads and validates the configuration (module docs).
    pub fn from_config(ud: &UserData) -> Result<LogAlarm, ConfigError> {
        let topic = topic(ud)?;
        let region = region(ud)?;
        let bucket = required(ud, "obs_store_bucket")?;
        check_bucket(bucket)?;
        let object_key = required(ud, "obs_store_objName")?;
        check_object_key(object_key)?;
        let levels = match optional(ud, "Levels") {
            Some(l) => {
                LevelMatcher::parse(l).map_err(|e| ConfigError::new("Levels", e.to_string()))?
            }
            None => LevelMatcher::default(),
        };
        Ok(LogAlarm {
            topic,
            region,
            bucket: bucket.to_owned(),
            object_key: object_key.to_owned(),
            obs_address: optional(ud, "obs_address").map(str::to_owned),
            levels,
        })
    }

    /// The level matcher in use.
    pub fn levels(&self) -> &LevelMatcher {
        &self.levels
    }

    /// `obs_address`, if configured (informational).
    pub fn obs_address(&self) -> Option<&str> {
        self.obs_address.as_deref()
    }

    /// The records whose message is at one of the levels, in order.
    pub fn select<'a>(&self, records: &'a [LogRecord]) -> Vec<&'a LogRecord> {
        records
            .iter()
            .filter(|r| self.levels.matches(&r.message))
            .collect()
    }

    fn smn_message(&self, selected: &[&LogRecord]) -> String {
        let mut msg = format!(
            "Get warning message. {} log line(s) at levels {}:",
            selected.len(),
            self.levels.levels().join(",")
        );
        for (i, r) in selected.iter().enumerate() {
            let line = message_line(r);
            if msg.len() + 1 + line.len() > SMN_MESSAGE_BUDGET {
                msg.push_str(&format!(
                    "\n… and {} more line(s) in obs://{}/{}",
                    selected.len() - i,
                    self.bucket,
                    self.object_key
                ));
                break;
            }
            msg.push('\n');
            msg.push_str(&line);
        }
        msg
    }

    /// Builds the outcome for decoded LTS data.
    pub fn on_lts(&self, ctx: &Context, data: &LtsData) -> Outcome {
        let selected = self.select(&data.logs);
        let group = data.log_group_id.as_deref().unwrap_or("-");
        let stream = data.log_topic_id.as_deref().unwrap_or("-");
        let scanned = format!(
            "scanned {} record(s) of log group {group}, stream {stream}",
            data.logs.len()
        );
        if selected.is_empty() {
            return Outcome::ok("no need to send alarm message").with_log(format!(
                "{scanned}: none at levels {}",
                self.levels.levels().join(",")
            ));
        }
        let digest = hex(&data.digest);
        let topic = self.topic.urn(&self.region, &ctx.project_id);
        let mut tags = BTreeMap::new();
        tags.insert("count".to_owned(), selected.len().to_string());
        if let Some(g) = &data.log_group_id {
            tags.insert("log_group_id".to_owned(), g.clone());
        }
        if let Some(t) = &data.log_topic_id {
            tags.insert("log_topic_id".to_owned(), t.clone());
        }
        let publish = Effect::Publish {
            topic: topic.clone(),
            subject: "TimeTrigger".to_owned(),
            message: self.smn_message(&selected),
            tags,
            idempotency_key: format!("log_alarm:publish:{digest}"),
        };
        let append = Effect::AppendObject {
            bucket: self.bucket.clone(),
            key: self.object_key.clone(),
            lines: selected.iter().map(|r| object_line(r)).collect(),
            idempotency_key: format!("log_alarm:append:{digest}"),
        };
        let mut out = Outcome::ok(format!("alarm: {} log line(s) selected", selected.len()))
            .with_log(format!(
                "{scanned}: {} selected; alarm to {topic}, archive to obs://{}/{}",
                selected.len(),
                self.bucket,
                self.object_key
            ));
        out.effects.push(publish);
        out.effects.push(append);
        out
    }

    /// Runs on an event (module docs).
    pub fn invoke(&self, ctx: &Context, event: &Value) -> Outcome {
        let Value::Object(m) = event else {
            return Outcome::error(format!(
                "log_alarm: expected an LTS event {{\"lts\": {{\"data\": ...}}}} or a TIMER event, found {}",
                describe(event)
            ));
        };
        if m.contains_key("lts") {
            return match lts::decode_event(event) {
                Ok(data) => self.on_lts(ctx, &data),
                Err(e) => Outcome::error(format!("log_alarm: {e}")),
            };
        }
        if m.get("trigger_type").and_then(Value::as_str) == Some("TIMER") {
            return Outcome::ok("timer event: nothing to scan (log_alarm reads LTS events)")
                .with_log("timer event received; log_alarm only scans LTS events");
        }
        let keys: Vec<&str> = m.keys().map(String::as_str).take(5).collect();
        Outcome::error(format!(
            "log_alarm: expected an LTS event {{\"lts\": {{\"data\": ...}}}} or a TIMER event, found an object with keys {keys:?}"
        ))
    }
}

/// The registered `log_alarm` built-in.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAlarmFunction;

impl Builtin for LogAlarmFunction {
    fn name(&self) -> &'static str {
        "log_alarm"
    }

    fn validate_config(&self, user_data: &UserData) -> Result<(), ConfigError> {
        LogAlarm::from_config(user_data).map(|_| ())
    }

    fn invoke(&self, ctx: &Context, event: &Value) -> Outcome {
        match LogAlarm::from_config(&ctx.user_data) {
            Ok(alarm) => alarm.invoke(ctx, event),
            Err(e) => Outcome::error(format!("log_alarm: configuration error: {e}")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::events::{LtsMeta, lts_event, timer_event};
    use crate::runtime::{TriggerKind, builtin};
    use crate::urn::FunctionRef;
    use chrono::DateTime;
    use serde_json::json;

    const P: &str = "0123456789abcdef0123456789abcdef";

    fn ud(pairs: &[(&str, &str)]) -> UserData {
        let mut all = vec![
            ("SMN_Topic", "cts_test"),
            ("RegionName", "eu-de"),
            ("obs_store_bucket", "log-archive"),
            ("obs_store_objName", "alarms/app.log"),
        ];
        for (k, v) in pairs {
            all.retain(|(key, _)| key != k);
            all.push((k, v));
        }
        UserData::from_pairs(all).unwrap()
    }

    fn ctx(user_data: UserData) -> Context {
        Context {
            request_id: "req-1".into(),
            project_id: P.into(),
            function: FunctionRef::new(P, "default", "alarm").unwrap(),
            user_data,
            now: DateTime::UNIX_EPOCH,
            remaining_ms: 3_000,
            trigger: TriggerKind::Lts,
        }
    }

    fn rec(msg: &str, time: i64) -> LogRecord {
        LogRecord {
            message: msg.into(),
            time: Some(time),
            host_name: Some("ecs-test".into()),
            path: Some("var/log/test.log".into()),
            ..LogRecord::default()
        }
    }

    fn meta() -> LtsMeta {
        LtsMeta {
            owner: P.into(),
            log_group_id: "g1".into(),
            log_topic_id: "s1".into(),
        }
    }

    fn sample() -> Vec<LogRecord> {
        vec![
            rec(
                "2018-08-08/08:08:08 [WRN] [test.go:08]This is a test message.",
                1,
            ),
            rec("INFO ERRORS_TOTAL=0", 2),
            rec("ts=3 level=error msg=\"db down\"\nretrying", 3),
            rec("INFO all good", 4),
            rec("terror alert level: low", 5),
        ]
    }

    #[test]
    fn selects_word_bounded_levels_and_emits_both_effects() {
        let c = ctx(ud(&[]));
        let out = builtin("log_alarm")
            .unwrap()
            .invoke(&c, &lts_event(&meta(), &sample()));
        assert_eq!(out.result, Ok(json!("alarm: 2 log line(s) selected")));
        assert_eq!(out.effects.len(), 2);
        let Effect::Publish {
            topic,
            subject,
            message,
            tags,
            idempotency_key: pk,
        } = &out.effects[0]
        else {
            panic!("{:?}", out.effects);
        };
        assert_eq!(topic, &format!("urn:smn:eu-de:{P}:cts_test"));
        assert_eq!(subject, "TimeTrigger");
        assert_eq!(
            message,
            "Get warning message. 2 log line(s) at levels WARN,WARNING,WRN,ERROR,ERR,FATAL,CRITICAL:\n\
             2018-08-08/08:08:08 [WRN] [test.go:08]This is a test message.\n\
             ts=3 level=error msg=\"db down\"\\nretrying"
        );
        assert_eq!(tags.get("count").map(String::as_str), Some("2"));
        assert_eq!(tags.get("log_group_id").map(String::as_str), Some("g1"));
        let Effect::AppendObject {
            bucket,
            key,
            lines,
            idempotency_key: ak,
        } = &out.effects[1]
        else {
            panic!("{:?}", out.effects);
        };
        assert_eq!(
            (bucket.as_str(), key.as_str()),
            ("log-archive", "alarms/app.log")
        );
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"message":"2018-08-08/08:08:08 [WRN] [test.go:08]This is a test message.","time":1,"host_name":"ecs-test","path":"var/log/test.log"}"#
        );
        let parsed: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(parsed["time"], 3);
        assert!(!lines[1].contains('\n'));
        assert!(pk.starts_with("log_alarm:publish:") && ak.starts_with("log_alarm:append:"));
        assert_eq!(pk[18..], ak[17..]);
        assert_eq!(out.effects[1].required_action(), "obs:object:putObject");
    }

    #[test]
    fn the_same_event_gives_the_same_keys_and_another_event_other_keys() {
        let c = ctx(ud(&[]));
        let e1 = lts_event(&meta(), &sample());
        let a = LogAlarmFunction.invoke(&c, &e1);
        let b = LogAlarmFunction.invoke(&c, &e1);
        assert_eq!(a.effects, b.effects);
        let mut other = sample();
        other[0].time = Some(99);
        let d = LogAlarmFunction.invoke(&c, &lts_event(&meta(), &other));
        assert_ne!(
            a.effects[0].idempotency_key(),
            d.effects[0].idempotency_key()
        );
        assert_ne!(
            a.effects[1].idempotency_key(),
            d.effects[1].idempotency_key()
        );
    }

    #[test]
    fn nothing_selected_timer_and_wrong_events() {
        let c = ctx(ud(&[]));
        let quiet = lts_event(&meta(), &[rec("INFO ok", 1), rec("ERRORS_TOTAL=0", 2)]);
        let out = LogAlarmFunction.invoke(&c, &quiet);
        assert_eq!(out.result, Ok(json!("no need to send alarm message")));
        assert!(out.effects.is_empty());
        assert!(
            out.log[0].contains("scanned 2 record(s) of log group g1"),
            "{:?}",
            out.log
        );

        let t = timer_event(DateTime::UNIX_EPOCH, "Timer_001", "");
        let out = LogAlarmFunction.invoke(&c, &t);
        assert_eq!(
            out.result,
            Ok(json!(
                "timer event: nothing to scan (log_alarm reads LTS events)"
            ))
        );
        assert!(out.effects.is_empty());

        let out = LogAlarmFunction.invoke(&c, &json!({"cts": {}}));
        assert!(
            out.result
                .unwrap_err()
                .contains("found an object with keys [\"cts\"]")
        );
        let out = LogAlarmFunction.invoke(&c, &json!({"lts": {"data": "%%%"}}));
        assert!(
            out.result
                .unwrap_err()
                .starts_with("log_alarm: lts.data is not base64")
        );
        let out = LogAlarmFunction.invoke(&c, &json!("x"));
        assert!(out.result.is_err());
    }

    #[test]
    fn configured_levels_are_used() {
        let c = ctx(ud(&[("Levels", "FATAL")]));
        let out = LogAlarmFunction.invoke(
            &c,
            &lts_event(&meta(), &[rec("ERROR x", 1), rec("FATAL y", 2)]),
        );
        assert_eq!(out.result, Ok(json!("alarm: 1 log line(s) selected")));
        let Effect::AppendObject { lines, .. } = &out.effects[1] else {
            panic!();
        };
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("FATAL y"));
    }

    #[test]
    fn long_smn_messages_point_to_the_archive() {
        let c = ctx(ud(&[]));
        let records: Vec<LogRecord> = (0..100)
            .map(|i| rec(&format!("ERROR {i} {}", "x".repeat(4000)), i))
            .collect();
        let data = lts::decode_event(&lts_event(&meta(), &records)).unwrap();
        let out = LogAlarm::from_config(&c.user_data)
            .unwrap()
            .on_lts(&c, &data);
        let Effect::Publish { message, .. } = &out.effects[0] else {
            panic!();
        };
        assert!(
            message.len() <= SMN_MESSAGE_BUDGET + 100,
            "{}",
            message.len()
        );
        assert!(
            message.ends_with("more line(s) in obs://log-archive/alarms/app.log"),
            "{}",
            &message[message.len() - 80..]
        );
        let Effect::AppendObject { lines, .. } = &out.effects[1] else {
            panic!();
        };
        assert_eq!(lines.len(), 100); // nothing lost in the archive
    }

    #[test]
    fn config_errors() {
        let f = LogAlarmFunction;
        assert!(f.validate_config(&ud(&[])).is_ok());
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("obs_store_bucket", "")],
                "user_data obs_store_bucket: is empty",
            ),
            (
                &[("obs_store_bucket", "Logs")],
                "user_data obs_store_bucket: \"Logs\" must start with",
            ),
            (&[("obs_store_bucket", "ab")], "shorter than 3"),
            (&[("obs_store_bucket", "abc-")], "must end with"),
            (&[("obs_store_objName", "a\u{1}b")], "control character"),
            (
                &[("Levels", "ERROR,")],
                "user_data Levels: Levels item 2 \"\": is empty",
            ),
            (&[("SMN_Topic", "urn:smn:x")], "user_data SMN_Topic:"),
            (&[("RegionName", "")], "user_data RegionName: is empty"),
        ];
        for (pairs, want) in cases {
            let e = f.validate_config(&ud(pairs)).unwrap_err().to_string();
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
        let missing = UserData::from_pairs([("SMN_Topic", "t"), ("RegionName", "eu-de")]).unwrap();
        assert_eq!(
            f.validate_config(&missing).unwrap_err().to_string(),
            "user_data obs_store_bucket: is required"
        );
        let a = LogAlarm::from_config(&ud(&[("obs_address", " obs.eu-de.example ")])).unwrap();
        assert_eq!(a.obs_address(), Some("obs.eu-de.example"));
    }
}
