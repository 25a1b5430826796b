//! [`FakeUpstream`]: a scriptable HTTP/1.1 upstream on `127.0.0.1`, framed by hand so faults
//! are exact.
//!
//! The response to each request is chosen by its headers (they travel through the proxy
//! like any client header):
//!
//! | Header | Effect |
//! |---|---|
//! | `x-fake-fixture: <api>/<case>` | body = bytes of `tests/fixtures/<api>/<case>.{sse,json,ndjson}` (kind from the extension; the name may carry it) |
//! | `x-fake-status: <n>` | status (default 200); ≥ 400 without `x-fake-kind` gives the API's JSON error body |
//! | `x-fake-kind: json\|sse\|ndjson` | body kind; default: `sse` (`ndjson` on `/api/*`) when the request body has `"stream": true` (on `/api/*`: unless `"stream": false`), else `json` |
//! | `x-fake-model: <m>` | model reported (default: the request body's `model`, else per API) |
//! | `x-fake-usage: <json object>` | final usage reported (default per API, see below) |
//! | `x-fake-events: <n>` | number of content events (default 3) |
//! | `x-fake-delay-ms: <n>` | pause before every event after the first (the first leaves at once) |
//! | `x-fake-stall: before-head\|before-body\|after-events:<n>` | stop there and hold the connection until the peer closes |
//! | `x-fake-reset-after: <n>` | after `<n>` events, close with RST (zero linger) |
//! | `x-fake-redirect: <location>` | 302 (or the 3xx of `x-fake-status`) with that `Location` |
//! | `x-fake-header: <name>: <value>` | extra response header (repeatable, order kept) |
//! | `x-fake-retry-after: <v>` | `retry-after: <v>` |
//! | `x-fake-content-length: <n>` | declare `content-length: <n>` whatever the body is; the connection closes after it |
//! | `x-fake-chunk: <n>` | every socket write is split into `<n>`-byte pieces |
//! | `x-fake-pad: <n>` | `<n>` filler bytes in each content event's text (in the text of a JSON body) |
//! | `x-fake-framing: length\|chunked\|close` | body framing (default: `length` for JSON, `chunked` for streams) |
//! | `x-fake-fail-first: <status>[:<n>]` | the first `<n>` (default 1) requests with the same `x-request-id` get `<status>` with the API's error body; later ones follow the other headers (a failure a retry gets past) |
//! | `x-fake-expect-header`, `x-fake-forbid-header` | comma-separated header names that must be present / absent |
//!
//! "Events" are everything written as a unit: SSE events, NDJSON lines, or the one JSON
//! body. An Anthropic stream with `k` content events has `k + 5` events (`message_start`,
//! `content_block_start`, `k` deltas, `content_block_stop`, `message_delta` with the
//! cumulative usage, `message_stop`); Chat has a role chunk, `k` content chunks, a finish
//! chunk, the usage chunk only when the request body has `stream_options.include_usage:
//! true`, then `data: [DONE]`; Responses has `response.created`, `response.in_progress`, `k`
//! `response.output_text.delta`, `response.completed` with usage; NDJSON has `k` lines and
//! a `"done": true` line with `prompt_eval_count`/`eval_count`. A fixture is cut after
//! each blank line (SSE) or newline (NDJSON).
//!
//! The API comes from the path: `/v1/messages`, `/v1/chat/completions`, `/v1/responses`,
//! `/api/chat` and `/api/generate`; `/health` answers `200 {"status":"ok"}` (also to
//! `HEAD`); any other path gets a small JSON body. Header-rule failures and unparsable
//! `x-fake-*` values are recorded as violations in the [`Ledger`] rather than answered
//! differently, so a typo in a test shows up in [`Ledger::violations`].

mod body;
mod conn;
mod script;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use self::body::{Body, Params};
use self::conn::{Conn, Request, Waited};
use self::script::{Framing, Script, Stall};
use crate::support::ledger::{Api, Kind, Ledger, LedgerEntry, Progress};
use crate::support::{fixtures_dir, server_runtime, sha256_hex};

/// Server-wide settings of a [`FakeUpstream`].
#[derive(Clone, Debug)]
pub struct UpstreamOptions {
    /// Where `x-fake-fixture` names are looked up (default `tests/fixtures`).
    pub fixtures_dir: PathBuf,
    /// Header names (lower-case) every request must carry; a miss is a ledger violation.
    pub expect_headers: Vec<String>,
    /// Header names (lower-case) no request may carry; a hit is a ledger violation.
    pub forbid_headers: Vec<String>,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            fixtures_dir: fixtures_dir(),
            expect_headers: Vec::new(),
            forbid_headers: Vec::new(),
        }
    }
}

/// A running fake upstream. Dropping it stops the server and closes its connections.
pub struct FakeUpstream {
    addr: SocketAddr,
    ledger: Ledger,
    runtime: Option<Runtime>,
}

impl FakeUpstream {
    /// Starts with default options on an ephemeral port; panics (failing the test) when
    /// the listener cannot be set up.
    pub fn start() -> FakeUpstream {
        match FakeUpstream::try_start(UpstreamOptions::default()) {
            Ok(upstream) => upstream,
            Err(err) => panic!("fake upstream failed to start: {err}"),
        }
    }

    /// Starts with `options` on an ephemeral port of `127.0.0.1`.
    pub fn try_start(options: UpstreamOptions) -> io::Result<FakeUpstream> {
        let runtime = server_runtime("fake-upstream")?;
        // Bound with std so that starting works inside another runtime too (no block_on).
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let ledger = Ledger::new();
        let shared = Arc::new(Shared {
            ledger: ledger.clone(),
            options,
        });
        runtime.spawn(accept_loop(listener, shared));
        Ok(FakeUpstream {
            addr,
            ledger,
            runtime: Some(runtime),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, the value for `CLI_PROXY_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The ledger of requests received.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // shutdown_background never blocks, so this is safe inside an async test too.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

struct Shared {
    ledger: Ledger,
    options: UpstreamOptions,
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let conn_id = shared.ledger.count_connection();
        tokio::spawn(serve_connection(Conn::new(stream), conn_id, shared.clone()));
    }
}

async fn serve_connection(mut conn: Conn, conn_id: u64, shared: Arc<Shared>) {
    loop {
        let Ok(Some(req)) = conn.read_request().await else {
            return;
        };
        let received_at = Instant::now();
        let mut script = Script::from_request(&req);
        script.check_headers(
            &req,
            &shared.options.expect_headers,
            &shared.options.forbid_headers,
        );
        if let Some((status, n)) = script.fail_first {
            let earlier = req
                .header("x-request-id")
                .map_or(0, |id| shared.ledger.by_request_id(id).len());
            if earlier < n {
                script.status = Some(status);
                script.fixture = None;
                script.kind = None;
            }
        }
        let (status, body) = choose(&req, &script, &shared, shared.ledger.len());
        let seq = shared.ledger.push(LedgerEntry {
            seq: 0,
            conn: conn_id,
            method: req.method.clone(),
            target: req.target.clone(),
            headers: req.headers.clone(),
            body_sha256: sha256_hex(&req.body),
            body: req.body.clone(),
            request_id: req.header("x-request-id").map(str::to_owned),
            api: script.api,
            kind: body.kind,
            status,
            usage: body.usage.clone(),
            violations: std::mem::take(&mut script.violations),
            received_at,
            progress: Progress::default(),
        });
        conn.piece = script.piece;
        let responder = Responder {
            ledger: &shared.ledger,
            seq,
            received_at,
        };
        match responder
            .respond(&mut conn, &req, &script, status, &body)
            .await
        {
            Next::KeepAlive => {}
            Next::Close => return conn.close().await,
            Next::Reset => return conn.reset(),
            Next::Gone => return,
        }
    }
}

/// Picks the status and body for a request.
fn choose(req: &Request, script: &Script, shared: &Shared, id: usize) -> (u16, Body) {
    let path = req.target.split('?').next().unwrap_or("");
    if let Some(name) = &script.fixture {
        return match body::fixture(&shared.options.fixtures_dir, name) {
            Ok(body) => (script.status.unwrap_or(200), body),
            Err(message) => (500, body::small_json(&json!({"error": message}))),
        };
    }
    if script.redirect.is_some() {
        let status = script
            .status
            .filter(|s| (300..400).contains(s))
            .unwrap_or(302);
        return (status, body::small_json(&json!({"redirect": true})));
    }
    if script.api == Api::Health {
        return (
            script.status.unwrap_or(200),
            body::small_json(&json!({"status": "ok"})),
        );
    }
    let status = script.status.unwrap_or(200);
    if status >= 400 && script.kind.is_none() {
        return (status, body::error_body(script.api, status));
    }
    let request_json: Option<Value> = serde_json::from_slice(&req.body).ok();
    let field = |name: &str| request_json.as_ref().and_then(|v| v.get(name));
    let stream = field("stream").and_then(Value::as_bool);
    let kind = script.kind.unwrap_or(match (script.api, stream) {
        (Api::Ollama, Some(false)) => Kind::Json,
        (Api::Ollama, _) => Kind::Ndjson,
        (_, Some(true)) => Kind::Sse,
        _ => Kind::Json,
    });
    let include_usage = request_json
        .as_ref()
        .and_then(|v| v.pointer("/stream_options/include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    let model = script
        .model
        .clone()
        .or_else(|| field("model").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body::default_model(script.api).to_owned());
    let body = body::generate(&Params {
        api: script.api,
        kind,
        path,
        model: &model,
        usage: script.usage.clone(),
        events: script.events,
        pad: script.pad,
        include_usage,
        id,
    });
    (status, body)
}

/// What the connection does after a response.
enum Next {
    KeepAlive,
    Close,
    Reset,
    /// The peer went away; nothing more to do.
    Gone,
}

struct Responder<'a> {
    ledger: &'a Ledger,
    seq: usize,
    received_at: Instant,
}

impl Responder<'_> {
    async fn respond(
        &self,
        conn: &mut Conn,
        req: &Request,
        script: &Script,
        status: u16,
        body: &Body,
    ) -> Next {
        if script.stall == Some(Stall::BeforeHead) {
            return self.stall(conn).await;
        }
        let head_only = req.method == "HEAD" || status == 204 || status == 304;
        let framing = match (script.content_length, script.framing) {
            (Some(_), _) => None,
            (None, Some(framing)) => Some(framing),
            (None, None) if body.kind == Kind::Json => Some(Framing::Length),
            (None, None) => Some(Framing::Chunked),
        };
        let total: usize = body.events.iter().map(Vec::len).sum();
        let head = head_bytes(
            status,
            script,
            body,
            framing,
            total,
            head_only,
            req.wants_close(),
        );
        if self.write(conn, &head).await.is_err() {
            return Next::Gone;
        }
        self.ledger.update(self.seq, |p| p.head_sent = true);
        if script.stall == Some(Stall::BeforeBody) {
            return self.stall(conn).await;
        }
        if head_only {
            self.ledger.update(self.seq, |p| {
                p.finished = true;
                p.terminal_sent = true;
            });
            return if req.wants_close() {
                Next::Close
            } else {
                Next::KeepAlive
            };
        }
        let chunked = framing == Some(Framing::Chunked);
        for (i, event) in body.events.iter().enumerate() {
            if script.reset_after == Some(i) {
                // Let the peer read what was sent: an RST discards unread bytes in its
                // receive buffer, which would make "events before the reset" racy.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                return self.reset();
            }
            if script.stall == Some(Stall::AfterEvents(i)) {
                return self.stall(conn).await;
            }
            if i > 0
                && !script.delay.is_zero()
                && conn.wait(script.delay).await == Waited::PeerClosed
            {
                self.peer_closed();
                return Next::Gone;
            }
            let framed = if chunked { chunk(event) } else { event.clone() };
            if self.write(conn, &framed).await.is_err() {
                return Next::Gone;
            }
            self.ledger.update(self.seq, |p| {
                p.events_sent = i + 1;
                p.body_bytes_sent += event.len() as u64;
                p.terminal_sent |= body.terminal == Some(i);
                p.usage_sent |= body.usage_event == Some(i);
            });
        }
        let n = body.events.len();
        if script.reset_after.is_some_and(|r| r >= n) {
            return self.reset();
        }
        if script
            .stall
            .is_some_and(|s| matches!(s, Stall::AfterEvents(k) if k >= n))
        {
            return self.stall(conn).await;
        }
        if chunked && self.write(conn, b"0\r\n\r\n").await.is_err() {
            return Next::Gone;
        }
        self.ledger.update(self.seq, |p| p.finished = true);
        let close =
            req.wants_close() || script.content_length.is_some() || framing == Some(Framing::Close);
        if close { Next::Close } else { Next::KeepAlive }
    }

    async fn write(&self, conn: &mut Conn, bytes: &[u8]) -> io::Result<()> {
        let res = conn.write(bytes).await;
        if res.is_err() {
            self.peer_closed();
        }
        res
    }

    async fn stall(&self, conn: &mut Conn) -> Next {
        conn.wait_for_close().await;
        self.peer_closed();
        Next::Gone
    }

    fn reset(&self) -> Next {
        self.ledger.update(self.seq, |p| {
            p.reset = true;
            p.finished = true;
        });
        Next::Reset
    }

    fn peer_closed(&self) {
        let after = self.received_at.elapsed();
        self.ledger.update(self.seq, |p| {
            p.peer_closed = true;
            p.peer_closed_after = Some(after);
        });
    }
}

fn head_bytes(
    status: u16,
    script: &Script,
    body: &Body,
    framing: Option<Framing>,
    total: usize,
    head_only: bool,
    close: bool,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    head.push_str(&format!("content-type: {}\r\n", body.content_type));
    if let Some(location) = &script.redirect {
        head.push_str(&format!("location: {location}\r\n"));
    }
    if let Some(retry) = &script.retry_after {
        head.push_str(&format!("retry-after: {retry}\r\n"));
    }
    for (name, value) in &script.extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match (script.content_length, framing) {
        (Some(declared), _) => head.push_str(&format!("content-length: {declared}\r\n")),
        (None, Some(Framing::Length)) => head.push_str(&format!("content-length: {total}\r\n")),
        (None, Some(Framing::Chunked)) if !head_only => {
            head.push_str("transfer-encoding: chunked\r\n")
        }
        (None, Some(Framing::Chunked)) => {}
        (None, Some(Framing::Close) | None) => {}
    }
    if close || framing == Some(Framing::Close) || script.content_length.is_some() {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}
