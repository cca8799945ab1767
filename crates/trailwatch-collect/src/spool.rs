//! The disk spool: parsed batches waiting for the sink, in order, surviving restarts.
//!
//! One directory per source, `<state_dir>/<source>.spool/`, one file per batch,
//! `<seq, 20 digits>.json`, each written atomically ([`crate::state::write_atomic`]):
//!
//! ```json
//! {"seq":42,"position":{…as in the checkpoint…},"sessions":[…],"traces":[{…},…]}
//! ```
//!
//! `position` and `sessions` are the state *after* the batch, so that when the batch is
//! acknowledged they become the checkpoint. The spool is bounded (`max_bytes`, the sum of the
//! files' sizes): when it is full the source stops reading — its input waits in the log file
//! (or in journald), which is the natural buffer — and reading resumes when batches drain.
//! A batch file that cannot be read back is renamed to `<name>.bad`, reported, and skipped
//! (never deleted) so one damaged file cannot stop delivery.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trailwatch_sources::sshd::OpenSession;

use crate::state::{Position, StateError, write_atomic};

/// A parsed batch and the state after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub seq: u64,
    pub position: Position,
    #[serde(default)]
    pub sessions: Vec<OpenSession>,
    pub traces: Vec<Value>,
}

/// The spooled batches of one source.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// (seq, file size), oldest first.
    files: std::collections::VecDeque<(u64, u64)>,
    bytes: u64,
    next_seq: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Spool {
    /// Opens (creating) the spool directory and lists what it holds.
    pub fn open(dir: PathBuf, max_bytes: u64) -> Result<Spool, StateError> {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json.tmp") {
                // A write that did not finish: never acknowledged, its bytes are still in
                // the source (the checkpoint was not advanced past them).
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let size = entry.metadata().map_err(io_err(&dir))?.len();
            files.push((seq, size));
        }
        files.sort_unstable();
        let bytes = files.iter().map(|(_, s)| s).sum();
        let next_seq = files.last().map_or(1, |(s, _)| s + 1);
        Ok(Spool {
            dir,
            max_bytes,
            files: files.into(),
            bytes,
            next_seq,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Full: the source should stop reading until batches drain.
    pub fn is_full(&self) -> bool {
        self.bytes >= self.max_bytes
    }

    /// Stores a batch durably (it gets the next sequence number).
    pub fn push(&mut self, mut batch: Batch) -> Result<u64, StateError> {
        batch.seq = self.next_seq;
        let path = self.path(batch.seq);
        let bytes = serde_json::to_vec(&batch).map_err(|e| StateError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &bytes)?;
        self.next_seq += 1;
        self.files.push_back((batch.seq, bytes.len() as u64));
        self.bytes += bytes.len() as u64;
        Ok(batch.seq)
    }

    /// The oldest batch. A file that does not read back is set aside (see the module docs)
    /// and the error returned; the next call looks at the following one.
    pub fn oldest(&mut self) -> Result<Option<Batch>, StateError> {
        let Some(&(seq, size)) = self.files.front() else {
            return Ok(None);
        };
        let path = self.path(seq);
        let parsed = std::fs::read(&path).map_err(io_err(&path)).and_then(|b| {
            serde_json::from_slice::<Batch>(&b).map_err(|e| StateError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })
        });
        match parsed {
            Ok(b) => Ok(Some(b)),
            Err(e) => {
                let mut bad = path.clone().into_os_string();
                bad.push(".bad");
                let _ = std::fs::rename(&path, &bad);
                self.files.pop_front();
                self.bytes -= size;
                Err(e)
            }
        }
    }

    /// The newest batch's state: where reading resumes after a restart.
    pub fn newest(&self) -> Result<Option<Batch>, StateError> {
        let Some(&(seq, _)) = self.files.back() else {
            return Ok(None);
        };
        let path = self.path(seq);
        let b = std::fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StateError::Invalid {
                path,
                reason: e.to_string(),
            })
    }

    /// Removes the oldest batch (after it was acknowledged and the checkpoint written).
    pub fn pop(&mut self) -> Result<(), StateError> {
        let Some((seq, size)) = self.files.pop_front() else {
            return Ok(());
        };
        let path = self.path(seq);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        // Not fsynced: a removal lost in a crash resends an acknowledged batch, which the
        // server answers as duplicates.
        self.bytes -= size;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn batch(cursor: &str) -> Batch {
        Batch {
            seq: 0,
            position: Position::Journald {
                cursor: cursor.into(),
            },
            sessions: Vec::new(),
            traces: vec![json!({"trace_id": cursor})],
        }
    }

    #[test]
    fn batches_come_back_in_order_after_a_reopen_and_the_bound_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let sdir = dir.path().join("s.spool");
        let mut s = Spool::open(sdir.clone(), 200).unwrap();
        assert!(s.is_empty());
        s.push(batch("a")).unwrap();
        s.push(batch("b")).unwrap();
        assert_eq!(s.len(), 2);
        // A write torn by a crash is ignored on reopen.
        std::fs::write(sdir.join("00000000000000000003.json.tmp"), b"{").unwrap();
        let mut s = Spool::open(sdir.clone(), 200).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.newest().unwrap().unwrap().position, batch("b").position);
        let first = s.oldest().unwrap().unwrap();
        assert_eq!(first.seq, 1);
        assert_eq!(first.traces, batch("a").traces);
        s.pop().unwrap();
        assert_eq!(s.oldest().unwrap().unwrap().seq, 2);
        // Sequence numbers continue after a reopen.
        assert_eq!(s.push(batch("c")).unwrap(), 3);
        assert!(s.bytes() > 0);
        while !s.is_full() {
            s.push(batch("d")).unwrap();
        }
        assert!(s.bytes() >= 200);
    }

    #[test]
    fn a_damaged_batch_is_set_aside_and_reported_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let sdir = dir.path().join("s.spool");
        let mut s = Spool::open(sdir.clone(), 1 << 20).unwrap();
        s.push(batch("a")).unwrap();
        s.push(batch("b")).unwrap();
        std::fs::write(sdir.join("00000000000000000001.json"), b"{broken").unwrap();
        let e = s.oldest().unwrap_err().to_string();
        assert!(e.contains("00000000000000000001.json"), "{e}");
        assert!(sdir.join("00000000000000000001.json.bad").exists());
        assert_eq!(s.oldest().unwrap().unwrap().seq, 2);
    }
}
