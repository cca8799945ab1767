//! The query index: one table per filter, in its own database file (`index.db`), built behind
//! the trace log by its own thread.
//!
//! An append is acknowledged once its row is in `traces` (one B-tree append plus the
//! `(project, trace_id)` index): the eight query-index entries are not part of it. The indexer
//! thread fills them here, in batches of thousands, as soon as traces are committed. A batch and
//! the indexer's position commit in one transaction, so a crash never leaves an index half-built;
//! the next start continues from the position.
//!
//! Why a second file: SQLite lets one connection write a database file at a time. With the index
//! in `trailwatch.db`, index batches and group commits took turns on the writer thread, which
//! saturated one core while the other idled. In `index.db` the indexer commits on its own thread
//! and its own WAL, beside the writer. Readers attach it as `ix`; so does the indexer, whose
//! main database is the log (`trailwatch.db`, read only by it). Every statement names the index
//! tables `ix.<table>`.
//!
//! Why batches: an index entry costs far less when thousands are written per transaction (each
//! B-tree page is dirtied once per batch instead of once per group commit).
//!
//! The index is derived data. `index.db` records the identity of the log it indexes (`log_id`,
//! created with `trailwatch.db`); when it is missing, belongs to another log, or claims more than
//! the log holds (a log restored from an older copy), it is emptied and rebuilt from the log.
//! Queries stay exact meanwhile: they scan the log past the indexer's position.
//!
//! Bounded lag: when the index trails the log by more than `max_lag` traces, the writer waits for
//! it before its next group (backpressure), which bounds the log tail queries scan — unless the
//! indexer is failing (disk error on `index.db`): appends then go on and queries scan a longer
//! tail, still exact.

use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::{Result, StoreError, postings};

/// The index database's file name in the data directory.
pub(crate) const FILE: &str = "index.db";

/// The layout of `index.db`; an index of another layout is dropped and rebuilt from the log.
/// 1: one B-tree table per field with an entry per trace. 2: posting chunks for the time order
/// and the text fields, `ix_ip` as in 1. 3: posting chunks for every field (`postings.rs`).
const LAYOUT: i64 = 3;

/// The tables of older layouts, dropped when such an index is opened.
const OLD_TABLES: [&str; 8] = [
    "ix_ip",
    "ix_time",
    "ix_user",
    "ix_name",
    "ix_service",
    "ix_rtype",
    "ix_rname",
    "ix_rid",
];

/// Attaches `index.db` to a connection as `ix` (read-only connections attach it read-only).
pub(crate) fn attach(conn: &Connection, index_path: &Path) -> Result<()> {
    let path = index_path.to_str().ok_or_else(|| StoreError::DataDir {
        path: index_path.to_owned(),
        source: std::io::Error::other("the path is not valid UTF-8"),
    })?;
    conn.execute("ATTACH DATABASE ?1 AS ix", [path])?;
    Ok(())
}

/// Deletes `index.db` and its WAL files (it is rebuilt from the log).
pub(crate) fn remove_files(index_path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = index_path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::DataDir {
                    path: name.into(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Drops the index tables that schema 2 kept in `trailwatch.db` itself (and its position): the
/// index now lives in `index.db` and is rebuilt there.
pub(crate) fn drop_legacy_tables(main: &Connection) -> Result<()> {
    for table in OLD_TABLES {
        main.execute_batch(&format!("DROP TABLE IF EXISTS main.{table};"))?;
    }
    main.execute("DELETE FROM positions WHERE name = 'trace-index'", [])?;
    Ok(())
}

/// Creates the query index (idempotent): the posting chunks of the time order, the text filters
/// and the address buckets (`postings.rs`). `trace_rating`, `trace_type` and
/// `tracker_name` have only a handful of values and are checked on rows. Rows past the indexer's
/// position are found by scanning the log. An index of an older layout is dropped first.
fn create_tables(c: &Connection) -> Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS ix.ix_meta (key TEXT PRIMARY KEY, value NOT NULL);",
    )?;
    let layout: Option<i64> = c
        .query_row(
            "SELECT value FROM ix.ix_meta WHERE key = 'layout'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if layout != Some(LAYOUT) {
        for table in OLD_TABLES {
            c.execute_batch(&format!("DROP TABLE IF EXISTS ix.{table};"))?;
        }
        // The rebuild check in `open` sees no log id and empties what is left.
        c.execute_batch("DELETE FROM ix.ix_meta;")?;
    }
    postings::create_table(c)
}

fn meta_u64(c: &Connection, key: &str) -> Result<u64> {
    let v: Option<i64> = c
        .query_row("SELECT value FROM ix.ix_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

fn set_meta(c: &Connection, key: &str, value: &dyn rusqlite::ToSql) -> Result<()> {
    c.execute(
        "INSERT INTO ix.ix_meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        rusqlite::params![key, value],
    )?;
    Ok(())
}

/// The indexer's position, on a connection with `index.db` attached: every trace with `seq` at
/// or below it is in the index (or was forgotten by retention).
pub(crate) fn indexed(c: &Connection) -> Result<u64> {
    meta_u64(c, "position")
}

/// Opens the indexer's connection: the log as `main` (only read), `index.db` attached as `ix`
/// (created if missing). Checks that the index belongs to this log and empties it otherwise.
/// Returns the connection and the indexer's position.
pub(crate) fn open(db_path: &Path, index_path: &Path, head: u64) -> Result<(Connection, u64)> {
    let conn = Connection::open(db_path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    attach(&conn, index_path)?;
    conn.pragma_update(Some("ix"), "journal_mode", "WAL")?;
    // Derived data: a commit lost to a power cut is rebuilt from the log, so no fsync per batch.
    conn.pragma_update(Some("ix"), "synchronous", "NORMAL")?;
    // Posting chunks of a batch land on a few hundred pages (a row per value, not per trace).
    conn.pragma_update(Some("ix"), "cache_size", -16_384)?;
    conn.pragma_update(Some("ix"), "journal_size_limit", 64 * 1024 * 1024)?;
    // The log is read once per batch, in order: no page is read twice.
    conn.pragma_update(None, "cache_size", -4_096)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    create_tables(&conn)?;
    let log_id: String = conn.query_row(
        "SELECT value FROM main.meta WHERE key = 'log_id'",
        [],
        |r| r.get(0),
    )?;
    let indexed_log: Option<String> = conn
        .query_row(
            "SELECT value FROM ix.ix_meta WHERE key = 'log_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let position = indexed(&conn)?;
    if indexed_log.as_deref() != Some(log_id.as_str()) || position > head {
        if indexed_log.is_some() {
            tracing::warn!(
                position,
                head,
                "the query index does not belong to this trace log; rebuilding it"
            );
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch("DELETE FROM ix.ix_post; DELETE FROM ix.ix_meta;")?;
        set_meta(&tx, "layout", &LAYOUT)?;
        set_meta(&tx, "log_id", &log_id)?;
        set_meta(&tx, "position", &0i64)?;
        tx.commit()?;
        return Ok((conn, 0));
    }
    Ok((conn, position))
}

/// Indexes the traces with `from < seq <= to` and moves the position to `to`, inside the
/// caller's transaction. Traces at or below `forgotten` (retention is deleting them) are skipped.
/// The log rows are read once: each trace goes into the posting chunk of its time order, of
/// each text field it has and of its address bucket. `INSERT OR IGNORE`: re-indexing a range is
/// harmless.
fn index_range(c: &Connection, from: u64, to: u64, forgotten: u64) -> Result<()> {
    let (lo, hi) = (from.max(forgotten) as i64, to as i64);
    let mut batch = postings::Batch::default();
    {
        let columns: Vec<&str> = postings::FIELDS.iter().map(|&(_, c)| c).collect();
        let mut rows = c.prepare_cached(&format!(
            "SELECT project_key, time, seq, source_ip, {} FROM main.traces
             WHERE seq > ?1 AND seq <= ?2",
            columns.join(", ")
        ))?;
        let mut rows = rows.query([lo, hi])?;
        while let Some(r) = rows.next()? {
            let (project_key, time, seq): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let plain = (time, seq, [0; 16]);
            batch.add(project_key, postings::TIME, String::new(), plain);
            let addr = r.get_ref(3)?;
            let addr = addr
                .as_blob_or_null()
                .map_err(|e| StoreError::Corrupt(format!("trace {seq}: source_ip key: {e}")))?;
            if let Some(addr) = addr {
                let addr: [u8; 16] = addr.try_into().map_err(|_| {
                    StoreError::Corrupt(format!("trace {seq}: source_ip key is not 16 bytes"))
                })?;
                let bucket = postings::ip_bucket(&addr);
                batch.add(project_key, postings::IP, bucket, (time, seq, addr));
            }
            for (i, &(field, _)) in postings::FIELDS.iter().enumerate() {
                if let Some(value) = r.get::<_, Option<String>>(4 + i)? {
                    batch.add(project_key, field, value, plain);
                }
            }
        }
    }
    batch.write(c)?;
    set_meta(c, "position", &hi)
}

/// Removes the index entries of the traces with `seq <= last` (about to be deleted by retention)
/// and records `last` so that later batches skip those traces. Posting chunks are found through
/// their `first_seq` index: this costs the entries removed, not a scan of the index.
fn forget_upto(c: &Connection, last: u64) -> Result<()> {
    let bound = last.min(indexed(c)?) as i64;
    postings::forget_upto(c, bound)?;
    let forgotten = meta_u64(c, "forgotten")?.max(last);
    set_meta(c, "forgotten", &(forgotten as i64))
}

/// An eager indexer gathers this many traces (or waits [`GATHER_FOR`]) before a batch: each
/// batch writes a chunk row per value it holds, so tiny batches under a steady trickle made
/// the index several times larger (a row per address bucket for a handful of traces).
const GATHER_TRACES: u64 = 5_000;
/// How long an unindexed trace waits at most for its batch to fill (queries scan it meanwhile).
const GATHER_FOR: Duration = Duration::from_millis(200);

/// How the indexer keeps up with the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexPolicy {
    /// Traces indexed per transaction.
    pub chunk: u64,
    /// When the index trails the log by more than this, the writer waits for it.
    pub max_lag: u64,
    /// Index as soon as traces are committed. Off, the index moves only when the lag bound
    /// forces it: tests use this to keep part of the log unindexed.
    pub eager: bool,
}

/// What the writer and the indexer thread share: the log's head, the index's position, and the
/// requests of retention.
#[derive(Debug)]
pub(crate) struct Progress {
    policy: IndexPolicy,
    state: Mutex<ProgressState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ProgressState {
    head: u64,
    indexed: u64,
    /// When the index last went from caught-up to behind (eager batches gather from then).
    behind_since: Option<std::time::Instant>,
    /// The last index batch failed; the writer does not wait for the index meanwhile.
    failing: bool,
    closed: bool,
    forget: Vec<(u64, oneshot::Sender<Result<()>>)>,
}

impl Progress {
    pub(crate) fn new(policy: IndexPolicy, head: u64, indexed: u64) -> Self {
        Progress {
            policy,
            state: Mutex::new(ProgressState {
                head,
                indexed,
                ..ProgressState::default()
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProgressState> {
        // A panic while holding this lock leaves plain numbers behind: still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many traces the index trails the log by.
    pub(crate) fn lag(&self) -> u64 {
        let s = self.lock();
        s.head.saturating_sub(s.indexed)
    }

    /// The writer committed traces up to `head`.
    pub(crate) fn log_advanced(&self, head: u64) {
        let mut s = self.lock();
        if head > s.head {
            s.head = head;
            if s.behind_since.is_none() && head > s.indexed {
                s.behind_since = Some(std::time::Instant::now());
            }
            drop(s);
            self.changed.notify_all();
        }
    }

    /// The writer, before its next group: waits while the index trails by more than `max_lag`
    /// (unless the indexer is failing or stopping).
    pub(crate) fn wait_for_room(&self) {
        let mut s = self.lock();
        while s.head.saturating_sub(s.indexed) > self.policy.max_lag && !s.failing && !s.closed {
            s = match self.changed.wait_timeout(s, Duration::from_secs(1)) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Asks the indexer to drop the entries of the traces up to `last` (retention is about to
    /// delete them); answers once that is committed.
    pub(crate) async fn forget(&self, last: u64) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        {
            let mut s = self.lock();
            if s.closed {
                return Err(StoreError::Closed);
            }
            s.forget.push((last, reply));
        }
        self.changed.notify_all();
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// The next thing the indexer thread does.
enum Work {
    Forget(Vec<(u64, oneshot::Sender<Result<()>>)>),
    Index { from: u64, to: u64 },
    Stop,
}

impl Progress {
    fn next_work(&self) -> Work {
        let mut s = self.lock();
        loop {
            if s.closed {
                for (_, reply) in s.forget.drain(..) {
                    let _ = reply.send(Err(StoreError::Closed));
                }
                return Work::Stop;
            }
            if !s.forget.is_empty() {
                return Work::Forget(std::mem::take(&mut s.forget));
            }
            let lag = s.head.saturating_sub(s.indexed);
            let threshold = if self.policy.eager {
                0
            } else {
                self.policy.max_lag
            };
            // An eager batch waits until it is worth a batch (or has waited long enough).
            if self.policy.eager && lag > 0 && lag < GATHER_TRACES.min(self.policy.chunk) {
                let waited = s.behind_since.map_or(GATHER_FOR, |t| t.elapsed());
                if waited < GATHER_FOR {
                    s = match self.changed.wait_timeout(s, GATHER_FOR - waited) {
                        Ok((s, _)) => s,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                    continue;
                }
            }
            if lag > threshold {
                // Not eager: just enough to come back within the bound.
                let want = if self.policy.eager {
                    lag
                } else {
                    lag - threshold
                };
                let to = s.indexed + want.min(self.policy.chunk);
                return Work::Index {
                    from: s.indexed,
                    to,
                };
            }
            s = match self.changed.wait_timeout(s, Duration::from_secs(1)) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn indexed_to(&self, to: u64) {
        let mut s = self.lock();
        s.indexed = s.indexed.max(to);
        s.failing = false;
        s.behind_since = (s.head > s.indexed).then(std::time::Instant::now);
        drop(s);
        self.changed.notify_all();
    }

    fn failed(&self) {
        self.lock().failing = true;
        self.changed.notify_all();
    }
}

/// Stops and joins the indexer thread when the store is dropped.
#[derive(Debug)]
pub(crate) struct IndexerHandle {
    progress: std::sync::Arc<Progress>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for IndexerHandle {
    fn drop(&mut self) {
        self.progress.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn spawn(
    mut conn: Connection,
    progress: std::sync::Arc<Progress>,
) -> Result<IndexerHandle> {
    let shared = progress.clone();
    let thread = std::thread::Builder::new()
        .name("trailwatch-store-indexer".into())
        .spawn(move || {
            let mut forgotten = match meta_u64(&conn, "forgotten") {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the index's retention mark");
                    0
                }
            };
            loop {
                match shared.next_work() {
                    Work::Stop => return,
                    Work::Forget(requests) => {
                        for (last, reply) in requests {
                            let result = in_transaction(&mut conn, |tx| forget_upto(tx, last));
                            if result.is_ok() {
                                forgotten = forgotten.max(last);
                            }
                            let _ = reply.send(result);
                        }
                    }
                    Work::Index { from, to } => {
                        match in_transaction(&mut conn, |tx| index_range(tx, from, to, forgotten))
                        {
                            Ok(()) => shared.indexed_to(to),
                            Err(e) => {
                                // Queries stay exact (they scan the unindexed tail); do not spin
                                // on a failing disk, and do not hold appends back meanwhile.
                                tracing::error!(error = %e, from, to, "indexing traces failed; retrying shortly");
                                shared.failed();
                                std::thread::sleep(Duration::from_millis(200));
                            }
                        }
                    }
                }
            }
        })
        .map_err(|source| StoreError::DataDir {
            path: "indexer thread".into(),
            source,
        })?;
    Ok(IndexerHandle {
        progress,
        thread: Some(thread),
    })
}

fn in_transaction(conn: &mut Connection, f: impl FnOnce(&Connection) -> Result<()>) -> Result<()> {
    let tx = conn.transaction()?;
    f(&tx)?;
    tx.commit()?;
    Ok(())
}
