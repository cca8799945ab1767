//! The trace indexer: builds the query index (`ix_*` tables) behind the trace log.
//!
//! An append is acknowledged once its row is in `traces` (one B-tree append plus the
//! `(project, trace_id)` index): the eight query-index entries are not part of it. The writer
//! thread fills them here, in batches of thousands, whenever it has no appends waiting — or
//! before the next group once the index is more than `max_lag` traces behind, which bounds the
//! log tail that queries scan. A batch and its position (`positions`, name [`POSITION`]) commit
//! in one transaction, so a crash never leaves an index half-built; the next start continues
//! from the position.
//!
//! Why batches: an index entry costs far less when thousands are written per transaction (each
//! B-tree page is dirtied once per batch instead of once per group commit), so indexing behind
//! the log is both off the acknowledgment path and cheaper per trace.

use rusqlite::Connection;

use crate::{Result, position, set_position};

/// The indexer's position in the trace log: every trace with `seq` at or below it is indexed.
pub(crate) const POSITION: &str = "trace-index";

/// The per-field index tables and the `traces` column each holds. `ix_time` (every trace) is
/// handled apart: it has no value column.
pub(crate) const FIELD_TABLES: [(&str, &str); 7] = [
    ("ix_user", "user_name"),
    ("ix_name", "trace_name"),
    ("ix_service", "service_type"),
    ("ix_rtype", "resource_type"),
    ("ix_rname", "resource_name"),
    ("ix_rid", "resource_id"),
    ("ix_ip", "source_ip"),
];

/// Creates the query index (idempotent): one table per filter, keyed
/// `(project, value, time, seq)` so that each filter is answered newest-first straight from its
/// table; `ix_time` holds every trace. A trace without a value for a field has no row in that
/// field's table. `trace_rating`, `trace_type` and `tracker_name` have only a handful of values
/// and are checked on rows. Rows past the indexer's position are found by scanning the log.
pub(crate) fn create_tables(c: &Connection) -> Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS ix_time (
             project_key INTEGER NOT NULL, time INTEGER NOT NULL, seq INTEGER NOT NULL,
             PRIMARY KEY (project_key, time, seq)) WITHOUT ROWID;",
    )?;
    for (table, column) in FIELD_TABLES {
        // `source_ip` is the 16-byte address key; every other field is text.
        let kind = if column == "source_ip" {
            "BLOB"
        } else {
            "TEXT"
        };
        c.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 project_key INTEGER NOT NULL, v {kind} NOT NULL, time INTEGER NOT NULL,
                 seq INTEGER NOT NULL, PRIMARY KEY (project_key, v, time, seq)) WITHOUT ROWID;"
        ))?;
    }
    Ok(())
}

/// How the writer schedules indexing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexPolicy {
    /// Traces indexed per transaction.
    pub chunk: u64,
    /// When the index is further behind than this, a batch runs before the next append group
    /// even while appends are waiting.
    pub max_lag: u64,
    /// Index while no append is waiting.
    pub when_idle: bool,
}

/// The indexer's position.
pub(crate) fn indexed(c: &Connection) -> Result<u64> {
    position(c, POSITION)
}

/// Indexes the traces with `from < seq <= to` and moves the position to `to`, inside the
/// caller's transaction. `INSERT OR IGNORE`: re-indexing a range (after a restore from a copy
/// taken mid-batch, say) is harmless.
pub(crate) fn index_range(c: &Connection, from: u64, to: u64) -> Result<()> {
    let (from, to) = (from as i64, to as i64);
    let mut time = c.prepare_cached(
        "INSERT OR IGNORE INTO ix_time(project_key, time, seq)
         SELECT project_key, time, seq FROM traces WHERE seq > ?1 AND seq <= ?2",
    )?;
    time.execute([from, to])?;
    for (table, column) in FIELD_TABLES {
        let mut stmt = c.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {table}(project_key, v, time, seq)
             SELECT project_key, {column}, time, seq FROM traces
             WHERE seq > ?1 AND seq <= ?2 AND {column} IS NOT NULL"
        ))?;
        stmt.execute([from, to])?;
    }
    set_position(c, POSITION, to as u64)
}

/// Removes the index entries of the traces with `seq <= last` (about to be deleted by
/// retention), in the caller's transaction. Each entry is found by its full key from the trace
/// row, so this costs the entries removed, not a scan of the index.
pub(crate) fn forget_upto(c: &Connection, last: u64) -> Result<()> {
    let last = (last as i64).min(indexed(c)? as i64);
    c.execute(
        "DELETE FROM ix_time WHERE (project_key, time, seq) IN
             (SELECT project_key, time, seq FROM traces WHERE seq <= ?1)",
        [last],
    )?;
    for (table, column) in FIELD_TABLES {
        c.execute(
            &format!(
                "DELETE FROM {table} WHERE (project_key, v, time, seq) IN
                     (SELECT project_key, {column}, time, seq FROM traces
                      WHERE seq <= ?1 AND {column} IS NOT NULL)"
            ),
            [last],
        )?;
    }
    Ok(())
}
