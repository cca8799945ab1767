//! The single writer thread and its group commit.
//!
//! Jobs queue on a bounded channel (backpressure for ingest). The thread takes the first job,
//! then drains whatever else is already queued (up to `max_group_traces` traces), and runs the
//! whole group in one transaction, each job under its own savepoint so that a failing job rolls
//! back alone: one fsync serves every caller in the group. Callers are answered after `COMMIT`
//! returns — never before.
//!
//! The query index is built behind the log by its own thread (`index.rs`); before each group the
//! writer waits while that index trails the log by more than its bound.

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

pub(crate) fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    head: watch::Sender<u64>,
    max_group_traces: usize,
    index: Arc<Progress>,
) -> Result<WriterHandle> {
    let handle = std::thread::Builder::new()
        .name("trailwatch-store-writer".into())
        .spawn(move || run(conn, rx, head, max_group_traces, &index))
        .map_err(|source| StoreError::DataDir {
            path: "writer thread".into(),
            source,
        })?;
    Ok(WriterHandle(Some(handle)))
}

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    head: watch::Sender<u64>,
    max_group: usize,
    index: &Progress,
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
        commit_group(&mut conn, std::mem::take(&mut pending), &head);
        index.log_advanced(*head.borrow());
        if last_checkpoint.elapsed() >= crate::checkpointer::WRITER_CHECKPOINT_EVERY {
            last_checkpoint = std::time::Instant::now();
            if let Err(e) = crate::checkpointer::checkpoint(&conn) {
                tracing::warn!(error = %e, "WAL checkpoint on the writer failed");
            }
        }
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

/// Runs a group of jobs in one transaction, each under its own savepoint, commits once, then
/// answers every caller with the commit's result.
fn commit_group(conn: &mut Connection, jobs: Vec<Job>, head: &watch::Sender<u64>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        tracing::error!(error = %msg, "cannot begin a write transaction");
        for job in jobs {
            if let Job::Append { reply, .. } = job {
                let _ = reply.send(Err(StoreError::CommitFailed(msg.clone())));
            }
        }
        return;
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
    } else if max_seq > 0 {
        head.send_if_modified(|h| {
            let changed = max_seq > *h;
            *h = (*h).max(max_seq);
            changed
        });
    }
    for d in done {
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
