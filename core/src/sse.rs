//! Incremental push scanner of the event-stream format (`datapath.md` §13.4).
//!
//! [`SseScanner`] is fed arbitrary byte chunks and reports every complete line (with its
//! stream byte offsets, so the relay can hold from the start of a terminal line) and every
//! dispatched event to an [`SseSink`]. It follows the event-stream rules: lines end with LF, CR
//! or CRLF (a CRLF split across chunks counts once, through a carried "last byte was CR"
//! flag); a leading UTF-8 BOM is ignored; `field:value` drops one leading space; the `data`
//! lines of an event join with LF; a blank line dispatches; comments and unknown fields are
//! ignored.
//!
//! Choices where the format is silent, for accounting:
//! * Invalid UTF-8 is replaced lazily: the sink receives raw bytes and converts with
//!   replacement only what it parses ([`SseEvent::data_lossy`]), which is equivalent because
//!   replacement never crosses the LF that joins data lines.
//! * An event is dispatched on a blank line whenever any field line was seen (not only when
//!   `data` is non-empty), so a sink can see an `event:` line without data.
//! * At [`SseScanner::finish`] the unterminated last line and the pending event are examined
//!   (the browser rule of discarding them does not apply to accounting).
//! * Memory is bounded by the cap: a line longer than the cap is reported as
//!   [`SseLineKind::TooLong`] and marks its event [`Skipped::LongLine`]; an event whose joined
//!   data would exceed the cap is marked [`Skipped::LongData`] and its data dropped.

pub(crate) mod lines;

use lines::{Line, LineSplitter, Piece};

/// Default line cap in bytes (1 MiB).
pub const DEFAULT_LINE_CAP: usize = 1_048_576;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Receives what the scanner finds. Every method has an empty default.
pub trait SseSink {
    /// A complete line (including blank lines and over-long lines).
    fn line(&mut self, _line: &SseLine<'_>) {}
    /// An event ended by a blank line (or by the end of input).
    fn event(&mut self, _event: &SseEvent<'_>) {}
    /// An LF at `offset` completed a CRLF whose CR ended the previous chunk: the line reported
    /// before with `end == offset` really ends at `offset + 1`.
    fn lf_after_cr(&mut self, _offset: u64) {}
}

/// One complete line with its stream offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLine<'a> {
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just after the content (where the terminator starts).
    pub content_end: u64,
    /// Offset just after the terminator (see [`SseSink::lf_after_cr`] for a split CRLF).
    pub end: u64,
    /// What the line is.
    pub kind: SseLineKind<'a>,
}

/// The classification of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseLineKind<'a> {
    /// An empty line: it dispatches the pending event.
    Blank,
    /// A comment (starts with `:`).
    Comment,
    /// A `data` field with its value (one leading space dropped).
    Data(&'a [u8]),
    /// An `event` field with its value.
    Event(&'a [u8]),
    /// Any other field (`id`, `retry`, unknown names), ignored for accounting.
    Other {
        /// Field name.
        field: &'a [u8],
        /// Field value.
        value: &'a [u8],
    },
    /// A line longer than the cap: forwarded but not parsed.
    TooLong {
        /// Content length in bytes.
        length: u64,
    },
}

/// Why an event is not usable for accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// The event is complete and usable.
    No,
    /// One of its lines exceeded the line cap.
    LongLine,
    /// Its joined data exceeded the line cap.
    LongData {
        /// Joined data length in bytes.
        length: u64,
    },
}

/// A dispatched event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// Value of the last `event:` line, if any.
    pub name: Option<&'a [u8]>,
    /// The `data` lines joined with LF (empty when skipped).
    pub data: &'a [u8],
    /// Whether at least one `data` line was seen.
    pub has_data: bool,
    /// Whether the event must be ignored for accounting.
    pub skipped: Skipped,
}

impl<'a> SseEvent<'a> {
    /// The data as text, invalid UTF-8 replaced.
    pub fn data_lossy(&self) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.data)
    }
}

/// The incremental event-stream scanner. Total: every input is accepted.
#[derive(Debug, Clone)]
pub struct SseScanner {
    lines: LineSplitter,
    ev: EventState,
}

impl Default for SseScanner {
    fn default() -> Self {
        SseScanner::new(DEFAULT_LINE_CAP)
    }
}

impl SseScanner {
    /// A scanner with the given line cap in bytes.
    pub fn new(line_cap: usize) -> Self {
        SseScanner {
            lines: LineSplitter::new(line_cap, true),
            ev: EventState::new(line_cap),
        }
    }

    /// Scans one chunk, reporting complete lines and events to `sink`.
    pub fn push(&mut self, chunk: &[u8], sink: &mut impl SseSink) {
        let SseScanner { lines, ev } = self;
        lines.push(chunk, &mut |piece| ev.piece(piece, sink));
    }

    /// Ends the input: examines the unterminated last line and the pending event. The
    /// scanner can be reused afterwards as if new, except that offsets keep counting.
    pub fn finish(&mut self, sink: &mut impl SseSink) {
        let SseScanner { lines, ev } = self;
        lines.finish(&mut |piece| ev.piece(piece, sink));
        ev.dispatch(sink);
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

    /// Bytes the scanner holds in memory (partial line, pending event data and name).
    pub fn buffered(&self) -> usize {
        self.lines.buffered() + self.ev.data.len() + self.ev.name.len()
    }
}

#[derive(Debug, Clone)]
struct EventState {
    cap: usize,
    data: Vec<u8>,
    data_len: u64,
    has_data: bool,
    name: Vec<u8>,
    has_name: bool,
    started: bool,
    skipped: Skipped,
}

impl EventState {
    fn new(cap: usize) -> Self {
        EventState {
            cap,
            data: Vec::new(),
            data_len: 0,
            has_data: false,
            name: Vec::new(),
            has_name: false,
            started: false,
            skipped: Skipped::No,
        }
    }

    fn piece(&mut self, piece: Piece<'_>, sink: &mut impl SseSink) {
        match piece {
            Piece::LfAfterCr { offset } => sink.lf_after_cr(offset),
            Piece::Line(line) => self.line(line, sink),
        }
    }

    fn line(&mut self, line: Line<'_>, sink: &mut impl SseSink) {
        let kind = match line.content {
            None => SseLineKind::TooLong {
                length: line.length,
            },
            Some(content) => {
                let content = match (line.start, content.strip_prefix(BOM)) {
                    (0, Some(rest)) => rest,
                    _ => content,
                };
                classify(content)
            }
        };
        let reported = SseLine {
            start: line.start,
            content_end: line.content_end,
            end: line.end,
            kind,
        };
        sink.line(&reported);
        match kind {
            SseLineKind::Blank => self.dispatch(sink),
            SseLineKind::Comment => {}
            SseLineKind::Data(value) => {
                self.started = true;
                self.append_data(value);
            }
            SseLineKind::Event(value) => {
                self.started = true;
                self.has_name = true;
                self.name.clear();
                self.name.extend_from_slice(value);
            }
            SseLineKind::Other { .. } => self.started = true,
            SseLineKind::TooLong { .. } => {
                self.started = true;
                self.skipped = Skipped::LongLine;
                self.data = Vec::new();
            }
        }
    }

    fn append_data(&mut self, value: &[u8]) {
        let sep = u64::from(self.has_data);
        self.has_data = true;
        self.data_len += sep + value.len() as u64;
        if self.skipped != Skipped::No {
            if let Skipped::LongData { length } = &mut self.skipped {
                *length = self.data_len;
            }
            return;
        }
        if self.data_len > self.cap as u64 {
            self.skipped = Skipped::LongData {
                length: self.data_len,
            };
            self.data = Vec::new();
            return;
        }
        if sep == 1 {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
    }

    fn dispatch(&mut self, sink: &mut impl SseSink) {
        if self.started {
            sink.event(&SseEvent {
                name: self.has_name.then_some(&self.name[..]),
                data: &self.data,
                has_data: self.has_data,
                skipped: self.skipped,
            });
        }
        self.data.clear();
        self.data_len = 0;
        self.has_data = false;
        self.name.clear();
        self.has_name = false;
        self.started = false;
        self.skipped = Skipped::No;
    }
}

fn classify(content: &[u8]) -> SseLineKind<'_> {
    if content.is_empty() {
        return SseLineKind::Blank;
    }
    let (field, value) = match memchr::memchr(b':', content) {
        Some(0) => return SseLineKind::Comment,
        Some(i) => {
            let value = &content[i + 1..];
            (&content[..i], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (content, &b""[..]),
    };
    match field {
        b"data" => SseLineKind::Data(value),
        b"event" => SseLineKind::Event(value),
        _ => SseLineKind::Other { field, value },
    }
}

/// An owned record of what a scanner reported, for tests, fuzzing and tools. As a sink,
/// `Vec<SseItem>` folds a split CRLF into the line it ends, so its content does not depend on
/// chunk boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A line: offsets and its kind with owned bytes.
    Line {
        /// Offset of the line's first byte.
        start: u64,
        /// Offset just after the terminator.
        end: u64,
        /// Kind, as `(tag, field, value)`: tags `blank`, `comment`, `data`, `event`, `other`,
        /// `too_long` (value empty, field empty, length in `end - start` minus terminator).
        kind: (&'static str, Vec<u8>, Vec<u8>),
    },
    /// A dispatched event.
    Event {
        /// Event name.
        name: Option<Vec<u8>>,
        /// Joined data.
        data: Vec<u8>,
        /// Skip reason.
        skipped: Skipped,
    },
}

impl SseSink for Vec<SseItem> {
    fn line(&mut self, line: &SseLine<'_>) {
        let kind = match line.kind {
            SseLineKind::Blank => ("blank", Vec::new(), Vec::new()),
            SseLineKind::Comment => ("comment", Vec::new(), Vec::new()),
            SseLineKind::Data(v) => ("data", Vec::new(), v.to_vec()),
            SseLineKind::Event(v) => ("event", Vec::new(), v.to_vec()),
            SseLineKind::Other { field, value } => ("other", field.to_vec(), value.to_vec()),
            SseLineKind::TooLong { .. } => ("too_long", Vec::new(), Vec::new()),
        };
        self.push(SseItem::Line {
            start: line.start,
            end: line.end,
            kind,
        });
    }

    fn event(&mut self, event: &SseEvent<'_>) {
        self.push(SseItem::Event {
            name: event.name.map(<[u8]>::to_vec),
            data: event.data.to_vec(),
            skipped: event.skipped,
        });
    }

    fn lf_after_cr(&mut self, offset: u64) {
        let last_line = self.iter_mut().rev().find_map(|item| match item {
            SseItem::Line { end, .. } => Some(end),
            SseItem::Event { .. } => None,
        });
        if let Some(end) = last_line
            && *end == offset
        {
            *end += 1;
        }
    }
}

#[cfg(test)]
mod tests;
