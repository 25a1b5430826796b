//! Push splitter for a JSON array streamed incrementally (`gemini.md` §2): Gemini's
//! `:streamGenerateContent` without `alt=sse` answers `[{…},\r\n{…}]`, one element per chunk of
//! the generation, with no terminal event.
//!
//! The splitter reports every top-level element of the array as soon as its last byte
//! arrives, with its stream offsets, in the same shape as the NDJSON splitter. It is total:
//! every byte sequence is accepted and nothing panics.
//!
//! Choices where the spec is silent:
//! * A body that does not open with `[` (an error object, a single response object) is read
//!   as a sequence of top-level values, so a lone object is still one element.
//! * Separators are not validated (`[a b]`, `[,a]` give the elements `a` and `b`): the
//!   splitter only finds element boundaries; each element is then parsed on its own.
//! * Bytes after the closing `]` are ignored.
//! * An element longer than the cap is reported without content and never buffered beyond the
//!   cap, so memory stays bounded by it (the "line cap per element" of `gemini.md` §2).
//! * At [`JsonArraySplitter::finish`] an unterminated element is reported as it stands (its
//!   parse usually fails, which is harmless).

use crate::sse::DEFAULT_LINE_CAP;

/// One complete top-level element with its stream offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonElement<'a> {
    /// The element's bytes, or `None` when it exceeded the cap.
    pub content: Option<&'a [u8]>,
    /// Offset of the element's first byte.
    pub start: u64,
    /// Offset just after its last byte.
    pub end: u64,
    /// Length in bytes.
    pub length: u64,
}

/// Where the splitter stands outside an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outer {
    /// Before the opening `[` (or in a body that is not an array).
    Before,
    /// Inside the top-level array, between elements.
    InArray,
    /// After the closing `]`: the rest is ignored.
    After,
}

/// The element being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    /// An object or array: ends when its nesting depth returns to 0.
    Nested { depth: u32 },
    /// A string: ends at its closing quote.
    Text,
    /// A number, literal or stray byte run: ends before whitespace, `,`, `]` or `}`.
    Scalar,
}

/// The incremental JSON-array splitter.
#[derive(Debug, Clone)]
pub struct JsonArraySplitter {
    cap: usize,
    pos: u64,
    outer: Outer,
    element: Option<Element>,
    in_string: bool,
    escape: bool,
    start: u64,
    /// Bytes of the current element received in earlier chunks.
    carried: u64,
    buf: Vec<u8>,
}

impl Default for JsonArraySplitter {
    fn default() -> Self {
        JsonArraySplitter::new(DEFAULT_LINE_CAP)
    }
}

impl JsonArraySplitter {
    /// A splitter with the given element cap in bytes.
    pub fn new(cap: usize) -> Self {
        JsonArraySplitter {
            cap,
            pos: 0,
            outer: Outer::Before,
            element: None,
            in_string: false,
            escape: false,
            start: 0,
            carried: 0,
            buf: Vec::new(),
        }
    }

    /// Splits one chunk, calling `f` for every element that completes in it.
    pub fn push(&mut self, chunk: &[u8], mut f: impl FnMut(&JsonElement<'_>)) {
        let mut seg = self.element.map(|_| 0usize);
        let mut i = 0usize;
        while i < chunk.len() {
            let b = chunk[i];
            match self.element {
                Some(kind) => {
                    let (done, consumed) = self.step(kind, b);
                    if done {
                        let to = if consumed { i + 1 } else { i };
                        let from = seg.take().unwrap_or(to);
                        self.complete(&chunk[from..to], &mut f);
                        if !consumed {
                            // The terminator of a scalar is a separator: look at it again.
                            continue;
                        }
                    }
                }
                None => {
                    if self.outside(b) {
                        self.begin(b, self.pos + i as u64);
                        seg = Some(i);
                    }
                }
            }
            i += 1;
        }
        if let Some(from) = seg {
            self.carry(&chunk[from..]);
        }
        self.pos += chunk.len() as u64;
    }

    /// Ends the input, reporting an unterminated element.
    pub fn finish(&mut self, mut f: impl FnMut(&JsonElement<'_>)) {
        if self.element.is_some() {
            self.complete(&[], &mut f);
        }
    }

    /// Stream offset after the last byte pushed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes held in memory for the current partial element.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Handles a byte outside any element; true when it starts one.
    fn outside(&mut self, b: u8) -> bool {
        match (self.outer, b) {
            (Outer::After, _) => false,
            (_, b' ' | b'\t' | b'\r' | b'\n') => false,
            (Outer::Before, b'[') => {
                self.outer = Outer::InArray;
                false
            }
            (Outer::InArray, b',') => false,
            (Outer::InArray, b']') => {
                self.outer = Outer::After;
                false
            }
            _ => true,
        }
    }

    fn begin(&mut self, b: u8, offset: u64) {
        self.start = offset;
        self.carried = 0;
        self.in_string = false;
        self.escape = false;
        self.element = Some(match b {
            b'{' | b'[' => Element::Nested { depth: 1 },
            b'"' => Element::Text,
            _ => Element::Scalar,
        });
    }

    /// Feeds one byte of the current element; returns `(ended, byte belongs to it)`.
    fn step(&mut self, kind: Element, b: u8) -> (bool, bool) {
        match kind {
            Element::Text => {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    return (true, true);
                }
                (false, true)
            }
            Element::Scalar => match b {
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'}' => (true, false),
                _ => (false, true),
            },
            Element::Nested { depth } => {
                if self.in_string {
                    if self.escape {
                        self.escape = false;
                    } else if b == b'\\' {
                        self.escape = true;
                    } else if b == b'"' {
                        self.in_string = false;
                    }
                    return (false, true);
                }
                let depth = match b {
                    b'"' => {
                        self.in_string = true;
                        depth
                    }
                    b'{' | b'[' => depth.saturating_add(1),
                    b'}' | b']' => depth - 1,
                    _ => depth,
                };
                if depth == 0 {
                    return (true, true);
                }
                self.element = Some(Element::Nested { depth });
                (false, true)
            }
        }
    }

    /// Keeps the bytes of an element that continues in the next chunk, up to the cap.
    fn carry(&mut self, bytes: &[u8]) {
        self.carried += bytes.len() as u64;
        if self.carried > self.cap as u64 {
            // Over the cap: drop the buffer for good; only the length is still counted.
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Reports the current element, whose last bytes in this chunk are `tail`.
    fn complete(&mut self, tail: &[u8], f: &mut impl FnMut(&JsonElement<'_>)) {
        let length = self.carried + tail.len() as u64;
        let start = self.start;
        let end = start + length;
        if length > self.cap as u64 {
            f(&JsonElement {
                content: None,
                start,
                end,
                length,
            });
        } else if self.carried == 0 {
            f(&JsonElement {
                content: Some(tail),
                start,
                end,
                length,
            });
        } else {
            self.buf.extend_from_slice(tail);
            f(&JsonElement {
                content: Some(&self.buf),
                start,
                end,
                length,
            });
        }
        self.buf.clear();
        self.carried = 0;
        self.element = None;
        self.in_string = false;
        self.escape = false;
    }
}

#[cfg(test)]
mod tests;
