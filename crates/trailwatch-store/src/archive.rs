//! State of the trace archiver (`trailwatch-archive::archiver`): what it has written and the
//! head of each tracker's digest chain.
//!
//! # Tables and invariants
//! - `archive_pass`: at most one row, the transfer in progress: traces `(from_seq, upto_seq]`
//!   stamped with `pass_time`. It is written *before* any file of the pass, so a pass interrupted
//!   by a crash is redone over exactly the same traces with the same time, producing the same
//!   objects (which already exist, byte for byte): nothing archived twice, nothing skipped.
//! - `archive_files`: the files written and not yet listed in a digest, per tracker, with their
//!   digest entry (JSON). Written in the transaction that advances the archive cursor and clears
//!   the pass; deleted in the transaction that records the digest listing them.
//! - `archive_chain`: per tracker, the newest digest (`previous` JSON: bucket, object, hashes,
//!   signature, sequence, end time, ending) — the head the next digest chains to.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS archive_pass (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    from_seq  INTEGER NOT NULL,
    upto_seq  INTEGER NOT NULL,
    pass_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS archive_files (
    tracker_id TEXT NOT NULL,
    object     TEXT NOT NULL,
    written_at INTEGER NOT NULL,
    entry      TEXT NOT NULL,
    PRIMARY KEY (tracker_id, object)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS archive_chain (
    tracker_id TEXT PRIMARY KEY,
    previous   TEXT NOT NULL,
    end_time   INTEGER NOT NULL
);
"#;

/// The transfer pass in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub from_seq: u64,
    pub upto_seq: u64,
    pub pass_time: i64,
}

pub fn pass(c: &Connection) -> Result<Option<Pass>> {
    Ok(c.query_row(
        "SELECT from_seq, upto_seq, pass_time FROM archive_pass WHERE id = 1",
        [],
        |r| {
            Ok(Pass {
                from_seq: r.get::<_, i64>(0)? as u64,
                upto_seq: r.get::<_, i64>(1)? as u64,
                pass_time: r.get(2)?,
            })
        },
    )
    .optional()?)
}

pub fn begin_pass(c: &Connection, p: Pass) -> Result<()> {
    c.execute(
        "INSERT INTO archive_pass(id, from_seq, upto_seq, pass_time) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET from_seq = excluded.from_seq,
             upto_seq = excluded.upto_seq, pass_time = excluded.pass_time",
        params![p.from_seq as i64, p.upto_seq as i64, p.pass_time],
    )?;
    Ok(())
}

pub fn end_pass(c: &Connection) -> Result<()> {
    c.execute("DELETE FROM archive_pass", [])?;
    Ok(())
}

pub fn add_file(
    c: &Connection,
    tracker_id: &str,
    object: &str,
    written_at: i64,
    entry: &str,
) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO archive_files(tracker_id, object, written_at, entry)
         VALUES (?1, ?2, ?3, ?4)",
        params![tracker_id, object, written_at, entry],
    )?;
    Ok(())
}

/// The tracker's files written before `before_ms` and not yet in a digest: (object, entry JSON).
pub fn files_before(
    c: &Connection,
    tracker_id: &str,
    before_ms: i64,
) -> Result<Vec<(String, String)>> {
    let mut st = c.prepare_cached(
        "SELECT object, entry FROM archive_files WHERE tracker_id = ?1 AND written_at < ?2
         ORDER BY written_at, object",
    )?;
    let rows = st.query_map(params![tracker_id, before_ms], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn remove_files(c: &Connection, tracker_id: &str, objects: &[String]) -> Result<()> {
    let mut st =
        c.prepare_cached("DELETE FROM archive_files WHERE tracker_id = ?1 AND object = ?2")?;
    for o in objects {
        st.execute(params![tracker_id, o])?;
    }
    Ok(())
}

/// The head of the tracker's chain: (previous JSON, its end time ms).
pub fn chain_head(c: &Connection, tracker_id: &str) -> Result<Option<(String, i64)>> {
    Ok(c.query_row(
        "SELECT previous, end_time FROM archive_chain WHERE tracker_id = ?1",
        params![tracker_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

pub fn set_chain_head(c: &Connection, tracker_id: &str, previous: &str, end_ms: i64) -> Result<()> {
    c.execute(
        "INSERT INTO archive_chain(tracker_id, previous, end_time) VALUES (?1, ?2, ?3)
         ON CONFLICT(tracker_id) DO UPDATE SET previous = excluded.previous,
             end_time = excluded.end_time",
        params![tracker_id, previous, end_ms],
    )?;
    Ok(())
}

/// An alarm or delivery receipt for the archive: its row position (the archiver's cursor), its
/// project, time and JSON record.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveRecord {
    pub position: u64,
    pub project_id: String,
    pub time_ms: i64,
    pub record: serde_json::Value,
}

/// Published messages (alarms) after `after` (row position), oldest first. Row positions grow
/// in commit order (one writer), so a cursor over them misses nothing.
pub fn alarms_after(c: &Connection, after: u64, limit: usize) -> Result<Vec<ArchiveRecord>> {
    let mut st = c.prepare_cached(
        "SELECT rowid, message_id, project_id, topic_urn, subject, texts, created_at
         FROM smn_messages WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let rows = st.query_map(params![after as i64, limit as i64], |r| {
        let texts: String = r.get(5)?;
        let texts: serde_json::Value =
            serde_json::from_str(&texts).unwrap_or(serde_json::Value::Null);
        let created_at: i64 = r.get(6)?;
        Ok(ArchiveRecord {
            position: r.get::<_, i64>(0)? as u64,
            project_id: r.get(2)?,
            time_ms: created_at,
            record: serde_json::json!({
                "message_id": r.get::<_, String>(1)?,
                "topic_urn": r.get::<_, String>(3)?,
                "subject": r.get::<_, Option<String>>(4)?,
                "texts": texts,
                "published_at": created_at,
            }),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Delivery attempts (receipts: who was sent which message, when, with what outcome) after
/// `after`, oldest first.
pub fn receipts_after(c: &Connection, after: u64, limit: usize) -> Result<Vec<ArchiveRecord>> {
    let mut st = c.prepare_cached(
        "SELECT a.rowid, d.message_id, d.project_id, d.subscription_id, d.kind, d.protocol,
                d.endpoint, a.attempt, a.at, a.outcome, a.result, a.latency_ms
         FROM smn_attempts a JOIN smn_deliveries d ON d.delivery_id = a.delivery_id
         WHERE a.rowid > ?1 ORDER BY a.rowid LIMIT ?2",
    )?;
    let rows = st.query_map(params![after as i64, limit as i64], |r| {
        let at: i64 = r.get(8)?;
        Ok(ArchiveRecord {
            position: r.get::<_, i64>(0)? as u64,
            project_id: r.get(2)?,
            time_ms: at,
            record: serde_json::json!({
                "message_id": r.get::<_, String>(1)?,
                "subscription_id": r.get::<_, String>(3)?,
                "kind": r.get::<_, String>(4)?,
                "protocol": r.get::<_, String>(5)?,
                "endpoint": r.get::<_, String>(6)?,
                "attempt": r.get::<_, i64>(7)?,
                "at": at,
                "outcome": r.get::<_, String>(9)?,
                "result": r.get::<_, Option<String>>(10)?,
                "latency_ms": r.get::<_, i64>(11)?,
            }),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
