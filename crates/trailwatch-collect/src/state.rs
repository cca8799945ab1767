//! Durable per-source state: the checkpoint (how far the source has been delivered) and the
//! atomic file write both it and the spool use.
//!
//! A checkpoint is `<state_dir>/<source>.checkpoint.json`:
//!
//! ```json
//! {"version":1,"source":"auth","kind":"sshd",
//!  "position":{"file":{"file":{"dev":2049,"ino":1234},"offset":8192,"line":97}},
//!  "sessions":[{"host":"web-01","pid":100,"user":"alice","ip":"10.0.0.5"}],
//!  "updated_ms":1764070000000}
//! ```
//!
//! (`position` is `{"journald":{"cursor":"s=…"}}` for journald.) It is written only after the
//! sink acknowledged every trace produced from the bytes before it, so a crash can only make
//! the collector send again what was sent — and the deterministic trace ids make the server
//! answer those as duplicates.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trailwatch_sources::sshd::OpenSession;

use crate::tail::FilePosition;

pub const CHECKPOINT_VERSION: u32 = 1;

/// Where a source stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    File(FilePosition),
    Journald { cursor: String },
}

/// Everything needed to continue after the last delivered batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub source: String,
    pub kind: String,
    pub position: Position,
    /// sshd sessions open at `position` (a later `logout` needs its `login`).
    #[serde(default)]
    pub sessions: Vec<OpenSession>,
    pub updated_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid checkpoint ({reason}); move it away to start that source afresh")]
    Invalid { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

pub fn checkpoint_path(state_dir: &Path, source: &str) -> PathBuf {
    state_dir.join(format!("{source}.checkpoint.json"))
}

/// The stored checkpoint, None when there is none yet. A damaged one is an error, not a fresh
/// start: starting over silently would send the whole file again (harmless) or skip it.
pub fn load_checkpoint(path: &Path) -> Result<Option<Checkpoint>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let c: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| StateError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if c.version != CHECKPOINT_VERSION {
        return Err(StateError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "version {}; this trailwatch writes {CHECKPOINT_VERSION}",
                c.version
            ),
        });
    }
    Ok(Some(c))
}

pub fn save_checkpoint(path: &Path, c: &Checkpoint) -> Result<(), StateError> {
    let bytes = serde_json::to_vec(c).map_err(|e| StateError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Replaces `path` with `bytes` so that a crash at any moment leaves either the old or the
/// new content: write a temporary file beside it, fsync it, rename it over `path`, fsync the
/// directory (which makes the rename itself durable).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = tmp_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(path)
}

pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// fsyncs the directory holding `path`.
pub fn sync_dir(path: &Path) -> Result<(), StateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tail::FileId;

    #[test]
    fn a_checkpoint_round_trips_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_path(dir.path(), "auth");
        assert!(load_checkpoint(&path).unwrap().is_none());
        let c = Checkpoint {
            version: CHECKPOINT_VERSION,
            source: "auth".into(),
            kind: "sshd".into(),
            position: Position::File(FilePosition {
                file: FileId { dev: 1, ino: 2 },
                offset: 30,
                line: 3,
            }),
            sessions: vec![OpenSession {
                host: "h".into(),
                pid: 7,
                user: "alice".into(),
                ip: "10.0.0.5".parse().unwrap(),
            }],
            updated_ms: 5,
        };
        save_checkpoint(&path, &c).unwrap();
        assert_eq!(load_checkpoint(&path).unwrap(), Some(c));
        assert!(!tmp_path(&path).exists());
        std::fs::write(&path, b"{\"version\":1,").unwrap();
        let e = load_checkpoint(&path).unwrap_err().to_string();
        assert!(e.contains("auth.checkpoint.json"), "{e}");
    }
}
