//! Schema, connection setup and the small SQL helpers shared by the writer and the readers.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::{Durability, Result, StoredTrace};

/// Schema version 3. Version 1 kept the query indexes on `traces` itself, version 2 as `ix_*`
/// tables in this file; opening either drops them and the indexer rebuilds the index in
/// `index.db`. Statements are idempotent so that opening an existing database is a no-op.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS trace_projects (
    key        INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS traces (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_key   INTEGER NOT NULL,
    trace_id      TEXT NOT NULL,
    time          INTEGER NOT NULL,
    record_time   INTEGER NOT NULL,
    ingested_at   INTEGER NOT NULL,
    trace_name    TEXT NOT NULL,
    trace_rating  TEXT NOT NULL,
    trace_type    TEXT NOT NULL,
    service_type  TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_name TEXT,
    resource_id   TEXT,
    user_name     TEXT,
    tracker_name  TEXT NOT NULL,
    source_ip     BLOB,
    body          TEXT NOT NULL
);
-- The only index the acknowledgment path maintains: (project, trace_id) for idempotent ingest.
-- Server-generated trace ids are UUIDv7 (time-ordered), so they land at the B-tree's right edge.
CREATE UNIQUE INDEX IF NOT EXISTS traces_trace_id ON traces(project_key, trace_id);
-- Before schema 2 the query indexes were SQLite indexes on `traces`, updated in the
-- acknowledgment transaction; they are now the `ix_*` tables, built behind the log.
DROP INDEX IF EXISTS traces_time;
DROP INDEX IF EXISTS traces_user;
DROP INDEX IF EXISTS traces_name;
DROP INDEX IF EXISTS traces_service;
DROP INDEX IF EXISTS traces_rtype;
DROP INDEX IF EXISTS traces_rname;
DROP INDEX IF EXISTS traces_rid;
DROP INDEX IF EXISTS traces_ip;
-- The query index lives in `index.db` (`index.rs`); schema 2's copy here is dropped at open.
CREATE TABLE IF NOT EXISTS cursors (
    name       TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Consumers of other sequences (LTS lines, SMN rows); not consulted by trace retention.
CREATE TABLE IF NOT EXISTS positions (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS domains (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    domain_id  TEXT NOT NULL REFERENCES domains(id),
    created_at INTEGER NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    domain_id     TEXT NOT NULL REFERENCES domains(id),
    password_hash TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE IF NOT EXISTS credentials (
    access        TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    secret_sealed TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active',
    description   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '3');
UPDATE meta SET value = '3' WHERE key = 'schema_version';
-- This log's identity: `index.db` records the log it indexes and is rebuilt for any other.
INSERT OR IGNORE INTO meta(key, value) VALUES ('log_id', lower(hex(randomblob(16))));
"#;

fn apply_pragmas(conn: &Connection, durability: Durability) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(crate::sql::STATEMENT_CACHE_CAPACITY);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 16 MiB of page cache holds the right edges of the log and of the `(project, trace_id)`
    // index plus the service tables; readers get 8 MiB each, the checkpointer 2 MiB. All bound
    // the server's memory whatever the log's size.
    conn.pragma_update(None, "cache_size", -16_384)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

pub(crate) fn open_writer(path: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open(path)?;
    apply_pragmas(&conn, durability)?;
    // Checkpoints (copying WAL pages back into the database file) run on their own thread
    // (`checkpointer`): done by the writer they took a quarter of its time under ingest.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // After a checkpoint resets the WAL, truncate the file to this size (64 MiB).
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    create_schema(&conn)?;
    Ok(conn)
}

/// Every table of the store (idempotent: opening an existing database changes nothing).
pub(crate) fn create_schema(conn: &Connection) -> Result<()> {
    conn.execute_batch(SCHEMA)?;
    crate::index::drop_legacy_tables(conn)?;
    conn.execute_batch(crate::smn::SCHEMA)?;
    conn.execute_batch(crate::agencies::SCHEMA)?;
    conn.execute_batch(crate::lts::SCHEMA)?;
    conn.execute_batch(crate::functions::SCHEMA)?;
    conn.execute_batch(crate::trackers::SCHEMA)?;
    conn.execute_batch(crate::archive::SCHEMA)?;
    Ok(())
}

/// The connection of the checkpointer thread: read-write, the same durability.
pub(crate) fn open_checkpointer(path: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open(path)?;
    apply_pragmas(&conn, durability)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // It copies WAL frames into the database file: no page it reads is read again.
    conn.pragma_update(None, "cache_size", -2_048)?;
    Ok(conn)
}

pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(crate::sql::STATEMENT_CACHE_CAPACITY);
    conn.pragma_update(None, "cache_size", -8_192)?;
    Ok(conn)
}

/// The newest sequence number ever assigned. `sqlite_sequence` remembers it even when retention
/// has deleted every row, so the head never goes backwards across a restart.
pub(crate) fn head_seq(conn: &Connection) -> Result<u64> {
    let live: Option<i64> = conn.query_row("SELECT max(seq) FROM traces", [], |r| r.get(0))?;
    let assigned: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'traces'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(live.unwrap_or(0).max(assigned.unwrap_or(0)).max(0) as u64)
}

pub(crate) fn load_project_keys(conn: &Connection) -> Result<HashMap<String, i64>> {
    let mut stmt = conn.prepare("SELECT project_id, key FROM trace_projects")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut map = HashMap::new();
    for row in rows {
        let (pid, key) = row?;
        map.insert(pid, key);
    }
    Ok(map)
}

pub(crate) fn read_after(conn: &Connection, after: u64, limit: usize) -> Result<Vec<StoredTrace>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.seq, p.project_id, t.trace_id, t.body FROM traces t
         JOIN trace_projects p ON p.key = t.project_key
         WHERE t.seq > ?1 ORDER BY t.seq LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![after as i64, limit], |r| {
        Ok(StoredTrace {
            seq: r.get::<_, i64>(0)? as u64,
            project_id: r.get(1)?,
            trace_id: r.get(2)?,
            body: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(crate) fn cursor_position(conn: &Connection, name: &str) -> Result<u64> {
    let seq: Option<i64> = conn
        .query_row("SELECT seq FROM cursors WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// The oldest run of traces that retention may delete: up to `chunk` rows ingested before
/// `cutoff_ms`, visited in `seq` order, stopping at the first row that is too new or not yet
/// consumed (so a pass costs the rows it deletes, not a scan of the log). Returns the last such
/// `seq` and how many rows the run holds, or `None` when there is none.
pub(crate) fn expired_upto(
    c: &Connection,
    cutoff_ms: i64,
    chunk: usize,
) -> Result<Option<(u64, usize)>> {
    let min_cursor: Option<i64> = c.query_row("SELECT min(seq) FROM cursors", [], |r| r.get(0))?;
    let limit_seq = min_cursor.unwrap_or(i64::MAX);
    let mut last = None;
    let mut count = 0;
    let mut stmt = c.prepare("SELECT seq, ingested_at FROM traces ORDER BY seq LIMIT ?1")?;
    let mut rows = stmt.query([chunk as i64])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let ingested_at: i64 = row.get(1)?;
        if ingested_at >= cutoff_ms || seq > limit_seq {
            break;
        }
        last = Some(seq.max(0) as u64);
        count += 1;
    }
    Ok(last.map(|l| (l, count)))
}

/// Deletes the traces up to `last` (found by [`expired_upto`]), never past a consumer cursor
/// registered since.
pub(crate) fn delete_upto(tx: &Connection, last: u64) -> Result<u64> {
    let n = tx.execute(
        "DELETE FROM traces WHERE seq <= min(?1, coalesce((SELECT min(seq) FROM cursors), ?1))",
        [last as i64],
    )?;
    Ok(n as u64)
}
