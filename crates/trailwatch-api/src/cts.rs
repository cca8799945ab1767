//! CTS routes: trace ingest (a trailwatch addition) and the v3 / legacy trace queries.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use serde_json::{Map, Value, json};
use trailwatch_store::{AppendOutcome, NewTrace, TraceFilter, TraceQuery, TrackerFilter, now_ms};
use trailwatch_trace::TraceRating;

use crate::AppState;
use crate::auth::{ProjectScope, truncate};
use crate::error::ApiError;

/// The most traces one ingest request may carry.
pub const MAX_BATCH: usize = 1000;
/// The most traces one query page may return.
pub const MAX_LIMIT: u32 = 200;
const DEFAULT_LIMIT: u32 = 10;
/// Longest filter value accepted; longer ones cannot match any stored field.
const MAX_FILTER_LEN: usize = 1024;

/// `POST /v3/{project_id}/traces`: one trace object, or `{"traces":[…]}`.
///
/// Each record is judged on its own: the response lists, in input order, either the stored
/// `trace_id` or the record's error. A batch is rejected as a whole only when its JSON cannot be
/// parsed at all (the record boundaries are then unknown) or no record is valid.
pub async fn ingest(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // One strict pass over the body straight into traces (no JSON tree); the envelope and
    // size errors are the ones this handler has always given (trailwatch_trace::parse_batch).
    let batch = trailwatch_trace::parse_batch(&body, MAX_BATCH)
        .map_err(|e| ApiError::cts_bad_body(e.message))?;
    let (records, single) = (batch.records, batch.single);

    let now = now_ms();
    let total = records.len();
    let mut results: Vec<Option<Value>> = vec![None; total];
    let mut accepted: Vec<(usize, NewTrace)> = Vec::with_capacity(total);
    for (i, record) in records.into_iter().enumerate() {
        match record {
            Ok(trace) => accepted.push((i, NewTrace::from_owned(trace, now))),
            Err(e) => {
                results[i] =
                    Some(json!({"index": i, "error_code": "CTS.0003", "error_msg": e.to_string()}));
            }
        }
    }
    let rejected = total - accepted.len();
    app.metrics
        .traces_rejected
        .fetch_add(rejected as u64, Ordering::Relaxed);
    if accepted.is_empty() {
        if single {
            let msg = results
                .first()
                .and_then(|r| r.as_ref())
                .and_then(|r| r.get("error_msg"))
                .and_then(Value::as_str)
                .unwrap_or("invalid trace")
                .to_owned();
            return Err(ApiError::cts_bad_body(msg));
        }
        let body = json!({
            "error_code": "CTS.0003",
            "error_msg": format!("none of the {total} traces is valid; see `results`"),
            "results": results,
        });
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }

    let (indexes, news): (Vec<usize>, Vec<NewTrace>) = accepted.into_iter().unzip();
    let ids: Vec<String> = news.iter().map(|n| n.trace_id.clone()).collect();
    let started = std::time::Instant::now();
    let outcomes = app.store.append(&scope.project_id, news).await?;
    app.metrics.append_latency.observe(started.elapsed());
    let mut stored: Vec<Option<(String, bool)>> = vec![None; total];
    let mut inserted = 0u64;
    for ((i, id), outcome) in indexes.into_iter().zip(ids).zip(outcomes) {
        let duplicate = matches!(outcome, AppendOutcome::Duplicate { .. });
        inserted += u64::from(!duplicate);
        stored[i] = Some((id, duplicate));
    }
    let duplicates = (total - rejected) as u64 - inserted;
    app.metrics
        .traces_ingested
        .fetch_add(inserted, Ordering::Relaxed);
    app.metrics
        .traces_duplicate
        .fetch_add(duplicates, Ordering::Relaxed);
    let body = ingest_answer(&stored, &results, total - rejected, rejected);
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// The ingest answer, `{"results":[…],"accepted":n,"rejected":m}`, written straight into one
/// buffer: a JSON tree per record cost more than the rest of the answer. A record's result is
/// `{"trace_id":…}` (with `"duplicate":true` when it was already stored) or its error object.
fn ingest_answer(
    stored: &[Option<(String, bool)>],
    errors: &[Option<Value>],
    accepted: usize,
    rejected: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * stored.len() + 48);
    out.extend_from_slice(b"{\"results\":[");
    for (i, (ok, err)) in stored.iter().zip(errors).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing JSON into a Vec<u8> cannot fail.
        let _ = match (ok, err) {
            (Some((id, duplicate)), _) => {
                out.extend_from_slice(b"{\"trace_id\":");
                let written = serde_json::to_writer(&mut out, id);
                out.extend_from_slice(if *duplicate {
                    b",\"duplicate\":true}"
                } else {
                    b"}"
                });
                written
            }
            (None, Some(error)) => serde_json::to_writer(&mut out, error),
            (None, None) => serde_json::to_writer(&mut out, &Value::Null),
        };
    }
    out.extend_from_slice(
        format!("],\"accepted\":{accepted},\"rejected\":{rejected}}}").as_bytes(),
    );
    out
}

/// `GET /v3/{project_id}/traces`.
pub async fn list(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = parse_query(raw.as_deref().unwrap_or(""))?;
    let query = build_query(scope.project_id, &params, None)?;
    respond_page(&app, query).await
}

/// `GET /v1.0/{project_id}/{tracker_name}/trace` and `/v2.0/…`: the legacy list, same semantics,
/// tracker taken from the path.
pub async fn list_legacy(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_project, tracker)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = parse_query(raw.as_deref().unwrap_or(""))?;
    let query = build_query(scope.project_id, &params, Some(tracker))?;
    respond_page(&app, query).await
}

async fn respond_page(app: &AppState, query: TraceQuery) -> Result<Response, ApiError> {
    let page = app.store.query(query).await?;
    let mut traces = Vec::with_capacity(page.traces.len());
    for stored in page.traces {
        traces.push(render_cts_v3(&stored.body)?);
    }
    let count = traces.len();
    let body = json!({
        "traces": traces,
        "meta_data": {"count": count, "marker": page.next_marker},
    });
    Ok(Json(body).into_response())
}

/// The v3 list shape gives `request` and `response` as JSON text; a stored object is rendered
/// as its compact JSON.
fn render_cts_v3(body: &str) -> Result<Value, ApiError> {
    let mut value: Value = serde_json::from_str(body).map_err(|e| {
        tracing::error!(error = %e, "stored trace body is not JSON");
        ApiError::cts(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CTS.0005",
            "A stored trace could not be read",
        )
    })?;
    if let Some(map) = value.as_object_mut() {
        for key in ["request", "response"] {
            if let Some(v) = map.get_mut(key)
                && !v.is_string()
                && !v.is_null()
            {
                *v = Value::String(v.to_string());
            }
        }
    }
    Ok(value)
}

/// Query parameters by name. A repeated parameter is an error: which value would win is not
/// obvious to the caller.
pub(crate) fn parse_query(raw: &str) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    for (k, v) in form_urlencoded(raw)? {
        if out.contains_key(&k) {
            return Err(ApiError::cts_bad_query(format!(
                "parameter `{}` is given more than once",
                truncate(&k, 64)
            )));
        }
        out.insert(k, Value::String(v));
    }
    Ok(out)
}

/// Decodes `application/x-www-form-urlencoded` pairs ('+' is a space).
fn form_urlencoded(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode_component(k)?, decode_component(v)?));
    }
    Ok(pairs)
}

fn decode_component(s: &str) -> Result<String, ApiError> {
    let replaced = s.replace('+', " ");
    percent_decode(&replaced).ok_or_else(|| {
        ApiError::cts_bad_query("a query parameter is not valid percent-encoded UTF-8")
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn text_param(params: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match params.get(name).and_then(Value::as_str) {
        None => Ok(None),
        Some("") => Ok(None),
        Some(v) if v.len() > MAX_FILTER_LEN => Err(ApiError::cts_bad_query(format!(
            "parameter `{name}` is longer than {MAX_FILTER_LEN} bytes"
        ))),
        Some(v) if v.chars().any(char::is_control) => Err(ApiError::cts_bad_query(format!(
            "parameter `{name}` contains control characters"
        ))),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

fn int_param(params: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = text_param(params, name)? else {
        return Ok(None);
    };
    v.parse::<i64>().ok().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
        ApiError::cts_bad_query(format!(
            "parameter `{name}` must be a non-negative integer (milliseconds since the epoch for times), got `{}`",
            truncate(&v, 64)
        ))
    })
}

/// Parses `source_ip`: an address or a CIDR range, IPv4 or IPv6.
pub(crate) fn parse_ip_filter(v: &str) -> Option<IpNet> {
    if let Ok(net) = v.parse::<IpNet>() {
        return Some(net);
    }
    v.parse::<std::net::IpAddr>().ok().map(IpNet::from)
}

pub(crate) fn build_query(
    project_id: String,
    params: &Map<String, Value>,
    path_tracker: Option<String>,
) -> Result<TraceQuery, ApiError> {
    for unsupported in ["access_key_id", "enterprise_project_id"] {
        if text_param(params, unsupported)?.is_some() {
            return Err(ApiError::cts_bad_query(format!(
                "parameter `{unsupported}` is not supported by trailwatch"
            )));
        }
    }
    let limit = match int_param(params, "limit")? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as u32,
        Some(n) => {
            return Err(ApiError::cts_bad_query(format!(
                "parameter `limit` must be between 1 and {MAX_LIMIT}, got {n}"
            )));
        }
    };
    let from = int_param(params, "from")?;
    let to = int_param(params, "to")?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::cts_bad_query(format!(
            "parameter `from` ({f}) is later than `to` ({t})"
        )));
    }
    let trace_type = text_param(params, "trace_type")?;
    let tracker_name = path_tracker.or(text_param(params, "tracker_name")?);
    let tracker = match (trace_type.as_deref(), tracker_name) {
        (_, Some(name)) => TrackerFilter::Exact(name),
        (None | Some("system"), None) => TrackerFilter::Exact("system".into()),
        (Some("data"), None) => TrackerFilter::AllData,
        (Some(other), None) => {
            return Err(ApiError::cts_bad_query(format!(
                "parameter `trace_type` must be `system` or `data`, got `{}`",
                truncate(other, 64)
            )));
        }
    };
    let trace_rating = match text_param(params, "trace_rating")? {
        None => None,
        Some(r) => match r.parse::<TraceRating>() {
            Ok(rating) => Some(rating.as_str().to_owned()),
            Err(_) => {
                return Err(ApiError::cts_bad_query(format!(
                    "parameter `trace_rating` must be one of normal, warning, incident; got `{}`",
                    truncate(&r, 64)
                )));
            }
        },
    };
    let source_ip = match text_param(params, "source_ip")? {
        None => None,
        Some(v) => Some(parse_ip_filter(v.trim()).ok_or_else(|| {
            ApiError::cts_bad_query(format!(
                "parameter `source_ip` must be an IPv4/IPv6 address or CIDR range, got `{}`",
                truncate(&v, 64)
            ))
        })?),
    };
    Ok(TraceQuery {
        project_id,
        from,
        to,
        limit,
        marker: text_param(params, "next")?,
        trace_id: text_param(params, "trace_id")?,
        tracker,
        filter: TraceFilter {
            service_type: text_param(params, "service_type")?,
            user: text_param(params, "user")?,
            resource_id: text_param(params, "resource_id")?,
            resource_name: text_param(params, "resource_name")?,
            resource_type: text_param(params, "resource_type")?,
            trace_name: text_param(params, "trace_name")?,
            trace_rating,
            source_ip,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(raw: &str) -> Result<TraceQuery, ApiError> {
        build_query("p".into(), &parse_query(raw)?, None)
    }

    #[test]
    fn the_ingest_answer_is_the_json_it_always_was() {
        let stored = vec![
            Some(("a\"1".to_owned(), false)),
            None,
            Some(("b2".to_owned(), true)),
        ];
        let errors = vec![
            None,
            Some(json!({"index": 1, "error_code": "CTS.0003", "error_msg": "bad"})),
            None,
        ];
        let answer: Value =
            serde_json::from_slice(&ingest_answer(&stored, &errors, 2, 1)).unwrap_or_default();
        assert_eq!(
            answer,
            json!({
                "results": [
                    {"trace_id": "a\"1"},
                    {"index": 1, "error_code": "CTS.0003", "error_msg": "bad"},
                    {"trace_id": "b2", "duplicate": true},
                ],
                "accepted": 2,
                "rejected": 1,
            })
        );
    }

    #[test]
    fn defaults_follow_cts() {
        let query = q("").unwrap();
        assert_eq!(query.limit, 10);
        assert_eq!(query.tracker, TrackerFilter::Exact("system".into()));
        assert_eq!(
            q("trace_type=data").unwrap().tracker,
            TrackerFilter::AllData
        );
    }

    #[test]
    fn limit_bounds_are_enforced() {
        assert!(q("limit=0").is_err());
        assert!(q("limit=201").is_err());
        assert_eq!(q("limit=200").unwrap().limit, 200);
        assert!(q("limit=abc").is_err());
    }

    #[test]
    fn source_ip_takes_addresses_and_ranges() {
        assert_eq!(
            q("source_ip=10.0.0.0%2F8").unwrap().filter.source_ip,
            Some("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            q("source_ip=2001:db8::1").unwrap().filter.source_ip,
            Some("2001:db8::1/128".parse().unwrap())
        );
        assert!(q("source_ip=10.0.0.300").is_err());
    }

    #[test]
    fn hostile_values_are_rejected_precisely() {
        assert!(q("user=%00").is_err());
        assert!(q("user=%ff").is_err());
        assert!(q("from=5&to=4").is_err());
        assert!(q("user=a&user=b").is_err());
        assert!(q("trace_rating=NORMAL").is_err());
    }

    #[test]
    fn object_request_is_rendered_as_json_text() {
        let v = render_cts_v3(r#"{"request":{"a":1},"response":"x"}"#).unwrap();
        assert_eq!(v["request"], Value::String("{\"a\":1}".into()));
        assert_eq!(v["response"], Value::String("x".into()));
    }
}
