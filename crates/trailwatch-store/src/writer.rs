//! The single writer thread and its group commit.
//!
//! Jobs queue on a bounded channel (backpressure for ingest). The thread takes the first job,
//! then drains whatever else is already queued (up to `max_group_traces` traces), and runs the
//! whole group in one transaction, each job under its own savepoint so that a failing job rolls
//! back alone: one fsync serves every caller in the group. Callers are answered after the
//! group's WAL frames are on disk — never before.
//!
//! Pipelined sync (durability `full`): the writer's connection commits with `synchronous=OFF`
//! and hands the group's answers to the syncer thread, which `fdatasync`s the WAL file and only
//! then answers (and moves the log's head, which wakes the consumers). Meanwhile the writer
//! already runs the next group, so inserting and waiting for the disk overlap instead of taking
//! turns: with SQLite syncing inside `COMMIT` the writer sat idle for every fsync. One fsync
//! covers every commit written before it started, so the syncer serves all groups queued since
//! its last one. A torn WAL tail (power loss before the fsync) is discarded by SQLite's frame
//! checksums on recovery: only unanswered commits can be lost. Checkpoints run with
//! `synchronous=FULL` (the WAL is synced before its frames are copied into the database, and
//! the database after), so a WAL restart never overwrites frames that are not safe elsewhere.
//!
//! The query index is built behind the log by its own thread (`index.rs`); before each group the
//! writer waits while that index trails the log by more than its bound.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};

use crate::index::Progress;
use crate::{AppendOutcome, NewTrace, Result, StoreError, now_ms};

/// Called after the group's `COMMIT` with its result: sends the caller its answer.
pub(crate) type Finish = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;
/// A write job: runs inside the group transaction (under its own savepoint) and says whether it
/// succeeded (its changes are kept) or failed (its savepoint is rolled back).
pub(crate) type WriteFn = Box<dyn FnOnce(&Connection) -> (bool, Finish) + Send>;
/// Outcomes of one append job and the key of its project.
type AppendResult = (Vec<AppendOutcome>, i64);
type AppendReply = oneshot::Sender<Result<AppendResult>>;

pub(crate) enum Job {
    Append {
        project_id: String,
        traces: Vec<NewTrace>,
        reply: AppendReply,
    },
    Write(WriteFn),
}

/// Joins the writer thread when the last store handle is dropped, so the final commit finishes
/// before the process exits.
#[derive(Debug)]
pub(crate) struct WriterHandle(Option<std::thread::JoinHandle<()>>);

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // The channel sender is dropped first (field order in `Inner`), which ends the loop.
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

/// Where the writer's answers go after `COMMIT`.
enum Answering {
    /// Durability `normal`: answered at once (the WAL is synced at checkpoints only).
    AtCommit {
        head: watch::Sender<u64>,
        index: Arc<Progress>,
    },
    /// Durability `full`: through the syncer thread, after an fsync of the WAL.
    AfterSync {
        queue: std::sync::mpsc::Sender<Answers>,
        thread: std::thread::JoinHandle<()>,
    },
}

/// `wal_path`: the WAL file to sync before answering (durability `full`; the connection must
/// then commit with `synchronous=OFF`), or `None` to answer at `COMMIT`.
pub(crate) fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    head: watch::Sender<u64>,
    max_group_traces: usize,
    index: Arc<Progress>,
    wal_path: Option<PathBuf>,
) -> Result<WriterHandle> {
    let thread_error = |source| StoreError::DataDir {
        path: "writer thread".into(),
        source,
    };
    let answering = match wal_path {
        None => Answering::AtCommit {
            head,
            index: index.clone(),
        },
        Some(wal_path) => {
            let (queue, answers) = std::sync::mpsc::channel();
            let progress = index.clone();
            let thread = std::thread::Builder::new()
                .name("trailwatch-store-syncer".into())
                .spawn(move || sync_and_answer(answers, &wal_path, &head, &progress))
                .map_err(thread_error)?;
            Answering::AfterSync { queue, thread }
        }
    };
    let handle = std::thread::Builder::new()
        .name("trailwatch-store-writer".into())
        .spawn(move || run(conn, rx, max_group_traces, &index, answering))
        .map_err(thread_error)?;
    Ok(WriterHandle(Some(handle)))
}

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_group: usize,
    index: &Progress,
    answering: Answering,
) {
    let mut pending: Vec<Job> = Vec::new();
    let mut last_checkpoint = std::time::Instant::now();
    while let Some(first) = rx.blocking_recv() {
        pending.push(first);
        // Backpressure for the query index; jobs queued meanwhile join this group.
        index.wait_for_room();
        let mut traces = pending_traces(&pending);
        // Everything already queued joins this group: one fsync answers all of it.
        while traces < max_group && pending.len() < 4096 {
            match rx.try_recv() {
                Ok(job) => {
                    if let Job::Append { traces: t, .. } = &job {
                        traces += t.len();
                    }
                    pending.push(job);
                }
                Err(_) => break,
            }
        }
        let answers = commit_group(&mut conn, std::mem::take(&mut pending));
        match &answering {
            Answering::AtCommit { head, index } => answers.deliver(Ok(()), head, index),
            Answering::AfterSync { queue, .. } => {
                if let Err(unsent) = queue.send(answers) {
                    // The syncer is gone (it panicked): nothing can be made durable any more.
                    unsent.0.answer(Err("the WAL syncer thread stopped".into()));
                }
            }
        }
        if last_checkpoint.elapsed() >= crate::checkpointer::WRITER_CHECKPOINT_EVERY {
            last_checkpoint = std::time::Instant::now();
            let synced = matches!(answering, Answering::AfterSync { .. });
            if let Err(e) = checkpoint_synced(&conn, synced) {
                tracing::warn!(error = %e, "WAL checkpoint on the writer failed");
            }
        }
    }
    if let Answering::AfterSync { queue, thread } = answering {
        // The syncer answers what is queued, then ends with the closed channel.
        drop(queue);
        let _ = thread.join();
    }
}

/// A checkpoint on the writer's connection. With pipelined sync it commits with
/// `synchronous=OFF`; the checkpoint itself must sync (the WAL before copying, the database
/// after), so it runs under `FULL`.
fn checkpoint_synced(conn: &Connection, pipelined: bool) -> rusqlite::Result<()> {
    if !pipelined {
        return crate::checkpointer::checkpoint(conn);
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    let result = crate::checkpointer::checkpoint(conn);
    conn.pragma_update(None, "synchronous", "OFF")?;
    result
}

/// The syncer thread: takes every group committed since its last fsync, syncs the WAL once,
/// then answers them and moves the head.
fn sync_and_answer(
    queue: std::sync::mpsc::Receiver<Answers>,
    wal_path: &std::path::Path,
    head: &watch::Sender<u64>,
    index: &Progress,
) {
    let mut wal: Option<(std::fs::File, u64)> = None;
    while let Ok(first) = queue.recv() {
        let mut groups = vec![first];
        groups.extend(queue.try_iter());
        let synced = if groups.iter().any(|g| g.commit.is_ok()) {
            sync_wal(&mut wal, wal_path).map_err(|e| {
                tracing::error!(error = %e, "fsync of the WAL failed; the commits waiting for it are reported failed");
                format!("the commit could not be made durable (fsync of the WAL failed: {e})")
            })
        } else {
            Ok(())
        };
        for group in groups {
            group.deliver(synced.clone(), head, index);
        }
    }
}

/// `fdatasync` of the WAL file. The handle is reopened when the file at `path` is not the one
/// held (SQLite deletes the WAL when its last connection closes).
fn sync_wal(wal: &mut Option<(std::fs::File, u64)>, path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let current = std::fs::metadata(path)?.ino();
    if wal.as_ref().is_none_or(|(_, ino)| *ino != current) {
        let file = std::fs::File::open(path)?;
        let ino = file.metadata()?.ino();
        *wal = Some((file, ino));
    }
    match wal {
        Some((file, _)) => file.sync_data(),
        None => Ok(()),
    }
}

fn pending_traces(jobs: &[Job]) -> usize {
    jobs.iter()
        .map(|j| match j {
            Job::Append { traces, .. } => traces.len(),
            Job::Write(_) => 0,
        })
        .sum()
}

/// What one job of a group produced, answered after the group's `COMMIT`.
enum Done {
    Append(AppendReply, Result<AppendResult>),
    Write(Finish),
    /// The job panicked or its savepoint failed: rolled back, and its caller sees `Closed`.
    Dropped,
}

/// A committed (or failed) group's answers, delivered once its commit is durable.
struct Answers {
    done: Vec<Done>,
    commit: std::result::Result<(), String>,
    max_seq: u64,
}

impl Answers {
    /// Answers every caller: the commit's result unless `synced` failed; moves the head past
    /// the group's traces when both succeeded.
    fn deliver(
        self,
        synced: std::result::Result<(), String>,
        head: &watch::Sender<u64>,
        index: &Progress,
    ) {
        let commit = self.commit.clone().and(synced);
        if commit.is_ok() && self.max_seq > 0 {
            let max_seq = self.max_seq;
            head.send_if_modified(|h| {
                let changed = max_seq > *h;
                *h = (*h).max(max_seq);
                changed
            });
            index.log_advanced(*head.borrow());
        }
        self.answer(commit);
    }

    /// Answers every caller with `commit` (the head is not moved).
    fn answer(self, commit: std::result::Result<(), String>) {
        for d in self.done {
            match d {
                Done::Append(reply, result) => {
                    let answer = match (&commit, result) {
                        (Ok(()), r) => r,
                        (Err(msg), _) => Err(StoreError::CommitFailed(msg.clone())),
                    };
                    let _ = reply.send(answer);
                }
                Done::Write(finish) => finish(commit.clone()),
                Done::Dropped => {}
            }
        }
    }
}

/// Runs a group of jobs in one transaction, each under its own savepoint, and commits once.
/// Returns the answers, to be delivered once the commit is durable.
fn commit_group(conn: &mut Connection, jobs: Vec<Job>) -> Answers {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        tracing::error!(error = %msg, "cannot begin a write transaction");
        let done = jobs
            .into_iter()
            .filter_map(|job| match job {
                Job::Append { reply, .. } => Some(Done::Append(
                    reply,
                    Err(StoreError::CommitFailed(msg.clone())),
                )),
                // Not run: its caller sees `Closed`, as for a job that panicked.
                Job::Write(_) => None,
            })
            .collect();
        return Answers {
            done,
            commit: Ok(()),
            max_seq: 0,
        };
    }
    let ingested_at = now_ms();
    let mut done = Vec::with_capacity(jobs.len());
    let mut max_seq = 0u64;
    for job in jobs {
        // SQLite rolls a transaction back by itself on some errors (disk full, I/O). Running the
        // next job would then commit it on its own while its group is reported failed: stop.
        if conn.is_autocommit() {
            if let Job::Append { reply, .. } = job {
                done.push(Done::Append(
                    reply,
                    Err(StoreError::CommitFailed(
                        "the group's transaction was lost".into(),
                    )),
                ));
            }
            continue;
        }
        match job {
            Job::Append {
                project_id,
                traces,
                reply,
            } => {
                let result = in_savepoint(conn, |c| append(c, &project_id, &traces, ingested_at));
                if let Ok((outcomes, _)) = &result {
                    for o in outcomes {
                        if let AppendOutcome::Inserted { seq } = o {
                            max_seq = max_seq.max(*seq);
                        }
                    }
                }
                done.push(Done::Append(reply, result));
            }
            Job::Write(f) => done.push(run_write(conn, f)),
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
    if let Err(msg) = &commit {
        tracing::error!(error = %msg, "group commit failed; nothing of the group was acknowledged");
        let _ = conn.execute_batch("ROLLBACK");
    }
    Answers {
        done,
        commit,
        max_seq,
    }
}

/// Runs one write job under its own savepoint. A panicking job must not take the writer (and so
/// the whole store) down: its savepoint is rolled back while the group goes on.
fn run_write(conn: &mut Connection, f: WriteFn) -> Done {
    let mut sp = match conn.savepoint() {
        Ok(sp) => sp,
        Err(e) => {
            tracing::error!(error = %e, "cannot open a savepoint");
            return Done::Dropped;
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&sp))) {
        Ok((true, finish)) => match sp.commit() {
            Ok(()) => Done::Write(finish),
            Err(e) => {
                finish(Err(e.to_string()));
                Done::Dropped
            }
        },
        Ok((false, finish)) => {
            let _ = sp.rollback();
            Done::Write(finish)
        }
        Err(_) => {
            let _ = sp.rollback();
            tracing::error!("a store write panicked; it was rolled back and the store goes on");
            Done::Dropped
        }
    }
}

/// Runs `f` under a savepoint: kept on `Ok`, rolled back on `Err`.
fn in_savepoint<T>(conn: &mut Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let mut sp = conn.savepoint()?;
    match f(&sp) {
        Ok(v) => {
            sp.commit()?;
            Ok(v)
        }
        Err(e) => {
            let _ = sp.rollback();
            Err(e)
        }
    }
}

fn append(
    c: &Connection,
    project_id: &str,
    traces: &[NewTrace],
    ingested_at: i64,
) -> Result<AppendResult> {
    let key = project_key(c, project_id)?;
    let mut outcomes = Vec::with_capacity(traces.len());
    for t in traces {
        outcomes.push(insert_trace(c, key, t, ingested_at)?);
    }
    Ok((outcomes, key))
}

fn project_key(tx: &Connection, project_id: &str) -> Result<i64> {
    let mut stmt = tx.prepare_cached("SELECT key FROM trace_projects WHERE project_id = ?1")?;
    if let Some(key) = stmt.query_row([project_id], |r| r.get(0)).optional()? {
        return Ok(key);
    }
    tx.execute(
        "INSERT INTO trace_projects(project_id) VALUES (?1)",
        [project_id],
    )?;
    Ok(tx.last_insert_rowid())
}

fn insert_trace(
    tx: &Connection,
    key: i64,
    t: &NewTrace,
    ingested_at: i64,
) -> Result<AppendOutcome> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO traces(project_key, trace_id, time, record_time, ingested_at, trace_name, trace_rating,
             trace_type, service_type, resource_type, resource_name, resource_id, user_name, tracker_name,
             source_ip, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT(project_key, trace_id) DO NOTHING",
    )?;
    let changed = insert.execute(params![
        key,
        t.trace_id,
        t.time,
        t.record_time,
        ingested_at,
        t.trace_name,
        t.trace_rating,
        t.trace_type,
        t.service_type,
        t.resource_type,
        t.resource_name,
        t.resource_id,
        t.user_name,
        t.tracker_name,
        t.source_ip.as_ref().map(|b| &b[..]),
        t.body,
    ])?;
    if changed == 1 {
        return Ok(AppendOutcome::Inserted {
            seq: tx.last_insert_rowid() as u64,
        });
    }
    let mut existing =
        tx.prepare_cached("SELECT seq FROM traces WHERE project_key = ?1 AND trace_id = ?2")?;
    let seq: i64 = existing.query_row(params![key, t.trace_id], |r| r.get(0))?;
    Ok(AppendOutcome::Duplicate { seq: seq as u64 })
}
