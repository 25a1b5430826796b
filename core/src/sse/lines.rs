//! Line splitting shared by the SSE scanner and the NDJSON splitter.
//!
//! The splitter owns the only copy of a line that spans chunks (`carry`), bounded by the line
//! cap: once a line's content exceeds the cap the carry is dropped and only the length is
//! counted, so memory stays at most `cap` bytes whatever the input.

use memchr::{memchr, memchr2};

/// One piece of output of the splitter.
pub(crate) enum Piece<'a> {
    /// A complete line.
    Line(Line<'a>),
    /// An LF that completed a CRLF whose CR ended the previous chunk; the line it terminates
    /// was already reported with `end` just after the CR.
    LfAfterCr {
        /// Stream offset of the LF.
        offset: u64,
    },
}

/// A complete line with its stream offsets.
pub(crate) struct Line<'a> {
    /// The content without terminator, or `None` when it exceeded the cap.
    pub content: Option<&'a [u8]>,
    /// Offset of the first byte of the line.
    pub start: u64,
    /// Offset just after the content (start of the terminator).
    pub content_end: u64,
    /// Offset just after the terminator as far as it is known (see [`Piece::LfAfterCr`]).
    pub end: u64,
    /// Content length in bytes.
    pub length: u64,
}

/// Push line splitter: LF (and optionally CR / CRLF) terminated lines with a content cap.
#[derive(Debug, Clone)]
pub(crate) struct LineSplitter {
    cap: usize,
    cr_ends_line: bool,
    pos: u64,
    line_start: u64,
    carry: Vec<u8>,
    line_len: u64,
    overlong: bool,
    last_cr: bool,
}

impl LineSplitter {
    /// A splitter with the given content cap; `cr_ends_line` selects the event-stream rule
    /// (LF, CR or CRLF) instead of LF only.
    pub(crate) fn new(cap: usize, cr_ends_line: bool) -> Self {
        LineSplitter {
            cap,
            cr_ends_line,
            pos: 0,
            line_start: 0,
            carry: Vec::new(),
            line_len: 0,
            overlong: false,
            last_cr: false,
        }
    }

    /// Stream offset after the last byte pushed.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Stream offset where the current unterminated line starts (equals `position()` when no
    /// partial line is pending).
    pub(crate) fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Whether the current unterminated line already exceeds the cap.
    pub(crate) fn partial_overlong(&self) -> bool {
        self.overlong
    }

    /// Bytes held in memory for the current partial line.
    pub(crate) fn buffered(&self) -> usize {
        self.carry.len()
    }

    /// Splits `chunk`, calling `f` for every complete line.
    pub(crate) fn push(&mut self, chunk: &[u8], f: &mut impl FnMut(Piece<'_>)) {
        let base = self.pos;
        let n = chunk.len();
        let mut i = 0;
        if n == 0 {
            return;
        }
        if self.last_cr {
            self.last_cr = false;
            if chunk[0] == b'\n' {
                f(Piece::LfAfterCr { offset: base });
                i = 1;
                self.line_start = base + 1;
            }
        }
        while i < n {
            let rest = &chunk[i..];
            let found = if self.cr_ends_line {
                memchr2(b'\n', b'\r', rest)
            } else {
                memchr(b'\n', rest)
            };
            let Some(off) = found else {
                self.extend_partial(rest);
                break;
            };
            let t = i + off;
            let mut next = t + 1;
            if chunk[t] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.last_cr = true,
                }
            }
            let piece = &chunk[i..t];
            let length = self.line_len + piece.len() as u64;
            let start = self.line_start;
            let content_end = base + t as u64;
            let end = base + next as u64;
            let content = if self.overlong || length > self.cap as u64 {
                None
            } else if self.carry.is_empty() {
                Some(piece)
            } else {
                self.carry.extend_from_slice(piece);
                Some(&self.carry[..])
            };
            f(Piece::Line(Line {
                content,
                start,
                content_end,
                end,
                length,
            }));
            self.carry.clear();
            self.line_len = 0;
            self.overlong = false;
            self.line_start = end;
            i = next;
        }
        self.pos = base + n as u64;
    }

    /// Reports the unterminated last line, if any, and resets the line state.
    pub(crate) fn finish(&mut self, f: &mut impl FnMut(Piece<'_>)) {
        self.last_cr = false;
        if self.line_len > 0 {
            let content = if self.overlong {
                None
            } else {
                Some(&self.carry[..])
            };
            f(Piece::Line(Line {
                content,
                start: self.line_start,
                content_end: self.pos,
                end: self.pos,
                length: self.line_len,
            }));
        }
        self.carry = Vec::new();
        self.line_len = 0;
        self.overlong = false;
        self.line_start = self.pos;
    }

    fn extend_partial(&mut self, rest: &[u8]) {
        self.line_len += rest.len() as u64;
        if self.overlong {
            return;
        }
        if self.line_len > self.cap as u64 {
            self.overlong = true;
            // Release the allocation too: an over-long line must not pin a cap-sized buffer.
            self.carry = Vec::new();
        } else {
            self.carry.extend_from_slice(rest);
        }
    }
}
