//! Push splitter for newline-delimited JSON bodies (`datapath.md` §13.5).
//!
//! Each line is one JSON value. Lines end with LF; a CR before the LF is stripped from the
//! content (CRLF framing), a lone CR is JSON whitespace and stays. A line longer than the cap
//! (default 1 048 576 bytes) is reported without content and never buffered, so memory stays
//! bounded by the cap. At [`NdjsonSplitter::finish`] an unterminated last line is reported.

use crate::sse::DEFAULT_LINE_CAP;
use crate::sse::lines::{LineSplitter, Piece};

/// One complete NDJSON line with its stream offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdjsonLine<'a> {
    /// The content without terminator (and without a CR before the LF), or `None` when the
    /// line exceeded the cap.
    pub content: Option<&'a [u8]>,
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just after the terminator (equal to the content end for an unterminated line).
    pub end: u64,
    /// Content length in bytes (terminator excluded).
    pub length: u64,
}

/// The incremental NDJSON line splitter. Total: every input is accepted.
#[derive(Debug, Clone)]
pub struct NdjsonSplitter {
    lines: LineSplitter,
}

impl Default for NdjsonSplitter {
    fn default() -> Self {
        NdjsonSplitter::new(DEFAULT_LINE_CAP)
    }
}

impl NdjsonSplitter {
    /// A splitter with the given line cap in bytes.
    pub fn new(line_cap: usize) -> Self {
        NdjsonSplitter {
            lines: LineSplitter::new(line_cap, false),
        }
    }

    /// Splits one chunk, calling `f` for every complete line.
    pub fn push(&mut self, chunk: &[u8], mut f: impl FnMut(&NdjsonLine<'_>)) {
        self.lines.push(chunk, &mut |piece| report(piece, &mut f));
    }

    /// Ends the input, reporting an unterminated last line.
    pub fn finish(&mut self, mut f: impl FnMut(&NdjsonLine<'_>)) {
        self.lines.finish(&mut |piece| report(piece, &mut f));
    }

    /// Stream offset after the last byte pushed.
    pub fn position(&self) -> u64 {
        self.lines.position()
    }

    /// Stream offset where the current unterminated line starts (`position()` if none).
    pub fn line_start(&self) -> u64 {
        self.lines.line_start()
    }

    /// Whether the current unterminated line already exceeds the cap.
    pub fn partial_overlong(&self) -> bool {
        self.lines.partial_overlong()
    }

    /// Bytes held in memory for the current partial line.
    pub fn buffered(&self) -> usize {
        self.lines.buffered()
    }
}

fn report(piece: Piece<'_>, f: &mut impl FnMut(&NdjsonLine<'_>)) {
    // LF-only splitting never produces a split CRLF notice.
    let Piece::Line(line) = piece else { return };
    let content = line.content.map(|c| c.strip_suffix(b"\r").unwrap_or(c));
    f(&NdjsonLine {
        content,
        start: line.start,
        end: line.end,
        length: line.length,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]], cap: usize) -> Vec<(Option<Vec<u8>>, u64, u64, u64)> {
        let mut s = NdjsonSplitter::new(cap);
        let mut out = Vec::new();
        let mut f = |l: &NdjsonLine<'_>| {
            out.push((l.content.map(<[u8]>::to_vec), l.start, l.end, l.length))
        };
        for c in chunks {
            s.push(c, &mut f);
        }
        s.finish(&mut f);
        out
    }

    #[test]
    fn lines_split_across_chunks_keep_offsets() {
        let out = split_all(&[b"{\"a\":1}\n{\"b\"", b":2}\r\n{\"c\":3}"], 100);
        assert_eq!(
            out,
            vec![
                (Some(b"{\"a\":1}".to_vec()), 0, 8, 7),
                (Some(b"{\"b\":2}".to_vec()), 8, 17, 8),
                (Some(b"{\"c\":3}".to_vec()), 17, 24, 7),
            ]
        );
    }

    #[test]
    fn over_long_line_is_reported_without_content_and_not_buffered() {
        let mut s = NdjsonSplitter::new(4);
        let mut seen = Vec::new();
        s.push(b"abc", |l| seen.push(l.length));
        s.push(b"defgh", |l| seen.push(l.length));
        assert!(s.partial_overlong());
        assert_eq!(s.buffered(), 0);
        s.push(b"\nok\n", |l| seen.push(l.length));
        assert_eq!(seen, vec![8, 2]);
        let out = split_all(&[b"abcdefgh\nok\n"], 4);
        assert_eq!(out[0], (None, 0, 9, 8));
    }

    #[test]
    fn lone_cr_does_not_end_a_line() {
        let out = split_all(&[b"{\"a\":\r1}\n"], 100);
        assert_eq!(out, vec![(Some(b"{\"a\":\r1}".to_vec()), 0, 9, 8)]);
    }
}
