//! argon2 (password hashing and checking) on one dedicated thread.
//!
//! Each argon2 run takes tens of milliseconds and ~19 MiB on purpose. Run on the blocking pool,
//! every thread that ever hashed kept its ~19 MiB in its allocator arena, so the server's idle
//! memory grew with the number of concurrent logins it had once seen. One thread bounds that to
//! one run's worth and serialises the work: a flood of logins queues here instead of taking
//! every core and hundreds of megabytes. Logins are rare next to token- and AK/SK-signed calls,
//! which never reach argon2.

use std::sync::OnceLock;
use std::sync::mpsc::Sender;

type Job = Box<dyn FnOnce() + Send>;

static WORKER: OnceLock<Option<Sender<Job>>> = OnceLock::new();

fn worker() -> Option<&'static Sender<Job>> {
    WORKER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name("trailwatch-argon2".into())
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                });
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the password hashing thread");
                    None
                }
            }
        })
        .as_ref()
}

/// Runs `f` on the password thread; `None` if that thread could not be started or `f`
/// panicked.
pub(crate) async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    worker()?
        .send(Box::new(move || {
            if let Ok(v) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                let _ = tx.send(v);
            }
        }))
        .ok()?;
    rx.await.ok()
}
