//! A generic JSON Lines source (Keycloak, Okta and the like) whose field mapping is configured.
//!
//! Paths are dotted (`actor.alternateId`, `sourceIPs.0`); a key that itself contains dots is
//! tried first as a whole. The trace:
//!
//! | CTS field | from |
//! |---|---|
//! | `trace_name` | the `action` value, looked up in [`Mapping::actions`] (e.g. `LOGIN` → `login`); unmapped values are used as is when they are valid trace names (1–64 chars `[A-Za-z0-9._-]`, starting with a letter), else the record is a problem. A failed `login` becomes `loginfailed` |
//! | `trace_rating` | `warning` when the `outcome` value is one of [`Mapping::failure_outcomes`] (case-insensitive) or the mapped name is `loginfailed`, else `normal` |
//! | `trace_type` | [`Mapping::trace_type`] (default `ConsoleAction`) |
//! | `service_type` / `resource_type` | the literals [`Mapping::service_type`] (default `GENERIC`) / [`Mapping::resource_type`] (default `user`) |
//! | `resource_name` | the `resource_name` path, else the user |
//! | `source_ip` | the `ip` path when it is an IP literal |
//! | `user` | name from `user`, `domain.name` from `domain` |
//! | `time` | the `time` path: RFC 3339 text, or epoch seconds / milliseconds (numbers above 10¹¹ are milliseconds) |
//! | `code` | `401` for failures, else `200` |
//! | `trace_id` | the `id` path, else (absent, or not a valid trace id: 1–128 visible ASCII characters) a stable hash of the record |

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::common::{
    MAX_RECORD_BYTES, TraceBuilder, ip_or_none, json_lines, parse_time_ms, path, problem, short,
    stable_id, text, usable_id, valid_trace_name,
};
use crate::Parsed;

/// Where the fields of a generic JSON record are. Deserializable (e.g. from a TOML table);
/// every member has a default, unknown members are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    /// Path of the user name.
    pub user: String,
    /// Path of the caller's IP address.
    pub ip: String,
    /// Path of the action (event type).
    pub action: String,
    /// Path of the event time.
    pub time: String,
    /// Path of the outcome (success/failure); empty: every record succeeded unless its action
    /// maps to `loginfailed`.
    pub outcome: String,
    /// Path of the user's domain / realm / tenant.
    pub domain: Option<String>,
    /// Path of the resource name.
    pub resource_name: Option<String>,
    /// Path of a unique record id.
    pub id: Option<String>,
    /// `service_type` of every trace.
    pub service_type: String,
    /// `resource_type` of every trace.
    pub resource_type: String,
    /// `trace_type` of every trace.
    pub trace_type: TraceType,
    /// Outcome values that mean failure (compared case-insensitively).
    pub failure_outcomes: Vec<String>,
    /// Action value → trace name.
    pub actions: BTreeMap<String, String>,
}

/// The CTS trace types a generic source may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum TraceType {
    #[default]
    ConsoleAction,
    ApiCall,
    SystemAction,
}

impl TraceType {
    fn as_str(self) -> &'static str {
        match self {
            TraceType::ConsoleAction => "ConsoleAction",
            TraceType::ApiCall => "ApiCall",
            TraceType::SystemAction => "SystemAction",
        }
    }
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            user: "user".into(),
            ip: "ip".into(),
            action: "action".into(),
            time: "time".into(),
            outcome: "outcome".into(),
            domain: None,
            resource_name: None,
            id: None,
            service_type: "GENERIC".into(),
            resource_type: "user".into(),
            trace_type: TraceType::ConsoleAction,
            failure_outcomes: [
                "failure", "failed", "fail", "error", "denied", "deny", "false",
            ]
            .map(String::from)
            .to_vec(),
            actions: BTreeMap::new(),
        }
    }
}

impl Mapping {
    /// Keycloak login events (`type` `LOGIN` / `LOGIN_ERROR` / `LOGOUT`, `time` in ms).
    pub fn keycloak() -> Self {
        Mapping {
            user: "details.username".into(),
            ip: "ipAddress".into(),
            action: "type".into(),
            time: "time".into(),
            outcome: "error".into(),
            domain: Some("realmId".into()),
            resource_name: Some("clientId".into()),
            id: Some("id".into()),
            service_type: "KEYCLOAK".into(),
            failure_outcomes: Vec::new(),
            actions: [
                ("LOGIN", "login"),
                ("LOGIN_ERROR", "loginfailed"),
                ("LOGOUT", "logout"),
                ("LOGOUT_ERROR", "logout"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
            ..Mapping::default()
        }
    }

    /// Okta System Log events (`eventType` `user.session.start` / `user.session.end`).
    pub fn okta() -> Self {
        Mapping {
            user: "actor.alternateId".into(),
            ip: "client.ipAddress".into(),
            action: "eventType".into(),
            time: "published".into(),
            outcome: "outcome.result".into(),
            domain: None,
            resource_name: None,
            id: Some("uuid".into()),
            service_type: "OKTA".into(),
            actions: [
                ("user.session.start", "login"),
                ("user.session.end", "logout"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
            ..Mapping::default()
        }
    }
}

/// Parse JSON Lines with `mapping`. Problems carry the line number.
pub fn parse(text_in: &str, mapping: &Mapping) -> Parsed {
    let mut out = Parsed::default();
    for (line, l) in json_lines(text_in.trim_start_matches('\u{feff}')) {
        if l.len() > MAX_RECORD_BYTES {
            problem(
                &mut out,
                line,
                format!(
                    "line of {} bytes exceeds the {MAX_RECORD_BYTES}-byte limit",
                    l.len()
                ),
            );
            continue;
        }
        let v: Value = match serde_json::from_str(l) {
            Ok(v) => v,
            Err(e) => {
                problem(&mut out, line, format!("invalid JSON: {e}"));
                continue;
            }
        };
        if !v.is_object() {
            problem(&mut out, line, format!("not a JSON object: {}", short(l)));
            continue;
        }
        match to_trace(&v, l.trim(), mapping) {
            Ok(t) => out.traces.push(t),
            Err(reason) => problem(&mut out, line, reason),
        }
    }
    out
}

fn time_ms(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => parse_time_ms(s).or_else(|| s.trim().parse::<i64>().ok().map(num_ms)),
        Value::Number(n) => n
            .as_i64()
            .map(num_ms)
            .or_else(|| n.as_f64().map(|f| num_ms(f as i64))),
        _ => None,
    }
}

fn num_ms(n: i64) -> i64 {
    if n.abs() > 100_000_000_000 {
        n
    } else {
        n.saturating_mul(1000)
    }
}

fn to_trace(v: &Value, raw: &str, m: &Mapping) -> Result<Value, String> {
    let action = text(path(v, &m.action)).ok_or_else(|| format!("no action at `{}`", m.action))?;
    let tv = path(v, &m.time).ok_or_else(|| format!("no time at `{}`", m.time))?;
    let time = time_ms(tv).ok_or_else(|| format!("time at `{}` is not a time", m.time))?;
    let mut name = m
        .actions
        .get(&action)
        .cloned()
        .unwrap_or_else(|| action.clone());
    if !valid_trace_name(&name) {
        return Err(format!(
            "action {} is not a valid trace name; map it in `actions`",
            short(&name)
        ));
    }
    let outcome = if m.outcome.is_empty() {
        None
    } else {
        text(path(v, &m.outcome))
    };
    let mut failed = name == "loginfailed";
    if let Some(o) = &outcome
        && m.failure_outcomes.iter().any(|f| f.eq_ignore_ascii_case(o))
    {
        failed = true;
    }
    // Keycloak-style: an `error` member present means failure when no list is given.
    if m.failure_outcomes.is_empty() && outcome.is_some() {
        failed = true;
    }
    if failed && name == "login" {
        name = "loginfailed".to_owned();
    }
    let mut t = TraceBuilder::new(name, time, raw.to_owned());
    t.trace_type = m.trace_type.as_str();
    t.rating = if failed { "warning" } else { "normal" };
    t.code = if failed { "401" } else { "200" }.to_owned();
    t.service_type = m.service_type.clone();
    t.resource_type = m.resource_type.clone();
    t.user_name = text(path(v, &m.user));
    t.domain_name = m.domain.as_deref().and_then(|p| text(path(v, p)));
    t.resource_name = m
        .resource_name
        .as_deref()
        .and_then(|p| text(path(v, p)))
        .or_else(|| t.user_name.clone());
    if t.trace_type != "SystemAction" {
        t.source_ip = text(path(v, &m.ip)).and_then(|s| ip_or_none(&s));
    }
    if let Some(o) = outcome {
        t.message = Some(format!("outcome {o}"));
    }
    t.trace_id =
        m.id.as_deref()
            .and_then(|p| text(path(v, p)))
            .and_then(usable_id)
            .unwrap_or_else(|| stable_id("generic", raw));
    if t.service_type.is_empty() || t.resource_type.is_empty() {
        return Err("mapping has an empty service_type or resource_type".into());
    }
    t.build()
}
