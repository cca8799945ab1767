//! JSON object → [`Trace`], with the leniency and strictness rules from the crate docs.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::time::parse_time;
use crate::{DomainRef, Trace, TraceError, TraceRating, UserInfo, describe, quote};

/// Known top-level members in the §1.1 table order, `user` last; rendering uses the same
/// order, so parse and render cannot disagree on what counts as "extra".
pub(crate) const KNOWN_FIELDS: [&str; 30] = [
    "trace_id",
    "trace_name",
    "trace_rating",
    "trace_type",
    "service_type",
    "resource_type",
    "resource_name",
    "resource_id",
    "source_ip",
    "request",
    "response",
    "code",
    "api_version",
    "message",
    "time",
    "record_time",
    "request_id",
    "location_info",
    "endpoint",
    "resource_url",
    "enterprise_project_id",
    "resource_account_id",
    "read_only",
    "operation_id",
    "tracker_name",
    "event_type",
    "project_id",
    "domain_id",
    "user_agent",
    "user",
];

/// Members of `user` and `user.domain` that have their own struct fields.
pub(crate) const USER_FIELDS: [&str; 3] = ["id", "name", "domain"];
pub(crate) const DOMAIN_FIELDS: [&str; 2] = ["id", "name"];

/// Limits, stated in the error message when exceeded. They keep one hostile trace from
/// bloating indexes and reports; real values are far shorter.
const MAX_TRACE_ID: usize = 128;
const MAX_TRACE_NAME: usize = 64;
const MAX_NAME: usize = 256;
/// OBS data traces name objects (`bucket/key`), and object keys may be up to 1024 bytes.
const MAX_RESOURCE_NAME: usize = 1024;

/// Known members pulled out of the object in one pass. A single pass (instead of
/// `Map::remove`) keeps the extras in their original order even when serde_json's
/// `preserve_order` feature makes `remove` a swap-remove.
struct Members<'k> {
    names: &'k [&'static str],
    slots: Vec<Option<Value>>,
}

impl<'k> Members<'k> {
    fn split(m: Map<String, Value>, names: &'k [&'static str]) -> (Self, Map<String, Value>) {
        let mut slots = vec![None; names.len()];
        let mut extra = Map::new();
        for (k, v) in m {
            match names.iter().position(|n| *n == k) {
                Some(i) => slots[i] = Some(v),
                None => {
                    extra.insert(k, v);
                }
            }
        }
        (Members { names, slots }, extra)
    }

    /// The member's value; JSON `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        let i = self.names.iter().position(|n| *n == name)?;
        match self.slots[i].take() {
            Some(Value::Null) | None => None,
            v => v,
        }
    }
}

pub(crate) fn trace_from_map(m: Map<String, Value>) -> Result<Trace, TraceError> {
    let (mut f, extra) = Members::split(m, &KNOWN_FIELDS);

    let trace_id = f.take("trace_id").map(trace_id).transpose()?;

    // The charset rule also covers emptiness and length, with a message that shows the value.
    let Some(trace_name) = f.take("trace_name") else {
        return Err(TraceError::new("trace_name", "is required"));
    };
    let trace_name = string("trace_name", trace_name, None)?;
    check_trace_name(&trace_name)?;

    let trace_rating = match f.take("trace_rating") {
        Some(Value::String(s)) => s.parse::<TraceRating>()?,
        Some(other) => {
            return Err(TraceError::new(
                "trace_rating",
                format!(
                    "expected one of \"normal\", \"warning\", \"incident\", found {}",
                    describe(&other)
                ),
            ));
        }
        // FunctionGraph template payloads carry only `trace_status`, mirroring the rating.
        None => extra
            .get("trace_status")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(TraceRating::Normal),
    };

    let trace_type = required_string(&mut f, "trace_type", MAX_NAME)?;
    let service_type = required_string(&mut f, "service_type", MAX_NAME)?;
    let resource_type = required_string(&mut f, "resource_type", MAX_NAME)?;
    let resource_name = opt_string(&mut f, "resource_name", Some(MAX_RESOURCE_NAME))?;
    let resource_id = opt_string(&mut f, "resource_id", None)?;
    let source_ip = f.take("source_ip").map(source_ip).transpose()?;
    let request = f.take("request");
    let response = f.take("response");
    let code = f.take("code").map(code).transpose()?;
    let api_version = opt_string(&mut f, "api_version", None)?;
    let message = f.take("message");

    let time = match f.take("time") {
        Some(v) => parse_time("time", &v)?,
        None => return Err(TraceError::new("time", "is required")),
    };
    let record_time = f
        .take("record_time")
        .map(|v| parse_time("record_time", &v))
        .transpose()?;

    let request_id = opt_string(&mut f, "request_id", None)?;
    let location_info = opt_string(&mut f, "location_info", None)?;
    let endpoint = opt_string(&mut f, "endpoint", None)?;
    let resource_url = opt_string(&mut f, "resource_url", None)?;
    let enterprise_project_id = opt_string(&mut f, "enterprise_project_id", None)?;
    let resource_account_id = opt_string(&mut f, "resource_account_id", None)?;
    let read_only = f.take("read_only").map(read_only).transpose()?;
    let operation_id = opt_string(&mut f, "operation_id", Some(MAX_NAME))?;
    let tracker_name = opt_string(&mut f, "tracker_name", Some(MAX_NAME))?;
    let event_type = opt_string(&mut f, "event_type", Some(MAX_NAME))?;
    let project_id = opt_string(&mut f, "project_id", None)?;
    let domain_id = opt_string(&mut f, "domain_id", None)?;
    let user_agent = opt_string(&mut f, "user_agent", None)?;
    let user = f.take("user").map(user).transpose()?;

    Ok(Trace {
        trace_id,
        trace_name,
        trace_rating,
        trace_type,
        service_type,
        resource_type,
        resource_name,
        resource_id,
        source_ip,
        code,
        api_version,
        message,
        request,
        response,
        time,
        record_time,
        user,
        request_id,
        location_info,
        endpoint,
        resource_url,
        enterprise_project_id,
        resource_account_id,
        read_only,
        operation_id,
        tracker_name,
        event_type,
        project_id,
        domain_id,
        user_agent,
        extra,
    })
}

/// Type check plus the rules every known string obeys: no NUL (it truncates C strings and
/// breaks some stores) and an optional length limit in characters.
fn string(field: &str, v: Value, max: Option<usize>) -> Result<String, TraceError> {
    match v {
        Value::String(s) => {
            check_string(field, &s, max)?;
            Ok(s)
        }
        other => Err(TraceError::new(
            field,
            format!("expected a string, found {}", describe(&other)),
        )),
    }
}

fn check_string(field: &str, s: &str, max: Option<usize>) -> Result<(), TraceError> {
    if s.contains('\0') {
        return Err(TraceError::new(
            field,
            format!("must not contain NUL characters, found {}", quote(s)),
        ));
    }
    if let Some(max) = max {
        let len = s.chars().count();
        if len > max {
            return Err(TraceError::new(
                field,
                format!("is {len} characters long; the limit is {max}"),
            ));
        }
    }
    Ok(())
}

fn opt_string(
    f: &mut Members<'_>,
    field: &str,
    max: Option<usize>,
) -> Result<Option<String>, TraceError> {
    f.take(field).map(|v| string(field, v, max)).transpose()
}

fn required_string(f: &mut Members<'_>, field: &str, max: usize) -> Result<String, TraceError> {
    let Some(v) = f.take(field) else {
        return Err(TraceError::new(field, "is required"));
    };
    let s = string(field, v, Some(max))?;
    if s.trim().is_empty() {
        return Err(TraceError::new(field, "must not be empty"));
    }
    Ok(s)
}

/// Trace IDs end up in URLs, file names and `next` markers, so only visible ASCII is allowed.
fn trace_id(v: Value) -> Result<String, TraceError> {
    let s = string("trace_id", v, Some(MAX_TRACE_ID))?;
    if s.is_empty() {
        return Err(TraceError::new("trace_id", "must not be empty"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TraceError::new(
            "trace_id",
            format!(
                "{} must consist of printable ASCII characters without spaces",
                quote(&s)
            ),
        ));
    }
    Ok(s)
}

fn check_trace_name(s: &str) -> Result<(), TraceError> {
    let mut chars = s.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && s.len() <= MAX_TRACE_NAME;
    if valid {
        Ok(())
    } else {
        Err(TraceError::new(
            "trace_name",
            format!(
                "{} is not a valid trace name: it must be 1 to {MAX_TRACE_NAME} characters \
                 from [A-Za-z0-9._-] and start with a letter",
                quote(s)
            ),
        ))
    }
}

fn source_ip(v: Value) -> Result<String, TraceError> {
    let s = string("source_ip", v, None)?;
    let t = s.trim();
    // SystemAction traces have no caller, and CTS sends "" for them.
    if !t.is_empty() && t.parse::<IpAddr>().is_err() {
        return Err(TraceError::new(
            "source_ip",
            format!("{} is not a valid IPv4 or IPv6 address", quote(t)),
        ));
    }
    Ok(t.to_owned())
}

/// The v3 model says string, but samples send integers (`200`, `0`, `302`).
fn code(v: Value) -> Result<String, TraceError> {
    match v {
        Value::String(s) => {
            check_string("code", &s, None)?;
            Ok(s)
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i.to_string())
            } else if let Some(u) = n.as_u64() {
                Ok(u.to_string())
            } else {
                Err(TraceError::new(
                    "code",
                    format!("expected a string or an integer, found number {n}"),
                ))
            }
        }
        other => Err(TraceError::new(
            "code",
            format!(
                "expected a string or an integer, found {}",
                describe(&other)
            ),
        )),
    }
}

/// HW sends a bool; string forms appear in HW user attributes, so they are accepted here too.
fn read_only(v: Value) -> Result<bool, TraceError> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(TraceError::new(
            "read_only",
            format!(
                "expected a boolean or the string \"true\" or \"false\", found {}",
                describe(&other)
            ),
        )),
    }
}

fn user(v: Value) -> Result<UserInfo, TraceError> {
    match v {
        // Older clients (and the otcextensions fixture) send the user as a bare string.
        Value::String(s) => {
            check_string("user", &s, Some(MAX_NAME))?;
            Ok(UserInfo {
                name: Some(s),
                ..UserInfo::default()
            })
        }
        Value::Object(m) => {
            let (mut f, extra) = Members::split(m, &USER_FIELDS);
            let id = f
                .take("id")
                .map(|v| string("user.id", v, None))
                .transpose()?;
            let name = f
                .take("name")
                .map(|v| string("user.name", v, Some(MAX_NAME)))
                .transpose()?;
            let domain = f.take("domain").map(domain).transpose()?;
            Ok(UserInfo {
                id,
                name,
                domain,
                extra,
            })
        }
        other => Err(TraceError::new(
            "user",
            format!("expected an object or a string, found {}", describe(&other)),
        )),
    }
}

fn domain(v: Value) -> Result<DomainRef, TraceError> {
    match v {
        Value::Object(m) => {
            let (mut f, extra) = Members::split(m, &DOMAIN_FIELDS);
            let id = f
                .take("id")
                .map(|v| string("user.domain.id", v, None))
                .transpose()?;
            let name = f
                .take("name")
                .map(|v| string("user.domain.name", v, Some(MAX_NAME)))
                .transpose()?;
            Ok(DomainRef { id, name, extra })
        }
        other => Err(TraceError::new(
            "user.domain",
            format!("expected an object, found {}", describe(&other)),
        )),
    }
}
