//! The single writer thread and its group commit.
//!
//! Jobs queue on a bounded channel (backpressure for ingest). The thread takes the first job,
//! then drains whatever else is already queued, up to `max_group_traces` traces, and writes all
//! consecutive appends in one transaction: one fsync serves every caller in the group. Callers
//! are answered after `COMMIT` returns — never before.

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{AppendOutcome, NewTrace, Result, StoreError, now_ms};

pub(crate) type WriteFn = Box<dyn FnOnce(&mut Connection) + Send>;
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
) -> Result<WriterHandle> {
    let handle = std::thread::Builder::new()
        .name("trailwatch-store-writer".into())
        .spawn(move || run(conn, rx, head, max_group_traces))
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
) {
    let mut pending: Vec<Job> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        pending.push(first);
        let mut traces = pending_traces(&pending);
        while traces < max_group {
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
        let mut appends = Vec::new();
        for job in pending.drain(..) {
            match job {
                Job::Append {
                    project_id,
                    traces,
                    reply,
                } => appends.push((project_id, traces, reply)),
                Job::Write(f) => {
                    // Keep the order callers observe: appends queued before a write commit first.
                    commit_appends(&mut conn, std::mem::take(&mut appends), &head);
                    // A panicking closure must not take the writer (and so the whole store) down:
                    // its transaction rolls back while unwinding, and its caller sees `Closed`
                    // because the reply is dropped.
                    let conn_ref = &mut conn;
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || f(conn_ref)))
                        .is_err()
                    {
                        tracing::error!(
                            "a store write panicked; it was rolled back and the store goes on"
                        );
                    }
                }
            }
        }
        commit_appends(&mut conn, appends, &head);
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

fn commit_appends(
    conn: &mut Connection,
    appends: Vec<(String, Vec<NewTrace>, AppendReply)>,
    head: &watch::Sender<u64>,
) {
    if appends.is_empty() {
        return;
    }
    let result = (|| -> Result<(Vec<AppendResult>, u64)> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let ingested_at = now_ms();
        let mut results = Vec::with_capacity(appends.len());
        let mut max_seq = 0u64;
        for (project_id, traces, _) in &appends {
            let key = project_key(&tx, project_id)?;
            let mut outcomes = Vec::with_capacity(traces.len());
            for t in traces {
                let outcome = insert_trace(&tx, key, t, ingested_at)?;
                if let AppendOutcome::Inserted { seq } = outcome {
                    max_seq = max_seq.max(seq);
                }
                outcomes.push(outcome);
            }
            results.push((outcomes, key));
        }
        tx.commit()?;
        Ok((results, max_seq))
    })();
    match result {
        Ok((results, max_seq)) => {
            if max_seq > 0 {
                head.send_if_modified(|h| {
                    let changed = max_seq > *h;
                    *h = (*h).max(max_seq);
                    changed
                });
            }
            for ((_, _, reply), r) in appends.into_iter().zip(results) {
                let _ = reply.send(Ok(r));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; no trace of the group was acknowledged");
            let msg = e.to_string();
            for (_, _, reply) in appends {
                let _ = reply.send(Err(StoreError::CommitFailed(msg.clone())));
            }
        }
    }
}

fn project_key(tx: &rusqlite::Transaction<'_>, project_id: &str) -> Result<i64> {
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
    tx: &rusqlite::Transaction<'_>,
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
