//! SMN v2 routes: topics, subscriptions, message templates, publish, and trailwatch's delivery
//! records and dead letters. Bodies are parsed whatever the Content-Type (the tutorial's
//! `requests.post(data=json.dumps(...))` sends none).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use trailwatch_notify::SmnError;
use trailwatch_notify::notification::format_timestamp;

use crate::AppState;
use crate::auth::ProjectScope;
use crate::error::ApiError;

fn smn(e: SmnError) -> ApiError {
    ApiError::Smn {
        status: StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        code: e.code,
        msg: e.message,
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(smn(SmnError::bad_request(
            "SMN.0010",
            "The request body is empty",
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        smn(SmnError::bad_request(
            "SMN.0010",
            format!("The request body is not valid JSON: {e}"),
        ))
    })
}

fn str_member<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(smn(SmnError::bad_request(
            "SMN.0010",
            format!("`{key}` must be a string"),
        ))),
    }
}

/// `offset` and `limit` (default 100, at most 100) as SMN pages lists.
fn paging(raw: Option<&str>) -> Result<(u32, u32), ApiError> {
    let params = crate::cts::parse_query(raw.unwrap_or(""))
        .map_err(|_| smn(SmnError::bad_request("SMN.0015", "invalid query string")))?;
    let num = |k: &str, default: u32, max: u32| -> Result<u32, ApiError> {
        match params.get(k).and_then(Value::as_str) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<u32>().ok().filter(|n| *n <= max).ok_or_else(|| {
                smn(SmnError::bad_request(
                    "SMN.0015",
                    format!("`{k}` must be an integer from 0 to {max}, got `{v}`"),
                ))
            }),
        }
    };
    let limit = num("limit", 100, 100)?;
    let offset = num("offset", 0, u32::MAX)?;
    Ok((offset, limit.max(1)))
}

fn topic_json(urn: &str, t: &trailwatch_store::smn::Topic) -> Value {
    json!({
        "topic_urn": urn, "name": t.name, "display_name": t.display_name, "push_policy": t.push_policy,
        "enterprise_project_id": "0", "topic_id": t.topic_id,
        "create_time": format_ms(t.create_time), "update_time": format_ms(t.update_time),
    })
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(format_timestamp)
        .unwrap_or_default()
}

pub async fn create_topic(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = body_json(&body)?;
    let name = str_member(&req, "name")?
        .ok_or_else(|| smn(SmnError::bad_request("SMN.0002", "`name` is required")))?;
    let display = str_member(&req, "display_name")?.unwrap_or("");
    let (urn, _, created) = app
        .notifier
        .create_topic(&scope.project_id, name, display)
        .await
        .map_err(smn)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"request_id": request_id(), "topic_urn": urn.to_string()})),
    )
        .into_response())
}

pub async fn list_topics(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = paging(q.as_deref())?;
    let (topics, total) = app
        .notifier
        .list_topics(&scope.project_id, offset, limit)
        .await
        .map_err(smn)?;
    let list: Vec<Value> = topics
        .iter()
        .map(|(u, t)| topic_json(&u.to_string(), t))
        .collect();
    Ok(Json(
        json!({"request_id": request_id(), "topic_count": total, "topics": list}),
    ))
}

pub async fn get_topic(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (u, t) = app
        .notifier
        .get_topic(&scope.project_id, &urn)
        .await
        .map_err(smn)?;
    let mut v = topic_json(&u.to_string(), &t);
    v["request_id"] = Value::String(request_id());
    Ok(Json(v))
}

pub async fn update_topic(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let display = str_member(&req, "display_name")?.ok_or_else(|| {
        smn(SmnError::bad_request(
            "SMN.0003",
            "`display_name` is required",
        ))
    })?;
    app.notifier
        .update_topic(&scope.project_id, &urn, display)
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id()})))
}

pub async fn delete_topic(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.notifier
        .delete_topic(&scope.project_id, &urn)
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id()})))
}

pub async fn get_attributes(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let attrs = app
        .notifier
        .topic_attributes(&scope.project_id, &urn)
        .await
        .map_err(smn)?;
    Ok(Json(
        json!({"request_id": request_id(), "attributes": attrs}),
    ))
}

pub async fn put_attribute(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let value = str_member(&req, "value")?
        .ok_or_else(|| smn(SmnError::bad_request("SMN.0035", "`value` is required")))?;
    app.notifier
        .set_topic_attribute(&scope.project_id, &urn, Some(&name), Some(value.to_owned()))
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id()})))
}

pub async fn delete_attribute(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.notifier
        .set_topic_attribute(&scope.project_id, &urn, Some(&name), None)
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id()})))
}

pub async fn delete_attributes(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.notifier
        .set_topic_attribute(&scope.project_id, &urn, None, None)
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id()})))
}

/// One subscription of a request: the single body, or an item of `subscriptions` (batch of 50).
async fn add_one(
    app: &AppState,
    project: &str,
    topic: &str,
    item: &Value,
) -> Result<(String, bool), SmnError> {
    let field = |k: &str| -> Result<Option<&str>, SmnError> {
        match item.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(SmnError::bad_request(
                "SMN.0043",
                format!("`{k}` must be a string"),
            )),
        }
    };
    let protocol = field("protocol")?
        .ok_or_else(|| SmnError::bad_request("SMN.0011", "`protocol` is required"))?;
    let endpoint = field("endpoint")?
        .ok_or_else(|| SmnError::bad_request("SMN.0012", "`endpoint` is required"))?;
    let remark = field("remark")?.unwrap_or("");
    let headers = item.pointer("/extension/header");
    let (urn, _, created) = app
        .notifier
        .subscribe(project, topic, protocol, endpoint, remark, headers)
        .await?;
    Ok((urn.to_string(), created))
}

pub async fn add_subscription(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = body_json(&body)?;
    if let Some(items) = req.get("subscriptions") {
        let Some(items) = items.as_array() else {
            return Err(smn(SmnError::bad_request(
                "SMN.0043",
                "`subscriptions` must be an array",
            )));
        };
        if items.is_empty() || items.len() > 50 {
            return Err(smn(SmnError::bad_request(
                "SMN.0043",
                format!("a batch holds 1 to 50 subscriptions, got {}", items.len()),
            )));
        }
        // Validate every item first so that a bad item creates nothing (no half-created batch).
        for (i, item) in items.iter().enumerate() {
            validate_item(&app, item).map_err(|e| {
                smn(SmnError {
                    message: format!("subscriptions[{i}]: {}", e.message),
                    ..e
                })
            })?;
        }
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let (sub_urn, _) = add_one(&app, &scope.project_id, &urn, item)
                .await
                .map_err(smn)?;
            results.push(json!({"subscription_urn": sub_urn, "error_code": "", "error_msg": ""}));
        }
        return Ok(
            Json(json!({"request_id": request_id(), "subscriptions_result": results}))
                .into_response(),
        );
    }
    let (sub_urn, created) = add_one(&app, &scope.project_id, &urn, &req)
        .await
        .map_err(smn)?;
    let mut body = json!({"request_id": request_id(), "subscription_urn": sub_urn});
    if !created {
        // SMN answers an existing endpoint with 200 and SMN.0190.
        body["code"] = Value::String("SMN.0190".into());
        body["message"] = Value::String(
            "The endpoint already exists; the existing subscription is returned.".into(),
        );
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Every check `subscribe` makes that does not need the store, so that a batch with one bad item
/// creates nothing.
fn validate_item(app: &AppState, item: &Value) -> Result<(), SmnError> {
    let protocol = item
        .get("protocol")
        .and_then(Value::as_str)
        .ok_or_else(|| SmnError::bad_request("SMN.0011", "`protocol` is required"))?;
    let protocol = trailwatch_notify::Protocol::parse(protocol)?;
    let endpoint = item
        .get("endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| SmnError::bad_request("SMN.0012", "`endpoint` is required"))?;
    trailwatch_notify::Endpoint::parse(protocol, endpoint)?;
    if let Some(r) = item.get("remark").and_then(Value::as_str) {
        trailwatch_notify::model::check_remark(r)?;
    }
    if let Some(h) = item.pointer("/extension/header") {
        let headers = trailwatch_notify::ExtensionHeaders::parse(h)?;
        let http = matches!(
            protocol,
            trailwatch_notify::Protocol::Http | trailwatch_notify::Protocol::Https
        );
        if !headers.is_empty() && !http {
            return Err(SmnError::bad_request(
                "SMN.0043",
                "extension.header is only allowed for http and https subscriptions",
            ));
        }
    }
    let config = app.notifier.config();
    if protocol == trailwatch_notify::Protocol::Sms && config.sms.is_none() {
        return Err(SmnError::bad_request(
            "SMN.0011",
            "no SMS gateway is configured on this server ([notify.sms])",
        ));
    }
    if protocol == trailwatch_notify::Protocol::Email && config.smtp.is_none() {
        return Err(SmnError::bad_request(
            "SMN.0011",
            "no SMTP server is configured on this server ([notify.smtp])",
        ));
    }
    Ok(())
}

fn subscription_json(urn: &str, s: &trailwatch_store::smn::Subscription, region: &str) -> Value {
    json!({
        "topic_urn": format!("urn:smn:{region}:{}:{}", s.project_id, s.topic_name),
        "protocol": s.protocol, "subscription_urn": urn, "owner": s.project_id,
        "endpoint": s.endpoint, "remark": s.remark, "status": s.status,
    })
}

async fn list_subs(
    app: &AppState,
    project: &str,
    topic: Option<&str>,
    q: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = paging(q)?;
    let (subs, total) = app
        .notifier
        .list_subscriptions(project, topic, offset, limit)
        .await
        .map_err(smn)?;
    let list: Vec<Value> = subs
        .iter()
        .map(|(u, s)| subscription_json(u, s, &app.config.region))
        .collect();
    Ok(Json(
        json!({"request_id": request_id(), "subscription_count": total, "subscriptions": list}),
    ))
}

pub async fn list_topic_subscriptions(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    list_subs(&app, &scope.project_id, Some(&urn), q.as_deref()).await
}

pub async fn list_subscriptions(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    list_subs(&app, &scope.project_id, None, q.as_deref()).await
}

pub async fn delete_subscription(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.notifier
        .unsubscribe(&scope.project_id, &urn)
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id()})))
}

/// `POST …/topics/{topic_urn}/publish`: 200 `{request_id, message_id}` once durable.
pub async fn publish(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let message_id = app
        .notifier
        .publish(&scope.project_id, &urn, &req)
        .await
        .map_err(smn)?;
    Ok(Json(
        json!({"request_id": request_id(), "message_id": message_id}),
    ))
}

fn template_json(t: &trailwatch_store::smn::TemplateRow, with_content: bool) -> Value {
    let tags: Value = serde_json::from_str(&t.tag_names).unwrap_or(Value::Array(Vec::new()));
    let mut v = json!({
        "message_template_id": t.template_id, "message_template_name": t.name, "protocol": t.protocol,
        "tag_names": tags, "create_time": format_ms(t.create_time), "update_time": format_ms(t.update_time),
    });
    if with_content {
        v["content"] = Value::String(t.content.clone());
    }
    v
}

pub async fn create_template(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = body_json(&body)?;
    let name = str_member(&req, "message_template_name")?.ok_or_else(|| {
        smn(SmnError::bad_request(
            "SMN.0032",
            "`message_template_name` is required",
        ))
    })?;
    let protocol = str_member(&req, "protocol")?
        .ok_or_else(|| smn(SmnError::bad_request("SMN.0011", "`protocol` is required")))?;
    let content = str_member(&req, "content")?
        .ok_or_else(|| smn(SmnError::bad_request("SMN.0024", "`content` is required")))?;
    let id = app
        .notifier
        .create_template(&scope.project_id, name, protocol, content)
        .await
        .map_err(smn)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"request_id": request_id(), "message_template_id": id})),
    )
        .into_response())
}

pub async fn list_templates(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = paging(q.as_deref())?;
    let params = crate::cts::parse_query(q.as_deref().unwrap_or(""))
        .map_err(|_| smn(SmnError::bad_request("SMN.0015", "invalid query string")))?;
    let get = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (list, total) = app
        .notifier
        .list_templates(
            &scope.project_id,
            get("message_template_name"),
            get("protocol"),
            offset,
            limit,
        )
        .await
        .map_err(smn)?;
    let items: Vec<Value> = list.iter().map(|t| template_json(t, false)).collect();
    Ok(Json(
        json!({"request_id": request_id(), "message_template_count": total, "message_templates": items}),
    ))
}

pub async fn get_template(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let t = app
        .notifier
        .template(&scope.project_id, &id)
        .await
        .map_err(smn)?;
    let mut v = template_json(&t, true);
    v["request_id"] = Value::String(request_id());
    Ok(Json(v))
}

pub async fn update_template(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let content = str_member(&req, "content")?
        .ok_or_else(|| smn(SmnError::bad_request("SMN.0024", "`content` is required")))?;
    app.notifier
        .update_template(&scope.project_id, &id, content)
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id()})))
}

pub async fn delete_template(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.notifier
        .delete_template(&scope.project_id, &id)
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id()})))
}

fn delivery_json(d: &trailwatch_store::smn::DeliveryInfo) -> Value {
    json!({
        "delivery_id": d.delivery_id, "message_id": d.message_id, "subscription_id": d.subscription_id,
        "kind": d.kind, "protocol": d.protocol, "endpoint": d.endpoint, "state": d.state,
        "attempts": d.attempts, "next_at": d.next_at, "expires_at": d.expires_at,
        "last_error": d.last_error, "updated_at": d.updated_at,
    })
}

/// `GET …/notifications/messages/{message_id}/deliveries` (trailwatch): each subscriber's
/// delivery of a message with every attempt.
pub async fn message_deliveries(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, message_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let list = app
        .notifier
        .deliveries(&scope.project_id, &message_id)
        .await
        .map_err(smn)?;
    let items: Vec<Value> = list
        .iter()
        .map(|(d, attempts)| {
            let mut v = delivery_json(d);
            v["attempt_log"] = json!(attempts);
            v
        })
        .collect();
    let hygiene = app
        .notifier
        .message_hygiene(&scope.project_id, &message_id)
        .await
        .map_err(smn)?;
    Ok(Json(json!({
        "request_id": request_id(),
        "silenced_by": hygiene.silenced_by,
        "deduplicated_into": hygiene.deduplicated_into,
        "summary_message_id": hygiene.summary_message_id,
        "summary_of": hygiene.summary_of,
        "deliveries": items,
    })))
}

// ---- alarm hygiene (trailwatch) ----------------------------------------------------------

fn hygiene_json(urn: &str, dedup_window_seconds: u32) -> Value {
    json!({
        "request_id": request_id(), "topic_urn": urn, "dedup_window_seconds": dedup_window_seconds,
    })
}

/// `GET …/topics/{topic_urn}/hygiene` (trailwatch): the topic's dedup window.
pub async fn get_hygiene(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (u, seconds) = app
        .notifier
        .topic_hygiene(&scope.project_id, &urn)
        .await
        .map_err(smn)?;
    Ok(Json(hygiene_json(&u.to_string(), seconds)))
}

/// `PUT …/topics/{topic_urn}/hygiene` (trailwatch): `{"dedup_window_seconds": N}`, 0 = off.
pub async fn put_hygiene(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let seconds = match req.get("dedup_window_seconds") {
        None | Some(Value::Null) => {
            return Err(smn(SmnError::bad_request(
                "SMN.0010",
                "`dedup_window_seconds` is required: seconds from 0 (off) to 86400",
            )));
        }
        Some(v) => v.as_i64().ok_or_else(|| {
            smn(SmnError::bad_request(
                "SMN.0010",
                format!("`dedup_window_seconds` must be a whole number of seconds from 0 (off) to 86400, got {v}"),
            ))
        })?,
    };
    let (u, seconds) = app
        .notifier
        .set_topic_hygiene(&scope.project_id, &urn, seconds)
        .await
        .map_err(smn)?;
    Ok(Json(hygiene_json(&u.to_string(), seconds)))
}

fn silence_json(s: &trailwatch_store::smn::Silence, now: i64) -> Value {
    json!({
        "silence_id": s.silence_id, "topic_urn": s.topic_urn,
        "subject_contains": s.subject_contains, "message_contains": s.message_contains,
        "starts_at": s.starts_at, "ends_at": s.ends_at, "comment": s.comment,
        "created_at": s.created_at, "active": s.is_active(now),
        "silenced_messages": s.silenced_messages,
    })
}

fn ms_member(v: &Value, key: &str) -> Result<Option<i64>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n.as_i64().map(Some).ok_or_else(|| {
            smn(SmnError::bad_request(
                "SMN.0010",
                format!("`{key}` must be a time in milliseconds since 1970-01-01, got {n}"),
            ))
        }),
    }
}

/// `POST …/notifications/silences` (trailwatch): 201 `{request_id, silence_id}`.
pub async fn create_silence(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = body_json(&body)?;
    let request = trailwatch_notify::service::SilenceRequest {
        topic_urn: str_member(&req, "topic_urn")?.unwrap_or("").to_owned(),
        subject_contains: str_member(&req, "subject_contains")?.map(str::to_owned),
        message_contains: str_member(&req, "message_contains")?.map(str::to_owned),
        starts_at: ms_member(&req, "starts_at")?,
        ends_at: ms_member(&req, "ends_at")?,
        comment: str_member(&req, "comment")?.unwrap_or("").to_owned(),
    };
    let silence = app
        .notifier
        .create_silence(&scope.project_id, request)
        .await
        .map_err(smn)?;
    let mut body = silence_json(&silence, trailwatch_store::now_ms());
    body["request_id"] = Value::String(request_id());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET …/notifications/silences[?topic_urn=&offset=&limit=]` (trailwatch), newest first.
pub async fn list_silences(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = paging(q.as_deref())?;
    let params = crate::cts::parse_query(q.as_deref().unwrap_or(""))
        .map_err(|_| smn(SmnError::bad_request("SMN.0015", "invalid query string")))?;
    let topic = params
        .get("topic_urn")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let (list, total) = app
        .notifier
        .list_silences(&scope.project_id, topic, offset, limit)
        .await
        .map_err(smn)?;
    let now = trailwatch_store::now_ms();
    let items: Vec<Value> = list.iter().map(|s| silence_json(s, now)).collect();
    Ok(Json(
        json!({"request_id": request_id(), "silence_count": total, "silences": items}),
    ))
}

/// `DELETE …/notifications/silences/{silence_id}` (trailwatch): ends the silence now.
pub async fn expire_silence(
    scope: ProjectScope,
    State(app): State<AppState>,
    Path((_p, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let expired = app
        .notifier
        .expire_silence(&scope.project_id, &id)
        .await
        .map_err(smn)?;
    Ok(Json(
        json!({"request_id": request_id(), "silence_id": id, "already_ended": !expired}),
    ))
}

/// `GET …/notifications/dead-letters` (trailwatch).
pub async fn dead_letters(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = paging(q.as_deref())?;
    let (list, total) = app
        .notifier
        .dead_letters(&scope.project_id, offset, limit)
        .await
        .map_err(smn)?;
    let items: Vec<Value> = list.iter().map(delivery_json).collect();
    Ok(Json(
        json!({"request_id": request_id(), "dead_letter_count": total, "dead_letters": items}),
    ))
}

/// `POST …/notifications/dead-letters/replay` (trailwatch): `{"delivery_ids":[…]}`, or `{}` for all.
pub async fn replay(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        body_json(&body)?
    };
    let ids = match req.get("delivery_ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| {
                    v.as_i64().ok_or_else(|| {
                        smn(SmnError::bad_request(
                            "SMN.0010",
                            "`delivery_ids` must hold integers",
                        ))
                    })
                })
                .collect::<Result<Vec<i64>, ApiError>>()?,
        ),
        Some(_) => {
            return Err(smn(SmnError::bad_request(
                "SMN.0010",
                "`delivery_ids` must be an array",
            )));
        }
    };
    let n = app
        .notifier
        .replay(&scope.project_id, ids)
        .await
        .map_err(smn)?;
    Ok(Json(json!({"request_id": request_id(), "replayed": n})))
}

/// `GET /smn/signing-cert.pem` (public): the certificate receivers verify signatures with.
pub async fn signing_cert(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        app.notifier.cert_pem().to_owned(),
    )
        .into_response()
}

/// `GET /smn/subscription/confirm?token=&topic_urn=` (public: the token is the credential).
pub async fn confirm(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = crate::cts::parse_query(q.as_deref().unwrap_or(""))
        .map_err(|_| smn(SmnError::bad_request("SMN.0005", "invalid query string")))?;
    let get = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let urn = app
        .notifier
        .confirm(&get("topic_urn"), &get("token"))
        .await
        .map_err(smn)?;
    Ok(Json(
        json!({"request_id": request_id(), "subscription_urn": urn}),
    ))
}

/// `GET /smn/subscription/unsubscribe?subscription_urn=&token=` (public: the token is the credential).
pub async fn unsubscribe_link(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = crate::cts::parse_query(q.as_deref().unwrap_or(""))
        .map_err(|_| smn(SmnError::bad_request("SMN.0014", "invalid query string")))?;
    let get = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let urn = get("subscription_urn");
    app.notifier
        .cancel_by_link(&urn, &get("token"))
        .await
        .map_err(smn)?;
    Ok(Json(
        json!({"request_id": request_id(), "subscription_urn": urn, "status": 3}),
    ))
}
