//! CTS key-event notification routes (`/v3/{project_id}/notifications`, formats §2.3). The
//! logic and the trace-log consumer are in `trailwatch_functions::key_events`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use trailwatch_functions::service::FssError;

use crate::AppState;
use crate::auth::ProjectScope;
use crate::error::ApiError;

fn err(e: FssError) -> ApiError {
    ApiError::service(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        e.code,
        e.message,
    )
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::cts_bad_body("The message body is empty"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::cts_bad_body(format!("The message body is not valid JSON: {e}")))
}

pub async fn create(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = body_json(&body)?;
    let v = app
        .functions
        .create_key_event(&scope.project_id, &req)
        .await
        .map_err(err)?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn update(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    Ok(Json(
        app.functions
            .update_key_event(&scope.project_id, &req)
            .await
            .map_err(err)?,
    ))
}

pub async fn list(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, notification_type)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = crate::cts::parse_query(q.as_deref().unwrap_or(""))?;
    let name = params.get("notification_name").and_then(Value::as_str);
    Ok(Json(
        app.functions
            .list_key_events(&scope.project_id, &notification_type, name)
            .await
            .map_err(err)?,
    ))
}

pub async fn delete(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    let params = crate::cts::parse_query(q.as_deref().unwrap_or(""))?;
    let ids: Vec<String> = params
        .get("notification_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    app.functions
        .delete_key_events(&scope.project_id, &ids)
        .await
        .map_err(err)?;
    Ok(StatusCode::NO_CONTENT)
}
