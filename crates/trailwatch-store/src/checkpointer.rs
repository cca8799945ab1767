//! WAL checkpoints on their own thread.
//!
//! In WAL mode every commit appends pages to `trailwatch.db-wal`; a checkpoint copies them back
//! into the database file so the WAL can be reused. SQLite does this by default inside the
//! committing connection once the WAL passes 1,000 pages — on the writer thread, where profiles
//! of sustained ingest showed it taking about a quarter of the writer's time. Here a second
//! connection runs `PASSIVE` checkpoints (which never block the writer or readers) every
//! [`INTERVAL`], so the copying overlaps with the writer's next groups on another core.
//! Durability is unchanged: a commit is durable once its WAL frames are synced, checkpointed or
//! not.
//!
//! This thread's checkpoints never quite catch up while the writer keeps committing, and the WAL
//! only starts over once one has: under sustained ingest the file grew to 2.7 GB in 15 s. So the
//! writer, between two groups and at most every [`WRITER_CHECKPOINT_EVERY`], runs one
//! checkpoint itself: it copies the few frames left, and its next transaction starts the WAL
//! over (`journal_size_limit` then truncates the file).

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is checkpointed while the store is open.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);
/// How often the writer finishes a checkpoint itself (see the module docs).
pub(crate) const WRITER_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Joins the checkpointer when the store is dropped, after one last checkpoint.
#[derive(Debug)]
pub(crate) struct CheckpointerHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for CheckpointerHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One `PASSIVE` checkpoint: copies what it can without waiting for anyone.
pub(crate) fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

pub(crate) fn spawn(conn: Connection) -> std::io::Result<CheckpointerHandle> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("trailwatch-store-checkpoint".into())
        .spawn(move || {
            loop {
                let last = matches!(
                    stopped.recv_timeout(INTERVAL),
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected)
                );
                if let Err(e) = checkpoint(&conn) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                }
                if last {
                    return;
                }
            }
        })?;
    Ok(CheckpointerHandle {
        stop: Some(stop),
        thread: Some(thread),
    })
}
