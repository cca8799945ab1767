//! Kubernetes API-server audit events (`audit.k8s.io/v1` `Event`, JSON Lines; `apiVersion` may
//! be absent, as in many real captures).
//!
//! | CTS field | from |
//! |---|---|
//! | `trace_name` | `verb` (`create`, `get`, `delete`, `patch`, …); `loginfailed` when `responseStatus.code` is 401 |
//! | `trace_rating` | `warning` for codes ≥ 400, else `normal` |
//! | `trace_type` | `ApiCall` |
//! | `service_type` | `KUBERNETES` |
//! | `resource_type` | `objectRef.resource` (`/subresource` appended: `pods/exec`); `nonResourceURL` when there is no `objectRef`; `user` for 401 |
//! | `resource_name` | `objectRef.name` (the request URI for non-resource requests); `resource_id` = `objectRef.namespace` when set |
//! | `source_ip` | `sourceIPs[0]` when it is an IP literal |
//! | `user` | `user.username` (`impersonatedUser.username` is not used; it stays in `request`) |
//! | `code` | `responseStatus.code` (absent → no `code`) |
//! | `time` | `requestReceivedTimestamp`, else `stageTimestamp`, else `timestamp`, else `metadata.creationTimestamp` |
//! | `trace_id` | `auditID`, with `:<stage>` appended for stages other than `ResponseComplete`; a stable hash of the record without `auditID` (or when the result is not a valid trace id: 1–128 visible ASCII characters) |
//!
//! Stage `RequestReceived`, and `ResponseStarted` of ordinary requests, repeat a request that is
//! logged again at `ResponseComplete`; they are counted in [`Parsed::skipped`], not traced.
//! `ResponseStarted` with code 101 (a connection upgrade: `exec`, `attach`, `portforward`) is
//! traced, because its `ResponseComplete` only comes when the session ends (trace id
//! `<auditID>:ResponseStarted`). `Panic` is traced (code 500 when absent).

use serde_json::Value;

use super::common::{
    MAX_RECORD_BYTES, TraceBuilder, ip_or_none, json_lines, parse_time_ms, path, problem, short,
    stable_id, text, usable_id, valid_trace_name,
};
use crate::Parsed;

/// Parse Kubernetes audit events, one JSON object per line. Problems carry the line number.
pub fn parse(text_in: &str) -> Parsed {
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
        if let Some(kind) = v.get("kind").and_then(Value::as_str)
            && kind != "Event"
        {
            problem(
                &mut out,
                line,
                format!("kind {kind:?} is not an audit Event"),
            );
            continue;
        }
        let stage = v.get("stage").and_then(Value::as_str).unwrap_or("");
        let upgraded = path(&v, "responseStatus.code").and_then(Value::as_i64) == Some(101);
        if stage == "RequestReceived" || (stage == "ResponseStarted" && !upgraded) {
            out.skipped += 1;
            continue;
        }
        match to_trace(&v, l.trim(), stage) {
            Ok(t) => out.traces.push(t),
            Err(reason) => problem(&mut out, line, reason),
        }
    }
    out
}

fn to_trace(v: &Value, raw: &str, stage: &str) -> Result<Value, String> {
    let verb = text(v.get("verb")).ok_or("event has no `verb`")?;
    if !valid_trace_name(&verb) {
        return Err(format!("verb {} is not a valid trace name", short(&verb)));
    }
    let time_text = ["requestReceivedTimestamp", "stageTimestamp", "timestamp"]
        .iter()
        .find_map(|k| text(v.get(*k)))
        .or_else(|| text(path(v, "metadata.creationTimestamp")))
        .ok_or("event has no timestamp")?;
    let time_ms = parse_time_ms(&time_text)
        .ok_or_else(|| format!("timestamp {} is not RFC 3339", short(&time_text)))?;
    let mut code = path(v, "responseStatus.code").and_then(Value::as_i64);
    if stage == "Panic" && code.is_none() {
        code = Some(500);
    }
    let status = code.unwrap_or(0);
    let name = if status == 401 {
        "loginfailed".to_owned()
    } else {
        verb.clone()
    };
    let mut t = TraceBuilder::new(name, time_ms, raw.to_owned());
    t.trace_type = "ApiCall";
    t.rating = if status >= 400 { "warning" } else { "normal" };
    t.service_type = "KUBERNETES".to_owned();
    t.code = code.map(|c| c.to_string()).unwrap_or_default();
    match v.get("objectRef").filter(|o| o.is_object()) {
        Some(o) => {
            let res = text(o.get("resource")).unwrap_or_else(|| "unknown".to_owned());
            t.resource_type = match text(o.get("subresource")) {
                Some(sub) => format!("{res}/{sub}"),
                None => res,
            };
            t.resource_name = text(o.get("name"));
            t.resource_id = text(o.get("namespace"));
        }
        None => {
            t.resource_type = "nonResourceURL".to_owned();
            t.resource_name = text(v.get("requestURI"));
        }
    }
    if status == 401 {
        t.resource_type = "user".to_owned();
        t.message = Some(format!("authentication failed ({verb})"));
    } else if status >= 400 {
        t.message = text(path(v, "responseStatus.message"))
            .or_else(|| text(path(v, "responseStatus.reason")));
    }
    t.source_ip = path(v, "sourceIPs.0")
        .and_then(Value::as_str)
        .and_then(ip_or_none);
    t.user_name = text(path(v, "user.username"));
    t.user_id = text(path(v, "user.uid"));
    let id = match text(v.get("auditID")) {
        Some(id) if stage.is_empty() || stage == "ResponseComplete" => Some(id),
        Some(id) => Some(format!("{id}:{stage}")),
        None => None,
    };
    t.trace_id = id
        .and_then(usable_id)
        .unwrap_or_else(|| stable_id("k8s", raw));
    t.build()
}
