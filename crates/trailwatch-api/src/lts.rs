//! LTS v2 routes: log groups, log streams, the log-reporting API (`…/tenant/contents`, both the
//! batch and the high-accuracy form) and log queries. Error body `{"error_code":"LTS.xxxx",
//! "error_msg":"…"}`; codes and limits are in `docs/specs/lts.md`.
//!
//! A reported line is acknowledged only once durable; a malformed line is named in the answer's
//! `rejected` list and never takes its healthy neighbours with it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use trailwatch_store::StoreError;
use trailwatch_store::lts::{self, LogGroup, LogQuery, LogStream, NewLogLine};

use crate::AppState;
use crate::auth::{ProjectScope, truncate};
use crate::error::ApiError;

/// Most lines one report may carry.
pub const MAX_LINES_PER_REPORT: usize = 10_000;
/// Largest single line (bytes).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// How far a reported time may be from now, as LTS allows (two days).
const MAX_TIME_SKEW_NS: i64 = 2 * 86_400 * 1_000_000_000;
const MAX_TTL_DAYS: i64 = 365;
const MAX_QUERY_LIMIT: usize = 5000;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::service(StatusCode::BAD_REQUEST, "LTS.0009", msg)
}

fn group_missing(id: &str) -> ApiError {
    ApiError::service(
        StatusCode::NOT_FOUND,
        "LTS.0201",
        format!("log group `{id}` does not exist in this project"),
    )
}

fn stream_missing(id: &str) -> ApiError {
    ApiError::service(
        StatusCode::NOT_FOUND,
        "LTS.0208",
        format!("log stream `{id}` does not exist in this log group"),
    )
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::service(StatusCode::BAD_REQUEST, "LTS.0104", m),
        other => {
            tracing::error!(error = %other, "store failure (LTS)");
            ApiError::service(
                StatusCode::INTERNAL_SERVER_ERROR,
                "LTS.0010",
                "The log store failed; the request was not completed",
            )
        }
    }
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("The request body is empty"));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("The request body must be a JSON object")),
        Err(e) => Err(bad(format!("The request body is not valid JSON: {e}"))),
    }
}

/// LTS names: 1–64 characters of letters, digits, `_`, `-` and `.`, not starting or ending
/// with `.`.
fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty()
        || name.len() > 64
        || !ok_chars
        || name.starts_with('.')
        || name.ends_with('.')
    {
        return Err(bad(format!(
            "`{field}` must be 1-64 characters of letters, digits, `_`, `-` and `.` (not at either end), got {:?}",
            truncate(name, 80)
        )));
    }
    Ok(())
}

fn ttl(m: &Map<String, Value>, default: Option<i64>) -> Result<i64, ApiError> {
    match m.get("ttl_in_days") {
        None | Some(Value::Null) => default.ok_or_else(|| bad("`ttl_in_days` is required")),
        Some(v) => v
            .as_i64()
            .filter(|d| (1..=MAX_TTL_DAYS).contains(d))
            .ok_or_else(|| {
                bad(format!(
                    "`ttl_in_days` must be an integer from 1 to {MAX_TTL_DAYS}, got {v}"
                ))
            }),
    }
}

fn required_str<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(bad(format!("`{key}` is required"))),
        Some(_) => Err(bad(format!("`{key}` must be a string"))),
    }
}

fn group_json(g: &LogGroup) -> Value {
    json!({"log_group_id": g.group_id, "log_group_name": g.name,
           "ttl_in_days": g.ttl_in_days, "creation_time": g.creation_time})
}

fn stream_json(s: &LogStream) -> Value {
    json!({"log_stream_id": s.stream_id, "log_stream_name": s.name,
           "creation_time": s.creation_time, "filter_count": 0})
}

pub async fn create_group(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let m = body_object(&body)?;
    let name = required_str(&m, "log_group_name")?.to_owned();
    check_name("log_group_name", &name)?;
    let group = LogGroup {
        group_id: uuid::Uuid::new_v4().to_string(),
        project_id: scope.project_id,
        name,
        ttl_in_days: ttl(&m, Some(7))?,
        creation_time: trailwatch_store::now_ms(),
    };
    let id = group.group_id.clone();
    app.store
        .write(move |c| lts::create_group(c, &group))
        .await
        .map_err(store_err)?;
    Ok((StatusCode::CREATED, Json(json!({"log_group_id": id}))).into_response())
}

pub async fn list_groups(
    scope: ProjectScope,
    State(app): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let groups = app
        .store
        .read(move |c| lts::list_groups(c, &scope.project_id))
        .await
        .map_err(store_err)?;
    let list: Vec<Value> = groups.iter().map(group_json).collect();
    Ok(Json(json!({"log_groups": list})))
}

pub async fn update_group(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, group_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let m = body_object(&body)?;
    let days = ttl(&m, None)?;
    let (pid, gid) = (scope.project_id.clone(), group_id.clone());
    let updated = app
        .store
        .write(move |c| {
            if !lts::update_group_ttl(c, &pid, &gid, days)? {
                return Ok(None);
            }
            lts::group(c, &pid, &gid)
        })
        .await
        .map_err(store_err)?;
    match updated {
        Some(g) => Ok(Json(group_json(&g))),
        None => Err(group_missing(&group_id)),
    }
}

pub async fn delete_group(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, group_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let gid = group_id.clone();
    let deleted = app
        .store
        .write(move |c| lts::delete_group(c, &scope.project_id, &gid))
        .await
        .map_err(store_err)?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(group_missing(&group_id))
    }
}

pub async fn create_stream(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, group_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let m = body_object(&body)?;
    let name = required_str(&m, "log_stream_name")?.to_owned();
    check_name("log_stream_name", &name)?;
    let stream = LogStream {
        stream_id: uuid::Uuid::new_v4().to_string(),
        group_id: group_id.clone(),
        project_id: scope.project_id,
        name,
        creation_time: trailwatch_store::now_ms(),
    };
    let id = stream.stream_id.clone();
    let created = app
        .store
        .write(move |c| {
            if lts::group(c, &stream.project_id, &stream.group_id)?.is_none() {
                return Ok(false);
            }
            lts::create_stream(c, &stream)?;
            Ok(true)
        })
        .await
        .map_err(store_err)?;
    if !created {
        return Err(group_missing(&group_id));
    }
    Ok((StatusCode::CREATED, Json(json!({"log_stream_id": id}))).into_response())
}

pub async fn list_streams(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, group_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let gid = group_id.clone();
    let streams = app
        .store
        .read(move |c| {
            if lts::group(c, &scope.project_id, &gid)?.is_none() {
                return Ok(None);
            }
            lts::list_streams(c, &scope.project_id, &gid).map(Some)
        })
        .await
        .map_err(store_err)?
        .ok_or_else(|| group_missing(&group_id))?;
    let list: Vec<Value> = streams.iter().map(stream_json).collect();
    Ok(Json(json!({"log_streams": list})))
}

pub async fn delete_stream(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, group_id, stream_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (gid, sid) = (group_id.clone(), stream_id.clone());
    let deleted = app
        .store
        .write(move |c| lts::delete_stream(c, &scope.project_id, &gid, &sid))
        .await
        .map_err(store_err)?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(stream_missing(&stream_id))
    }
}

/// A nanosecond time given as a number or a decimal string (LTS documents `Long` but its own
/// examples send strings).
fn time_ns(v: &Value, what: &str, now_ns: i64) -> Result<i64, String> {
    let t = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("`{what}` must be an integer (nanoseconds since the epoch), got {v}"))?;
    if t.abs_diff(now_ns) > MAX_TIME_SKEW_NS.unsigned_abs() {
        return Err(format!(
            "`{what}` {t} is more than two days away from the server's time {now_ns}"
        ));
    }
    Ok(t)
}

fn labels_text(m: &Map<String, Value>) -> Result<String, ApiError> {
    match m.get("labels") {
        None | Some(Value::Null) => Ok("{}".into()),
        Some(Value::Object(l)) => Ok(Value::Object(l.clone()).to_string()),
        Some(_) => Err(bad("`labels` must be an object")),
    }
}

fn line_error(index: usize, msg: impl Into<String>) -> Value {
    json!({"index": index, "error_code": "LTS.0009", "error_msg": msg.into()})
}

/// Checks one line's text; `None` when it is acceptable.
fn content_problem(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.is_empty() => Some("the log line is empty".into()),
        Value::String(s) if s.len() > MAX_LINE_BYTES => Some(format!(
            "the log line has {} bytes; the limit is {MAX_LINE_BYTES}",
            s.len()
        )),
        Value::String(_) => None,
        other => Some(format!("a log line must be a string, got {other}")),
    }
}

/// `POST /v2/{project_id}/lts/groups/{group}/streams/{stream}/tenant/contents[/high-accuracy]`.
async fn report(
    scope: ProjectScope,
    app: AppState,
    group_id: String,
    stream_id: String,
    body: Bytes,
    high_accuracy: bool,
) -> Result<Response, ApiError> {
    let m = body_object(&body)?;
    let labels = labels_text(&m)?;
    let contents = match m.get("contents") {
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(bad("`contents` is empty: send at least one log line"));
        }
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => return Err(bad("`contents` is required")),
        Some(_) => return Err(bad("`contents` must be an array")),
    };
    if contents.len() > MAX_LINES_PER_REPORT {
        return Err(bad(format!(
            "at most {MAX_LINES_PER_REPORT} log lines per report, got {}",
            contents.len()
        )));
    }
    let now_ns = trailwatch_store::now_ms().saturating_mul(1_000_000);
    let mut lines = Vec::with_capacity(contents.len());
    let mut rejected = Vec::new();
    if high_accuracy {
        for (i, item) in contents.iter().enumerate() {
            let Some(obj) = item.as_object() else {
                rejected.push(line_error(
                    i,
                    "each item must be an object {log_time_ns, log}",
                ));
                continue;
            };
            let log = obj.get("log").unwrap_or(&Value::Null);
            if let Some(p) = content_problem(log) {
                rejected.push(line_error(i, format!("`log`: {p}")));
                continue;
            }
            let t = match obj.get("log_time_ns") {
                Some(v) => time_ns(v, "log_time_ns", now_ns),
                None => Err("`log_time_ns` is required".into()),
            };
            match t {
                Ok(t) => lines.push(new_line(t, log.as_str().unwrap_or_default(), &labels)),
                Err(e) => rejected.push(line_error(i, e)),
            }
        }
    } else {
        let base = match m.get("log_time_ns") {
            Some(v) => time_ns(v, "log_time_ns", now_ns).map_err(bad)?,
            None => return Err(bad("`log_time_ns` is required")),
        };
        for (i, item) in contents.iter().enumerate() {
            match content_problem(item) {
                // LTS gives the n-th line of a batch the time `log_time_ns + n`.
                None => lines.push(new_line(
                    base.saturating_add(i as i64),
                    item.as_str().unwrap_or_default(),
                    &labels,
                )),
                Some(p) => rejected.push(line_error(i, p)),
            }
        }
    }
    if lines.is_empty() {
        let body = json!({
            "error_code": "LTS.0009",
            "error_msg": format!("none of the {} log lines is valid; see `rejected`", contents.len()),
            "rejected": rejected,
        });
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    let accepted = lines.len();
    let (pid, gid, sid) = (scope.project_id, group_id, stream_id.clone());
    let stored = app
        .store
        .write(move |c| {
            if lts::stream(c, &pid, &gid, &sid)?.is_none() {
                return Ok(None);
            }
            lts::append_lines(c, &sid, &lines, trailwatch_store::now_ms()).map(Some)
        })
        .await
        .map_err(store_err)?;
    let Some(last_seq) = stored else {
        return Err(stream_missing(&stream_id));
    };
    app.lts_head.send_replace(last_seq);
    Ok(Json(json!({
        "errorCode": "SVCSTG.ALS.200.200",
        "errorMessage": "Report success.",
        "result": null,
        "accepted": accepted,
        "rejected": rejected,
    }))
    .into_response())
}

fn new_line(time_ns: i64, content: &str, labels: &str) -> NewLogLine {
    NewLogLine {
        time_ns,
        content: content.to_owned(),
        labels: labels.to_owned(),
        log_uid: uuid::Uuid::new_v4().to_string(),
    }
}

pub async fn report_lines(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, group_id, stream_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    report(scope, app, group_id, stream_id, body, false).await
}

pub async fn report_lines_high_accuracy(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, group_id, stream_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    report(scope, app, group_id, stream_id, body, true).await
}

/// A millisecond time given as a number or a string.
fn ms_member(m: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    let parsed = match m.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| bad(format!("`{key}` must be milliseconds since the epoch")))
}

/// `POST /v2/{project_id}/groups/{group}/streams/{stream}/content/query`.
pub async fn query(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, group_id, stream_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let m = body_object(&body)?;
    let start = ms_member(&m, "start_time")?.ok_or_else(|| bad("`start_time` is required"))?;
    let end = ms_member(&m, "end_time")?.ok_or_else(|| bad("`end_time` is required"))?;
    if end < start {
        return Err(bad("`end_time` is before `start_time`"));
    }
    let limit = match m.get("limit") {
        None | Some(Value::Null) => 50,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_QUERY_LIMIT as u64).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "`limit` must be an integer from 1 to {MAX_QUERY_LIMIT}"
                ))
            })? as usize,
    };
    let keywords = match m.get("keywords") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(_) => return Err(bad("`keywords` must be a string")),
    };
    let descending = match m.get("is_desc") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("`is_desc` must be a boolean")),
    };
    let after_seq = match (
        m.get("line_num"),
        m.get("search_type").and_then(Value::as_str),
    ) {
        (None | Some(Value::Null), _) | (_, None | Some("init")) => None,
        (Some(v), Some("forwards" | "backwards")) => Some(
            v.as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| v.as_u64())
                .ok_or_else(|| bad("`line_num` must be a line number from an earlier answer"))?,
        ),
        (_, Some(other)) => {
            return Err(bad(format!(
                "`search_type` must be init, forwards or backwards, got {other:?}"
            )));
        }
    };
    // Paging backwards from a line reverses the order of the walk.
    let backwards = m.get("search_type").and_then(Value::as_str) == Some("backwards");
    let q = LogQuery {
        stream_id: stream_id.clone(),
        start_ns: start.saturating_mul(1_000_000),
        end_ns: end.saturating_mul(1_000_000).saturating_add(999_999),
        keywords,
        limit,
        descending: descending != backwards,
        after_seq,
    };
    let (pid, gid, sid) = (scope.project_id, group_id, stream_id.clone());
    let found = app
        .store
        .read(move |c| {
            if lts::stream(c, &pid, &gid, &sid)?.is_none() {
                return Ok(None);
            }
            lts::query_lines(c, &q).map(Some)
        })
        .await
        .map_err(store_err)?;
    let Some((mut lines, complete)) = found else {
        return Err(stream_missing(&stream_id));
    };
    if backwards {
        lines.reverse();
    }
    let logs: Vec<Value> = lines
        .iter()
        .map(|l| {
            let labels: Value = serde_json::from_str(&l.labels).unwrap_or_else(|_| json!({}));
            json!({"content": l.content, "line_num": l.seq.to_string(), "labels": labels,
                   "log_time_ns": l.time_ns.to_string()})
        })
        .collect();
    Ok(Json(json!({
        "count": logs.len(),
        "isQueryComplete": complete,
        "logs": logs,
    })))
}
