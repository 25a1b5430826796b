//! The SSE (and NDJSON) client: one request over a raw socket, the response body decoded
//! incrementally, each event timestamped on arrival.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::parse::{BodyFraming, ChunkedDecoder, parse_head};
use super::{Latency, build_request, connect};
use crate::support::sha256_hex;

/// How the response body ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// The end-of-body marker arrived (last chunk, full content-length, or the close of a
    /// close-delimited body).
    Clean,
    /// The connection closed or reset before the end-of-body marker: the body is truncated.
    Cut,
    /// The client's own time limit passed first.
    TimedOut,
    /// The client closed on purpose (`abort_after_*`).
    Aborted,
}

/// One event as the client parsed it: an SSE event (dispatched at its blank line) or one
/// NDJSON line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// Time from sending the request to the arrival of the event's last byte.
    pub at: Duration,
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The joined `data:` lines (the whole line for NDJSON).
    pub data: String,
}

impl SseEvent {
    /// Whether this event ends the stream for its API: Anthropic `message_stop`, Chat
    /// `[DONE]`, Responses `response.completed|incomplete|failed`, NDJSON `"done": true`.
    pub fn is_terminal(&self) -> bool {
        const RESPONSES: [&str; 3] = [
            "response.completed",
            "response.incomplete",
            "response.failed",
        ];
        let named = |name: &str| name == "message_stop" || RESPONSES.contains(&name);
        if self.event.as_deref().is_some_and(named) || self.data.trim() == "[DONE]" {
            return true;
        }
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&self.data) else {
            return false;
        };
        json.get("type").and_then(|t| t.as_str()).is_some_and(named)
            || json.get("done").and_then(|d| d.as_bool()) == Some(true)
    }

    /// The data parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Everything the SSE client observed.
#[derive(Clone, Debug)]
pub struct SseOutcome {
    /// Response status.
    pub status: u16,
    /// Response headers in order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Time from sending the request to the end of the response head.
    pub head_at: Duration,
    /// Exact decoded body bytes.
    pub body: Vec<u8>,
    /// Lower-case hex SHA-256 of `body`.
    pub body_sha256: String,
    /// Events in arrival order.
    pub events: Vec<SseEvent>,
    /// A terminal event was received.
    pub terminal_seen: bool,
    /// How the body ended.
    pub end: BodyEnd,
    /// The IO or framing error that ended the body, if any.
    pub error: Option<String>,
}

impl SseOutcome {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Time to the first event.
    pub fn first_event_at(&self) -> Option<Duration> {
        self.events.first().map(|e| e.at)
    }

    /// Gaps between consecutive events, recorded into a histogram.
    pub fn inter_event(&self) -> Latency {
        let mut latency = Latency::new();
        for pair in self.events.windows(2) {
            latency.record(pair[1].at.saturating_sub(pair[0].at));
        }
        latency
    }
}

/// A streaming request, configured builder-style and sent with [`SseRequest::send`].
#[derive(Clone, Debug)]
pub struct SseRequest {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
    abort_after_events: Option<usize>,
    abort_after: Option<Duration>,
    source: Option<IpAddr>,
}

impl SseRequest {
    /// `POST path` with a JSON `body` (`content-type: application/json` is added).
    pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> SseRequest {
        SseRequest {
            addr,
            method: "POST".into(),
            path: path.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_vec(),
            timeout: Duration::from_secs(30),
            abort_after_events: None,
            abort_after: None,
            source: None,
        }
    }

    /// `GET path` without a body.
    pub fn get(addr: SocketAddr, path: &str) -> SseRequest {
        SseRequest {
            method: "GET".into(),
            headers: Vec::new(),
            ..SseRequest::post(addr, path, b"")
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> SseRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Limit for the whole exchange (default 30 s); reaching it ends with
    /// [`BodyEnd::TimedOut`].
    pub fn timeout(mut self, timeout: Duration) -> SseRequest {
        self.timeout = timeout;
        self
    }

    /// Closes the connection right after the `n`-th event (client disconnect cases).
    pub fn abort_after_events(mut self, n: usize) -> SseRequest {
        self.abort_after_events = Some(n);
        self
    }

    /// Closes the connection this long after sending, whatever arrived.
    pub fn abort_after(mut self, after: Duration) -> SseRequest {
        self.abort_after = Some(after);
        self
    }

    /// Connects from this source address (`127.0.0.0/8` gives distinct peers).
    pub fn source(mut self, ip: IpAddr) -> SseRequest {
        self.source = Some(ip);
        self
    }

    /// Sends the request and reads the response until it ends. Errors are returned only
    /// when no response head arrived; later failures end up in [`SseOutcome::end`].
    pub async fn send(self) -> io::Result<SseOutcome> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let wire = build_request(self.addr, &self.method, &self.path, &headers, &self.body);
        let mut stream = connect(self.addr, self.source, None).await?;
        let started = Instant::now();
        stream.write_all(&wire).await?;
        let limit = self
            .abort_after
            .map_or(self.timeout, |a| a.min(self.timeout));
        let deadline = tokio::time::Instant::now() + limit;
        let limit_end = if self.abort_after.is_some_and(|a| a <= self.timeout) {
            BodyEnd::Aborted
        } else {
            BodyEnd::TimedOut
        };

        let mut buf = Vec::new();
        let mut tmp = vec![0u8; 64 * 1024];
        let head = loop {
            match parse_head(&buf, self.method == "HEAD")
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                Some(head) if (100..200).contains(&head.status) => {
                    buf.drain(..head.len);
                }
                Some(head) => break head,
                None => {}
            }
            let n = match tokio::time::timeout_at(deadline, stream.read(&mut tmp)).await {
                Ok(res) => res?,
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no response head")),
            };
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let ndjson = head
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.contains("ndjson"));
        let mut body = Body::new(head.framing, ndjson, started);
        let mut outcome = SseOutcome {
            status: head.status,
            headers: head.headers,
            head_at: started.elapsed(),
            body: Vec::new(),
            body_sha256: String::new(),
            events: Vec::new(),
            terminal_seen: false,
            end: BodyEnd::Clean,
            error: None,
        };
        let mut pending = buf.split_off(head.len);
        let end = loop {
            if let Err(message) = body.feed(&pending) {
                outcome.error = Some(message);
                break BodyEnd::Cut;
            }
            pending.clear();
            if body.done {
                break BodyEnd::Clean;
            }
            if self
                .abort_after_events
                .is_some_and(|n| body.events.len() >= n)
            {
                break BodyEnd::Aborted;
            }
            match tokio::time::timeout_at(deadline, stream.read(&mut tmp)).await {
                Err(_) => break limit_end.clone(),
                Ok(Ok(0)) if head.framing == BodyFraming::Close => {
                    body.finish();
                    break BodyEnd::Clean;
                }
                Ok(Ok(0)) => {
                    outcome.error = Some("connection closed before the end of the body".into());
                    break BodyEnd::Cut;
                }
                Ok(Ok(n)) => pending.extend_from_slice(&tmp[..n]),
                Ok(Err(err)) => {
                    outcome.error = Some(err.to_string());
                    break BodyEnd::Cut;
                }
            }
        };
        outcome.end = end;
        outcome.terminal_seen = body.events.iter().any(SseEvent::is_terminal);
        outcome.body_sha256 = sha256_hex(&body.bytes);
        outcome.body = body.bytes;
        outcome.events = body.events;
        Ok(outcome)
    }
}

/// Body decoding and event splitting state.
struct Body {
    framing: BodyFraming,
    chunked: ChunkedDecoder,
    remaining: u64,
    bytes: Vec<u8>,
    scanner: EventScanner,
    events: Vec<SseEvent>,
    started: Instant,
    done: bool,
}

impl Body {
    fn new(framing: BodyFraming, ndjson: bool, started: Instant) -> Body {
        let remaining = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        Body {
            framing,
            chunked: ChunkedDecoder::default(),
            remaining,
            bytes: Vec::new(),
            scanner: EventScanner::new(ndjson),
            events: Vec::new(),
            started,
            done: framing == BodyFraming::Empty || framing == BodyFraming::Length(0),
        }
    }

    fn feed(&mut self, input: &[u8]) -> Result<(), String> {
        if input.is_empty() || self.done {
            return Ok(());
        }
        let mut decoded = Vec::new();
        match self.framing {
            BodyFraming::Chunked => {
                self.chunked.feed(input, &mut decoded)?;
                self.done = self.chunked.is_done();
            }
            BodyFraming::Length(_) => {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                decoded.extend_from_slice(&input[..take]);
                self.remaining -= take as u64;
                self.done = self.remaining == 0;
            }
            BodyFraming::Close => decoded.extend_from_slice(input),
            BodyFraming::Empty => {}
        }
        self.bytes.extend_from_slice(&decoded);
        let at = self.started.elapsed();
        self.events.extend(self.scanner.feed(&decoded, at));
        if self.done {
            self.finish();
        }
        Ok(())
    }

    fn finish(&mut self) {
        let at = self.started.elapsed();
        self.events.extend(self.scanner.finish(at));
    }
}

/// A small event-stream splitter: lines end with LF, CR or CRLF (a CRLF split across reads
/// counts once); a blank line dispatches the event; `field: value` drops one leading space.
struct EventScanner {
    ndjson: bool,
    line: Vec<u8>,
    last_cr: bool,
    event: Option<String>,
    data: Vec<String>,
}

impl EventScanner {
    fn new(ndjson: bool) -> EventScanner {
        EventScanner {
            ndjson,
            line: Vec::new(),
            last_cr: false,
            event: None,
            data: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8], at: Duration) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.last_cr && b == b'\n' {
                self.last_cr = false;
                continue;
            }
            self.last_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                let line = std::mem::take(&mut self.line);
                out.extend(self.end_line(&line, at));
            } else {
                self.line.push(b);
            }
        }
        out
    }

    fn finish(&mut self, at: Duration) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            out.extend(self.end_line(&line, at));
        }
        out.extend(self.dispatch(at));
        out
    }

    fn end_line(&mut self, line: &[u8], at: Duration) -> Option<SseEvent> {
        let text = String::from_utf8_lossy(line).into_owned();
        if self.ndjson {
            return (!text.trim().is_empty()).then_some(SseEvent {
                at,
                event: None,
                data: text,
            });
        }
        if text.is_empty() {
            return self.dispatch(at);
        }
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
            None => (text.clone(), String::new()),
        };
        match field.as_str() {
            "event" => self.event = Some(value),
            "data" => self.data.push(value),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self, at: Duration) -> Option<SseEvent> {
        if self.data.is_empty() && self.event.is_none() {
            return None;
        }
        let event = SseEvent {
            at,
            event: self.event.take(),
            data: std::mem::take(&mut self.data).join("\n"),
        };
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_splits_events_with_any_line_ending_and_split() {
        let wire = b"event: a\r\ndata: 1\r\n\r\ndata:2\rdata: 3\r\r: comment\n\ndata: [DONE]\n\n";
        for split in 0..=wire.len() {
            let mut scanner = EventScanner::new(false);
            let mut events = scanner.feed(&wire[..split], Duration::ZERO);
            events.extend(scanner.feed(&wire[split..], Duration::ZERO));
            events.extend(scanner.finish(Duration::ZERO));
            let got: Vec<(Option<String>, String)> =
                events.into_iter().map(|e| (e.event, e.data)).collect();
            assert_eq!(
                got,
                vec![
                    (Some("a".to_owned()), "1".to_owned()),
                    (None, "2\n3".to_owned()),
                    (None, "[DONE]".to_owned()),
                ],
                "split {split}"
            );
        }
    }
}
