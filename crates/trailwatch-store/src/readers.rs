//! A small pool of read-only connections. WAL mode lets readers run beside the writer; each
//! query runs on a blocking thread so the async runtime never waits on SQLite. Each connection
//! has the query index (`index.db`) attached as `ix`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::{Result, StoreError, db};

#[derive(Debug)]
pub(crate) struct ReaderPool {
    path: PathBuf,
    index_path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    pub(crate) fn new(path: PathBuf, index_path: PathBuf, size: usize) -> Self {
        ReaderPool {
            path,
            index_path,
            idle: Arc::new(Mutex::new(Vec::with_capacity(size))),
            permits: Arc::new(Semaphore::new(size)),
        }
    }

    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = self.idle.clone();
        let (path, index_path) = (self.path.clone(), self.index_path.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = idle.lock().ok().and_then(|mut v| v.pop());
            let conn = match conn {
                Some(c) => c,
                None => {
                    let conn = db::open_reader(&path)?;
                    crate::index::attach(&conn, &index_path)?;
                    conn
                }
            };
            let result = f(&conn);
            if let Ok(mut v) = idle.lock() {
                v.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
    }
}
