//! SMN metadata and the durable notification outbox.
//!
//! # Tables and invariants
//! - `smn_topics`: unique `(project_id, name)`. `smn_subscriptions`: unique
//!   `(topic_id, protocol, endpoint)`; deleting a topic deletes its subscriptions.
//! - `smn_messages`: one row per accepted publish, with the text every protocol receives, written
//!   in the same transaction as its deliveries: a `message_id` is returned only once both are
//!   durable.
//! - `smn_deliveries`: one row per (message, subscription, kind). `state` is `pending`
//!   (due at `next_at`), `delivered`, or `dead` (dead letter: permanent failure or `expires_at`
//!   passed). Every attempt is a row of `smn_attempts`.
//! - The unique `(message_id, subscription_id, kind)` makes re-inserting a delivery a no-op, so
//!   replays and retried publishes never fan out twice.
//!
//! - `smn_publish_keys`: `(project_id, idem_key) → message_id` for publishes made with an
//!   idempotency key (function effects: a retried invocation publishes nothing twice), written in
//!   the message's transaction.
//!
//! Alarm hygiene (opt-in per topic, `docs/specs/smn.md`) adds tables only, so older databases
//! open unchanged:
//! - `smn_topic_hygiene`: per-topic settings (`dedup_window_ms`, 0 = off); no row = defaults.
//!   Deleted with the topic.
//! - `smn_dedup_windows`: one open window per `(topic_id, fingerprint)` of subject + content:
//!   the first message, when the window ends, how many repeats were counted, and the summary
//!   message that reports them (created at the first repeat, its deliveries due after the window
//!   ends; its text is rewritten in the transaction that counts each repeat, so it always states
//!   the final count). Closed windows are pruned by later publishes to the topic.
//! - `smn_silences`: time-bounded mutes of a topic (by URN) with substring matchers; expiring one
//!   moves its `ends_at` to now, so silences are never deleted.
//! - `smn_message_hygiene`: what hygiene did to a message (silenced by which silence, counted
//!   into which first message and summary, or which first message a summary reports on). A
//!   silenced or counted message is still a row of `smn_messages`, only without deliveries.

use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::CachedStatements;
use serde_json::Value;

use crate::{Result, StoreError, now_ms};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS smn_topics (
    topic_id     TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    push_policy  INTEGER NOT NULL DEFAULT 0,
    attributes   TEXT NOT NULL DEFAULT '{}',
    create_time  INTEGER NOT NULL,
    update_time  INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS smn_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    topic_id        TEXT NOT NULL REFERENCES smn_topics(topic_id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    remark          TEXT NOT NULL DEFAULT '',
    headers         TEXT NOT NULL DEFAULT '{}',
    status          INTEGER NOT NULL,
    confirm_token   TEXT,
    confirm_expires INTEGER,
    create_time     INTEGER NOT NULL,
    UNIQUE (topic_id, protocol, endpoint)
);
CREATE INDEX IF NOT EXISTS smn_subscriptions_project ON smn_subscriptions(project_id, create_time);
CREATE TABLE IF NOT EXISTS smn_templates (
    template_id TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    content     TEXT NOT NULL,
    tag_names   TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    UNIQUE (project_id, name, protocol)
);
CREATE TABLE IF NOT EXISTS smn_messages (
    message_id  TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    topic_urn   TEXT NOT NULL,
    subject     TEXT,
    texts       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS smn_deliveries (
    delivery_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL,
    UNIQUE (message_id, subscription_id, kind)
);
CREATE INDEX IF NOT EXISTS smn_deliveries_due ON smn_deliveries(next_at) WHERE state = 'pending';
-- Serves the per-endpoint confirmation rate limit, which runs on every subscribe.
CREATE INDEX IF NOT EXISTS smn_deliveries_endpoint ON smn_deliveries(endpoint, kind, next_at);
CREATE INDEX IF NOT EXISTS smn_deliveries_dead ON smn_deliveries(project_id, updated_at) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS smn_attempts (
    delivery_id INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL,
    result      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
-- Alarm hygiene (all additive: databases from before it open unchanged).
CREATE TABLE IF NOT EXISTS smn_topic_hygiene (
    topic_id        TEXT PRIMARY KEY,
    dedup_window_ms INTEGER NOT NULL DEFAULT 0,
    update_time     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS smn_dedup_windows (
    topic_id           TEXT NOT NULL,
    fingerprint        TEXT NOT NULL,
    first_message_id   TEXT NOT NULL,
    started_at         INTEGER NOT NULL,
    ends_at            INTEGER NOT NULL,
    repeats            INTEGER NOT NULL DEFAULT 0,
    first_repeat_at    INTEGER,
    last_repeat_at     INTEGER,
    summary_message_id TEXT,
    base_texts         TEXT,
    PRIMARY KEY (topic_id, fingerprint)
);
CREATE INDEX IF NOT EXISTS smn_dedup_windows_end ON smn_dedup_windows(topic_id, ends_at);
CREATE TABLE IF NOT EXISTS smn_silences (
    silence_id       TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL,
    topic_urn        TEXT NOT NULL,
    subject_contains TEXT,
    message_contains TEXT,
    starts_at        INTEGER NOT NULL,
    ends_at          INTEGER NOT NULL,
    comment          TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS smn_silences_topic ON smn_silences(project_id, topic_urn, ends_at);
CREATE TABLE IF NOT EXISTS smn_message_hygiene (
    message_id         TEXT PRIMARY KEY,
    silenced_by        TEXT,
    deduplicated_into  TEXT,
    summary_message_id TEXT,
    summary_of         TEXT
);
CREATE INDEX IF NOT EXISTS smn_message_hygiene_silence ON smn_message_hygiene(silenced_by)
    WHERE silenced_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS smn_publish_keys (
    project_id TEXT NOT NULL,
    idem_key   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, idem_key)
) WITHOUT ROWID;
"#;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Topic {
    pub topic_id: String,
    pub project_id: String,
    pub name: String,
    pub display_name: String,
    pub push_policy: i64,
    pub attributes: String,
    pub create_time: i64,
    pub update_time: i64,
}

const TOPIC_COLUMNS: &str =
    "topic_id, project_id, name, display_name, push_policy, attributes, create_time, update_time";

fn row_topic(r: &rusqlite::Row<'_>) -> rusqlite::Result<Topic> {
    Ok(Topic {
        topic_id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        display_name: r.get(3)?,
        push_policy: r.get(4)?,
        attributes: r.get(5)?,
        create_time: r.get(6)?,
        update_time: r.get(7)?,
    })
}

/// Creates a topic, or returns the existing one of that name (`false`): creation is idempotent.
pub fn create_topic(
    c: &Connection,
    topic_id: &str,
    project_id: &str,
    name: &str,
    display_name: &str,
) -> Result<(Topic, bool)> {
    if let Some(t) = topic_by_name(c, project_id, name)? {
        return Ok((t, false));
    }
    let now = now_ms();
    c.execute_cached(
        "INSERT INTO smn_topics(topic_id, project_id, name, display_name, create_time, update_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![topic_id, project_id, name, display_name, now],
    )?;
    let topic =
        topic_by_name(c, project_id, name)?.ok_or_else(|| StoreError::NotFound("topic".into()))?;
    Ok((topic, true))
}

pub fn topic_by_name(c: &Connection, project_id: &str, name: &str) -> Result<Option<Topic>> {
    Ok(c.query_row_cached(
        &format!("SELECT {TOPIC_COLUMNS} FROM smn_topics WHERE project_id = ?1 AND name = ?2"),
        [project_id, name],
        row_topic,
    )
    .optional()?)
}

/// A page of the project's topics (by creation) and the total count.
pub fn list_topics(
    c: &Connection,
    project_id: &str,
    offset: u32,
    limit: u32,
) -> Result<(Vec<Topic>, u64)> {
    let total: i64 = c.query_row_cached(
        "SELECT count(*) FROM smn_topics WHERE project_id = ?1",
        [project_id],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare(&format!(
        "SELECT {TOPIC_COLUMNS} FROM smn_topics WHERE project_id = ?1 ORDER BY create_time, name LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt.query_map(params![project_id, limit, offset], row_topic)?;
    Ok((rows.collect::<Result<Vec<_>, _>>()?, total.max(0) as u64))
}

pub fn update_topic(
    c: &Connection,
    project_id: &str,
    name: &str,
    display_name: &str,
) -> Result<bool> {
    Ok(c.execute_cached(
        "UPDATE smn_topics SET display_name = ?3, update_time = ?4 WHERE project_id = ?1 AND name = ?2",
        params![project_id, name, display_name, now_ms()],
    )? == 1)
}

pub fn set_topic_attributes(
    c: &Connection,
    project_id: &str,
    name: &str,
    attributes: &str,
) -> Result<bool> {
    Ok(c.execute_cached(
        "UPDATE smn_topics SET attributes = ?3, update_time = ?4 WHERE project_id = ?1 AND name = ?2",
        params![project_id, name, attributes, now_ms()],
    )? == 1)
}

/// Deletes a topic and its subscriptions. Messages already accepted are still delivered.
pub fn delete_topic(c: &Connection, project_id: &str, name: &str) -> Result<bool> {
    let Some(topic) = topic_by_name(c, project_id, name)? else {
        return Ok(false);
    };
    c.execute_cached(
        "DELETE FROM smn_subscriptions WHERE topic_id = ?1",
        [&topic.topic_id],
    )?;
    c.execute_cached(
        "DELETE FROM smn_topic_hygiene WHERE topic_id = ?1",
        [&topic.topic_id],
    )?;
    c.execute_cached(
        "DELETE FROM smn_dedup_windows WHERE topic_id = ?1",
        [&topic.topic_id],
    )?;
    c.execute_cached(
        "DELETE FROM smn_topics WHERE topic_id = ?1",
        [&topic.topic_id],
    )?;
    Ok(true)
}

#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subscription {
    pub subscription_id: String,
    pub topic_id: String,
    pub topic_name: String,
    pub project_id: String,
    pub protocol: String,
    pub endpoint: String,
    pub remark: String,
    /// JSON object of extension headers.
    pub headers: String,
    pub status: i64,
    #[serde(skip)]
    pub confirm_token: Option<String>,
    pub confirm_expires: Option<i64>,
    pub create_time: i64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("subscription_id", &self.subscription_id)
            .field("topic_name", &self.topic_name)
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

const SUB_COLUMNS: &str = "s.subscription_id, s.topic_id, t.name, s.project_id, s.protocol, s.endpoint, s.remark, \
     s.headers, s.status, s.confirm_token, s.confirm_expires, s.create_time";

fn row_sub(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        subscription_id: r.get(0)?,
        topic_id: r.get(1)?,
        topic_name: r.get(2)?,
        project_id: r.get(3)?,
        protocol: r.get(4)?,
        endpoint: r.get(5)?,
        remark: r.get(6)?,
        headers: r.get(7)?,
        status: r.get(8)?,
        confirm_token: r.get(9)?,
        confirm_expires: r.get(10)?,
        create_time: r.get(11)?,
    })
}

#[derive(Debug)]
pub struct NewSubscription<'a> {
    pub subscription_id: &'a str,
    pub topic_id: &'a str,
    pub project_id: &'a str,
    pub protocol: &'a str,
    pub endpoint: &'a str,
    pub remark: &'a str,
    pub headers: &'a str,
    pub status: i64,
    pub confirm_token: Option<&'a str>,
    pub confirm_expires: Option<i64>,
}

/// Adds a subscription; an existing one with the same protocol and endpoint is returned as is
/// (`false`), as SMN answers `SMN.0190` "endpoint already exists" without a second subscription.
pub fn add_subscription(c: &Connection, s: NewSubscription<'_>) -> Result<(Subscription, bool)> {
    let existing = c
        .query_row(
            &format!(
                "SELECT {SUB_COLUMNS} FROM smn_subscriptions s JOIN smn_topics t ON t.topic_id = s.topic_id
                 WHERE s.topic_id = ?1 AND s.protocol = ?2 AND s.endpoint = ?3"
            ),
            [s.topic_id, s.protocol, s.endpoint],
            row_sub,
        )
        .optional()?;
    if let Some(e) = existing {
        return Ok((e, false));
    }
    c.execute_cached(
        "INSERT INTO smn_subscriptions(subscription_id, topic_id, project_id, protocol, endpoint, remark, headers,
             status, confirm_token, confirm_expires, create_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            s.subscription_id,
            s.topic_id,
            s.project_id,
            s.protocol,
            s.endpoint,
            s.remark,
            s.headers,
            s.status,
            s.confirm_token,
            s.confirm_expires,
            now_ms()
        ],
    )?;
    let sub = subscription(c, s.subscription_id)?
        .ok_or_else(|| StoreError::NotFound("subscription".into()))?;
    Ok((sub, true))
}

pub fn subscription(c: &Connection, subscription_id: &str) -> Result<Option<Subscription>> {
    Ok(c.query_row_cached(
        &format!(
            "SELECT {SUB_COLUMNS} FROM smn_subscriptions s JOIN smn_topics t ON t.topic_id = s.topic_id
             WHERE s.subscription_id = ?1"
        ),
        [subscription_id],
        row_sub,
    )
    .optional()?)
}

/// A page of subscriptions (all of the project, or of one topic) and the total count.
pub fn list_subscriptions(
    c: &Connection,
    project_id: &str,
    topic_id: Option<&str>,
    offset: u32,
    limit: u32,
) -> Result<(Vec<Subscription>, u64)> {
    let filter = if topic_id.is_some() {
        "AND s.topic_id = ?2"
    } else {
        "AND ?2 IS NULL"
    };
    let total: i64 = c.query_row_cached(
        &format!("SELECT count(*) FROM smn_subscriptions s WHERE s.project_id = ?1 {filter}"),
        params![project_id, topic_id],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare(&format!(
        "SELECT {SUB_COLUMNS} FROM smn_subscriptions s JOIN smn_topics t ON t.topic_id = s.topic_id
         WHERE s.project_id = ?1 {filter} ORDER BY s.create_time, s.subscription_id LIMIT ?3 OFFSET ?4"
    ))?;
    let rows = stmt.query_map(params![project_id, topic_id, limit, offset], row_sub)?;
    Ok((rows.collect::<Result<Vec<_>, _>>()?, total.max(0) as u64))
}

/// The confirmed subscriptions of a topic: the fan-out of a publish.
pub fn confirmed_subscriptions(c: &Connection, topic_id: &str) -> Result<Vec<Subscription>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SUB_COLUMNS} FROM smn_subscriptions s JOIN smn_topics t ON t.topic_id = s.topic_id
         WHERE s.topic_id = ?1 AND s.status = 1 ORDER BY s.create_time"
    ))?;
    let rows = stmt.query_map([topic_id], row_sub)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn set_subscription_status(c: &Connection, subscription_id: &str, status: i64) -> Result<bool> {
    Ok(c.execute_cached(
        "UPDATE smn_subscriptions SET status = ?2, confirm_token = CASE WHEN ?2 = 1 THEN NULL ELSE confirm_token END
         WHERE subscription_id = ?1",
        params![subscription_id, status],
    )? == 1)
}

/// Deletes a subscription of the project's topic `topic_name`. All three must match: an id taken
/// from another project's URN deletes nothing.
pub fn delete_subscription(
    c: &Connection,
    project_id: &str,
    topic_name: &str,
    subscription_id: &str,
) -> Result<bool> {
    Ok(c.execute_cached(
        "DELETE FROM smn_subscriptions WHERE subscription_id = ?1 AND project_id = ?2
             AND topic_id = (SELECT topic_id FROM smn_topics WHERE project_id = ?2 AND name = ?3)",
        params![subscription_id, project_id, topic_name],
    )? == 1)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TemplateRow {
    pub template_id: String,
    pub project_id: String,
    pub name: String,
    pub protocol: String,
    pub content: String,
    /// JSON array of variable names.
    pub tag_names: String,
    pub create_time: i64,
    pub update_time: i64,
}

const TEMPLATE_COLUMNS: &str =
    "template_id, project_id, name, protocol, content, tag_names, create_time, update_time";

fn row_template(r: &rusqlite::Row<'_>) -> rusqlite::Result<TemplateRow> {
    Ok(TemplateRow {
        template_id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        protocol: r.get(3)?,
        content: r.get(4)?,
        tag_names: r.get(5)?,
        create_time: r.get(6)?,
        update_time: r.get(7)?,
    })
}

pub fn create_template(c: &Connection, t: &TemplateRow) -> Result<()> {
    c.execute_cached(
        "INSERT INTO smn_templates(template_id, project_id, name, protocol, content, tag_names, create_time, update_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![t.template_id, t.project_id, t.name, t.protocol, t.content, t.tag_names, now_ms()],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            StoreError::Conflict(format!("a template `{}` for protocol `{}` already exists", t.name, t.protocol))
        }
        other => StoreError::Sqlite(other),
    })?;
    Ok(())
}

pub fn template(
    c: &Connection,
    project_id: &str,
    template_id: &str,
) -> Result<Option<TemplateRow>> {
    Ok(c.query_row_cached(
        &format!("SELECT {TEMPLATE_COLUMNS} FROM smn_templates WHERE project_id = ?1 AND template_id = ?2"),
        [project_id, template_id],
        row_template,
    )
    .optional()?)
}

pub fn template_by_name(
    c: &Connection,
    project_id: &str,
    name: &str,
    protocol: &str,
) -> Result<Option<TemplateRow>> {
    Ok(c.query_row_cached(
        &format!("SELECT {TEMPLATE_COLUMNS} FROM smn_templates WHERE project_id = ?1 AND name = ?2 AND protocol = ?3"),
        [project_id, name, protocol],
        row_template,
    )
    .optional()?)
}

pub fn list_templates(
    c: &Connection,
    project_id: &str,
    name: Option<&str>,
    protocol: Option<&str>,
    offset: u32,
    limit: u32,
) -> Result<(Vec<TemplateRow>, u64)> {
    let cond = "project_id = ?1 AND (?2 IS NULL OR name = ?2) AND (?3 IS NULL OR protocol = ?3)";
    let total: i64 = c.query_row_cached(
        &format!("SELECT count(*) FROM smn_templates WHERE {cond}"),
        params![project_id, name, protocol],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM smn_templates WHERE {cond} ORDER BY name, protocol LIMIT ?4 OFFSET ?5"
    ))?;
    let rows = stmt.query_map(
        params![project_id, name, protocol, limit, offset],
        row_template,
    )?;
    Ok((rows.collect::<Result<Vec<_>, _>>()?, total.max(0) as u64))
}

pub fn update_template(
    c: &Connection,
    project_id: &str,
    template_id: &str,
    content: &str,
    tag_names: &str,
) -> Result<bool> {
    Ok(c.execute_cached(
        "UPDATE smn_templates SET content = ?3, tag_names = ?4, update_time = ?5 WHERE project_id = ?1 AND template_id = ?2",
        params![project_id, template_id, content, tag_names, now_ms()],
    )? == 1)
}

pub fn delete_template(c: &Connection, project_id: &str, template_id: &str) -> Result<bool> {
    Ok(c.execute_cached(
        "DELETE FROM smn_templates WHERE project_id = ?1 AND template_id = ?2",
        [project_id, template_id],
    )? == 1)
}

/// One message accepted for delivery.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub message_id: &'a str,
    pub project_id: &'a str,
    pub topic_urn: &'a str,
    pub subject: Option<&'a str>,
    /// JSON object: protocol → the text that protocol receives.
    pub texts: &'a Value,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A delivery to create: one subscription and kind.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub subscription_id: &'a str,
    pub kind: &'a str,
    pub protocol: &'a str,
    pub endpoint: &'a str,
}

/// The message an idempotent publish with `key` already produced in the project, if any.
pub fn published_with_key(c: &Connection, project_id: &str, key: &str) -> Result<Option<String>> {
    Ok(c.query_row_cached(
        "SELECT message_id FROM smn_publish_keys WHERE project_id = ?1 AND idem_key = ?2",
        params![project_id, key],
        |r| r.get(0),
    )
    .optional()?)
}

/// Records that the publish with `key` produced `message_id` (same transaction as the message).
pub fn remember_publish_key(
    c: &Connection,
    project_id: &str,
    key: &str,
    message_id: &str,
    now: i64,
) -> Result<()> {
    c.execute_cached(
        "INSERT INTO smn_publish_keys(project_id, idem_key, message_id, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![project_id, key, message_id, now],
    )?;
    Ok(())
}

/// Stores a message and its deliveries (call inside one write transaction). Returns how many
/// deliveries were created.
pub fn insert_message(
    c: &Connection,
    m: &NewMessage<'_>,
    deliveries: &[NewDelivery<'_>],
) -> Result<usize> {
    insert_message_due(c, m, deliveries, m.created_at)
}

/// [`insert_message`] with deliveries first due at `due_at` instead of at once (the summary of a
/// dedup window is due when the window has closed).
pub fn insert_message_due(
    c: &Connection,
    m: &NewMessage<'_>,
    deliveries: &[NewDelivery<'_>],
    due_at: i64,
) -> Result<usize> {
    c.execute_cached(
        "INSERT INTO smn_messages(message_id, project_id, topic_urn, subject, texts, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![m.message_id, m.project_id, m.topic_urn, m.subject, m.texts.to_string(), m.created_at, m.expires_at],
    )?;
    let mut stmt = c.prepare_cached(
        "INSERT INTO smn_deliveries(message_id, subscription_id, project_id, kind, protocol, endpoint, state, next_at,
             expires_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9)
         ON CONFLICT(message_id, subscription_id, kind) DO NOTHING",
    )?;
    let mut n = 0;
    for d in deliveries {
        n += stmt.execute(params![
            m.message_id,
            d.subscription_id,
            m.project_id,
            d.kind,
            d.protocol,
            d.endpoint,
            due_at,
            m.expires_at,
            m.created_at
        ])?;
    }
    Ok(n)
}

/// A delivery with what the deliverer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery_id: i64,
    pub message_id: String,
    pub subscription_id: String,
    pub project_id: String,
    pub kind: String,
    pub protocol: String,
    pub endpoint: String,
    pub attempts: i64,
    pub next_at: i64,
    pub expires_at: i64,
    pub topic_urn: String,
    pub subject: Option<String>,
    /// JSON object protocol → text.
    pub texts: String,
    pub created_at: i64,
}

const DUE_COLUMNS: &str =
    "d.delivery_id, d.message_id, d.subscription_id, d.project_id, d.kind, d.protocol, d.endpoint,
     d.attempts, d.next_at, d.expires_at, m.topic_urn, m.subject, m.texts, m.created_at";

fn row_due(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueDelivery> {
    Ok(DueDelivery {
        delivery_id: r.get(0)?,
        message_id: r.get(1)?,
        subscription_id: r.get(2)?,
        project_id: r.get(3)?,
        kind: r.get(4)?,
        protocol: r.get(5)?,
        endpoint: r.get(6)?,
        attempts: r.get(7)?,
        next_at: r.get(8)?,
        expires_at: r.get(9)?,
        topic_urn: r.get(10)?,
        subject: r.get(11)?,
        texts: r.get(12)?,
        created_at: r.get(13)?,
    })
}

/// Pending deliveries due by `now`, oldest first.
pub fn due_deliveries(c: &Connection, now: i64, limit: usize) -> Result<Vec<DueDelivery>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {DUE_COLUMNS} FROM smn_deliveries d JOIN smn_messages m ON m.message_id = d.message_id
         WHERE d.state = 'pending' AND d.next_at <= ?1 ORDER BY d.next_at LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![now, limit as i64], row_due)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// When the next pending delivery is due, if any.
pub fn next_due_at(c: &Connection) -> Result<Option<i64>> {
    Ok(c.query_row_cached(
        "SELECT min(next_at) FROM smn_deliveries WHERE state = 'pending'",
        [],
        |r| r.get(0),
    )?)
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at this time.
    Retry {
        next_at: i64,
    },
    /// Give up: a permanent failure, or the message's time to live has passed.
    Dead,
}

/// Claims a due delivery for one attempt: moves its `next_at` forward by `lease_ms` (so no other
/// pass sees it due while it is being sent, and a crashed sender's claim expires) — but only if
/// it is still pending with the attempt count the caller read. `false`: someone else has it, or
/// it is no longer pending; do not send.
pub fn claim_delivery(
    c: &Connection,
    delivery_id: i64,
    seen_attempts: i64,
    now: i64,
    lease_ms: i64,
) -> Result<bool> {
    let mut stmt = c.prepare_cached(
        "UPDATE smn_deliveries SET next_at = ?4 WHERE delivery_id = ?1 AND state = 'pending'
             AND attempts = ?2 AND next_at <= ?3",
    )?;
    Ok(stmt.execute(params![delivery_id, seen_attempts, now, now + lease_ms])? == 1)
}

/// Claims several due deliveries at once (see [`claim_delivery`]), each with the attempt count
/// the caller read. Returns the ids claimed.
pub fn claim_deliveries(
    c: &Connection,
    deliveries: &[(i64, i64)],
    now: i64,
    lease_ms: i64,
) -> Result<Vec<i64>> {
    let mut claimed = Vec::with_capacity(deliveries.len());
    for &(id, seen) in deliveries {
        if claim_delivery(c, id, seen, now, lease_ms)? {
            claimed.push(id);
        }
    }
    Ok(claimed)
}

/// Moves pending deliveries' `next_at` (their endpoint is paused by its circuit breaker).
pub fn postpone_deliveries(c: &Connection, deliveries: &[(i64, i64)]) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "UPDATE smn_deliveries SET next_at = ?2 WHERE delivery_id = ?1 AND state = 'pending'",
    )?;
    for &(id, next_at) in deliveries {
        stmt.execute(params![id, next_at])?;
    }
    Ok(())
}

/// Records one attempt and moves the delivery to its new state, only if it is still the attempt
/// that was claimed (pending, `seen_attempts` attempts so far). Returns whether it was recorded.
pub fn record_attempt(
    c: &Connection,
    delivery_id: i64,
    seen_attempts: i64,
    at: i64,
    latency_ms: i64,
    result: &str,
    outcome: &AttemptOutcome,
) -> Result<bool> {
    let attempt: Option<i64> = c
        .query_row(
            "UPDATE smn_deliveries SET attempts = attempts + 1, updated_at = ?2, last_error = ?3,
             state = ?4, next_at = ?5
         WHERE delivery_id = ?1 AND state = 'pending' AND attempts = ?6 RETURNING attempts",
            params![
                delivery_id,
                at,
                if *outcome == AttemptOutcome::Delivered {
                    None
                } else {
                    Some(result)
                },
                match outcome {
                    AttemptOutcome::Delivered => "delivered",
                    AttemptOutcome::Retry { .. } => "pending",
                    AttemptOutcome::Dead => "dead",
                },
                match outcome {
                    AttemptOutcome::Retry { next_at } => *next_at,
                    _ => at,
                },
                seen_attempts
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(attempt) = attempt else {
        return Ok(false);
    };
    c.execute_cached(
        "INSERT INTO smn_attempts(delivery_id, attempt, at, latency_ms, result, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            delivery_id,
            attempt,
            at,
            latency_ms,
            result,
            match outcome {
                AttemptOutcome::Delivered => "delivered",
                AttemptOutcome::Retry { .. } => "retry",
                AttemptOutcome::Dead => "dead",
            }
        ],
    )?;
    Ok(true)
}

/// A delivery as listed for people (deliveries and dead letters).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryInfo {
    pub delivery_id: i64,
    pub message_id: String,
    pub subscription_id: String,
    pub kind: String,
    pub protocol: String,
    pub endpoint: String,
    pub state: String,
    pub attempts: i64,
    pub next_at: i64,
    pub expires_at: i64,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

const INFO_COLUMNS: &str =
    "delivery_id, message_id, subscription_id, kind, protocol, endpoint, state, attempts, next_at,
     expires_at, last_error, updated_at";

fn row_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryInfo> {
    Ok(DeliveryInfo {
        delivery_id: r.get(0)?,
        message_id: r.get(1)?,
        subscription_id: r.get(2)?,
        kind: r.get(3)?,
        protocol: r.get(4)?,
        endpoint: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        next_at: r.get(8)?,
        expires_at: r.get(9)?,
        last_error: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

pub fn deliveries_of_message(
    c: &Connection,
    project_id: &str,
    message_id: &str,
) -> Result<Vec<DeliveryInfo>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {INFO_COLUMNS} FROM smn_deliveries WHERE project_id = ?1 AND message_id = ?2 ORDER BY delivery_id"
    ))?;
    let rows = stmt.query_map([project_id, message_id], row_info)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    pub attempt: i64,
    pub at: i64,
    pub latency_ms: i64,
    pub result: String,
    pub outcome: String,
}

pub fn attempts(c: &Connection, delivery_id: i64) -> Result<Vec<Attempt>> {
    let mut stmt =
        c.prepare("SELECT attempt, at, latency_ms, result, outcome FROM smn_attempts WHERE delivery_id = ?1 ORDER BY attempt")?;
    let rows = stmt.query_map([delivery_id], |r| {
        Ok(Attempt {
            attempt: r.get(0)?,
            at: r.get(1)?,
            latency_ms: r.get(2)?,
            result: r.get(3)?,
            outcome: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn dead_letters(
    c: &Connection,
    project_id: &str,
    offset: u32,
    limit: u32,
) -> Result<(Vec<DeliveryInfo>, u64)> {
    let total: i64 = c.query_row_cached(
        "SELECT count(*) FROM smn_deliveries WHERE project_id = ?1 AND state = 'dead'",
        [project_id],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare(&format!(
        "SELECT {INFO_COLUMNS} FROM smn_deliveries WHERE project_id = ?1 AND state = 'dead'
         ORDER BY updated_at DESC, delivery_id DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt.query_map(params![project_id, limit, offset], row_info)?;
    Ok((rows.collect::<Result<Vec<_>, _>>()?, total.max(0) as u64))
}

/// Puts dead letters back in the queue, due now, with a fresh time to live. `None` replays all
/// of the project's dead letters. Returns how many were replayed.
pub fn replay_dead_letters(
    c: &Connection,
    project_id: &str,
    delivery_ids: Option<&[i64]>,
    now: i64,
    ttl_ms: i64,
) -> Result<usize> {
    let mut n = 0;
    match delivery_ids {
        None => {
            n += c.execute_cached(
                "UPDATE smn_deliveries SET state = 'pending', next_at = ?2, expires_at = ?3, updated_at = ?2
                 WHERE project_id = ?1 AND state = 'dead'",
                params![project_id, now, now + ttl_ms],
            )?;
        }
        Some(ids) => {
            let mut stmt = c.prepare_cached(
                "UPDATE smn_deliveries SET state = 'pending', next_at = ?3, expires_at = ?4, updated_at = ?3
                 WHERE project_id = ?1 AND delivery_id = ?2 AND state = 'dead'",
            )?;
            for id in ids {
                n += stmt.execute(params![project_id, id, now, now + ttl_ms])?;
            }
        }
    }
    Ok(n)
}

// ---- alarm hygiene ----------------------------------------------------------------------------

/// The dedup window of a topic in milliseconds (0 = off, also when never set).
pub fn dedup_window_ms(c: &Connection, topic_id: &str) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT dedup_window_ms FROM smn_topic_hygiene WHERE topic_id = ?1")?
            .query_row([topic_id], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

pub fn set_dedup_window_ms(c: &Connection, topic_id: &str, window_ms: i64) -> Result<()> {
    c.execute_cached(
        "INSERT INTO smn_topic_hygiene(topic_id, dedup_window_ms, update_time) VALUES (?1, ?2, ?3)
         ON CONFLICT(topic_id) DO UPDATE SET dedup_window_ms = excluded.dedup_window_ms,
             update_time = excluded.update_time",
        params![topic_id, window_ms, now_ms()],
    )?;
    Ok(())
}

/// The open dedup window of one (topic, fingerprint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupWindow {
    pub first_message_id: String,
    pub started_at: i64,
    pub ends_at: i64,
    /// Repeats counted so far (not counting the first message).
    pub repeats: i64,
    pub first_repeat_at: Option<i64>,
    pub last_repeat_at: Option<i64>,
    pub summary_message_id: Option<String>,
    /// JSON object protocol → text of the first repeat: what the summary is rendered from.
    pub base_texts: Option<String>,
}

/// The window of `fingerprint` on the topic that is still open at `now`, if any. Closed windows
/// of the topic are deleted on the way: their summary text is final.
pub fn open_dedup_window(
    c: &Connection,
    topic_id: &str,
    fingerprint: &str,
    now: i64,
) -> Result<Option<DedupWindow>> {
    c.prepare_cached("DELETE FROM smn_dedup_windows WHERE topic_id = ?1 AND ends_at <= ?2")?
        .execute(params![topic_id, now])?;
    Ok(c.prepare_cached(
        "SELECT first_message_id, started_at, ends_at, repeats, first_repeat_at, last_repeat_at,
                 summary_message_id, base_texts
             FROM smn_dedup_windows WHERE topic_id = ?1 AND fingerprint = ?2 AND ends_at > ?3",
    )?
    .query_row(params![topic_id, fingerprint, now], |r| {
        Ok(DedupWindow {
            first_message_id: r.get(0)?,
            started_at: r.get(1)?,
            ends_at: r.get(2)?,
            repeats: r.get(3)?,
            first_repeat_at: r.get(4)?,
            last_repeat_at: r.get(5)?,
            summary_message_id: r.get(6)?,
            base_texts: r.get(7)?,
        })
    })
    .optional()?)
}

/// Opens a window for `fingerprint` with `first_message_id`, replacing a closed one.
pub fn start_dedup_window(
    c: &Connection,
    topic_id: &str,
    fingerprint: &str,
    first_message_id: &str,
    started_at: i64,
    ends_at: i64,
) -> Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO smn_dedup_windows(topic_id, fingerprint, first_message_id, started_at, ends_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![topic_id, fingerprint, first_message_id, started_at, ends_at])?;
    Ok(())
}

/// Stores the window's state after counting a repeat (`w` as updated by the caller).
pub fn update_dedup_window(
    c: &Connection,
    topic_id: &str,
    fingerprint: &str,
    w: &DedupWindow,
) -> Result<()> {
    c.prepare_cached(
        "UPDATE smn_dedup_windows SET repeats = ?3, first_repeat_at = ?4, last_repeat_at = ?5,
             summary_message_id = ?6, base_texts = ?7
         WHERE topic_id = ?1 AND fingerprint = ?2",
    )?
    .execute(params![
        topic_id,
        fingerprint,
        w.repeats,
        w.first_repeat_at,
        w.last_repeat_at,
        w.summary_message_id,
        w.base_texts
    ])?;
    Ok(())
}

/// Replaces the stored texts of a message (the summary of a dedup window, while it is pending).
pub fn set_message_texts(c: &Connection, message_id: &str, texts: &Value) -> Result<()> {
    c.prepare_cached("UPDATE smn_messages SET texts = ?2 WHERE message_id = ?1")?
        .execute(params![message_id, texts.to_string()])?;
    Ok(())
}

/// What hygiene did to a message. All `None` for a message delivered as usual.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MessageHygiene {
    /// The silence that muted it (no deliveries).
    pub silenced_by: Option<String>,
    /// The first message of the dedup window it was counted into (no deliveries).
    pub deduplicated_into: Option<String>,
    /// The summary that reports it (for a counted repeat).
    pub summary_message_id: Option<String>,
    /// For a summary: the first message of the window it reports on.
    pub summary_of: Option<String>,
}

pub fn set_message_hygiene(c: &Connection, message_id: &str, h: &MessageHygiene) -> Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO smn_message_hygiene(message_id, silenced_by, deduplicated_into,
             summary_message_id, summary_of)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        message_id,
        h.silenced_by,
        h.deduplicated_into,
        h.summary_message_id,
        h.summary_of
    ])?;
    Ok(())
}

/// The hygiene record of one of the project's messages (default when there is none).
pub fn message_hygiene(
    c: &Connection,
    project_id: &str,
    message_id: &str,
) -> Result<MessageHygiene> {
    Ok(c.query_row_cached(
        "SELECT h.silenced_by, h.deduplicated_into, h.summary_message_id, h.summary_of
             FROM smn_message_hygiene h JOIN smn_messages m ON m.message_id = h.message_id
             WHERE m.project_id = ?1 AND h.message_id = ?2",
        [project_id, message_id],
        |r| {
            Ok(MessageHygiene {
                silenced_by: r.get(0)?,
                deduplicated_into: r.get(1)?,
                summary_message_id: r.get(2)?,
                summary_of: r.get(3)?,
            })
        },
    )
    .optional()?
    .unwrap_or_default())
}

/// A silence: while `starts_at <= now < ends_at`, messages to `topic_urn` whose subject contains
/// `subject_contains` and whose message contains `message_contains` (each when set) are muted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Silence {
    pub silence_id: String,
    pub project_id: String,
    pub topic_urn: String,
    pub subject_contains: Option<String>,
    pub message_contains: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_at: i64,
    /// Messages it muted so far (filled by listings).
    pub silenced_messages: i64,
}

const SILENCE_COLUMNS: &str =
    "s.silence_id, s.project_id, s.topic_urn, s.subject_contains, s.message_contains,
     s.starts_at, s.ends_at, s.comment, s.created_at";

fn row_silence(r: &rusqlite::Row<'_>) -> rusqlite::Result<Silence> {
    Ok(Silence {
        silence_id: r.get(0)?,
        project_id: r.get(1)?,
        topic_urn: r.get(2)?,
        subject_contains: r.get(3)?,
        message_contains: r.get(4)?,
        starts_at: r.get(5)?,
        ends_at: r.get(6)?,
        comment: r.get(7)?,
        created_at: r.get(8)?,
        silenced_messages: r.get(9)?,
    })
}

pub fn insert_silence(c: &Connection, s: &Silence) -> Result<()> {
    c.execute_cached(
        "INSERT INTO smn_silences(silence_id, project_id, topic_urn, subject_contains, message_contains,
             starts_at, ends_at, comment, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            s.silence_id,
            s.project_id,
            s.topic_urn,
            s.subject_contains,
            s.message_contains,
            s.starts_at,
            s.ends_at,
            s.comment,
            s.created_at
        ],
    )?;
    Ok(())
}

/// How many silences of the topic have not ended by `now` (active or starting later).
pub fn unexpired_silences(
    c: &Connection,
    project_id: &str,
    topic_urn: &str,
    now: i64,
) -> Result<i64> {
    Ok(c.query_row_cached(
        "SELECT count(*) FROM smn_silences WHERE project_id = ?1 AND topic_urn = ?2 AND ends_at > ?3",
        params![project_id, topic_urn, now],
        |r| r.get(0),
    )?)
}

/// The silences of the topic active at `now`, oldest first.
pub fn active_silences(
    c: &Connection,
    project_id: &str,
    topic_urn: &str,
    now: i64,
) -> Result<Vec<Silence>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SILENCE_COLUMNS}, 0 FROM smn_silences s
         WHERE s.project_id = ?1 AND s.topic_urn = ?2 AND s.ends_at > ?3 AND s.starts_at <= ?3
         ORDER BY s.created_at, s.silence_id"
    ))?;
    let rows = stmt.query_map(params![project_id, topic_urn, now], row_silence)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A page of the project's silences (of one topic, when given), newest first, and the total.
pub fn list_silences(
    c: &Connection,
    project_id: &str,
    topic_urn: Option<&str>,
    offset: u32,
    limit: u32,
) -> Result<(Vec<Silence>, u64)> {
    let cond = "s.project_id = ?1 AND (?2 IS NULL OR s.topic_urn = ?2)";
    let total: i64 = c.query_row_cached(
        &format!("SELECT count(*) FROM smn_silences s WHERE {cond}"),
        params![project_id, topic_urn],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare(&format!(
        "SELECT {SILENCE_COLUMNS},
             (SELECT count(*) FROM smn_message_hygiene h WHERE h.silenced_by = s.silence_id)
         FROM smn_silences s WHERE {cond}
         ORDER BY s.created_at DESC, s.silence_id LIMIT ?3 OFFSET ?4"
    ))?;
    let rows = stmt.query_map(params![project_id, topic_urn, limit, offset], row_silence)?;
    Ok((rows.collect::<Result<Vec<_>, _>>()?, total.max(0) as u64))
}

/// Ends a silence at `now` (one that has not started yet ends before it starts). `None` when the
/// project has no such silence; `Some(false)` when it had already ended.
pub fn expire_silence(
    c: &Connection,
    project_id: &str,
    silence_id: &str,
    now: i64,
) -> Result<Option<bool>> {
    let ends_at: Option<i64> = c
        .query_row(
            "SELECT ends_at FROM smn_silences WHERE project_id = ?1 AND silence_id = ?2",
            [project_id, silence_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(ends_at) = ends_at else {
        return Ok(None);
    };
    if ends_at <= now {
        return Ok(Some(false));
    }
    c.execute_cached(
        "UPDATE smn_silences SET ends_at = ?3, starts_at = min(starts_at, ?3)
         WHERE project_id = ?1 AND silence_id = ?2",
        params![project_id, silence_id, now],
    )?;
    Ok(Some(true))
}

impl Silence {
    /// Whether the silence mutes messages published at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        // Additive: opening again (an existing database) changes nothing.
        c.execute_batch(SCHEMA).unwrap();
        c
    }

    fn silence(id: &str, starts_at: i64, ends_at: i64) -> Silence {
        Silence {
            silence_id: id.into(),
            project_id: "p".into(),
            topic_urn: "urn:smn:local:p:t".into(),
            subject_contains: Some("CTS".into()),
            message_contains: None,
            starts_at,
            ends_at,
            comment: String::new(),
            created_at: starts_at,
            silenced_messages: 0,
        }
    }

    #[test]
    fn silences_are_active_in_their_time_and_expire_once() {
        let c = db();
        insert_silence(&c, &silence("a", 100, 200)).unwrap();
        insert_silence(&c, &silence("later", 150, 300)).unwrap();
        let ids = |now| -> Vec<String> {
            active_silences(&c, "p", "urn:smn:local:p:t", now)
                .unwrap()
                .into_iter()
                .map(|s| s.silence_id)
                .collect()
        };
        assert_eq!(ids(99), Vec::<String>::new());
        assert_eq!(ids(100), vec!["a"]);
        assert_eq!(ids(160), vec!["a", "later"]);
        assert_eq!(ids(200), vec!["later"]);
        assert_eq!(
            unexpired_silences(&c, "p", "urn:smn:local:p:t", 120).unwrap(),
            2
        );
        // Expiring a silence that has not started yet: it never becomes active.
        assert_eq!(expire_silence(&c, "p", "later", 120).unwrap(), Some(true));
        assert_eq!(ids(160), vec!["a"]);
        assert_eq!(expire_silence(&c, "p", "later", 130).unwrap(), Some(false));
        assert_eq!(expire_silence(&c, "other", "a", 130).unwrap(), None);
        let (list, total) = list_silences(&c, "p", None, 0, 10).unwrap();
        assert_eq!((list.len(), total), (2, 2));
    }

    #[test]
    fn dedup_windows_close_and_are_pruned() {
        let c = db();
        assert_eq!(dedup_window_ms(&c, "t").unwrap(), 0);
        set_dedup_window_ms(&c, "t", 2000).unwrap();
        set_dedup_window_ms(&c, "t", 3000).unwrap();
        assert_eq!(dedup_window_ms(&c, "t").unwrap(), 3000);
        start_dedup_window(&c, "t", "f", "m1", 1000, 4000).unwrap();
        let mut w = open_dedup_window(&c, "t", "f", 3999).unwrap().unwrap();
        assert_eq!((w.first_message_id.as_str(), w.repeats), ("m1", 0));
        w.repeats = 2;
        w.summary_message_id = Some("s1".into());
        update_dedup_window(&c, "t", "f", &w).unwrap();
        assert_eq!(
            open_dedup_window(&c, "t", "f", 3999)
                .unwrap()
                .unwrap()
                .repeats,
            2
        );
        assert_eq!(open_dedup_window(&c, "t", "f", 4000).unwrap(), None);
        let left: i64 = c
            .query_row("SELECT count(*) FROM smn_dedup_windows", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "a closed window is pruned");
    }
}
