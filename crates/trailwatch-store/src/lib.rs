//! Durable storage for trailwatch: the sequenced trace log with its query index, consumer cursors,
//! and the IAM metadata (domains, projects, users, credentials, revoked tokens).
//!
//! The embedded default is one SQLite database in WAL mode (`<data-dir>/trailwatch.db`), and the
//! query index beside it in a second one (`<data-dir>/index.db`, derived data, rebuilt from the
//! log when missing).
//!
//! # On-disk format and invariants
//! - `traces` holds one row per accepted trace. `seq` (the rowid, `AUTOINCREMENT`) is strictly
//!   increasing and never reused, even after retention deletes old rows. `body` is the trace as
//!   ingested (compact JSON, [`trailwatch_trace::RenderStyle::Stored`]); the other columns are copies
//!   of its fields kept for the query index and the filters checked on rows.
//! - The query index (posting chunks in `index.db`, `postings.rs`) is built behind the log by
//!   the indexer thread in large batches (`index.rs`), not in the acknowledgment transaction. Queries
//!   read the index up to the indexer's position and scan the log's tail beyond it: an
//!   acknowledged trace is visible to the next query whether or not it is indexed yet.
//! - `(project_key, trace_id)` is unique: appending a trace whose id is already stored in that
//!   project is a no-op that reports the existing `seq` (idempotent ingest, safe client retries).
//! - Every write goes through one writer thread. Appends that arrive while a commit is in progress
//!   are grouped into the next transaction (group commit); a caller is answered only after the
//!   commit is durable (durability `full`, the default: the WAL is fsynced by the syncer thread
//!   before the answer, so it survives `kill -9` and power loss; `normal` survives `kill -9`
//!   only).
//! - `cursors` holds each consumer's last processed `seq`. A consumer that writes its effect to
//!   this database advances its cursor in the same transaction ([`Store::write`]).
//! - Retention never deletes a trace that a registered consumer has not yet passed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trailwatch_store::StoreError> {
//! use trailwatch_store::{Store, StoreOptions};
//! let store = Store::open(StoreOptions::new("/tmp/tw-data"))?;
//! let head = store.head();
//! # let _ = head; Ok(()) }
//! ```

pub mod agencies;
pub mod archive;
mod checkpointer;
mod db;
pub mod functions;
pub mod iam;
mod index;
pub mod lts;
mod postings;
mod query;
mod readers;
pub mod smn;
pub mod sql;
pub mod trackers;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::sql::CachedStatements;
use rusqlite::{Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, watch};

pub use query::{TraceFilter, TracePage, TraceQuery, TrackerFilter};
pub use rusqlite;
use trailwatch_trace::{RenderStyle, Trace};

/// How hard a commit is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync on every commit: survives process crash and power loss.
    #[default]
    Full,
    /// fsync at WAL checkpoints only: survives process crash (`kill -9`), may lose the last
    /// commits on power loss.
    Normal,
}

/// Options for opening a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// Read connections kept open for queries.
    pub readers: usize,
    /// The most traces one group commit writes before it commits and answers its callers.
    pub max_group_traces: usize,
    /// Traces the indexer adds to the query index per transaction.
    pub index_chunk: u64,
    /// How far (in traces) the query index may fall behind the log while appends keep coming;
    /// past it, the writer waits for the indexer before its next group. Queries scan this tail
    /// of the log, so it bounds their extra cost.
    pub index_max_lag: u64,
    /// Index as soon as traces are committed (the default). Off, the index moves only when the
    /// lag bound forces it: tests use this to keep part of the log unindexed.
    pub index_eagerly: bool,
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreOptions {
            data_dir: data_dir.into(),
            durability: Durability::Full,
            readers: 4,
            max_group_traces: 20_000,
            index_chunk: 10_000,
            index_max_lag: 200_000,
            index_eagerly: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store is shutting down")]
    Closed,
    #[error("marker `{0}` does not name a trace in this project")]
    MarkerNotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A group commit failed (disk full, I/O error): none of its traces was acknowledged.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A trace ready to append: its body rendered and its index columns extracted.
/// Built outside the writer thread so that the writer does only database work.
#[derive(Debug, Clone)]
pub struct NewTrace {
    pub trace_id: String,
    pub time: i64,
    pub record_time: i64,
    pub trace_name: String,
    pub trace_rating: &'static str,
    pub trace_type: String,
    pub service_type: String,
    pub resource_type: String,
    pub resource_name: Option<String>,
    pub resource_id: Option<String>,
    pub user_name: Option<String>,
    pub tracker_name: String,
    pub source_ip: Option<[u8; 16]>,
    pub body: String,
}

impl NewTrace {
    /// Extracts the index columns of a trace whose ingest defaults are filled
    /// ([`Trace::fill_defaults`]); missing defaults are filled here as a last resort.
    pub fn from_trace(trace: &Trace, now_ms: i64) -> NewTrace {
        NewTrace::from_owned(trace.clone(), now_ms)
    }

    /// As [`NewTrace::from_trace`], moving the strings out of `trace` instead of copying them
    /// (the ingest path: the parsed trace is not needed afterwards).
    pub fn from_owned(mut trace: Trace, now_ms: i64) -> NewTrace {
        trace.fill_defaults(now_ms);
        let body = trace.to_json_string(RenderStyle::Stored);
        let source_ip = trace.source_addr().map(ip_key);
        let user_name = trace.user_name().map(str::to_owned);
        NewTrace {
            trace_id: trace.trace_id.unwrap_or_default(),
            time: trace.time,
            record_time: trace.record_time.unwrap_or(now_ms),
            trace_name: trace.trace_name,
            trace_rating: trace.trace_rating.as_str(),
            trace_type: trace.trace_type,
            service_type: trace.service_type,
            resource_type: trace.resource_type,
            resource_name: trace.resource_name,
            resource_id: trace.resource_id,
            user_name,
            tracker_name: trace.tracker_name.unwrap_or_else(|| "system".into()),
            source_ip,
            body,
        }
    }
}

/// The 16-byte index key of an address: IPv6 octets, IPv4 as IPv4-mapped IPv6, so that one
/// ordered column serves address and CIDR-range filters for both families.
pub fn ip_key(ip: std::net::IpAddr) -> [u8; 16] {
    match trailwatch_trace::normalize_ip(ip) {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

/// What happened to one appended trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Newly stored at this sequence number.
    Inserted { seq: u64 },
    /// A trace with the same `trace_id` was already stored in the project at this sequence number.
    Duplicate { seq: u64 },
}

impl AppendOutcome {
    pub fn seq(self) -> u64 {
        match self {
            AppendOutcome::Inserted { seq } | AppendOutcome::Duplicate { seq } => seq,
        }
    }
}

/// A trace as read back from the log.
#[derive(Debug, Clone)]
pub struct StoredTrace {
    pub seq: u64,
    pub project_id: String,
    pub trace_id: String,
    /// The trace JSON as ingested.
    pub body: String,
}

/// The handle to the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db_path: PathBuf,
    writer: mpsc::Sender<writer::Job>,
    readers: readers::ReaderPool,
    head: watch::Receiver<u64>,
    projects: RwLock<HashMap<String, i64>>,
    index: Arc<index::Progress>,
    _writer_thread: writer::WriterHandle,
    /// Stopped after the writer (field order): the writer may be waiting for it.
    _indexer: index::IndexerHandle,
    /// Dropped after the writer (field order), so its last checkpoint sees the last commit.
    _checkpointer: checkpointer::CheckpointerHandle,
}

impl Store {
    /// Opens (creating if needed) the database in `options.data_dir`, applies the schema, and
    /// starts the writer thread.
    pub fn open(options: StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(&options.data_dir).map_err(|source| StoreError::DataDir {
            path: options.data_dir.clone(),
            source,
        })?;
        let db_path = options.data_dir.join("trailwatch.db");
        let index_path = options.data_dir.join(index::FILE);
        let conn = db::open_writer(&db_path, options.durability)?;
        let head_seq = db::head_seq(&conn)?;
        let projects = db::load_project_keys(&conn)?;
        let (index_conn, indexed) = match index::open(&db_path, &index_path, head_seq) {
            Ok(opened) => opened,
            Err(e) => {
                // Derived data: an unreadable index is rebuilt from the log, not a reason to stop.
                tracing::warn!(error = %e, "the query index cannot be opened; rebuilding it");
                index::remove_files(&index_path)?;
                index::open(&db_path, &index_path, head_seq)?
            }
        };
        let policy = index::IndexPolicy {
            chunk: options.index_chunk.max(1),
            max_lag: options.index_max_lag,
            eager: options.index_eagerly,
        };
        let progress = Arc::new(index::Progress::new(policy, head_seq, indexed));
        let indexer = index::spawn(index_conn, progress.clone())?;
        let (head_tx, head_rx) = watch::channel(head_seq);
        let (tx, rx) = mpsc::channel(4096);
        // Durability `full`: the writer commits without syncing and its syncer thread fsyncs the
        // WAL before answering (pipelined sync, `writer.rs`).
        let wal_path = match options.durability {
            Durability::Full => {
                conn.pragma_update(None, "synchronous", "OFF")?;
                let mut wal = db_path.as_os_str().to_owned();
                wal.push("-wal");
                Some(PathBuf::from(wal))
            }
            Durability::Normal => None,
        };
        let thread = writer::spawn(
            conn,
            rx,
            head_tx,
            options.max_group_traces,
            progress.clone(),
            wal_path,
        )?;
        let readers = readers::ReaderPool::new(db_path.clone(), index_path, options.readers.max(1));
        let checkpointer =
            checkpointer::spawn(db::open_checkpointer(&db_path, options.durability)?).map_err(
                |source| StoreError::DataDir {
                    path: "checkpointer thread".into(),
                    source,
                },
            )?;
        Ok(Store {
            inner: Arc::new(Inner {
                db_path,
                writer: tx,
                readers,
                head: head_rx,
                projects: RwLock::new(projects),
                index: progress,
                _writer_thread: thread,
                _indexer: indexer,
                _checkpointer: checkpointer,
            }),
        })
    }

    /// The path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    /// Appends traces of one project as one unit of the next group commit, answering once they
    /// are durable. Outcomes are in input order.
    pub async fn append(
        &self,
        project_id: &str,
        traces: Vec<NewTrace>,
    ) -> Result<Vec<AppendOutcome>> {
        if traces.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let job = writer::Job::Append {
            project_id: project_id.to_owned(),
            traces,
            reply,
        };
        self.inner
            .writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        let (outcomes, key) = rx.await.map_err(|_| StoreError::Closed)??;
        self.remember_project(project_id, key);
        Ok(outcomes)
    }

    /// Runs `f` on the writer thread inside the next group commit, under its own savepoint: if
    /// `f` fails (or panics) only its own changes are rolled back. Answers after the group's
    /// `COMMIT`, so what `f` wrote is durable when this returns `Ok`. This is how a consumer
    /// stores its effect and advances its cursor atomically.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = writer::Job::Write(Box::new(move |conn: &Connection| {
            let result = f(conn);
            let succeeded = result.is_ok();
            let finish: writer::Finish =
                Box::new(move |commit: std::result::Result<(), String>| {
                    let _ = reply.send(match (result, commit) {
                        (Ok(v), Ok(())) => Ok(v),
                        (Err(e), _) => Err(e),
                        (Ok(_), Err(msg)) => Err(StoreError::CommitFailed(msg)),
                    });
                });
            (succeeded, finish)
        }));
        self.inner
            .writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a read-only connection from the pool (on a blocking thread).
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.readers.run(f).await
    }

    /// The sequence number of the newest durable trace (0 when the log is empty).
    pub fn head(&self) -> u64 {
        *self.inner.head.borrow()
    }

    /// A receiver that changes whenever new traces become durable; consumers wait on it.
    pub fn subscribe_head(&self) -> watch::Receiver<u64> {
        self.inner.head.clone()
    }

    fn project_key(&self, project_id: &str) -> Option<i64> {
        self.inner
            .projects
            .read()
            .ok()
            .and_then(|m| m.get(project_id).copied())
    }

    fn remember_project(&self, project_id: &str, key: i64) {
        if let Ok(mut map) = self.inner.projects.write() {
            map.entry(project_id.to_owned()).or_insert(key);
        }
    }

    async fn resolve_project_key(&self, project_id: &str) -> Result<Option<i64>> {
        if let Some(key) = self.project_key(project_id) {
            return Ok(Some(key));
        }
        let pid = project_id.to_owned();
        let key = self
            .read(move |c| {
                Ok(c.query_row_cached(
                    "SELECT key FROM trace_projects WHERE project_id = ?1",
                    [&pid],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?)
            })
            .await?;
        if let Some(key) = key {
            self.remember_project(project_id, key);
        }
        Ok(key)
    }

    /// Answers a trace query, newest first.
    pub async fn query(&self, q: TraceQuery) -> Result<TracePage> {
        let Some(key) = self.resolve_project_key(&q.project_id).await? else {
            // The marker names no trace of an empty project; with `trace_id` it is ignored, as
            // every other condition is.
            if let (Some(marker), None) = (q.marker, &q.trace_id) {
                return Err(StoreError::MarkerNotFound(marker));
            }
            return Ok(TracePage::default());
        };
        self.read(move |c| {
            // One snapshot for the index position, the index and the log tail.
            let tx = c.unchecked_transaction()?;
            let page = query::run(&tx, key, &q)?;
            tx.finish()?;
            Ok(page)
        })
        .await
    }

    /// Reads up to `limit` traces with `seq > after`, in sequence order (all projects).
    pub async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredTrace>> {
        self.read(move |c| db::read_after(c, after, limit)).await
    }

    /// The position of the named consumer's cursor (0 when it has never committed).
    pub async fn cursor(&self, name: &str) -> Result<u64> {
        let name = name.to_owned();
        self.read(move |c| db::cursor_position(c, &name)).await
    }

    /// Moves the named cursor to `seq` (only forward) in its own transaction. Consumers whose
    /// effect is in this database use [`Store::write`] with [`set_cursor`] instead.
    pub async fn commit_cursor(&self, name: &str, seq: u64) -> Result<()> {
        let name = name.to_owned();
        self.write(move |tx| set_cursor(tx, &name, seq)).await
    }

    /// Deletes traces ingested before `cutoff_ms`, oldest first, never past the slowest
    /// registered consumer cursor. Returns how many were deleted.
    pub async fn apply_retention(&self, cutoff_ms: i64) -> Result<u64> {
        const CHUNK: usize = 5_000;
        let mut total = 0;
        loop {
            let Some((last, expired)) = self
                .read(move |c| db::expired_upto(c, cutoff_ms, CHUNK))
                .await?
            else {
                return Ok(total);
            };
            // The index entries first (they are found from the rows), then the rows. A crash in
            // between leaves expired traces without entries, deleted by the next pass.
            self.inner.index.forget(last).await?;
            total += self.write(move |tx| db::delete_upto(tx, last)).await?;
            if expired < CHUNK {
                return Ok(total);
            }
        }
    }

    /// Size of the database in bytes (pages in use, including the index).
    pub async fn size_bytes(&self) -> Result<u64> {
        self.read(|c| {
            let pages: i64 = c.query_row_cached("PRAGMA page_count", [], |r| r.get(0))?;
            let size: i64 = c.query_row_cached("PRAGMA page_size", [], |r| r.get(0))?;
            Ok((pages.max(0) as u64) * (size.max(0) as u64))
        })
        .await
    }

    /// How many traces the query index is behind the log (queries cover them by scanning the
    /// log's tail).
    pub async fn index_lag(&self) -> Result<u64> {
        Ok(self.inner.index.lag())
    }

    /// Number of traces stored.
    pub async fn trace_count(&self) -> Result<u64> {
        self.read(|c| {
            let n: i64 = c.query_row_cached("SELECT count(*) FROM traces", [], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
        .await
    }
}

/// Advances the named cursor to `seq` inside the caller's transaction. A cursor never moves
/// backwards: an older `seq` (a replayed batch) leaves it where it is.
pub fn set_cursor(tx: &Connection, name: &str, seq: u64) -> Result<()> {
    tx.execute_cached(
        "INSERT INTO cursors(name, seq, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET seq = max(seq, excluded.seq), updated_at = excluded.updated_at",
        rusqlite::params![name, seq as i64, now_ms()],
    )?;
    Ok(())
}

/// The position of a consumer of a sequence other than the trace log (an LTS stream's lines,
/// SMN message rows): 0 when it has none yet. Kept apart from the trace-log `cursors`, so that
/// trace retention (which stops at the slowest trace-log cursor) is never held back by a number
/// from another sequence.
pub fn position(c: &Connection, name: &str) -> Result<u64> {
    let p: Option<i64> = c
        .query_row(
            "SELECT position FROM positions WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(p.unwrap_or(0) as u64)
}

/// Moves a position forward (never back), in the caller's transaction.
pub fn set_position(c: &Connection, name: &str, position: u64) -> Result<()> {
    c.execute_cached(
        "INSERT INTO positions(name, position, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET position = max(position, excluded.position),
             updated_at = excluded.updated_at",
        rusqlite::params![name, position as i64, now_ms()],
    )?;
    Ok(())
}

/// Forgets a consumer (its trigger was deleted): its trace-log cursor and its position.
pub fn delete_cursor(c: &Connection, name: &str) -> Result<()> {
    c.execute_cached("DELETE FROM cursors WHERE name = ?1", [name])?;
    c.execute_cached("DELETE FROM positions WHERE name = ?1", [name])?;
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
