//! The local folder's conditional update, correct across threads and processes.
//!
//! `object_store`'s `LocalFileSystem` (0.14) answers `PutMode::Update` and any `attributes` with
//! `NotImplemented`, so the append algorithm's read and conditional write ([`crate::append`]) are
//! implemented here, directly on files. The object itself stays an ordinary file that
//! `LocalFileSystem` serves (`get`, `list`); the helper files sit beside it with names of the
//! form `<name>#<digits>`, which `LocalFileSystem` never lists and refuses to address, and which
//! it never creates itself (its staging files are `#1`, `#2`, ...; never with a leading zero):
//!
//! | file | role |
//! |---|---|
//! | `<name>` | the object: the lines |
//! | `<name>#0` | lock file (empty, kept): holders of an exclusive `flock` on it may read or change the rest |
//! | `<name>#00` | state: JSON `{commit, content_len, content_sha256, applied}` describing the committed object |
//! | `<name>#000` | journal: the next content, written before the commit |
//! | `<name>#0000` | the state being written, renamed to `#00` |
//!
//! # Version
//!
//! A read returns the version *(commit id, content length, content SHA-256)*. The commit id is a
//! random UUID written with each commit, so a version never repeats (no ABA), even if the same
//! bytes come back; an object whose state does not describe it (created by `put`, edited or
//! replaced by something else) gets the commit id `external` and an empty applied record.
//!
//! # Conditional write (under the lock)
//!
//! 1. recover (below), then read the object and its state and compute the current version; if it
//!    differs from the version the caller read, answer *conflict*;
//!    if the state does not describe the current object, delete it (see Recovery);
//! 2. write the new content to the journal `#000`, fsync it;
//! 3. write the new state (new commit id, length and SHA-256 of the new content, new record) to
//!    `#0000`, fsync it, rename it to `#00`, fsync the folder. **This rename is the commit**;
//! 4. rename the journal to `<name>`, fsync the folder; then acknowledge.
//!
//! Reads take the same lock, so they never see the object of one commit with the state of
//! another.
//!
//! # Recovery (at the start of every locked read or write, and of `get` if a journal exists)
//!
//! If a journal exists, a writer crashed between 2 and 4. If the state describes the journal
//! (same length and SHA-256), step 3 happened: finish step 4 (roll forward). Otherwise the crash
//! came before the commit: delete the journal (roll back). Before step 2 a writer deletes a state
//! that does not describe the current object (object deleted or rewritten by something else), so
//! a state left over from an older object is never taken for the commit of a journal; a state
//! that does describe the current object is shorter than the journal (the object plus a non-empty
//! chunk). So "the state describes the journal" holds exactly when step 3 happened. The call was
//! not acknowledged in either case; its retry finds its token in the record (rolled forward) or
//! not (rolled back), so it appends exactly once. The journal is complete and durable before the state that
//! describes it can exist (step 2's fsync precedes step 3), so rolling forward never publishes a
//! torn file. An acknowledged append has passed step 4's folder fsync: it survives `kill -9`
//! and power loss.
//!
//! # Limits
//!
//! `flock` is advisory and local to one machine (or a file system that implements it, such as
//! NFSv4): every writer must go through this module. A `put` of the same key through
//! `LocalFileSystem` bypasses the lock; the next append then sees an `external` object and starts
//! a new record.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::append::{AppliedKeys, Snapshot};
use crate::error::ObjectsError;

/// The version of a local append object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalVersion {
    commit: String,
    content_len: u64,
    content_sha256: [u8; 32],
}

/// The state file `<name>#00`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    commit: String,
    content_len: u64,
    content_sha256: String,
    applied: Vec<String>,
}

const STATE_FORMAT: u32 = 1;
const EXTERNAL_COMMIT: &str = "external";

/// Where to stop a conditional write (unit tests simulate crashes with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum StopAfter {
    /// Run to the end.
    Never,
    /// Return after step 2 (journal written, nothing committed).
    Journal,
    /// Return after step 3 (committed, object not yet renamed into place).
    Commit,
}

/// One local append object: the file path `LocalFileSystem` maps the key to.
#[derive(Debug, Clone)]
pub(crate) struct LocalObject {
    object: PathBuf,
}

impl LocalObject {
    pub(crate) fn new(object: PathBuf) -> Self {
        LocalObject { object }
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut s = self.object.as_os_str().to_owned();
        s.push("#");
        s.push(suffix);
        PathBuf::from(s)
    }

    fn lock_path(&self) -> PathBuf {
        self.sibling("0")
    }

    fn state_path(&self) -> PathBuf {
        self.sibling("00")
    }

    fn journal_path(&self) -> PathBuf {
        self.sibling("000")
    }

    fn state_tmp_path(&self) -> PathBuf {
        self.sibling("0000")
    }

    fn dir(&self) -> Result<&Path, ObjectsError> {
        self.object.parent().ok_or_else(|| {
            ObjectsError::io(
                "find the folder of",
                &self.object,
                std::io::Error::new(ErrorKind::InvalidInput, "object path has no parent"),
            )
        })
    }

    /// Takes the exclusive lock. `None` when the object's folder does not exist and `create` is
    /// false (then nothing exists to read).
    fn lock(&self, create: bool) -> Result<Option<File>, ObjectsError> {
        let path = self.lock_path();
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                ensure_dir(self.dir()?)?;
                open().map_err(|e| ObjectsError::io("create lock file", &path, e))?
            }
            Err(e) => return Err(ObjectsError::io("open lock file", &path, e)),
        };
        file.lock()
            .map_err(|e| ObjectsError::io("lock", &path, e))?;
        Ok(Some(file))
    }

    /// Step 1 of the append algorithm: a consistent read under the lock.
    pub(crate) fn read(&self) -> Result<Option<Snapshot<LocalVersion>>, ObjectsError> {
        let Some(_lock) = self.lock(false)? else {
            return Ok(None);
        };
        self.load()
    }

    /// Step 3: replace the content and record if the object is still at `expected`
    /// (`None`: still absent). `Ok(false)` is a conflict.
    pub(crate) fn write(
        &self,
        expected: Option<&LocalVersion>,
        content: &[u8],
        applied: &AppliedKeys,
        stop: StopAfter,
    ) -> Result<bool, ObjectsError> {
        let Some(_lock) = self.lock(true)? else {
            return Ok(false);
        };
        let current = self.load()?;
        if current.as_ref().map(|s| &s.version) != expected {
            return Ok(false);
        }
        let dir = self.dir()?;

        // A state that does not describe the current object (absent, or changed by something
        // else) goes first, so that the only state that can ever describe the journal is the one
        // this write commits (a state describing the current object has a shorter length than
        // the journal, which is the object plus a non-empty chunk).
        let describes_current = current
            .as_ref()
            .is_some_and(|s| s.version.commit != EXTERNAL_COMMIT);
        if !describes_current {
            match fs::remove_file(self.state_path()) {
                Ok(()) => fsync_dir(dir)?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(ObjectsError::io("remove stale state", self.state_path(), e)),
            }
        }

        // 2. journal
        let journal = self.journal_path();
        write_synced(&journal, content)?;
        if stop == StopAfter::Journal {
            return Ok(true);
        }

        // 3. commit: the new state, renamed into place
        let state = StateFile {
            format: STATE_FORMAT,
            commit: uuid::Uuid::new_v4().to_string(),
            content_len: content.len() as u64,
            content_sha256: hex::encode(Sha256::digest(content)),
            applied: applied.tokens().map(str::to_owned).collect(),
        };
        let json = serde_json::to_vec(&state).map_err(|e| {
            ObjectsError::io(
                "encode state",
                self.state_path(),
                std::io::Error::other(e.to_string()),
            )
        })?;
        let tmp = self.state_tmp_path();
        write_synced(&tmp, &json)?;
        rename(&tmp, &self.state_path())?;
        fsync_dir(dir)?;
        if stop == StopAfter::Commit {
            return Ok(true);
        }

        // 4. publish
        rename(&journal, &self.object)?;
        fsync_dir(dir)?;
        Ok(true)
    }

    /// Finishes or undoes an interrupted write, if there is one (used before a plain `get`).
    pub(crate) fn recover_if_interrupted(&self) -> Result<(), ObjectsError> {
        if !exists(&self.journal_path())? {
            return Ok(());
        }
        let Some(_lock) = self.lock(false)? else {
            return Ok(());
        };
        self.recover()
    }

    /// Under the lock: recovery, then object + state → snapshot.
    fn load(&self) -> Result<Option<Snapshot<LocalVersion>>, ObjectsError> {
        self.recover()?;
        let content = match fs::read(&self.object) {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ObjectsError::io("read", &self.object, e)),
        };
        let content_sha256: [u8; 32] = Sha256::digest(&content).into();
        let content_len = content.len() as u64;
        let (commit, applied) = match self.read_state()? {
            Some(s)
                if s.content_len == content_len
                    && s.content_sha256 == hex::encode(content_sha256) =>
            {
                (s.commit, AppliedKeys::from_tokens(&s.applied))
            }
            Some(_) => {
                tracing::warn!(
                    object = %self.object.display(),
                    "append object was changed outside append_lines; its idempotency record starts over"
                );
                (EXTERNAL_COMMIT.to_owned(), AppliedKeys::default())
            }
            None => (EXTERNAL_COMMIT.to_owned(), AppliedKeys::default()),
        };
        Ok(Some(Snapshot {
            content: Bytes::from(content),
            applied,
            version: LocalVersion {
                commit,
                content_len,
                content_sha256,
            },
        }))
    }

    /// Under the lock: roll an interrupted write forward or back (see the module doc).
    fn recover(&self) -> Result<(), ObjectsError> {
        let journal = self.journal_path();
        let pending = match fs::read(&journal) {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ObjectsError::io("read journal", &journal, e)),
        };
        let committed = match self.read_state()? {
            Some(s) => {
                s.content_len == pending.len() as u64
                    && s.content_sha256 == hex::encode(Sha256::digest(&pending))
            }
            None => false,
        };
        if committed {
            tracing::info!(object = %self.object.display(), "finishing an interrupted append (roll forward)");
            rename(&journal, &self.object)?;
        } else {
            tracing::info!(object = %self.object.display(), "discarding an uncommitted append (roll back)");
            fs::remove_file(&journal)
                .map_err(|e| ObjectsError::io("remove journal", &journal, e))?;
        }
        fsync_dir(self.dir()?)
    }

    fn read_state(&self) -> Result<Option<StateFile>, ObjectsError> {
        let path = self.state_path();
        let raw = match fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ObjectsError::io("read state", &path, e)),
        };
        let state: StateFile =
            serde_json::from_slice(&raw).map_err(|e| ObjectsError::CorruptState {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if state.format != STATE_FORMAT {
            return Err(ObjectsError::CorruptState {
                path,
                reason: format!(
                    "format {} is not the supported format {STATE_FORMAT}",
                    state.format
                ),
            });
        }
        Ok(Some(state))
    }
}

fn exists(path: &Path) -> Result<bool, ObjectsError> {
    path.try_exists()
        .map_err(|e| ObjectsError::io("check", path, e))
}

/// Creates, writes and fsyncs a file (truncating an older one).
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ObjectsError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| ObjectsError::io("create", path, e))?;
    f.write_all(bytes)
        .map_err(|e| ObjectsError::io("write", path, e))?;
    f.sync_all().map_err(|e| ObjectsError::io("fsync", path, e))
}

fn rename(from: &Path, to: &Path) -> Result<(), ObjectsError> {
    fs::rename(from, to).map_err(|e| ObjectsError::io("rename into place", to, e))
}

/// Fsyncs a folder so the entries just renamed or created in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ObjectsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ObjectsError::io("fsync folder", dir, e))
}

/// Creates `dir` and its missing ancestors, fsyncing each new folder and the folder it was
/// created in, so the new entries survive a crash.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), ObjectsError> {
    if exists(dir)? {
        return Ok(());
    }
    let mut missing = vec![dir];
    let mut cur = dir;
    while let Some(parent) = cur.parent() {
        if exists(parent)? {
            break;
        }
        missing.push(parent);
        cur = parent;
    }
    fs::create_dir_all(dir).map_err(|e| ObjectsError::io("create folder", dir, e))?;
    // `missing` runs from `dir` up to the highest new folder; sync each and the one above it.
    for new_dir in missing {
        fsync_dir(new_dir)?;
        if let Some(parent) = new_dir.parent() {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::token_for;

    fn snapshot_text(obj: &LocalObject) -> Option<(String, AppliedKeys)> {
        obj.read().expect("read").map(|s| {
            (
                String::from_utf8(s.content.to_vec()).expect("utf8"),
                s.applied,
            )
        })
    }

    fn append(obj: &LocalObject, text: &str, key: &str, stop: StopAfter) -> bool {
        let snap = obj.read().expect("read");
        let (mut content, applied, version) = match snap {
            Some(s) => (s.content.to_vec(), s.applied, Some(s.version)),
            None => (Vec::new(), AppliedKeys::default(), None),
        };
        content.extend_from_slice(text.as_bytes());
        obj.write(
            version.as_ref(),
            &content,
            &applied.with(&token_for(key)),
            stop,
        )
        .expect("write")
    }

    #[test]
    fn write_is_conditional_on_the_version_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let obj = LocalObject::new(dir.path().join("sub/alarm.log"));
        assert!(
            obj.read().expect("read").is_none(),
            "absent, folder not created"
        );
        assert!(append(&obj, "a\n", "k1", StopAfter::Never));

        let stale = obj.read().expect("read").expect("present");
        assert!(append(&obj, "b\n", "k2", StopAfter::Never));
        // A write computed from the stale read must be refused.
        let mut content = stale.content.to_vec();
        content.extend_from_slice(b"c\n");
        assert!(
            !obj.write(
                Some(&stale.version),
                &content,
                &stale.applied,
                StopAfter::Never
            )
            .expect("write")
        );
        // So must a create when the object exists.
        assert!(
            !obj.write(None, b"x\n", &AppliedKeys::default(), StopAfter::Never)
                .expect("write")
        );

        let (text, applied) = snapshot_text(&obj).expect("present");
        assert_eq!(text, "a\nb\n");
        assert!(applied.contains(&token_for("k1")) && applied.contains(&token_for("k2")));
        // Helper files are beside the object, not listed as objects by LocalFileSystem (#digits).
        let mut names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        assert_eq!(names, ["alarm.log", "alarm.log#0", "alarm.log#00"]);
    }

    #[test]
    fn crash_before_commit_rolls_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let obj = LocalObject::new(dir.path().join("alarm.log"));
        assert!(append(&obj, "a\n", "k1", StopAfter::Never));
        // "Crash" after the journal is written, before the state is committed.
        assert!(append(&obj, "b\n", "k2", StopAfter::Journal));
        assert!(obj.journal_path().exists());
        assert_eq!(fs::read(&obj.object).expect("read"), b"a\n");

        let (text, applied) = snapshot_text(&obj).expect("present");
        assert_eq!(text, "a\n", "uncommitted lines discarded");
        assert!(
            !applied.contains(&token_for("k2")),
            "so a retry of k2 appends"
        );
        assert!(!obj.journal_path().exists());
        assert!(append(&obj, "b\n", "k2", StopAfter::Never));
        assert_eq!(snapshot_text(&obj).expect("present").0, "a\nb\n");
    }

    #[test]
    fn crash_after_commit_rolls_forward() {
        let dir = tempfile::tempdir().expect("tempdir");
        let obj = LocalObject::new(dir.path().join("alarm.log"));
        assert!(append(&obj, "a\n", "k1", StopAfter::Never));
        // "Crash" after the commit, before the journal is renamed onto the object.
        assert!(append(&obj, "b\n", "k2", StopAfter::Commit));
        assert_eq!(fs::read(&obj.object).expect("read"), b"a\n");

        // A plain get recovers first.
        obj.recover_if_interrupted().expect("recover");
        assert_eq!(fs::read(&obj.object).expect("read"), b"a\nb\n");
        let (text, applied) = snapshot_text(&obj).expect("present");
        assert_eq!(text, "a\nb\n");
        assert!(
            applied.contains(&token_for("k2")),
            "so a retry of k2 is a no-op"
        );
    }

    #[test]
    fn crash_on_first_create_rolls_forward_and_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let obj = LocalObject::new(dir.path().join("a.log"));
        assert!(append(&obj, "a\n", "k1", StopAfter::Commit));
        assert!(!obj.object.exists());
        assert_eq!(snapshot_text(&obj).expect("present").0, "a\n");

        let obj2 = LocalObject::new(dir.path().join("b.log"));
        assert!(append(&obj2, "a\n", "k1", StopAfter::Journal));
        assert!(obj2.read().expect("read").is_none());
        assert!(!obj2.journal_path().exists());
    }

    #[test]
    fn stale_state_of_a_deleted_object_is_never_taken_for_a_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let obj = LocalObject::new(dir.path().join("alarm.log"));
        assert!(append(&obj, "a\n", "k1", StopAfter::Never));
        // Deleted by something else (rotation); the state of the old object stays.
        fs::remove_file(&obj.object).expect("external delete");
        // The same bytes again under another key, crashing before the commit: the old state
        // describes exactly these bytes, yet the journal must be rolled back.
        assert!(append(&obj, "a\n", "k2", StopAfter::Journal));
        assert!(
            obj.read().expect("read").is_none(),
            "rolled back, not resurrected"
        );
        assert!(append(&obj, "a\n", "k2", StopAfter::Never));
        let (text, applied) = snapshot_text(&obj).expect("present");
        assert_eq!(text, "a\n");
        assert!(applied.contains(&token_for("k2")) && !applied.contains(&token_for("k1")));
    }

    #[test]
    fn external_change_resets_record_and_changes_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let obj = LocalObject::new(dir.path().join("alarm.log"));
        assert!(append(&obj, "a\n", "k1", StopAfter::Never));
        let before = obj.read().expect("read").expect("present");
        fs::write(&obj.object, b"rewritten\n").expect("external write");
        let after = obj.read().expect("read").expect("present");
        assert_ne!(before.version, after.version);
        assert_eq!(after.version.commit, EXTERNAL_COMMIT);
        assert!(!after.applied.contains(&token_for("k1")));
    }

    #[test]
    fn corrupt_state_is_a_precise_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let obj = LocalObject::new(dir.path().join("alarm.log"));
        assert!(append(&obj, "a\n", "k1", StopAfter::Never));
        fs::write(obj.state_path(), b"{not json").expect("corrupt");
        let e = obj.read().expect_err("corrupt");
        assert!(matches!(e, ObjectsError::CorruptState { .. }), "{e}");
        assert!(e.to_string().contains("alarm.log#00"), "{e}");
    }
}
