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

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is checkpointed while the store is open.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);

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
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
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
