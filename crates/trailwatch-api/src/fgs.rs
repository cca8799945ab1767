//! FunctionGraph v2 routes (`/v2/{project_id}/fgs/...`): functions, triggers, invocations,
//! statistics, and trailwatch's invocation records and async dead letters. Error body
//! `{"error_code":"FSS.xxxx","error_msg":"…"}`; see `docs/specs/functions.md`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use trailwatch_functions::service::{FssError, tail};

use crate::AppState;
use crate::auth::ProjectScope;
use crate::error::ApiError;

fn fss(e: FssError) -> ApiError {
    ApiError::service(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        e.code,
        e.message,
    )
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(fss(FssError::bad("The request body is empty")));
    }
    serde_json::from_slice(body).map_err(|e| {
        fss(FssError::bad(format!(
            "The request body is not valid JSON: {e}"
        )))
    })
}

/// An invocation body: any JSON; an empty body is the empty event `{}`.
fn event_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    body_json(body)
}

fn query_u64(raw: Option<&str>, key: &str, default: u64) -> Result<u64, ApiError> {
    let params = crate::cts::parse_query(raw.unwrap_or(""))
        .map_err(|_| fss(FssError::bad("invalid query string")))?;
    match params.get(key).and_then(Value::as_str) {
        None | Some("") => Ok(default),
        Some(v) => v.parse::<u64>().map_err(|_| {
            fss(FssError::bad(format!(
                "`{key}` must be a non-negative integer, got `{v}`"
            )))
        }),
    }
}

pub async fn create_function(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = body_json(&body)?;
    let v = app
        .functions
        .create_function(&scope.project_id, &req)
        .await
        .map_err(fss)?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list_functions(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let marker = query_u64(q.as_deref(), "marker", 0)?;
    let maxitems = query_u64(q.as_deref(), "maxitems", 400)?;
    Ok(Json(
        app.functions
            .list_functions(&scope.project_id, marker, maxitems)
            .await
            .map_err(fss)?,
    ))
}

pub async fn get_config(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        app.functions
            .get_config(&scope.project_id, &urn)
            .await
            .map_err(fss)?,
    ))
}

pub async fn update_config(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    Ok(Json(
        app.functions
            .update_config(&scope.project_id, &urn, &req)
            .await
            .map_err(fss)?,
    ))
}

/// `GET …/functions/{urn}/code`: the function model with `func_code.file` (base64 package).
pub async fn get_code(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        app.functions
            .get_code(&scope.project_id, &urn)
            .await
            .map_err(fss)?,
    ))
}

/// `PUT …/functions/{urn}/code` `{"code_type":"zip","func_code":{"file":"<base64>"}}`.
pub async fn update_code(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    Ok(Json(
        app.functions
            .update_code(&scope.project_id, &urn, &req)
            .await
            .map_err(fss)?,
    ))
}

pub async fn delete_function(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.functions
        .delete_function(&scope.project_id, &urn)
        .await
        .map_err(fss)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/functions/{urn}/invocations`: `{request_id, result, log, status}`; the log is
/// returned only with `X-Cff-Log-Type: tail` (its last 4 KB), as FunctionGraph does.
pub async fn invoke(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event = event_json(&body)?;
    let r = app
        .functions
        .invoke_sync(&scope.project_id, &urn, &event)
        .await
        .map_err(fss)?;
    let want_tail = headers
        .get("x-cff-log-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tail"));
    let log = if want_tail {
        tail(&r.log, 4096).to_owned()
    } else {
        String::new()
    };
    let mut response = Json(json!({
        "request_id": r.request_id,
        "result": r.result,
        "log": log,
        "status": r.status,
    }))
    .into_response();
    let h = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set("x-cff-request-id", r.request_id.clone());
    set(
        "x-cff-billing-duration",
        format!("{}", r.duration_ms.ceil() as u64),
    );
    set("x-func-err-code", if r.failed() { "1" } else { "0" }.into());
    set("x-is-func-err", r.failed().to_string());
    if want_tail {
        let b64 = base64::engine::general_purpose::STANDARD.encode(tail(&r.log, 2000));
        set("x-cff-function-log", b64);
    }
    Ok(response)
}

pub async fn invoke_async(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event = event_json(&body)?;
    let id = app
        .functions
        .invoke_async(&scope.project_id, &urn, &event)
        .await
        .map_err(fss)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"request_id": id}))).into_response())
}

pub async fn invocations(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let limit = query_u64(q.as_deref(), "limit", 100)?;
    Ok(Json(
        app.functions
            .invocations(&scope.project_id, &urn, limit)
            .await
            .map_err(fss)?,
    ))
}

pub async fn statistics(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn, period)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        app.functions
            .statistics(&scope.project_id, &urn, &period)
            .await
            .map_err(fss)?,
    ))
}

pub async fn create_trigger(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = body_json(&body)?;
    let v = app
        .functions
        .create_trigger(&scope.project_id, &urn, &req)
        .await
        .map_err(fss)?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list_triggers(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        app.functions
            .list_triggers(&scope.project_id, &urn)
            .await
            .map_err(fss)?,
    ))
}

pub async fn delete_all_triggers(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.functions
        .delete_all_triggers(&scope.project_id, &urn)
        .await
        .map_err(fss)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_trigger(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn, type_code, id)): Path<(String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        app.functions
            .get_trigger(&scope.project_id, &urn, &type_code, &id)
            .await
            .map_err(fss)?,
    ))
}

pub async fn update_trigger(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn, type_code, id)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    Ok(Json(
        app.functions
            .update_trigger(&scope.project_id, &urn, &type_code, &id, &req)
            .await
            .map_err(fss)?,
    ))
}

pub async fn delete_trigger(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn, type_code, id)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    app.functions
        .delete_trigger(&scope.project_id, &urn, &type_code, &id)
        .await
        .map_err(fss)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn dead_letters(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let limit = query_u64(q.as_deref(), "limit", 100)?;
    Ok(Json(
        app.functions
            .dead_letters(&scope.project_id, limit)
            .await
            .map_err(fss)?,
    ))
}

pub async fn replay(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ids = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match body_json(&body)?.get("request_ids") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| {
                        v.as_str().map(str::to_owned).ok_or_else(|| {
                            fss(FssError::bad("`request_ids` must be an array of strings"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => {
                return Err(fss(FssError::bad(
                    "`request_ids` must be an array of strings",
                )));
            }
        }
    };
    let n = app
        .functions
        .replay_dead_letters(&scope.project_id, ids)
        .await
        .map_err(fss)?;
    Ok(Json(json!({"replayed": n})))
}
