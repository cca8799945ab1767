//! FunctionGraph metadata, invocation records, the async invocation queue and statistics.
//!
//! # Tables and invariants
//! - `fgs_functions`: unique `(project_id, package, name)`; `config` is the function model as
//!   JSON (the service owns its shape); `encrypted_user_data` is sealed with the server key and
//!   never leaves the service in clear. Deleting a function deletes its triggers, timer state and
//!   statistics; its invocation records stay until pruned.
//! - `fgs_triggers`: one row per trigger; `event_data` as JSON.
//! - `fgs_invocations`: one row per invocation (`request_id`). Async invocations are written
//!   `queued` before `202` is answered, so an accepted async invocation survives `kill -9`; the
//!   worker claims a due row with a lease (`next_at` moved forward) before running it, and a
//!   row that ran out of retries becomes `dead` (a dead letter that can be replayed).
//! - `fgs_stats`: per function and minute: count, failures, rejects (throttles) and durations.
//! - `fgs_timer_state`: the last tick a timer trigger fired for, so a restart neither repeats
//!   nor loses ticks (the missed-tick policy is the service's).
//! - `cts_notifications`: CTS key-event notifications (§2.3) as JSON.
//! - `fgs_code`: the code package of a function of a code runtime (Python): `kind` `zip` or
//!   `inline`, the bytes as uploaded (decoded from base64) and their SHA-512 `digest`; one row
//!   per function, replaced by a code update, deleted with the function. The runtime extracts
//!   it into a working directory on demand, so the database is the only durable copy.

use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::CachedStatements;

use crate::{Result, StoreError};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS fgs_functions (
    function_id         TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL,
    package             TEXT NOT NULL,
    name                TEXT NOT NULL,
    config              TEXT NOT NULL,
    encrypted_user_data TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (project_id, package, name)
);
CREATE TABLE IF NOT EXISTS fgs_triggers (
    trigger_id      TEXT PRIMARY KEY,
    function_id     TEXT NOT NULL REFERENCES fgs_functions(function_id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL,
    type_code       TEXT NOT NULL,
    status          TEXT NOT NULL,
    event_type_code TEXT NOT NULL,
    event_data      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fgs_triggers_function ON fgs_triggers(function_id, created_at);
CREATE INDEX IF NOT EXISTS fgs_triggers_type ON fgs_triggers(type_code, status);
CREATE TABLE IF NOT EXISTS fgs_invocations (
    request_id  TEXT PRIMARY KEY,
    function_id TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    mode        TEXT NOT NULL,
    state       TEXT NOT NULL,
    event       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER,
    started_at  INTEGER,
    duration_ms REAL,
    status      INTEGER,
    result      TEXT,
    log         TEXT,
    error       TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fgs_invocations_function ON fgs_invocations(function_id, created_at);
CREATE INDEX IF NOT EXISTS fgs_invocations_due ON fgs_invocations(next_at) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS fgs_invocations_dead ON fgs_invocations(project_id, created_at)
    WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS fgs_stats (
    function_id  TEXT NOT NULL,
    minute       INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    fail_count   INTEGER NOT NULL,
    reject_count INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    max_duration REAL NOT NULL,
    min_duration REAL NOT NULL,
    PRIMARY KEY (function_id, minute)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fgs_timer_state (
    trigger_id TEXT PRIMARY KEY REFERENCES fgs_triggers(trigger_id) ON DELETE CASCADE,
    last_tick  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fgs_code (
    function_id TEXT PRIMARY KEY REFERENCES fgs_functions(function_id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    code        BLOB NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cts_notifications (
    notification_id TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL,
    name            TEXT NOT NULL,
    body            TEXT NOT NULL,
    create_time     INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
"#;

/// A stored function.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRow {
    pub function_id: String,
    pub project_id: String,
    pub package: String,
    pub name: String,
    pub config: String,
    pub encrypted_user_data: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRow {
    pub trigger_id: String,
    pub function_id: String,
    pub project_id: String,
    pub type_code: String,
    pub status: String,
    pub event_type_code: String,
    pub event_data: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored invocation record.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRow {
    pub request_id: String,
    pub function_id: String,
    pub project_id: String,
    pub trigger: String,
    pub mode: String,
    pub state: String,
    pub event: Option<String>,
    pub attempts: i64,
    pub next_at: Option<i64>,
    pub started_at: Option<i64>,
    pub duration_ms: Option<f64>,
    pub status: Option<i64>,
    pub result: Option<String>,
    pub log: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
}

/// One minute of a function's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsRow {
    pub minute: i64,
    pub count: i64,
    pub fail_count: i64,
    pub reject_count: i64,
    pub duration_sum: f64,
    pub max_duration: f64,
    pub min_duration: f64,
}

const FUNCTION_COLUMNS: &str =
    "function_id, project_id, package, name, config, encrypted_user_data, created_at, updated_at";
const TRIGGER_COLUMNS: &str = "trigger_id, function_id, project_id, type_code, status, \
     event_type_code, event_data, created_at, updated_at";
const INVOCATION_COLUMNS: &str = "request_id, function_id, project_id, trigger, mode, state, \
     event, attempts, next_at, started_at, duration_ms, status, result, log, error, created_at";

fn function_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FunctionRow> {
    Ok(FunctionRow {
        function_id: r.get(0)?,
        project_id: r.get(1)?,
        package: r.get(2)?,
        name: r.get(3)?,
        config: r.get(4)?,
        encrypted_user_data: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

fn trigger_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TriggerRow> {
    Ok(TriggerRow {
        trigger_id: r.get(0)?,
        function_id: r.get(1)?,
        project_id: r.get(2)?,
        type_code: r.get(3)?,
        status: r.get(4)?,
        event_type_code: r.get(5)?,
        event_data: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

fn invocation_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvocationRow> {
    Ok(InvocationRow {
        request_id: r.get(0)?,
        function_id: r.get(1)?,
        project_id: r.get(2)?,
        trigger: r.get(3)?,
        mode: r.get(4)?,
        state: r.get(5)?,
        event: r.get(6)?,
        attempts: r.get(7)?,
        next_at: r.get(8)?,
        started_at: r.get(9)?,
        duration_ms: r.get(10)?,
        status: r.get(11)?,
        result: r.get(12)?,
        log: r.get(13)?,
        error: r.get(14)?,
        created_at: r.get(15)?,
    })
}

// ---- functions -------------------------------------------------------------------------

/// Creates a function; one of that package and name in the project is a
/// [`StoreError::Conflict`].
pub fn create_function(c: &Connection, f: &FunctionRow) -> Result<()> {
    if function(c, &f.project_id, &f.package, &f.name)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "function {}:{} already exists",
            f.package, f.name
        )));
    }
    c.execute_cached(
        &format!("INSERT INTO fgs_functions({FUNCTION_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"),
        params![
            f.function_id,
            f.project_id,
            f.package,
            f.name,
            f.config,
            f.encrypted_user_data,
            f.created_at,
            f.updated_at
        ],
    )?;
    Ok(())
}

pub fn function(
    c: &Connection,
    project_id: &str,
    package: &str,
    name: &str,
) -> Result<Option<FunctionRow>> {
    Ok(c.query_row_cached(
        &format!(
            "SELECT {FUNCTION_COLUMNS} FROM fgs_functions
             WHERE project_id = ?1 AND package = ?2 AND name = ?3"
        ),
        params![project_id, package, name],
        function_from_row,
    )
    .optional()?)
}

pub fn function_by_id(c: &Connection, function_id: &str) -> Result<Option<FunctionRow>> {
    Ok(c.query_row_cached(
        &format!("SELECT {FUNCTION_COLUMNS} FROM fgs_functions WHERE function_id = ?1"),
        params![function_id],
        function_from_row,
    )
    .optional()?)
}

/// A page of the project's functions in creation order, and the total count.
pub fn list_functions(
    c: &Connection,
    project_id: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<FunctionRow>, u64)> {
    let total: i64 = c.query_row_cached(
        "SELECT COUNT(*) FROM fgs_functions WHERE project_id = ?1",
        params![project_id],
        |r| r.get(0),
    )?;
    let mut st = c.prepare_cached(&format!(
        "SELECT {FUNCTION_COLUMNS} FROM fgs_functions WHERE project_id = ?1
         ORDER BY created_at, function_id LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = st
        .query_map(
            params![project_id, limit as i64, offset as i64],
            function_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, total as u64))
}

/// Replaces a function's configuration; false when it does not exist.
pub fn update_function(
    c: &Connection,
    function_id: &str,
    config: &str,
    encrypted_user_data: Option<&str>,
    now: i64,
) -> Result<bool> {
    let n = c.execute_cached(
        "UPDATE fgs_functions SET config = ?2, encrypted_user_data = ?3, updated_at = ?4
         WHERE function_id = ?1",
        params![function_id, config, encrypted_user_data, now],
    )?;
    Ok(n == 1)
}

/// A function's stored code package.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// `zip` or `inline`.
    pub kind: String,
    pub code: Vec<u8>,
    /// SHA-512 of `code`, hex.
    pub digest: String,
    pub updated_at: i64,
}

impl std::fmt::Debug for CodeRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeRow")
            .field("kind", &self.kind)
            .field("len", &self.code.len())
            .field("digest", &self.digest)
            .finish()
    }
}

/// Stores (or replaces) a function's code package.
pub fn put_code(c: &Connection, function_id: &str, row: &CodeRow) -> Result<()> {
    c.execute_cached(
        "INSERT INTO fgs_code(function_id, kind, code, digest, updated_at) VALUES (?1,?2,?3,?4,?5)
         ON CONFLICT(function_id) DO UPDATE SET kind = excluded.kind, code = excluded.code,
             digest = excluded.digest, updated_at = excluded.updated_at",
        params![function_id, row.kind, row.code, row.digest, row.updated_at],
    )?;
    Ok(())
}

/// A function's code package, if it has one.
pub fn code(c: &Connection, function_id: &str) -> Result<Option<CodeRow>> {
    Ok(c.query_row_cached(
        "SELECT kind, code, digest, updated_at FROM fgs_code WHERE function_id = ?1",
        params![function_id],
        |r| {
            Ok(CodeRow {
                kind: r.get(0)?,
                code: r.get(1)?,
                digest: r.get(2)?,
                updated_at: r.get(3)?,
            })
        },
    )
    .optional()?)
}

/// Deletes a function with its triggers, timer state and statistics; false when absent.
/// The trace-log cursor of a CTS trigger.
pub fn cts_cursor(trigger_id: &str) -> String {
    format!("fgs:cts:{trigger_id}")
}

/// The position of an LTS trigger in its stream.
pub fn lts_cursor(trigger_id: &str) -> String {
    format!("fgs:lts:{trigger_id}")
}

/// Whether the trigger still exists (a consumer checks it in the transaction that advances the
/// trigger's cursor, so a trigger deleted meanwhile leaves no cursor behind).
pub fn trigger_exists(c: &Connection, trigger_id: &str) -> Result<bool> {
    Ok(c.query_row_cached(
        "SELECT 1 FROM fgs_triggers WHERE trigger_id = ?1",
        params![trigger_id],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

fn forget_trigger_cursors(c: &Connection, trigger_id: &str) -> Result<()> {
    crate::delete_cursor(c, &cts_cursor(trigger_id))?;
    crate::delete_cursor(c, &lts_cursor(trigger_id))
}

pub fn delete_function(c: &Connection, function_id: &str) -> Result<bool> {
    for t in triggers_of(c, function_id)? {
        forget_trigger_cursors(c, &t.trigger_id)?;
    }
    c.execute_cached(
        "DELETE FROM fgs_stats WHERE function_id = ?1",
        params![function_id],
    )?;
    c.execute_cached(
        "DELETE FROM fgs_code WHERE function_id = ?1",
        params![function_id],
    )?;
    let n = c.execute_cached(
        "DELETE FROM fgs_functions WHERE function_id = ?1",
        params![function_id],
    )?;
    Ok(n == 1)
}

// ---- triggers --------------------------------------------------------------------------

pub fn create_trigger(c: &Connection, t: &TriggerRow) -> Result<()> {
    c.execute_cached(
        &format!("INSERT INTO fgs_triggers({TRIGGER_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
        params![
            t.trigger_id,
            t.function_id,
            t.project_id,
            t.type_code,
            t.status,
            t.event_type_code,
            t.event_data,
            t.created_at,
            t.updated_at
        ],
    )?;
    Ok(())
}

pub fn trigger(c: &Connection, function_id: &str, trigger_id: &str) -> Result<Option<TriggerRow>> {
    Ok(c.query_row_cached(
        &format!(
            "SELECT {TRIGGER_COLUMNS} FROM fgs_triggers WHERE function_id = ?1 AND trigger_id = ?2"
        ),
        params![function_id, trigger_id],
        trigger_from_row,
    )
    .optional()?)
}

pub fn triggers_of(c: &Connection, function_id: &str) -> Result<Vec<TriggerRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {TRIGGER_COLUMNS} FROM fgs_triggers WHERE function_id = ?1 ORDER BY created_at, trigger_id"
    ))?;
    let rows = st.query_map(params![function_id], trigger_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Every `ACTIVE` trigger of a type with its function, across projects: what the trigger
/// engine runs.
pub fn active_triggers(c: &Connection, type_code: &str) -> Result<Vec<(TriggerRow, FunctionRow)>> {
    let cols: String = FUNCTION_COLUMNS
        .split(", ")
        .map(|col| format!("f.{col}"))
        .collect::<Vec<_>>()
        .join(", ");
    let tcols: String = TRIGGER_COLUMNS
        .split(", ")
        .map(|col| format!("t.{}", col.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut st = c.prepare_cached(&format!(
        "SELECT {tcols}, {cols} FROM fgs_triggers t JOIN fgs_functions f ON f.function_id = t.function_id
         WHERE t.type_code = ?1 AND t.status = 'ACTIVE' ORDER BY t.created_at, t.trigger_id"
    ))?;
    let rows = st.query_map(params![type_code], |r| {
        let t = trigger_from_row(r)?;
        Ok((
            t,
            FunctionRow {
                function_id: r.get(9)?,
                project_id: r.get(10)?,
                package: r.get(11)?,
                name: r.get(12)?,
                config: r.get(13)?,
                encrypted_user_data: r.get(14)?,
                created_at: r.get(15)?,
                updated_at: r.get(16)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Sets a trigger's status and event data; false when absent.
pub fn update_trigger(
    c: &Connection,
    trigger_id: &str,
    status: &str,
    event_data: &str,
    now: i64,
) -> Result<bool> {
    let n = c.execute_cached(
        "UPDATE fgs_triggers SET status = ?2, event_data = ?3, updated_at = ?4 WHERE trigger_id = ?1",
        params![trigger_id, status, event_data, now],
    )?;
    Ok(n == 1)
}

pub fn delete_trigger(c: &Connection, function_id: &str, trigger_id: &str) -> Result<bool> {
    forget_trigger_cursors(c, trigger_id)?;
    let n = c.execute_cached(
        "DELETE FROM fgs_triggers WHERE function_id = ?1 AND trigger_id = ?2",
        params![function_id, trigger_id],
    )?;
    Ok(n == 1)
}

pub fn timer_last_tick(c: &Connection, trigger_id: &str) -> Result<Option<i64>> {
    Ok(c.query_row_cached(
        "SELECT last_tick FROM fgs_timer_state WHERE trigger_id = ?1",
        params![trigger_id],
        |r| r.get(0),
    )
    .optional()?)
}

pub fn set_timer_last_tick(c: &Connection, trigger_id: &str, tick_ms: i64) -> Result<()> {
    c.execute_cached(
        "INSERT INTO fgs_timer_state(trigger_id, last_tick) VALUES (?1, ?2)
         ON CONFLICT(trigger_id) DO UPDATE SET last_tick = excluded.last_tick",
        params![trigger_id, tick_ms],
    )?;
    Ok(())
}

// ---- invocations -----------------------------------------------------------------------

/// Inserts an invocation record (finished, or `queued` for the async worker).
pub fn insert_invocation(c: &Connection, i: &InvocationRow) -> Result<()> {
    c.execute_cached(
        &format!(
            "INSERT INTO fgs_invocations({INVOCATION_COLUMNS})
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)"
        ),
        params![
            i.request_id,
            i.function_id,
            i.project_id,
            i.trigger,
            i.mode,
            i.state,
            i.event,
            i.attempts,
            i.next_at,
            i.started_at,
            i.duration_ms,
            i.status,
            i.result,
            i.log,
            i.error,
            i.created_at
        ],
    )?;
    Ok(())
}

/// Rewrites an invocation record after an attempt (state, outcome, next due time).
pub fn update_invocation(c: &Connection, i: &InvocationRow) -> Result<()> {
    c.execute_cached(
        "UPDATE fgs_invocations SET state = ?2, event = ?3, attempts = ?4, next_at = ?5,
             started_at = ?6, duration_ms = ?7, status = ?8, result = ?9, log = ?10, error = ?11
         WHERE request_id = ?1",
        params![
            i.request_id,
            i.state,
            i.event,
            i.attempts,
            i.next_at,
            i.started_at,
            i.duration_ms,
            i.status,
            i.result,
            i.log,
            i.error
        ],
    )?;
    Ok(())
}

pub fn invocation(c: &Connection, request_id: &str) -> Result<Option<InvocationRow>> {
    Ok(c.query_row_cached(
        &format!("SELECT {INVOCATION_COLUMNS} FROM fgs_invocations WHERE request_id = ?1"),
        params![request_id],
        invocation_from_row,
    )
    .optional()?)
}

/// The newest `limit` invocations of a function, newest first.
pub fn recent_invocations(
    c: &Connection,
    function_id: &str,
    limit: u64,
) -> Result<Vec<InvocationRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {INVOCATION_COLUMNS} FROM fgs_invocations WHERE function_id = ?1
         ORDER BY created_at DESC, rowid DESC LIMIT ?2"
    ))?;
    let rows = st.query_map(params![function_id, limit as i64], invocation_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Claims up to `limit` queued invocations due at `now`: each is leased until `lease_until` so
/// that no other pass runs it meanwhile (a crash mid-run makes it due again after the lease).
pub fn claim_due_invocations(
    c: &Connection,
    now: i64,
    lease_until: i64,
    limit: u64,
) -> Result<Vec<InvocationRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {INVOCATION_COLUMNS} FROM fgs_invocations
         WHERE state = 'queued' AND next_at <= ?1 ORDER BY next_at LIMIT ?2"
    ))?;
    let rows = st
        .query_map(params![now, limit as i64], invocation_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut lease =
        c.prepare_cached("UPDATE fgs_invocations SET next_at = ?2 WHERE request_id = ?1")?;
    for r in &rows {
        lease.execute(params![r.request_id, lease_until])?;
    }
    Ok(rows)
}

/// The earliest `next_at` of a queued invocation, if any.
pub fn next_due_invocation(c: &Connection) -> Result<Option<i64>> {
    Ok(c.query_row_cached(
        "SELECT MIN(next_at) FROM fgs_invocations WHERE state = 'queued'",
        [],
        |r| r.get(0),
    )?)
}

/// The project's dead-lettered async invocations, newest first.
pub fn dead_invocations(
    c: &Connection,
    project_id: &str,
    limit: u64,
) -> Result<Vec<InvocationRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {INVOCATION_COLUMNS} FROM fgs_invocations WHERE project_id = ?1 AND state = 'dead'
         ORDER BY created_at DESC LIMIT ?2"
    ))?;
    let rows = st.query_map(params![project_id, limit as i64], invocation_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Makes dead invocations of the project due again with a fresh retry budget; returns how many.
pub fn replay_dead_invocations(
    c: &Connection,
    project_id: &str,
    request_ids: Option<&[String]>,
    now: i64,
) -> Result<u64> {
    let n = match request_ids {
        None => c.execute_cached(
            "UPDATE fgs_invocations SET state = 'queued', attempts = 0, next_at = ?2
             WHERE project_id = ?1 AND state = 'dead'",
            params![project_id, now],
        )?,
        Some(ids) => {
            let mut st = c.prepare_cached(
                "UPDATE fgs_invocations SET state = 'queued', attempts = 0, next_at = ?3
                 WHERE project_id = ?1 AND request_id = ?2 AND state = 'dead'",
            )?;
            let mut n = 0;
            for id in ids {
                n += st.execute(params![project_id, id, now])?;
            }
            n
        }
    };
    Ok(n as u64)
}

// ---- statistics ------------------------------------------------------------------------

/// What one invocation adds to its minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatsEvent {
    /// Ran; `failed` when the function returned an error or timed out.
    Ran { duration_ms: f64, failed: bool },
    /// Refused because the function was at its concurrency limit.
    Rejected,
}

pub fn record_stats(c: &Connection, function_id: &str, at_ms: i64, e: StatsEvent) -> Result<()> {
    let minute = at_ms.div_euclid(60_000) * 60_000;
    let (count, fail, reject, dur) = match e {
        StatsEvent::Ran {
            duration_ms,
            failed,
        } => (1, i64::from(failed), 0, Some(duration_ms)),
        StatsEvent::Rejected => (0, 0, 1, None),
    };
    c.execute_cached(
        "INSERT INTO fgs_stats(function_id, minute, count, fail_count, reject_count, duration_sum,
                               max_duration, min_duration)
         VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 0), COALESCE(?6, 0), COALESCE(?6, -1))
         ON CONFLICT(function_id, minute) DO UPDATE SET
             count = count + excluded.count,
             fail_count = fail_count + excluded.fail_count,
             reject_count = reject_count + excluded.reject_count,
             duration_sum = duration_sum + excluded.duration_sum,
             max_duration = MAX(max_duration, excluded.max_duration),
             min_duration = CASE
                 WHEN ?6 IS NULL THEN min_duration
                 WHEN min_duration < 0 THEN ?6
                 ELSE MIN(min_duration, ?6) END",
        params![function_id, minute, count, fail, reject, dur],
    )?;
    Ok(())
}

/// The minutes of a function's statistics from `since_ms` on, oldest first. `min_duration` is
/// -1 for a minute with no run.
pub fn stats_since(c: &Connection, function_id: &str, since_ms: i64) -> Result<Vec<StatsRow>> {
    let mut st = c.prepare_cached(
        "SELECT minute, count, fail_count, reject_count, duration_sum, max_duration, min_duration
         FROM fgs_stats WHERE function_id = ?1 AND minute >= ?2 ORDER BY minute",
    )?;
    let rows = st.query_map(params![function_id, since_ms], |r| {
        Ok(StatsRow {
            minute: r.get(0)?,
            count: r.get(1)?,
            fail_count: r.get(2)?,
            reject_count: r.get(3)?,
            duration_sum: r.get(4)?,
            max_duration: r.get(5)?,
            min_duration: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

// ---- CTS key-event notifications -----------------------------------------------------

/// A stored key-event notification: its id, project, name and the full JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    pub notification_id: String,
    pub project_id: String,
    pub name: String,
    pub body: String,
    pub create_time: i64,
}

fn notification_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        notification_id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        body: r.get(3)?,
        create_time: r.get(4)?,
    })
}

pub fn create_notification(c: &Connection, n: &NotificationRow) -> Result<()> {
    let exists: Option<String> = c
        .query_row(
            "SELECT notification_id FROM cts_notifications WHERE project_id = ?1 AND name = ?2",
            params![n.project_id, n.name],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!(
            "a key event notification named `{}` already exists",
            n.name
        )));
    }
    c.execute_cached(
        "INSERT INTO cts_notifications(notification_id, project_id, name, body, create_time)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            n.notification_id,
            n.project_id,
            n.name,
            n.body,
            n.create_time
        ],
    )?;
    Ok(())
}

pub fn update_notification(
    c: &Connection,
    project_id: &str,
    notification_id: &str,
    name: &str,
    body: &str,
) -> Result<bool> {
    let taken: Option<String> = c
        .query_row(
            "SELECT notification_id FROM cts_notifications WHERE project_id = ?1 AND name = ?2",
            params![project_id, name],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some_and(|id| id != notification_id) {
        return Err(StoreError::Conflict(format!(
            "a key event notification named `{name}` already exists"
        )));
    }
    let n = c.execute_cached(
        "UPDATE cts_notifications SET name = ?3, body = ?4
         WHERE project_id = ?1 AND notification_id = ?2",
        params![project_id, notification_id, name, body],
    )?;
    Ok(n == 1)
}

pub fn notification(
    c: &Connection,
    project_id: &str,
    notification_id: &str,
) -> Result<Option<NotificationRow>> {
    Ok(c.query_row_cached(
        "SELECT notification_id, project_id, name, body, create_time FROM cts_notifications
         WHERE project_id = ?1 AND notification_id = ?2",
        params![project_id, notification_id],
        notification_from_row,
    )
    .optional()?)
}

/// The project's notifications (`None`: every project's, for the key-event consumer).
pub fn list_notifications(
    c: &Connection,
    project_id: Option<&str>,
) -> Result<Vec<NotificationRow>> {
    let mut st = c.prepare_cached(
        "SELECT notification_id, project_id, name, body, create_time FROM cts_notifications
         WHERE ?1 IS NULL OR project_id = ?1 ORDER BY create_time, notification_id",
    )?;
    let rows = st.query_map(params![project_id], notification_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn delete_notification(
    c: &Connection,
    project_id: &str,
    notification_id: &str,
) -> Result<bool> {
    let n = c.execute_cached(
        "DELETE FROM cts_notifications WHERE project_id = ?1 AND notification_id = ?2",
        params![project_id, notification_id],
    )?;
    Ok(n == 1)
}

/// Housekeeping: deletes finished invocation records (succeeded or failed; queued ones and dead
/// letters are kept until replayed or handled) and statistics older than `before_ms`, and the
/// publish idempotency keys older than that (a retry comes within minutes, not weeks). Returns
/// how many rows went.
pub fn prune(c: &Connection, before_ms: i64) -> Result<u64> {
    let mut n = c.execute_cached(
        "DELETE FROM fgs_invocations WHERE state IN ('succeeded', 'failed') AND created_at < ?1",
        params![before_ms],
    )?;
    n += c.execute_cached(
        "DELETE FROM fgs_stats WHERE minute < ?1",
        params![before_ms],
    )?;
    n += c.execute_cached(
        "DELETE FROM smn_publish_keys WHERE created_at < ?1",
        params![before_ms],
    )?;
    Ok(n as u64)
}
