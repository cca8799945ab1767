//! LTS (Log Tank Service) metadata and the durable log-record table.
//!
//! # Tables and invariants
//! - `lts_groups`: unique `(project_id, name)`; `ttl_in_days` bounds how long its records are
//!   kept. Deleting a group deletes its streams and their records.
//! - `lts_streams`: unique `(group_id, name)`.
//! - `lts_logs`: one row per reported log line, `seq` strictly increasing and never reused
//!   (AUTOINCREMENT), so the LTS trigger engine reads a stream with a durable cursor exactly as
//!   the trace consumers read the trace log. A line is acknowledged only after the group commit
//!   that wrote it.

use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::CachedStatements;

use crate::{Result, StoreError};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS lts_groups (
    group_id      TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL,
    name          TEXT NOT NULL,
    ttl_in_days   INTEGER NOT NULL,
    creation_time INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS lts_streams (
    stream_id     TEXT PRIMARY KEY,
    group_id      TEXT NOT NULL REFERENCES lts_groups(group_id) ON DELETE CASCADE,
    project_id    TEXT NOT NULL,
    name          TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    UNIQUE (group_id, name)
);
CREATE TABLE IF NOT EXISTS lts_logs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id   TEXT NOT NULL REFERENCES lts_streams(stream_id) ON DELETE CASCADE,
    time_ns     INTEGER NOT NULL,
    content     TEXT NOT NULL,
    labels      TEXT NOT NULL,
    log_uid     TEXT NOT NULL,
    ingested_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lts_logs_stream_seq ON lts_logs(stream_id, seq);
CREATE INDEX IF NOT EXISTS lts_logs_stream_time ON lts_logs(stream_id, time_ns, seq);
"#;

/// A log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroup {
    pub group_id: String,
    pub project_id: String,
    pub name: String,
    pub ttl_in_days: i64,
    pub creation_time: i64,
}

/// A log stream (FunctionGraph's LTS trigger calls it a "log topic").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    pub stream_id: String,
    pub group_id: String,
    pub project_id: String,
    pub name: String,
    pub creation_time: i64,
}

/// One line to append to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogLine {
    pub time_ns: i64,
    pub content: String,
    /// The batch's labels as a JSON object text.
    pub labels: String,
    pub log_uid: String,
}

/// A stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub seq: u64,
    pub stream_id: String,
    pub time_ns: i64,
    pub content: String,
    pub labels: String,
    pub log_uid: String,
}

fn group_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogGroup> {
    Ok(LogGroup {
        group_id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        ttl_in_days: r.get(3)?,
        creation_time: r.get(4)?,
    })
}

fn stream_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogStream> {
    Ok(LogStream {
        stream_id: r.get(0)?,
        group_id: r.get(1)?,
        project_id: r.get(2)?,
        name: r.get(3)?,
        creation_time: r.get(4)?,
    })
}

fn line_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogLine> {
    Ok(LogLine {
        seq: r.get::<_, i64>(0)? as u64,
        stream_id: r.get(1)?,
        time_ns: r.get(2)?,
        content: r.get(3)?,
        labels: r.get(4)?,
        log_uid: r.get(5)?,
    })
}

const GROUP_COLUMNS: &str = "group_id, project_id, name, ttl_in_days, creation_time";
const STREAM_COLUMNS: &str = "stream_id, group_id, project_id, name, creation_time";
const LINE_COLUMNS: &str = "seq, stream_id, time_ns, content, labels, log_uid";

/// Creates a group; a group of that name in the project is a [`StoreError::Conflict`].
pub fn create_group(c: &Connection, g: &LogGroup) -> Result<()> {
    let exists: Option<String> = c
        .query_row(
            "SELECT group_id FROM lts_groups WHERE project_id = ?1 AND name = ?2",
            params![g.project_id, g.name],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!(
            "a log group named `{}` already exists",
            g.name
        )));
    }
    c.execute_cached(
        "INSERT INTO lts_groups(group_id, project_id, name, ttl_in_days, creation_time)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            g.group_id,
            g.project_id,
            g.name,
            g.ttl_in_days,
            g.creation_time
        ],
    )?;
    Ok(())
}

pub fn group(c: &Connection, project_id: &str, group_id: &str) -> Result<Option<LogGroup>> {
    Ok(c.query_row_cached(
        &format!("SELECT {GROUP_COLUMNS} FROM lts_groups WHERE project_id = ?1 AND group_id = ?2"),
        params![project_id, group_id],
        group_from_row,
    )
    .optional()?)
}

pub fn list_groups(c: &Connection, project_id: &str) -> Result<Vec<LogGroup>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM lts_groups WHERE project_id = ?1 ORDER BY creation_time, name"
    ))?;
    let rows = st.query_map(params![project_id], group_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Sets a group's retention; false when the group does not exist in the project.
pub fn update_group_ttl(
    c: &Connection,
    project_id: &str,
    group_id: &str,
    ttl_in_days: i64,
) -> Result<bool> {
    let n = c.execute_cached(
        "UPDATE lts_groups SET ttl_in_days = ?3 WHERE project_id = ?1 AND group_id = ?2",
        params![project_id, group_id, ttl_in_days],
    )?;
    Ok(n == 1)
}

/// Deletes a group with its streams and records; false when it does not exist in the project.
pub fn delete_group(c: &Connection, project_id: &str, group_id: &str) -> Result<bool> {
    // Another project's group id must not reach its lines.
    if group(c, project_id, group_id)?.is_none() {
        return Ok(false);
    }
    c.execute_cached(
        "DELETE FROM lts_logs WHERE stream_id IN (SELECT stream_id FROM lts_streams WHERE group_id = ?1)",
        params![group_id],
    )?;
    let n = c.execute_cached(
        "DELETE FROM lts_groups WHERE project_id = ?1 AND group_id = ?2",
        params![project_id, group_id],
    )?;
    Ok(n == 1)
}

/// Creates a stream in a group; a stream of that name in the group is a
/// [`StoreError::Conflict`].
pub fn create_stream(c: &Connection, s: &LogStream) -> Result<()> {
    let exists: Option<String> = c
        .query_row(
            "SELECT stream_id FROM lts_streams WHERE group_id = ?1 AND name = ?2",
            params![s.group_id, s.name],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!(
            "a log stream named `{}` already exists in this group",
            s.name
        )));
    }
    c.execute_cached(
        "INSERT INTO lts_streams(stream_id, group_id, project_id, name, creation_time)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            s.stream_id,
            s.group_id,
            s.project_id,
            s.name,
            s.creation_time
        ],
    )?;
    Ok(())
}

/// The stream `stream_id` of group `group_id` in the project.
pub fn stream(
    c: &Connection,
    project_id: &str,
    group_id: &str,
    stream_id: &str,
) -> Result<Option<LogStream>> {
    Ok(c.query_row_cached(
        &format!(
            "SELECT {STREAM_COLUMNS} FROM lts_streams
             WHERE project_id = ?1 AND group_id = ?2 AND stream_id = ?3"
        ),
        params![project_id, group_id, stream_id],
        stream_from_row,
    )
    .optional()?)
}

pub fn list_streams(c: &Connection, project_id: &str, group_id: &str) -> Result<Vec<LogStream>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {STREAM_COLUMNS} FROM lts_streams WHERE project_id = ?1 AND group_id = ?2
         ORDER BY creation_time, name"
    ))?;
    let rows = st.query_map(params![project_id, group_id], stream_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Deletes a stream and its records; false when it does not exist.
pub fn delete_stream(
    c: &Connection,
    project_id: &str,
    group_id: &str,
    stream_id: &str,
) -> Result<bool> {
    if stream(c, project_id, group_id, stream_id)?.is_none() {
        return Ok(false);
    }
    c.execute_cached(
        "DELETE FROM lts_logs WHERE stream_id = ?1",
        params![stream_id],
    )?;
    c.execute_cached(
        "DELETE FROM lts_streams WHERE stream_id = ?1",
        params![stream_id],
    )?;
    Ok(true)
}

/// Appends lines to a stream in order; returns the sequence number of the last one.
pub fn append_lines(
    c: &Connection,
    stream_id: &str,
    lines: &[NewLogLine],
    ingested_at: i64,
) -> Result<u64> {
    let mut st = c.prepare_cached(
        "INSERT INTO lts_logs(stream_id, time_ns, content, labels, log_uid, ingested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut last = 0;
    for l in lines {
        st.execute(params![
            stream_id,
            l.time_ns,
            l.content,
            l.labels,
            l.log_uid,
            ingested_at
        ])?;
        last = c.last_insert_rowid() as u64;
    }
    Ok(last)
}

/// Up to `limit` lines of a stream with `seq > after`, oldest first: the LTS trigger's read.
pub fn lines_after(
    c: &Connection,
    stream_id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<LogLine>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {LINE_COLUMNS} FROM lts_logs WHERE stream_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let rows = st.query_map(
        params![stream_id, after as i64, limit as i64],
        line_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The newest sequence number of a stream (0 when empty).
pub fn stream_head(c: &Connection, stream_id: &str) -> Result<u64> {
    let head: Option<i64> = c.query_row_cached(
        "SELECT MAX(seq) FROM lts_logs WHERE stream_id = ?1",
        params![stream_id],
        |r| r.get(0),
    )?;
    Ok(head.unwrap_or(0) as u64)
}

/// What the log-query API asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub stream_id: String,
    /// Inclusive bounds, nanoseconds.
    pub start_ns: i64,
    pub end_ns: i64,
    /// Lines must contain every keyword (ASCII case-insensitive).
    pub keywords: Vec<String>,
    pub limit: usize,
    pub descending: bool,
    /// Continue after (forwards) or before (backwards) this line's `seq`.
    pub after_seq: Option<u64>,
}

/// Lines matching `q`, in time order (or reversed), at most `q.limit`; and whether the scan
/// reached the end of the window (`isQueryComplete`).
pub fn query_lines(c: &Connection, q: &LogQuery) -> Result<(Vec<LogLine>, bool)> {
    let order = if q.descending { "DESC" } else { "ASC" };
    // Keyword matching is done here rather than in SQL so that its rule (every keyword, ASCII
    // case-insensitive substring) is one piece of Rust, not a LIKE pattern with escapes.
    let position = match (q.after_seq, q.descending) {
        (None, _) => String::new(),
        (Some(_), false) => {
            "AND (time_ns, seq) > ((SELECT time_ns FROM lts_logs WHERE seq = ?4), ?4)".into()
        }
        (Some(_), true) => {
            "AND (time_ns, seq) < ((SELECT time_ns FROM lts_logs WHERE seq = ?4), ?4)".into()
        }
    };
    let sql = format!(
        "SELECT {LINE_COLUMNS} FROM lts_logs
         WHERE stream_id = ?1 AND time_ns >= ?2 AND time_ns <= ?3 {position}
         ORDER BY time_ns {order}, seq {order}"
    );
    let mut st = c.prepare(&sql)?;
    let after = q.after_seq.unwrap_or(0) as i64;
    let mut rows = if q.after_seq.is_some() {
        st.query(params![q.stream_id, q.start_ns, q.end_ns, after])?
    } else {
        st.query(params![q.stream_id, q.start_ns, q.end_ns])?
    };
    let lowered: Vec<String> = q.keywords.iter().map(|k| k.to_ascii_lowercase()).collect();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let line = line_from_row(r)?;
        let text = line.content.to_ascii_lowercase();
        if lowered.iter().all(|k| text.contains(k.as_str())) {
            if out.len() == q.limit {
                return Ok((out, false));
            }
            out.push(line);
        }
    }
    Ok((out, true))
}

/// Deletes the lines older than each group's `ttl_in_days` (by ingest time). Returns how many.
pub fn apply_retention(c: &Connection, now_ms: i64) -> Result<u64> {
    let n = c.execute_cached(
        "DELETE FROM lts_logs WHERE seq IN (
             SELECT l.seq FROM lts_logs l
             JOIN lts_streams s ON s.stream_id = l.stream_id
             JOIN lts_groups g ON g.group_id = s.group_id
             WHERE l.ingested_at < ?1 - g.ttl_in_days * 86400000)",
        params![now_ms],
    )?;
    Ok(n as u64)
}
