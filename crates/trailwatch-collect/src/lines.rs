//! Splitting a byte stream into complete lines. Pure: bytes in, pieces out.
//!
//! A line is complete when its `\n` has been seen; the bytes after the last `\n` wait for more
//! input (a writer may be half-way through a line). A line longer than the cap is not kept in
//! memory: its bytes are counted and dropped until its `\n`, and it comes out as
//! [`Piece::TooLong`] so that the caller reports it. Invalid UTF-8 is replaced (U+FFFD) line by
//! line, so one bad byte spoils one line, not the stream.

/// One complete line, or a line that exceeded the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The line without its `\n` (and without a `\r` before it). `bytes` counts the line's
    /// bytes in the input, terminator included.
    Line { text: String, bytes: u64 },
    /// A line of `bytes` bytes (terminator included), longer than the cap; dropped.
    TooLong { bytes: u64 },
}

impl Piece {
    /// Bytes of input this piece stands for.
    pub fn bytes(&self) -> u64 {
        match self {
            Piece::Line { bytes, .. } | Piece::TooLong { bytes } => *bytes,
        }
    }
}

/// Accumulates input and hands out complete lines.
#[derive(Debug)]
pub struct LineSplitter {
    max_line: usize,
    /// The start of the incomplete last line (never more than `max_line` bytes).
    partial: Vec<u8>,
    /// Bytes of an over-long line dropped so far (`Some` while inside one).
    skipping: Option<u64>,
}

impl LineSplitter {
    /// `max_line`: the longest line kept, in bytes, without its terminator.
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter {
            max_line: max_line.max(1),
            partial: Vec::new(),
            skipping: None,
        }
    }

    /// Bytes held back: an incomplete line (or the dropped part of an over-long one).
    pub fn pending(&self) -> u64 {
        self.partial.len() as u64 + self.skipping.unwrap_or(0)
    }

    /// Forgets what is held back (the file was truncated or replaced).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.skipping = None;
    }

    /// Feeds `data`, appending every piece it completes to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Piece>) {
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let (head, complete) = match newline {
                Some(i) => (&data[..i], true),
                None => (data, false),
            };
            data = match newline {
                Some(i) => &data[i + 1..],
                None => &[],
            };
            if let Some(skipped) = self.skipping.as_mut() {
                *skipped += head.len() as u64;
                if complete {
                    out.push(Piece::TooLong {
                        bytes: *skipped + 1,
                    });
                    self.skipping = None;
                }
                continue;
            }
            if self.partial.len() + head.len() > self.max_line {
                // Over the cap: stop keeping it; what was held so far counts as dropped.
                let dropped = (self.partial.len() + head.len()) as u64;
                self.partial.clear();
                if complete {
                    out.push(Piece::TooLong { bytes: dropped + 1 });
                } else {
                    self.skipping = Some(dropped);
                }
                continue;
            }
            self.partial.extend_from_slice(head);
            if complete {
                out.push(self.take_line(1));
            }
        }
    }

    /// The input ended for good (a rotated file was read to its end): an incomplete last line
    /// is a line after all, or an over-long one.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        if let Some(skipped) = self.skipping.take() {
            out.push(Piece::TooLong { bytes: skipped });
        } else if !self.partial.is_empty() {
            out.push(self.take_line(0));
        }
    }

    fn take_line(&mut self, terminator: u64) -> Piece {
        let bytes = self.partial.len() as u64 + terminator;
        let mut line: &[u8] = &self.partial;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let text = String::from_utf8_lossy(line).into_owned();
        self.partial.clear();
        Piece::Line { text, bytes }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(text: &str, bytes: u64) -> Piece {
        Piece::Line {
            text: text.into(),
            bytes,
        }
    }

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.push(b"one\ntw", &mut out);
        assert_eq!(out, vec![line("one", 4)]);
        assert_eq!(s.pending(), 2);
        s.push(b"o\r\nthree", &mut out);
        assert_eq!(out, vec![line("one", 4), line("two", 5)]);
        assert_eq!(s.pending(), 5);
        s.finish(&mut out);
        assert_eq!(out[2], line("three", 5));
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn an_over_long_line_is_reported_and_skipped_and_the_next_line_survives() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        // Arrives in pieces: the cap is crossed in the second one.
        s.push(b"ok\nabc", &mut out);
        s.push(b"defgh", &mut out);
        assert!(s.pending() > 0);
        s.push(b"ij\nfine\n", &mut out);
        assert_eq!(
            out,
            vec![line("ok", 3), Piece::TooLong { bytes: 11 }, line("fine", 5)]
        );
        // Exactly at the cap is kept; one byte over is not.
        let mut out = Vec::new();
        s.push(b"abcd\nabcde\n", &mut out);
        assert_eq!(out, vec![line("abcd", 5), Piece::TooLong { bytes: 6 }]);
        let total: u64 = out.iter().map(Piece::bytes).sum();
        assert_eq!(total, 11);
    }

    #[test]
    fn invalid_utf8_is_replaced_within_its_line_only() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.push(b"bad \xff byte\ngood\n", &mut out);
        assert_eq!(out, vec![line("bad \u{fffd} byte", 11), line("good", 5)]);
    }

    #[test]
    fn reset_drops_the_partial_line() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.push(b"half", &mut out);
        s.reset();
        s.push(b"new\n", &mut out);
        assert_eq!(out, vec![line("new", 4)]);
    }
}
