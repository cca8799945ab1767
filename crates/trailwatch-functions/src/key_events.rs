//! CTS key-event notifications (formats §2.3): traces selected by operations, users and filter
//! rules are published straight to an SMN topic, no function needed. IO edge.
//!
//! The consumer reads the trace log with the durable cursor `cts:key-events` (starting at the
//! log's head the first time it runs) and publishes each selected trace with the idempotency key
//! `key-event:<notification_id>:<trace_id>`, then commits the cursor: at-least-once reading,
//! exactly-once alarms.

use std::time::Duration;

use serde_json::{Map, Value, json};
use trailwatch_store::functions::{self as db, NotificationRow};
use trailwatch_trace::{RenderStyle, Trace};

use crate::operations::KeyEventFilter;
use crate::service::{FssError, FunctionService};

/// The trace-log cursor of the key-event consumer.
pub const CURSOR: &str = "cts:key-events";
const BATCH: usize = 500;

/// A key-event notification request failed: a CTS-shaped error (`CTS.0003` invalid body 400,
/// `CTS.0404` unknown notification 404, `CTS.0409` name taken 409, `CTS.0004` internal 500).
pub type KeyEventError = FssError;

fn bad(msg: impl Into<String>) -> KeyEventError {
    FssError {
        status: 400,
        code: "CTS.0003",
        message: msg.into(),
    }
}

fn store_err(e: trailwatch_store::StoreError) -> KeyEventError {
    match e {
        trailwatch_store::StoreError::Conflict(m) => FssError {
            status: 409,
            code: "CTS.0409",
            message: m,
        },
        other => {
            tracing::error!(error = %other, "store failure (key events)");
            FssError {
                status: 500,
                code: "CTS.0004",
                message: "The trace store failed; the request was not completed".into(),
            }
        }
    }
}

fn not_found(id: &str) -> KeyEventError {
    FssError {
        status: 404,
        code: "CTS.0404",
        message: format!("key event notification `{id}` does not exist in this project"),
    }
}

fn check_name(name: &str) -> Result<(), KeyEventError> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(bad(format!(
            "`notification_name` must be 1-64 letters, digits or `_`, got {name:?}"
        )));
    }
    Ok(())
}

impl FunctionService {
    /// Validates a create/update body; returns the stored form (the selection members, topic
    /// and status).
    async fn key_event_body(
        &self,
        project_id: &str,
        req: &Value,
        status: &str,
    ) -> Result<Map<String, Value>, KeyEventError> {
        let Value::Object(m) = req else {
            return Err(bad("the body must be a JSON object"));
        };
        KeyEventFilter::from_value(req).map_err(|e| bad(e.to_string()))?;
        let topic = match m.get("topic_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("`topic_id` must be a string")),
        };
        match &topic {
            None if status == "enabled" => {
                return Err(bad(
                    "`topic_id` is required when the notification is enabled",
                ));
            }
            None => {}
            Some(urn) => {
                if urn.starts_with("urn:fss:") {
                    return Err(bad(
                        "`topic_id` naming a function is not supported; use an SMN topic URN",
                    ));
                }
                self.notifier
                    .get_topic(project_id, urn)
                    .await
                    .map_err(|e| bad(format!("`topic_id`: {}", e.message)))?;
            }
        }
        let mut out = Map::new();
        for key in ["operation_type", "operations", "notify_user_list", "filter"] {
            if let Some(v) = m.get(key).filter(|v| !v.is_null()) {
                out.insert(key.into(), v.clone());
            }
        }
        out.insert(
            "topic_id".into(),
            topic.map(Value::String).unwrap_or(Value::Null),
        );
        out.insert("status".into(), Value::String(status.to_owned()));
        out.insert("notification_type".into(), json!("smn"));
        Ok(out)
    }

    fn key_event_view(&self, row: &NotificationRow) -> Value {
        let mut v: Map<String, Value> = serde_json::from_str(&row.body).unwrap_or_default();
        v.insert("notification_id".into(), json!(row.notification_id));
        v.insert("notification_name".into(), json!(row.name));
        v.insert("project_id".into(), json!(row.project_id));
        v.insert("create_time".into(), json!(row.create_time));
        Value::Object(v)
    }

    /// `POST /v3/{project_id}/notifications`.
    pub async fn create_key_event(
        &self,
        project_id: &str,
        req: &Value,
    ) -> Result<Value, KeyEventError> {
        let name = req
            .get("notification_name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`notification_name` is required (a string)"))?
            .to_owned();
        check_name(&name)?;
        let status = match req.get("status").and_then(Value::as_str) {
            None => "enabled",
            Some(s @ ("enabled" | "disabled")) => s,
            Some(other) => {
                return Err(bad(format!(
                    "`status` must be enabled or disabled, got {other:?}"
                )));
            }
        };
        let body = self.key_event_body(project_id, req, status).await?;
        let row = NotificationRow {
            notification_id: uuid::Uuid::new_v4().to_string(),
            project_id: project_id.to_owned(),
            name,
            body: Value::Object(body).to_string(),
            create_time: self.clock.now_ms(),
        };
        let stored = row.clone();
        self.store
            .write(move |c| db::create_notification(c, &stored))
            .await
            .map_err(store_err)?;
        Ok(self.key_event_view(&row))
    }

    /// `PUT /v3/{project_id}/notifications` (`notification_id` and `status` required).
    pub async fn update_key_event(
        &self,
        project_id: &str,
        req: &Value,
    ) -> Result<Value, KeyEventError> {
        let id = req
            .get("notification_id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`notification_id` is required"))?
            .to_owned();
        let status = match req.get("status").and_then(Value::as_str) {
            Some(s @ ("enabled" | "disabled")) => s,
            Some(other) => {
                return Err(bad(format!(
                    "`status` must be enabled or disabled, got {other:?}"
                )));
            }
            None => return Err(bad("`status` is required (enabled or disabled)")),
        };
        let name = req
            .get("notification_name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`notification_name` is required (a string)"))?
            .to_owned();
        check_name(&name)?;
        let body = Value::Object(self.key_event_body(project_id, req, status).await?).to_string();
        let (pid, nid) = (project_id.to_owned(), id.clone());
        let row = self
            .store
            .write(move |c| {
                if !db::update_notification(c, &pid, &nid, &name, &body)? {
                    return Ok(None);
                }
                db::notification(c, &pid, &nid)
            })
            .await
            .map_err(store_err)?
            .ok_or_else(|| not_found(&id))?;
        Ok(self.key_event_view(&row))
    }

    /// `GET /v3/{project_id}/notifications/{type}?notification_name=`.
    pub async fn list_key_events(
        &self,
        project_id: &str,
        notification_type: &str,
        name: Option<&str>,
    ) -> Result<Value, KeyEventError> {
        if notification_type != "smn" {
            return Err(bad(format!(
                "notification type `{notification_type}` is not supported; use `smn`"
            )));
        }
        let pid = project_id.to_owned();
        let rows = self
            .store
            .read(move |c| db::list_notifications(c, Some(&pid)))
            .await
            .map_err(store_err)?;
        let list: Vec<Value> = rows
            .iter()
            .filter(|r| name.is_none_or(|n| r.name == n))
            .map(|r| self.key_event_view(r))
            .collect();
        Ok(json!({"notifications": list}))
    }

    /// `DELETE /v3/{project_id}/notifications?notification_id=a,b`: all or nothing.
    pub async fn delete_key_events(
        &self,
        project_id: &str,
        ids: &[String],
    ) -> Result<(), KeyEventError> {
        if ids.is_empty() {
            return Err(bad("`notification_id` is required"));
        }
        let (pid, list) = (project_id.to_owned(), ids.to_vec());
        let missing = self
            .store
            .write(move |c| {
                for id in &list {
                    if db::notification(c, &pid, id)?.is_none() {
                        return Ok(Some(id.clone()));
                    }
                }
                for id in &list {
                    db::delete_notification(c, &pid, id)?;
                }
                Ok(None)
            })
            .await
            .map_err(store_err)?;
        match missing {
            Some(id) => Err(not_found(&id)),
            None => Ok(()),
        }
    }
}

/// The consumer loop: publishes selected traces until the task is dropped.
pub async fn key_event_loop(service: std::sync::Arc<FunctionService>) {
    let mut head = service.store.subscribe_head();
    loop {
        let busy = match key_event_pass(&service).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::warn!(error = %e, "key-event pass failed; will retry");
                false
            }
        };
        if !busy {
            let _ = tokio::time::timeout(Duration::from_secs(1), head.changed()).await;
        }
    }
}

/// One pass: reads the next traces after the cursor, publishes the selected ones, commits the
/// cursor. True when a full batch was read.
pub async fn key_event_pass(
    service: &FunctionService,
) -> Result<bool, trailwatch_store::StoreError> {
    let notifications = service
        .store
        .read(|c| db::list_notifications(c, None))
        .await?;
    let cursor = match service
        .store
        .read(|c| {
            use trailwatch_store::rusqlite::OptionalExtension;
            Ok(
                c.query_row("SELECT seq FROM cursors WHERE name = ?1", [CURSOR], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?,
            )
        })
        .await?
    {
        Some(seq) => seq as u64,
        None => {
            // First run: start at the head, so history is not replayed as alarms.
            let head = service.store.head();
            service
                .store
                .write(move |c| trailwatch_store::set_cursor(c, CURSOR, head))
                .await?;
            head
        }
    };
    let active: Vec<(NotificationRow, Value, KeyEventFilter)> = notifications
        .into_iter()
        .filter_map(|n| {
            let body: Value = serde_json::from_str(&n.body).ok()?;
            if body.get("status").and_then(Value::as_str) != Some("enabled") {
                return None;
            }
            let filter = KeyEventFilter::from_value(&body).ok()?;
            Some((n, body, filter))
        })
        .collect();
    let traces = service.store.read_after(cursor, BATCH).await?;
    let Some(mut last) = traces.last().map(|t| t.seq) else {
        return Ok(false);
    };
    let mut stopped = false;
    if !active.is_empty() {
        'traces: for stored in &traces {
            let Ok(trace) = Trace::from_json_str(&stored.body) else {
                continue;
            };
            for (n, body, filter) in &active {
                if n.project_id != stored.project_id || !filter.matches(&trace) {
                    continue;
                }
                let Some(topic) = body.get("topic_id").and_then(Value::as_str) else {
                    continue;
                };
                // Within SMN's limits (subject 512 bytes, message 256 KB), so that a padded
                // trace cannot make its own alarm fail.
                let subject = cut(
                    &format!(
                        "CTS key event: {} {} {}",
                        trace.service_type, trace.resource_type, trace.trace_name
                    ),
                    500,
                );
                let message = cut(&trace.to_json_string(RenderStyle::CtsV3), 250 * 1024);
                let key = format!("key-event:{}:{}", n.notification_id, stored.trace_id);
                if let Err(e) = service
                    .notifier
                    .publish_once(
                        &n.project_id,
                        topic,
                        &json!({"subject": subject, "message": message}),
                        &key,
                    )
                    .await
                {
                    if e.status >= 500 {
                        // Transient (the store): stop before this trace and retry it next pass;
                        // alarms already sent are keyed and are not sent again.
                        tracing::warn!(error = %e.message, "key-event publish failed; will retry");
                        last = stored.seq - 1;
                        stopped = true;
                        break 'traces;
                    }
                    // A deleted topic must not stop the log for everyone: the miss is logged.
                    tracing::warn!(notification = %n.notification_id, trace = %stored.trace_id,
                        error = %e.message, "key-event notification could not be published");
                }
            }
        }
    }
    service
        .store
        .write(move |c| trailwatch_store::set_cursor(c, CURSOR, last))
        .await?;
    Ok(traces.len() == BATCH && !stopped)
}

/// `s` cut to at most `max` bytes at a character boundary, with a marker when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(16);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated]", &s[..end])
}
