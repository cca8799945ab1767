//! State of the trace archiver (`trailwatch-archive::archiver`): what it has written and the
//! head of each tracker's digest chain.
//!
//! # Tables and invariants
//! - `archive_passes`: per tracker and stream (`traces`, `alarms`, `receipts`), the transfer in
//!   progress: positions `(from_seq, upto_seq]` stamped with `pass_time`. It is written *before*
//!   any file of the pass, so a pass interrupted by a crash is redone over exactly the same
//!   records with the same time, producing the same objects (which already exist, byte for
//!   byte): nothing archived twice, nothing skipped. Each tracker has its own cursors, so one
//!   tracker's unwritable bucket holds back no other.
//! - `archive_files`: the files written and not yet listed in a digest, per tracker, with their
//!   digest entry (JSON). Written in the transaction that advances the archive cursor and clears
//!   the pass; deleted in the transaction that records the digest listing them.
//! - `bucket_owners`: which project a bucket of the object store belongs to. The store's buckets
//!   are one namespace for the whole server, so the first project that names a bucket (a
//!   tracker's `obs_info`, a function's object effect) claims it, and no other project may write
//!   there — otherwise one project could overwrite or expire another's archive.
//! - `archive_chain`: per tracker, the newest digest (`previous` JSON: bucket, object, hashes,
//!   signature, sequence, end time, ending) — the head the next digest chains to.

use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::CachedStatements;

use crate::Result;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS archive_passes (
    tracker_id TEXT NOT NULL,
    stream     TEXT NOT NULL,
    from_seq   INTEGER NOT NULL,
    upto_seq   INTEGER NOT NULL,
    pass_time  INTEGER NOT NULL,
    PRIMARY KEY (tracker_id, stream)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS archive_files (
    tracker_id TEXT NOT NULL,
    object     TEXT NOT NULL,
    written_at INTEGER NOT NULL,
    entry      TEXT NOT NULL,
    PRIMARY KEY (tracker_id, object)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bucket_owners (
    bucket     TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    claimed_at INTEGER NOT NULL
);
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

pub fn pass(c: &Connection, tracker_id: &str, stream: &str) -> Result<Option<Pass>> {
    Ok(c.query_row_cached(
        "SELECT from_seq, upto_seq, pass_time FROM archive_passes
         WHERE tracker_id = ?1 AND stream = ?2",
        params![tracker_id, stream],
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

pub fn begin_pass(c: &Connection, tracker_id: &str, stream: &str, p: Pass) -> Result<()> {
    c.execute_cached(
        "INSERT INTO archive_passes(tracker_id, stream, from_seq, upto_seq, pass_time)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(tracker_id, stream) DO UPDATE SET from_seq = excluded.from_seq,
             upto_seq = excluded.upto_seq, pass_time = excluded.pass_time",
        params![
            tracker_id,
            stream,
            p.from_seq as i64,
            p.upto_seq as i64,
            p.pass_time
        ],
    )?;
    Ok(())
}

pub fn end_pass(c: &Connection, tracker_id: &str, stream: &str) -> Result<()> {
    c.execute_cached(
        "DELETE FROM archive_passes WHERE tracker_id = ?1 AND stream = ?2",
        params![tracker_id, stream],
    )?;
    Ok(())
}

/// The trace-log cursor of a tracker's archive.
pub fn traces_cursor(tracker_id: &str) -> String {
    format!("archive:traces:{tracker_id}")
}

/// The position of a tracker's archive in the alarms or the receipts.
pub fn records_position(tracker_id: &str, stream: &str) -> String {
    format!("archive:{stream}:{tracker_id}")
}

/// Forgets a deleted tracker's cursors, passes and pending files (its objects stay).
pub fn forget_tracker(c: &Connection, tracker_id: &str) -> Result<()> {
    crate::delete_cursor(c, &traces_cursor(tracker_id))?;
    for stream in ["alarms", "receipts"] {
        crate::delete_cursor(c, &records_position(tracker_id, stream))?;
    }
    c.execute_cached(
        "DELETE FROM archive_passes WHERE tracker_id = ?1",
        params![tracker_id],
    )?;
    c.execute_cached(
        "DELETE FROM archive_files WHERE tracker_id = ?1",
        params![tracker_id],
    )?;
    c.execute_cached(
        "DELETE FROM archive_chain WHERE tracker_id = ?1",
        params![tracker_id],
    )?;
    Ok(())
}

/// Starts a new tracker's archive at the current ends of the trace log and of the alarms and
/// receipts: it archives what happens from its creation on, as CTS does.
pub fn start_tracker(c: &Connection, tracker_id: &str) -> Result<()> {
    let head: i64 =
        c.query_row_cached("SELECT COALESCE(MAX(seq), 0) FROM traces", [], |r| r.get(0))?;
    crate::set_cursor(c, &traces_cursor(tracker_id), head as u64)?;
    let alarms: i64 = c.query_row_cached(
        "SELECT COALESCE(MAX(rowid), 0) FROM smn_messages",
        [],
        |r| r.get(0),
    )?;
    crate::set_position(c, &records_position(tracker_id, "alarms"), alarms as u64)?;
    let receipts: i64 = c.query_row_cached(
        "SELECT COALESCE(MAX(rowid), 0) FROM smn_attempts",
        [],
        |r| r.get(0),
    )?;
    crate::set_position(
        c,
        &records_position(tracker_id, "receipts"),
        receipts as u64,
    )?;
    Ok(())
}

pub fn add_file(
    c: &Connection,
    tracker_id: &str,
    object: &str,
    written_at: i64,
    entry: &str,
) -> Result<()> {
    c.execute_cached(
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
    Ok(c.query_row_cached(
        "SELECT previous, end_time FROM archive_chain WHERE tracker_id = ?1",
        params![tracker_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

pub fn set_chain_head(c: &Connection, tracker_id: &str, previous: &str, end_ms: i64) -> Result<()> {
    c.execute_cached(
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

/// Claims `bucket` for `project_id` if no project has it yet. `Ok(true)` when the bucket is (now)
/// the project's, `Ok(false)` when another project owns it.
pub fn claim_bucket(c: &Connection, bucket: &str, project_id: &str, now: i64) -> Result<bool> {
    c.execute_cached(
        "INSERT OR IGNORE INTO bucket_owners(bucket, project_id, claimed_at) VALUES (?1, ?2, ?3)",
        params![bucket, project_id, now],
    )?;
    let owner: String = c.query_row_cached(
        "SELECT project_id FROM bucket_owners WHERE bucket = ?1",
        params![bucket],
        |r| r.get(0),
    )?;
    Ok(owner == project_id)
}
