//! AWS CloudTrail: `{"Records":[…]}` files (as delivered to S3), bare JSON arrays of records, and
//! JSON Lines (one record per line).
//!
//! Mapping (see `docs/specs/sources.md`):
//!
//! | CTS field | from |
//! |---|---|
//! | `trace_name` | `eventName`; `ConsoleLogin` becomes `login` (`responseElements.ConsoleLogin` = `Success`) or `loginfailed` (`Failure`) |
//! | `trace_rating` | `warning` when `errorCode` is set or a console login failed, else `normal` |
//! | `trace_type` | `ConsoleAction` for `AwsConsoleSignIn`/`AwsConsoleAction`, `SystemAction` for `AwsServiceEvent`, else `ApiCall` |
//! | `service_type` | first label of `eventSource`, upper-cased: `s3.amazonaws.com` → `S3`, `signin.amazonaws.com` → `SIGNIN`; `AWS` if absent |
//! | `resource_type` / `resource_name` | `resources[0].type` / `resources[0].ARN`; else the lower-case first label of `eventSource`; console logins: `user` / the user |
//! | `source_ip` | `sourceIPAddress` when it is an IP literal; otherwise (`AWS Internal`, `*.amazonaws.com`, anonymiser artefacts such as `253.252.51.07`) absent |
//! | `user` | name = `userName`, else `sessionContext.sessionIssuer.userName`, else `arn`, else `invokedBy`, else `type`; `id` = `principalId`; `domain.id` = `accountId` |
//! | `time` | `eventTime`, else Logstash `@timestamp` (OTRF exports); neither → a problem |
//! | `trace_id` | `eventID` (a stable hash of the record when absent or not a valid trace id: 1–128 visible ASCII characters) |
//! | `code` | `errorCode`; a failed console login without one → `401`; else `200` |
//! | `message` | `errorMessage` |
//! | `read_only` | `readOnly` |
//! | `request` | the original record, byte for byte, as a JSON string |

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::common::{
    MAX_RECORD_BYTES, TraceBuilder, ip_or_none, json_lines, parse_time_ms, problem, short,
    stable_id, starts_array, usable_id, valid_trace_name,
};
use crate::Parsed;

/// A string borrowed from the input when it has no escapes.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Records", borrow)]
    records: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Record<'a> {
    #[serde(rename = "eventTime", borrow)]
    event_time: Option<Str<'a>>,
    #[serde(rename = "@timestamp", borrow)]
    logstash_time: Option<Str<'a>>,
    #[serde(rename = "eventName", borrow)]
    event_name: Option<Str<'a>>,
    #[serde(rename = "eventSource", borrow)]
    event_source: Option<Str<'a>>,
    #[serde(rename = "eventID", borrow)]
    event_id: Option<Str<'a>>,
    #[serde(rename = "eventType", borrow)]
    event_type: Option<Str<'a>>,
    #[serde(rename = "errorCode", borrow)]
    error_code: Option<Str<'a>>,
    #[serde(rename = "errorMessage", borrow)]
    error_message: Option<Str<'a>>,
    #[serde(rename = "sourceIPAddress", borrow)]
    source_ip: Option<Str<'a>>,
    #[serde(rename = "readOnly")]
    read_only: Option<serde_json::Value>,
    #[serde(rename = "userIdentity", borrow)]
    user_identity: Option<UserIdentity<'a>>,
    #[serde(rename = "responseElements", borrow)]
    response_elements: Option<&'a RawValue>,
    #[serde(borrow)]
    resources: Option<Vec<Resource<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserIdentity<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(rename = "userName", borrow)]
    user_name: Option<Str<'a>>,
    #[serde(borrow)]
    arn: Option<Str<'a>>,
    #[serde(rename = "accountId", borrow)]
    account_id: Option<Str<'a>>,
    #[serde(rename = "principalId", borrow)]
    principal_id: Option<Str<'a>>,
    #[serde(rename = "invokedBy", borrow)]
    invoked_by: Option<Str<'a>>,
    #[serde(rename = "sessionContext", borrow)]
    session_context: Option<SessionContext<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SessionContext<'a> {
    #[serde(rename = "sessionIssuer", borrow)]
    session_issuer: Option<SessionIssuer<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SessionIssuer<'a> {
    #[serde(rename = "userName", borrow)]
    user_name: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Resource<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    #[serde(rename = "ARN", borrow)]
    arn: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginResponse<'a> {
    #[serde(rename = "ConsoleLogin", borrow)]
    console_login: Option<Str<'a>>,
}

/// Parse a CloudTrail file: a `{"Records":[…]}` envelope, a JSON array of records, or JSON
/// Lines. Problems carry the 1-based record index (envelope/array) or line number (JSON Lines).
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let body = text.trim_start_matches('\u{feff}');
    if looks_like_envelope(body) {
        match serde_json::from_str::<Envelope>(body) {
            Ok(Envelope {
                records: Some(records),
            }) => {
                for (i, raw) in records.iter().enumerate() {
                    record(&mut out, i as u64 + 1, raw.get());
                }
            }
            Ok(Envelope { records: None }) => {
                problem(&mut out, 1, "`Records` is null");
            }
            Err(e) => problem(&mut out, 1, format!("not a CloudTrail `Records` file: {e}")),
        }
        return out;
    }
    if starts_array(body) {
        match serde_json::from_str::<Vec<&RawValue>>(body) {
            Ok(records) => {
                for (i, raw) in records.iter().enumerate() {
                    record(&mut out, i as u64 + 1, raw.get());
                }
            }
            Err(e) => problem(&mut out, 1, format!("not a JSON array of records: {e}")),
        }
        return out;
    }
    for (line, l) in json_lines(body) {
        // One line may itself be an envelope (S3 files concatenated one per line).
        if looks_like_envelope(l) {
            match serde_json::from_str::<Envelope>(l) {
                Ok(Envelope {
                    records: Some(records),
                }) => {
                    for raw in records {
                        record(&mut out, line, raw.get());
                    }
                }
                Ok(_) => problem(&mut out, line, "`Records` is null"),
                Err(e) => problem(&mut out, line, format!("invalid JSON: {e}")),
            }
            continue;
        }
        record(&mut out, line, l);
    }
    out
}

/// `{` followed (after whitespace) by the `"Records"` key.
fn looks_like_envelope(s: &str) -> bool {
    s.trim_start()
        .strip_prefix('{')
        .is_some_and(|r| r.trim_start().starts_with("\"Records\""))
}

fn record(out: &mut Parsed, line: u64, raw: &str) {
    if raw.len() > MAX_RECORD_BYTES {
        problem(
            out,
            line,
            format!(
                "record of {} bytes exceeds the {MAX_RECORD_BYTES}-byte limit",
                raw.len()
            ),
        );
        return;
    }
    let trimmed = raw.trim();
    if !trimmed.starts_with('{') {
        problem(
            out,
            line,
            format!("record is not a JSON object: {}", short(trimmed)),
        );
        return;
    }
    let rec: Record = match serde_json::from_str(trimmed) {
        Ok(r) => r,
        Err(e) => {
            problem(out, line, format!("invalid CloudTrail record: {e}"));
            return;
        }
    };
    match to_trace(&rec, trimmed) {
        Ok(t) => out.traces.push(t),
        Err(reason) => problem(out, line, reason),
    }
}

fn to_trace(rec: &Record, raw: &str) -> Result<serde_json::Value, String> {
    let time_text = rec
        .event_time
        .as_deref()
        .or(rec.logstash_time.as_deref())
        .ok_or("record has no `eventTime`")?;
    let time_ms = parse_time_ms(time_text)
        .ok_or_else(|| format!("`eventTime` {} is not an RFC 3339 time", short(time_text)))?;
    let event_name = rec
        .event_name
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or("record has no `eventName`")?;
    if !valid_trace_name(event_name) {
        return Err(format!(
            "`eventName` {} is not a valid trace name",
            short(event_name)
        ));
    }
    let source = rec.event_source.as_deref().unwrap_or("");
    let prefix = source.split('.').next().unwrap_or("");

    let ui = rec.user_identity.as_ref();
    let user_name = ui.and_then(|u| {
        u.user_name
            .as_deref()
            .or_else(|| {
                u.session_context
                    .as_ref()?
                    .session_issuer
                    .as_ref()?
                    .user_name
                    .as_deref()
            })
            .or(u.arn.as_deref())
            .or(u.invoked_by.as_deref())
            .or(u.kind.as_deref())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    });

    let mut error_code = rec.error_code.as_deref().filter(|s| !s.is_empty());
    let mut failed = error_code.is_some();
    let mut trace_name = event_name.to_owned();
    let console_login = event_name == "ConsoleLogin";
    if console_login {
        let outcome = rec
            .response_elements
            .and_then(|r| serde_json::from_str::<LoginResponse>(r.get()).ok())
            .and_then(|r| r.console_login.map(|c| c.0.into_owned()));
        match outcome.as_deref() {
            Some("Success") if !failed => trace_name = "login".to_owned(),
            Some("Failure") | Some("Success") => {
                failed = true;
                trace_name = "loginfailed".to_owned();
            }
            _ if failed => trace_name = "loginfailed".to_owned(),
            _ => {} // no outcome: keep `ConsoleLogin`
        }
        if failed && error_code.is_none() {
            error_code = Some("401");
        }
    }

    let mut t = TraceBuilder::new(trace_name, time_ms, raw.to_owned());
    t.trace_id = rec
        .event_id
        .as_deref()
        .map(str::to_owned)
        .and_then(usable_id)
        .unwrap_or_else(|| stable_id("cloudtrail", raw));
    t.trace_type = match rec.event_type.as_deref() {
        Some("AwsConsoleSignIn" | "AwsConsoleAction") => "ConsoleAction",
        Some("AwsServiceEvent") => "SystemAction",
        _ if console_login => "ConsoleAction",
        _ => "ApiCall",
    };
    t.rating = if failed { "warning" } else { "normal" };
    t.service_type = if prefix.is_empty() {
        "AWS".to_owned()
    } else {
        prefix.to_ascii_uppercase()
    };
    let first_resource = rec.resources.as_ref().and_then(|r| r.first());
    if console_login {
        t.resource_type = "user".to_owned();
        t.resource_name = user_name.clone();
    } else {
        t.resource_type = first_resource
            .and_then(|r| r.kind.as_deref())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if prefix.is_empty() {
                    "aws".to_owned()
                } else {
                    prefix.to_ascii_lowercase()
                }
            });
        t.resource_name = first_resource
            .and_then(|r| r.arn.as_deref())
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    if t.trace_type != "SystemAction" {
        t.source_ip = rec.source_ip.as_deref().and_then(ip_or_none);
    }
    t.code = error_code.unwrap_or("200").to_owned();
    t.message = rec.error_message.as_deref().map(str::to_owned);
    t.user_name = user_name;
    t.user_id = ui
        .and_then(|u| u.principal_id.as_deref())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    t.domain_id = ui
        .and_then(|u| u.account_id.as_deref())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    t.read_only = match &rec.read_only {
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    t.build()
}
