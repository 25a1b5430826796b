//! The response-side accounting tee, terminal hold and usage-chunk removal for SSE and NDJSON
//! bodies (`datapath.md` §13.4, §13.5).
//!
//! A [`Relay`] is pure and zero-copy: every released piece is a [`Bytes`] slice of a pushed
//! chunk. The caller (the exchange) pushes upstream chunks, sends what [`RelayOutput::release`]
//! holds, finalizes the row when [`Relay::terminal_complete`] turns true or the upstream ended
//! ([`Relay::finish`]), and calls [`Relay::release_held`] after the commit.
//!
//! Rules, in the order they are applied to each chunk:
//! * Every chunk is scanned (the SSE scanner, the NDJSON splitter or the JSON-array splitter of
//!   Gemini streams) and accounted into a [`UsageState`]. A JSON array has no terminal: its
//!   row is finalized when the upstream ends, and nothing of it is held.
//! * Hold: from the start of the terminal line, or from the first unreleased byte if that line
//!   began in bytes already released, everything is held until [`Relay::release_held`]. If a
//!   line in the held region exceeds the line cap, everything up to the end of its content is
//!   released as it arrives; its terminator and what follows stay held.
//! * Usage-chunk removal (SSE only, when [`RelayConfig::remove_usage_chunk`]): bytes are
//!   released line by line (a partial line waits for its terminator, or is released as it
//!   arrives once longer than the cap); a `data:` line that starts an event and is the Chat
//!   usage-only chunk waits for the next line; if that is blank, both are removed (the LF of a
//!   CRLF split across chunks included). Its usage is accounted as usual.
//! * After [`Relay::release_held`] every byte passes through at once and nothing more is
//!   removed.
//!
//! Choices where the spec is silent:
//! * A terminal is recognised once: the first terminal line starts the hold.
//! * An event whose joined data exceeds the line cap is ignored like a too-long line and
//!   reported as [`RelayEvent::EventTooLong`]; both make [`Relay::usage_incomplete`] true.
//! * [`RelayEvent::FirstUsage`] is raised when usage is first seen before any terminal line.
//! * [`BodyKind::Plain`] bodies pass straight through without scanning (plain LLM bodies are
//!   read whole and given to [`crate::usage::extract_plain`]); NDJSON never removes anything.
//! * Memory: the scanner holds at most one line cap of line and event data; unreleased input is
//!   kept as slices of the pushed chunks (the partial line in removal mode, a removal candidate,
//!   and the held region).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::json_array::{JsonArraySplitter, JsonElement};
use crate::ndjson::{NdjsonLine, NdjsonSplitter};
use crate::sse::{DEFAULT_LINE_CAP, Skipped, SseEvent, SseLine, SseLineKind, SseScanner, SseSink};
use crate::usage::detect::is_terminal_name;
use crate::usage::{Api, UsageRecord, UsageState};

/// Response body kinds (`datapath.md` §13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `text/event-stream`.
    Sse,
    /// `application/x-ndjson` or `application/ndjson`.
    Ndjson,
    /// A JSON array streamed element by element: Gemini's `:streamGenerateContent` without
    /// `alt=sse` (`gemini.md` §2). Never chosen from the content type alone
    /// ([`BodyKind::for_response`]).
    JsonArray,
    /// Anything else, including no content type.
    Plain,
}

impl BodyKind {
    /// The kind of an upstream `content-type` value (case-insensitive).
    pub fn from_content_type(content_type: Option<&str>) -> BodyKind {
        let Some(ct) = content_type else {
            return BodyKind::Plain;
        };
        let lower = ct.to_ascii_lowercase();
        if lower.contains("text/event-stream") {
            return BodyKind::Sse;
        }
        let media = lower.split(';').next().unwrap_or("").trim();
        match media {
            "application/x-ndjson" | "application/ndjson" => BodyKind::Ndjson,
            _ => BodyKind::Plain,
        }
    }

    /// The kind of a response to a request on `path`: as [`BodyKind::from_content_type`],
    /// except that a successful `application/json` answer to a Gemini stream call is the
    /// streamed JSON array. Error bodies stay plain so their outcome keeps its snippet.
    pub fn for_response(path: &str, status: u16, content_type: Option<&str>) -> BodyKind {
        let kind = BodyKind::from_content_type(content_type);
        let json = content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if kind == BodyKind::Plain
            && json
            && (200..300).contains(&status)
            && crate::gemini::is_stream(path)
        {
            return BodyKind::JsonArray;
        }
        kind
    }

    /// Whether the body is relayed as a stream (the row's `streamed`).
    pub fn is_stream(self) -> bool {
        self != BodyKind::Plain
    }
}

/// Relay settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Line cap in bytes (default 1 048 576).
    pub line_cap: usize,
    /// Remove the Chat usage-only chunk (the proxy injected `include_usage`).
    pub remove_usage_chunk: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            line_cap: DEFAULT_LINE_CAP,
            remove_usage_chunk: false,
        }
    }
}

/// What one input releases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayOutput {
    /// Bytes to send to the client now, in order.
    pub release: Vec<Bytes>,
    /// Whether the terminal event is complete (time to finalize).
    pub terminal_complete: bool,
}

/// Something the exchange must act on, drained with [`Relay::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEvent {
    /// A line longer than the cap was forwarded unparsed (warn `passthrough.sse_line_too_long`).
    LineTooLong {
        /// Content length in bytes.
        length: u64,
    },
    /// An event's joined data exceeded the cap; the event was ignored for accounting.
    EventTooLong {
        /// Joined data length in bytes.
        length: u64,
    },
    /// Usage was reported before the stream's end: queue the usage checkpoint
    /// (`datapath.md` §14.2).
    FirstUsage {
        /// The record at that moment.
        record: UsageRecord,
    },
}

/// The accounting result so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayUsage<'a> {
    /// The current usage record, if any usage was seen.
    pub record: Option<UsageRecord>,
    /// The last non-empty model seen.
    pub actual_model: Option<&'a str>,
    /// The API the usage came from.
    pub api: Option<Api>,
    /// Whether part of the stream was skipped (line or event over the cap), one of the
    /// `usage_incomplete` reasons of `accounting.md` §2.6.
    pub usage_incomplete: bool,
}

/// The response relay of one streamed body.
#[derive(Debug, Clone)]
pub struct Relay {
    scan: Scan,
    acct: Accountant,
    queue: VecDeque<Bytes>,
    released_to: u64,
    end: u64,
    passthrough: bool,
    finished: bool,
}

impl Relay {
    /// A relay for a body of `kind`.
    pub fn new(kind: BodyKind, cfg: RelayConfig) -> Relay {
        let scan = match kind {
            BodyKind::Sse => Scan::Sse(SseScanner::new(cfg.line_cap)),
            BodyKind::Ndjson => Scan::Ndjson(NdjsonSplitter::new(cfg.line_cap)),
            BodyKind::JsonArray => Scan::JsonArray(JsonArraySplitter::new(cfg.line_cap)),
            BodyKind::Plain => Scan::Plain,
        };
        Relay {
            acct: Accountant::new(cfg.remove_usage_chunk && kind == BodyKind::Sse),
            scan,
            queue: VecDeque::new(),
            released_to: 0,
            end: 0,
            passthrough: kind == BodyKind::Plain,
            finished: false,
        }
    }

    /// Scans one upstream chunk and returns what may be released now.
    pub fn push(&mut self, chunk: Bytes) -> RelayOutput {
        if chunk.is_empty() {
            return self.output(Vec::new());
        }
        self.acct.floor = self.released_to;
        self.end += chunk.len() as u64;
        match &mut self.scan {
            Scan::Sse(s) => s.push(&chunk, &mut self.acct),
            Scan::Ndjson(n) => n.push(&chunk, |l| self.acct.ndjson_line(l)),
            Scan::JsonArray(j) => j.push(&chunk, |e| self.acct.json_element(e)),
            Scan::Plain => {}
        }
        self.queue.push_back(chunk);
        let limit = self.limit();
        let release = self.emit(limit);
        self.output(release)
    }

    /// The upstream ended cleanly: examines the unterminated last line and pending event and
    /// releases everything not held. Idempotent.
    pub fn finish(&mut self) -> RelayOutput {
        if !self.finished {
            self.finished = true;
            self.acct.floor = self.released_to;
            match &mut self.scan {
                Scan::Sse(s) => s.finish(&mut self.acct),
                Scan::Ndjson(n) => n.finish(|l| self.acct.ndjson_line(l)),
                Scan::JsonArray(j) => j.finish(|e| self.acct.json_element(e)),
                Scan::Plain => {}
            }
            // A candidate with no blank line after it is an ordinary chunk.
            self.acct.candidate = None;
        }
        let limit = self.limit();
        let release = self.emit(limit);
        self.output(release)
    }

    /// Whether the terminal event is complete (its blank line, the `[DONE]` line's end, or the
    /// NDJSON `done` line's end): time to finalize. The end of the upstream is the other
    /// trigger, which the caller sees itself.
    pub fn terminal_complete(&self) -> bool {
        self.acct.terminal_complete
    }

    /// Releases everything held (after the finalize commit); from now on every byte passes
    /// through and nothing more is removed.
    pub fn release_held(&mut self) -> Vec<Bytes> {
        self.passthrough = true;
        self.acct.remove = false;
        self.acct.candidate = None;
        self.emit(self.end)
    }

    /// Next event to act on.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.acct.events.pop_front()
    }

    /// The accounting result so far.
    pub fn usage(&self) -> RelayUsage<'_> {
        RelayUsage {
            record: self.acct.usage.record(),
            actual_model: self.acct.usage.actual_model(),
            api: self.acct.usage.api(),
            usage_incomplete: self.acct.skipped,
        }
    }

    /// Whether any usage was seen.
    pub fn has_usage(&self) -> bool {
        self.acct.usage.has_usage()
    }

    /// Whether usage was seen before any terminal line (the checkpoint condition).
    pub fn usage_before_end(&self) -> bool {
        self.acct.first_usage
    }

    /// Whether a line or event over the cap was skipped (`usage_incomplete` reason).
    pub fn usage_incomplete(&self) -> bool {
        self.acct.skipped
    }

    /// Whether a terminal line was seen.
    pub fn saw_terminal(&self) -> bool {
        self.acct.terminal_start.is_some()
    }

    /// Stream offset of the terminal line's first byte, once seen.
    pub fn terminal_offset(&self) -> Option<u64> {
        self.acct.terminal_start
    }

    /// Bytes received but not yet released (held, waiting for a line end, or a removal
    /// candidate).
    pub fn unreleased_len(&self) -> u64 {
        self.end - self.released_to
    }

    /// Bytes the scanner copied into its own buffers (bounded by the line cap).
    pub fn scanner_buffered(&self) -> usize {
        match &self.scan {
            Scan::Sse(s) => s.buffered(),
            Scan::Ndjson(n) => n.buffered(),
            Scan::JsonArray(j) => j.buffered(),
            Scan::Plain => 0,
        }
    }

    fn output(&self, release: Vec<Bytes>) -> RelayOutput {
        RelayOutput {
            release,
            terminal_complete: self.acct.terminal_complete,
        }
    }

    /// The stream offset up to which bytes may be released now.
    fn limit(&mut self) -> u64 {
        if self.passthrough {
            return self.end;
        }
        let (line_start, partial_overlong) = match &self.scan {
            Scan::Sse(s) => (s.line_start(), s.partial_overlong()),
            Scan::Ndjson(n) => (n.line_start(), n.partial_overlong()),
            // No terminal and no removal: nothing of a JSON array is ever held back.
            Scan::JsonArray(_) | Scan::Plain => (self.end, false),
        };
        let mut limit = self.end;
        if self.acct.remove && !partial_overlong {
            limit = limit.min(line_start);
        }
        if let Some(c) = self.acct.candidate {
            limit = limit.min(c);
        }
        if let Some(h) = &mut self.acct.hold_from {
            if partial_overlong {
                *h = self.end;
            }
            limit = limit.min(*h);
        }
        limit
    }

    /// Moves `[released_to, limit)` out of the queue, skipping removed ranges.
    fn emit(&mut self, limit: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        while self.released_to < limit {
            let before = (self.released_to, self.acct.drops.len());
            match self.acct.drops.front().copied() {
                Some((_, b)) if b <= self.released_to => {
                    self.acct.drops.pop_front();
                }
                Some((a, b)) if a <= self.released_to => self.take(b.min(limit), None),
                Some((a, _)) => self.take(a.min(limit), Some(&mut out)),
                None => self.take(limit, Some(&mut out)),
            }
            if (self.released_to, self.acct.drops.len()) == before {
                // Unreachable while the queue covers [released_to, end); never spin.
                break;
            }
        }
        out
    }

    fn take(&mut self, to: u64, mut out: Option<&mut Vec<Bytes>>) {
        while self.released_to < to {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            let want = to - self.released_to;
            let piece = if (front.len() as u64) <= want {
                self.queue.pop_front().unwrap_or_default()
            } else {
                // `want` < front.len() ≤ usize::MAX here.
                front.split_to(usize::try_from(want).unwrap_or(usize::MAX))
            };
            self.released_to += piece.len() as u64;
            if let Some(out) = out.as_deref_mut()
                && !piece.is_empty()
            {
                out.push(piece);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Scan {
    Sse(SseScanner),
    Ndjson(NdjsonSplitter),
    JsonArray(JsonArraySplitter),
    Plain,
}

/// The scanner sink: accounting, terminal recognition and removal decisions.
#[derive(Debug, Clone)]
struct Accountant {
    remove: bool,
    usage: UsageState,
    /// First unreleased offset when the current chunk was pushed.
    floor: u64,
    terminal_start: Option<u64>,
    terminal_complete: bool,
    hold_from: Option<u64>,
    skipped: bool,
    first_usage: bool,
    events: VecDeque<RelayEvent>,
    event_named: bool,
    at_event_start: bool,
    candidate: Option<u64>,
    drops: VecDeque<(u64, u64)>,
    last_drop_end: Option<u64>,
}

impl Accountant {
    fn new(remove: bool) -> Self {
        Accountant {
            remove,
            usage: UsageState::new(),
            floor: 0,
            terminal_start: None,
            terminal_complete: false,
            hold_from: None,
            skipped: false,
            first_usage: false,
            events: VecDeque::new(),
            event_named: false,
            at_event_start: true,
            candidate: None,
            drops: VecDeque::new(),
            last_drop_end: None,
        }
    }

    fn ndjson_line(&mut self, line: &NdjsonLine<'_>) {
        let Some(content) = line.content else {
            self.too_long(line.length, line.start + line.length);
            return;
        };
        let terminal = self.usage.observe_ndjson_line(content);
        if terminal && self.terminal_start.is_none() {
            self.terminal(line.start);
            self.terminal_complete = true;
        }
        self.check_first_usage();
    }

    /// A JSON-array element (`gemini.md` §2): accounted like an NDJSON line, but there is no
    /// terminal; the row is finalized when the upstream ends.
    fn json_element(&mut self, element: &JsonElement<'_>) {
        let Some(content) = element.content else {
            self.too_long(element.length, element.end);
            return;
        };
        self.usage.observe_json_element(content);
        self.check_first_usage();
    }

    fn terminal(&mut self, start: u64) {
        self.terminal_start = Some(start);
        self.hold_from = Some(start.max(self.floor));
    }

    fn too_long(&mut self, length: u64, content_end: u64) {
        self.events.push_back(RelayEvent::LineTooLong { length });
        self.skipped = true;
        if let Some(h) = &mut self.hold_from
            && content_end > *h
        {
            *h = content_end;
        }
    }

    fn check_first_usage(&mut self) {
        if self.first_usage || self.terminal_start.is_some() {
            return;
        }
        if let Some(record) = self.usage.record() {
            self.first_usage = true;
            self.events.push_back(RelayEvent::FirstUsage { record });
        }
    }
}

impl SseSink for Accountant {
    fn line(&mut self, line: &SseLine<'_>) {
        let at_start = self.at_event_start;
        self.at_event_start = line.kind == SseLineKind::Blank;
        if let Some(c) = self.candidate.take()
            && line.kind == SseLineKind::Blank
        {
            self.drops.push_back((c, line.end));
            self.last_drop_end = Some(line.end);
        }
        match line.kind {
            SseLineKind::Blank => {
                self.event_named = false;
                if self.terminal_start.is_some() {
                    self.terminal_complete = true;
                }
            }
            SseLineKind::Event(name) => {
                self.event_named = true;
                if self.terminal_start.is_none() && is_terminal_name(name) {
                    self.terminal(line.start);
                }
            }
            SseLineKind::Data(value) => {
                if !self.event_named && self.terminal_start.is_none() {
                    if value == b"[DONE]" {
                        self.terminal(line.start);
                        self.terminal_complete = true;
                    } else if self.usage.data_line_is_terminal(value) {
                        self.terminal(line.start);
                    }
                }
                if self.remove && at_start && self.usage.data_line_is_usage_chunk(value) {
                    self.candidate = Some(line.start);
                }
            }
            SseLineKind::TooLong { length } => self.too_long(length, line.content_end),
            SseLineKind::Comment | SseLineKind::Other { .. } => {}
        }
    }

    fn event(&mut self, event: &SseEvent<'_>) {
        match event.skipped {
            Skipped::No => self.usage.observe_sse_event(event.name, event.data),
            Skipped::LongLine => {}
            Skipped::LongData { length } => {
                self.events.push_back(RelayEvent::EventTooLong { length });
                self.skipped = true;
            }
        }
        self.check_first_usage();
    }

    fn lf_after_cr(&mut self, offset: u64) {
        if self.last_drop_end == Some(offset) {
            self.drops.push_back((offset, offset + 1));
            self.last_drop_end = None;
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
mod golden;
#[cfg(test)]
mod tests;
