//! Following one file by its path, across rotation and truncation, in complete lines.
//!
//! The tailer reads with positional reads from the file it has open and compares, at every end
//! of file, the identity (device, inode) of whatever is now at the path with the identity of the
//! open file:
//!
//! * **Rotation** (the path names another file: `mv auth.log auth.log.1` and a new `auth.log`):
//!   the old file is read to its end first — a writer may still append to it until it reopens —
//!   and its incomplete last line, if any, becomes a line; then the new file is read from 0.
//!   While the path does not exist (between the rename and the new file), the old file is
//!   still followed.
//! * **Truncation** (the open file is now shorter than what was read from it, `copytruncate`
//!   or `: > file`): reading restarts at offset 0 and a held-back partial line is dropped.
//!   A truncation followed, before the next poll, by writes past the old length cannot be told
//!   from appends; every tailer that polls has that limit.
//! * **Resuming** from a [`FilePosition`] (a checkpoint): if the path still names that file,
//!   reading continues at the offset (or at 0 when the file is now shorter); otherwise the
//!   file's siblings in the same directory are searched for its identity (`auth.log.1`), and its
//!   remainder is read before the file at the path. If it cannot be found it is reported
//!   ([`TailEvent::Lost`]) and the file at the path is read from its start.
//!
//! Lines come from [`crate::lines::LineSplitter`]: complete lines only, a cap per line.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lines::{LineSplitter, Piece};

/// A file's identity: it survives renames, and a new file at the same path has another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(m: &Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dev {} inode {}", self.dev, self.ino)
    }
}

/// How far a file has been consumed: every byte before `offset` belongs to a complete line
/// (`line` of them) that has been handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub file: FileId,
    pub offset: u64,
    pub line: u64,
}

/// One complete line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// 1-based line number in its file (counted from where reading started).
    pub line: u64,
    pub file: FileId,
}

/// Something the caller should know (and log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailEvent {
    /// Started reading `file` at `offset`.
    Opened { file: FileId, offset: u64 },
    /// The path names a new file; the old one was read to its end.
    Rotated { from: FileId, to: FileId },
    /// The file became shorter (`size`) than what was read (`offset`); reading restarts at 0.
    Truncated {
        file: FileId,
        size: u64,
        offset: u64,
    },
    /// A line longer than the cap, dropped.
    LineTooLong { line: u64, bytes: u64 },
    /// The checkpointed file is neither at the path nor beside it; what followed `offset` in it
    /// cannot be read.
    Lost { file: FileId, offset: u64 },
    /// The path does not exist (yet); reported once until it appears.
    Missing,
}

/// What one [`Tailer::poll`] read.
#[derive(Debug, Default)]
pub struct Chunk {
    pub lines: Vec<Line>,
    pub events: Vec<TailEvent>,
    /// The position after this chunk (None while no file was ever opened).
    pub position: Option<FilePosition>,
    /// The read budget ran out: more is there, poll again at once.
    pub more: bool,
}

/// Limits of a [`Tailer`].
#[derive(Debug, Clone, Copy)]
pub struct TailOptions {
    /// The longest line kept, in bytes.
    pub max_line: usize,
    /// The most bytes one poll reads.
    pub max_chunk: usize,
    /// Without a position to resume from, start at the end of the file (skip what is there).
    pub start_at_end: bool,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            max_line: 1024 * 1024,
            max_chunk: 1024 * 1024,
            start_at_end: false,
        }
    }
}

struct Current {
    file: File,
    pos: FilePosition,
    /// Bytes read from the file: `pos.offset` plus what the splitter holds back.
    read_to: u64,
    split: LineSplitter,
}

/// Follows one path. Blocking file IO; each poll is bounded by `max_chunk`.
pub struct Tailer {
    path: PathBuf,
    opts: TailOptions,
    resume: Option<FilePosition>,
    cur: Option<Current>,
    buf: Vec<u8>,
    missing_reported: bool,
}

impl std::fmt::Debug for Tailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailer")
            .field("path", &self.path)
            .field("position", &self.position())
            .finish()
    }
}

impl Tailer {
    pub fn new(
        path: impl Into<PathBuf>,
        resume: Option<FilePosition>,
        opts: TailOptions,
    ) -> Tailer {
        Tailer {
            path: path.into(),
            opts,
            resume,
            cur: None,
            buf: vec![0; 64 * 1024],
            missing_reported: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where reading stands (complete lines handed out).
    pub fn position(&self) -> Option<FilePosition> {
        self.cur.as_ref().map(|c| c.pos).or(self.resume)
    }

    /// Reads what is new, following rotation and truncation.
    pub fn poll(&mut self) -> io::Result<Chunk> {
        let mut chunk = Chunk::default();
        if self.cur.is_none() && !self.open_first(&mut chunk)? {
            chunk.position = self.resume;
            return Ok(chunk);
        }
        let mut budget = self.opts.max_chunk.max(1);
        while let Some(cur) = self.cur.as_mut() {
            let size = cur.file.metadata()?.len();
            if size < cur.read_to {
                chunk.events.push(TailEvent::Truncated {
                    file: cur.pos.file,
                    size,
                    offset: cur.read_to,
                });
                cur.split.reset();
                cur.read_to = 0;
                cur.pos.offset = 0;
                cur.pos.line = 0;
            }
            let want = budget.min(self.buf.len());
            let n = read_at(&cur.file, &mut self.buf[..want], cur.read_to)?;
            if n > 0 {
                cur.read_to += n as u64;
                let mut pieces = Vec::new();
                cur.split.push(&self.buf[..n], &mut pieces);
                take_pieces(cur, pieces, &mut chunk);
                budget -= n;
                if budget == 0 {
                    chunk.more = true;
                    break;
                }
                continue;
            }
            // At the end of the open file: does the path still name it?
            let at_path = match std::fs::metadata(&self.path) {
                Ok(m) => FileId::of(&m),
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            if at_path == cur.pos.file {
                break;
            }
            // Rotated. Something may have been appended to the old file between the read
            // above and the look at the path: read once more before closing it.
            let n = read_at(&cur.file, &mut self.buf[..want], cur.read_to)?;
            if n > 0 {
                cur.read_to += n as u64;
                let mut pieces = Vec::new();
                cur.split.push(&self.buf[..n], &mut pieces);
                take_pieces(cur, pieces, &mut chunk);
                budget -= n;
                if budget == 0 {
                    chunk.more = true;
                    break;
                }
                continue;
            }
            let mut pieces = Vec::new();
            cur.split.finish(&mut pieces);
            take_pieces(cur, pieces, &mut chunk);
            let from = cur.pos.file;
            let file = match File::open(&self.path) {
                Ok(f) => f,
                // Renamed away again between the look and the open: next poll.
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            let to = FileId::of(&file.metadata()?);
            chunk.events.push(TailEvent::Rotated { from, to });
            self.cur = Some(self.current(file, to, 0, 0));
        }
        chunk.position = self.position();
        Ok(chunk)
    }

    fn current(&self, file: File, id: FileId, offset: u64, line: u64) -> Current {
        Current {
            file,
            pos: FilePosition {
                file: id,
                offset,
                line,
            },
            read_to: offset,
            split: LineSplitter::new(self.opts.max_line),
        }
    }

    /// Opens the file to start with; false while there is none.
    fn open_first(&mut self, chunk: &mut Chunk) -> io::Result<bool> {
        let at_path = match File::open(&self.path) {
            Ok(f) => {
                let m = f.metadata()?;
                Some((f, FileId::of(&m), m.len()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(p) = self.resume {
            if let Some((f, id, _)) = at_path.as_ref().filter(|(_, id, _)| *id == p.file) {
                let file = f.try_clone()?;
                chunk.events.push(TailEvent::Opened {
                    file: *id,
                    offset: p.offset,
                });
                self.cur = Some(self.current(file, p.file, p.offset, p.line));
                self.resume = None;
                return Ok(true);
            }
            if let Some(file) = find_sibling(&self.path, p.file)? {
                chunk.events.push(TailEvent::Opened {
                    file: p.file,
                    offset: p.offset,
                });
                self.cur = Some(self.current(file, p.file, p.offset, p.line));
                self.resume = None;
                return Ok(true);
            }
            if at_path.is_none() {
                // Neither the old file nor a new one: wait, keeping the position.
                self.report_missing(chunk);
                return Ok(false);
            }
            chunk.events.push(TailEvent::Lost {
                file: p.file,
                offset: p.offset,
            });
            self.resume = None;
            // A file that replaced the checkpointed one is new: read it from its start.
            if let Some((f, id, _)) = at_path {
                chunk.events.push(TailEvent::Opened {
                    file: id,
                    offset: 0,
                });
                self.cur = Some(self.current(f, id, 0, 0));
            }
            return Ok(true);
        }
        let Some((f, id, len)) = at_path else {
            self.report_missing(chunk);
            return Ok(false);
        };
        let offset = if self.opts.start_at_end { len } else { 0 };
        chunk.events.push(TailEvent::Opened { file: id, offset });
        self.cur = Some(self.current(f, id, offset, 0));
        Ok(true)
    }

    fn report_missing(&mut self, chunk: &mut Chunk) {
        if !self.missing_reported {
            self.missing_reported = true;
            chunk.events.push(TailEvent::Missing);
        }
    }
}

fn take_pieces(cur: &mut Current, pieces: Vec<Piece>, chunk: &mut Chunk) {
    for piece in pieces {
        cur.pos.line += 1;
        cur.pos.offset += piece.bytes();
        match piece {
            Piece::Line { text, .. } => chunk.lines.push(Line {
                text,
                line: cur.pos.line,
                file: cur.pos.file,
            }),
            Piece::TooLong { bytes } => chunk.events.push(TailEvent::LineTooLong {
                line: cur.pos.line,
                bytes,
            }),
        }
    }
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The file with identity `id` in the directory of `path` (a rotated log: `auth.log.1`).
fn find_sibling(path: &Path, id: FileId) -> io::Result<Option<File>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if let Ok(m) = std::fs::metadata(&p)
            && m.is_file()
            && FileId::of(&m) == id
        {
            // Opened, then checked again: it may have been renamed over in between.
            let f = File::open(&p)?;
            if FileId::of(&f.metadata()?) == id {
                return Ok(Some(f));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn texts(chunk: &Chunk) -> Vec<&str> {
        chunk.lines.iter().map(|l| l.text.as_str()).collect()
    }

    fn small() -> TailOptions {
        TailOptions {
            max_line: 16,
            max_chunk: 1024,
            start_at_end: false,
        }
    }

    #[test]
    fn waits_for_the_file_then_reads_complete_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut t = Tailer::new(&path, None, small());
        let c = t.poll().unwrap();
        assert_eq!(c.events, vec![TailEvent::Missing]);
        assert!(c.position.is_none());
        // Reported once, not at every poll.
        assert!(t.poll().unwrap().events.is_empty());
        append(&path, "one\ntw");
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["one"]);
        assert_eq!(c.position.unwrap().offset, 4);
        append(&path, "o\n");
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["two"]);
        assert_eq!(c.lines[0].line, 2);
        assert_eq!(c.position.unwrap().offset, 8);
        assert!(texts(&t.poll().unwrap()).is_empty());
    }

    #[test]
    fn rotation_finishes_the_old_file_before_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        append(&path, "a1\n");
        let mut t = Tailer::new(&path, None, small());
        assert_eq!(texts(&t.poll().unwrap()), ["a1"]);
        let old_id = t.position().unwrap().file;
        // logrotate: rename, the writer still appends to the old file (one line without its
        // newline), and a new file appears at the path.
        std::fs::rename(&path, dir.path().join("auth.log.1")).unwrap();
        append(&dir.path().join("auth.log.1"), "a2\na3");
        // Only the old file exists: it is still followed, the partial line waits.
        assert_eq!(texts(&t.poll().unwrap()), ["a2"]);
        append(&path, "b1\n");
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["a3", "b1"]);
        let new_id = c.position.unwrap().file;
        assert_ne!(new_id, old_id);
        assert_eq!(
            c.events,
            vec![TailEvent::Rotated {
                from: old_id,
                to: new_id
            }]
        );
        assert_eq!(c.position.unwrap().offset, 3);
        assert_eq!(c.lines[1].line, 1);
    }

    #[test]
    fn truncation_restarts_at_zero_and_drops_the_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        append(&path, "first line\nsecond\npart");
        let mut t = Tailer::new(&path, None, small());
        assert_eq!(texts(&t.poll().unwrap()), ["first line", "second"]);
        std::fs::write(&path, "new\n").unwrap();
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["new"]);
        assert!(matches!(
            c.events[..],
            [TailEvent::Truncated {
                size: 4,
                offset: 22,
                ..
            }]
        ));
        assert_eq!(c.position.unwrap().offset, 4);
        assert_eq!(c.lines[0].line, 1);
    }

    #[test]
    fn an_over_long_line_is_an_event_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.log");
        append(&path, &format!("ok\n{}\nafter\n", "x".repeat(100)));
        let mut t = Tailer::new(&path, None, small());
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["ok", "after"]);
        assert_eq!(
            c.events[1..],
            [TailEvent::LineTooLong {
                line: 2,
                bytes: 101
            }]
        );
        assert_eq!(c.lines[1].line, 3);
        assert_eq!(c.position.unwrap().offset, 110);
    }

    #[test]
    fn resumes_at_a_position_and_finds_a_file_rotated_while_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        append(&path, "one\ntwo\n");
        let mut t = Tailer::new(&path, None, small());
        t.poll().unwrap();
        let mut first = t.position().unwrap();
        first.offset = 4;
        first.line = 1;
        // Same file: continues after "one".
        let mut t = Tailer::new(&path, Some(first), small());
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["two"]);
        assert_eq!(c.lines[0].line, 2);
        // Rotated while stopped: the remainder of r.log.1, then the new r.log.
        append(&path, "three\n");
        std::fs::rename(&path, dir.path().join("r.log.1")).unwrap();
        append(&path, "new\n");
        let mut t = Tailer::new(&path, Some(first), small());
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["two", "three", "new"]);
        // Gone altogether: reported, and the file at the path is read from its start.
        std::fs::remove_file(dir.path().join("r.log.1")).unwrap();
        let mut t = Tailer::new(&path, Some(first), small());
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["new"]);
        assert!(matches!(c.events[0], TailEvent::Lost { offset: 4, .. }));
        // A file now shorter than the position: truncated while stopped, read from 0.
        let at = c.position.unwrap();
        std::fs::write(&path, "").unwrap();
        append(&path, "x\n");
        let mut t = Tailer::new(&path, Some(at), small());
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["x"]);
    }

    #[test]
    fn start_at_end_skips_what_is_there_and_the_budget_splits_big_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        append(&path, "old\n");
        let opts = TailOptions {
            start_at_end: true,
            max_chunk: 8,
            ..small()
        };
        let mut t = Tailer::new(&path, None, opts);
        assert!(texts(&t.poll().unwrap()).is_empty());
        append(&path, "abc\ndef\nghi\n");
        let c = t.poll().unwrap();
        assert!(c.more);
        assert_eq!(texts(&c), ["abc", "def"]);
        let c = t.poll().unwrap();
        assert_eq!(texts(&c), ["ghi"]);
        assert!(!c.more);
    }
}
