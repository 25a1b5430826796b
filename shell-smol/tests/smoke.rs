//! Smoke test of the smol daemon, in-process: `serve_with_shutdown` on a free port against a
//! fake upstream on a std `TcpListener` thread, with a `file://` pricing document.
//!
//! Each test starts one daemon and runs its cases in order (starting one costs a database, a
//! writer thread and a pricing load). The first: `/health`, a JSON `/v1/messages` call whose
//! row is finalized with the exact tokens and cost of `accounting.md` §7 W1, 431 for 101
//! headers, pipelined requests answered in order, and the stop hook's clean shutdown. The
//! second: an SSE stream relayed byte-exact, terminal `message_stop` included, with its row
//! completed (ignored for now, see the test). The third, with short limits: header read
//! timeout, body idle 408, keep-alive idle, 414, HTTP/1.0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_cli_proxy_smol::{Limits, serve_with_shutdown};

const PRICING: &str = r#"{
  "anthropic": { "id": "anthropic", "models": {
    "claude-sonnet-4-5": { "id": "claude-sonnet-4-5", "cost": {
      "input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75,
      "context_over_200k": { "input": 6, "output": 22.5, "cache_read": 0.6, "cache_write": 7.5 } } } } }
}"#;

const W1_RESPONSE: &str = r#"{"id":"msg_w1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1000,"output_tokens":500,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}"#;

/// The SSE body, sent in these pieces (the terminal event split across two of them).
const SSE_PIECES: [&str; 4] = [
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_sse\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":2000,\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":40}}\n\n",
    "event: message_stop\ndata: {\"type\":\"mess",
    "age_stop\"}\n\n",
];

#[test]
fn smol_daemon_serves_proxies_accounts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Vec::new()));
    let upstream_port = start_fake_upstream(Arc::clone(&ledger));
    let port = free_port();
    let env = environment(dir.path(), port, upstream_port);
    let (stop_tx, stop_rx) = async_channel::bounded(1);
    let server = std::thread::spawn(move || serve_with_shutdown(env, Limits::default(), stop_rx));
    wait_for_health(port);
    wait_prices_loaded(port);

    health_answers_with_security_headers(port);
    json_call_is_proxied_and_row_finalized_with_w1_cost(port, dir.path(), &ledger);
    too_many_headers_get_431_and_close(port, &ledger);
    pipelined_requests_are_answered_in_order(port);

    stop_tx.send_blocking(()).unwrap();
    let code = server.join().unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the listener is closed after shutdown"
    );
}

/// The held terminal event (`message_stop`) reaches the client after the finalize commit,
/// and the stream's row carries the prices of the startup refresh.
#[test]
fn smol_daemon_relays_sse_byte_exact_with_its_terminal_event() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Vec::new()));
    let upstream_port = start_fake_upstream(Arc::clone(&ledger));
    let port = free_port();
    let env = environment(dir.path(), port, upstream_port);
    let (stop_tx, stop_rx) = async_channel::bounded(1);
    let server = std::thread::spawn(move || serve_with_shutdown(env, Limits::default(), stop_rx));
    wait_for_health(port);
    wait_prices_loaded(port);
    sse_stream_is_relayed_byte_exact_and_row_completed(port, dir.path());
    stop_tx.send_blocking(()).unwrap();
    assert_eq!(server.join().unwrap(), ExitCode::SUCCESS);
}

#[test]
fn smol_daemon_enforces_its_connection_timers_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Port 1 refuses connections: nothing here may reach an upstream.
    let env = environment(dir.path(), port, 1);
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        keep_alive_idle: Duration::from_millis(300),
        body_idle: Duration::from_millis(300),
        ..Limits::default()
    };
    let (stop_tx, stop_rx) = async_channel::bounded(1);
    let server = std::thread::spawn(move || serve_with_shutdown(env, limits, stop_rx));
    wait_for_health(port);

    // A head that stops half-way: closed after the header read timeout, with no response.
    let (bytes, waited) = read_until_closed(port, b"GET /hea");
    assert!(bytes.is_empty(), "no response to a slow head");
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(5));

    // A body that stops: 408 E23 after the body idle time, then close.
    let (bytes, waited) = read_until_closed(
        port,
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n{}",
    );
    let resp = read_response(&mut BufReader::new(bytes.as_slice()));
    assert_eq!(resp.status, 408);
    assert_eq!(resp.body, br#"{"error":"request body timeout"}"#);
    assert!(waited >= Duration::from_millis(250));

    // Keep-alive idle: the connection closes after a response and the idle time.
    let (bytes, waited) = read_until_closed(port, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(bytes.starts_with(b"HTTP/1.1 200"));
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(5));

    // A 70 KiB target: 414 and close.
    let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70 * 1024));
    let (bytes, _) = read_until_closed(port, long.as_bytes());
    assert_eq!(
        read_response(&mut BufReader::new(bytes.as_slice())).status,
        414
    );

    // An HTTP/1.0 request gets an HTTP/1.0-compatible, closing answer.
    let (bytes, _) = read_until_closed(port, b"GET /health HTTP/1.0\r\n\r\n");
    let resp = read_response(&mut BufReader::new(bytes.as_slice()));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));

    stop_tx.send_blocking(()).unwrap();
    assert_eq!(server.join().unwrap(), ExitCode::SUCCESS);
}

/// Sends `request`, then reads until the server closes; returns the bytes and the time.
fn read_until_closed(port: u16, request: &[u8]) -> (Vec<u8>, Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    stream.write_all(request).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    (all, started.elapsed())
}

fn health_answers_with_security_headers(port: u16) {
    let resp = exchange(
        port,
        b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, br#"{"status":"ok"}"#);
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
}

fn json_call_is_proxied_and_row_finalized_with_w1_cost(
    port: u16,
    dir: &Path,
    ledger: &Arc<Mutex<Vec<Seen>>>,
) {
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nanthropic-version: 2023-06-01\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = exchange(port, request.as_bytes());
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.body, W1_RESPONSE.as_bytes());
    assert_eq!(
        resp.header("content-length"),
        Some(W1_RESPONSE.len().to_string().as_str())
    );
    let seen = ledger.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(
        seen.body,
        body.as_bytes(),
        "the body reaches the upstream unchanged"
    );
    assert_eq!(
        seen.host.as_deref(),
        Some(format!("127.0.0.1:{}", seen.port).as_str())
    );

    let row = last_row(dir);
    assert_eq!(row.lifecycle, "completed");
    assert_eq!(row.status, 200);
    assert_eq!(row.prompt, 1_000);
    assert_eq!(row.completion, 500);
    assert_eq!(row.total, 1_500);
    assert_eq!(row.cost_nanousd, 10_500_000);
    assert_eq!(row.cost_status, "ok");
    assert_eq!(row.streamed, 0);
}

fn sse_stream_is_relayed_byte_exact_and_row_completed(port: u16, dir: &Path) {
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Kept alive: the end of the chunked body, not EOF, ends the response.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let resp = read_response(&mut reader);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(String::from_utf8(resp.body).unwrap(), SSE_PIECES.concat());

    let row = last_row(dir);
    assert_eq!(row.lifecycle, "completed");
    assert_eq!(row.streamed, 1);
    assert_eq!(row.prompt, 2_000);
    assert_eq!(row.completion, 40);
    // 2 000 × 3 000 000 + 40 × 15 000 000 pUSD = 6 600 000 000 pUSD.
    assert_eq!(row.cost_nanousd, 6_600_000);

    // The same connection serves the next request.
    reader
        .get_mut()
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader).status, 200);
}

fn too_many_headers_get_431_and_close(port: u16, ledger: &Arc<Mutex<Vec<Seen>>>) {
    let before = ledger.lock().unwrap().len();
    let mut request = String::from("POST /v1/messages HTTP/1.1\r\nhost: localhost\r\n");
    for i in 0..100 {
        request.push_str(&format!("x-h{i}: v\r\n"));
    }
    request.push_str("content-length: 2\r\n\r\n{}GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let mut reader = BufReader::new(all.as_slice());
    let resp = read_response(&mut reader);
    assert_eq!(resp.status, 431);
    assert_eq!(resp.body, br#"{"error":"request header fields too large"}"#);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(
        reader.fill_buf().unwrap().is_empty(),
        "nothing after the 431"
    );
    assert_eq!(ledger.lock().unwrap().len(), before, "no upstream request");
}

fn pipelined_requests_are_answered_in_order(port: u16) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /nope HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let mut reader = BufReader::new(all.as_slice());
    let statuses: Vec<u16> = (0..3).map(|_| read_response(&mut reader).status).collect();
    assert_eq!(statuses, [200, 404, 200]);
}

// ----- the fake upstream -----

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    body: Vec<u8>,
    host: Option<String>,
    port: u16,
}

fn start_fake_upstream(ledger: Arc<Mutex<Vec<Seen>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || serve_upstream(stream, &ledger, port));
        }
    });
    port
}

fn serve_upstream(stream: TcpStream, ledger: &Mutex<Vec<Seen>>, port: u16) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let stream_requested = String::from_utf8_lossy(&body).contains("\"stream\":true");
        if method != "HEAD" {
            ledger.lock().unwrap().push(Seen {
                path: path.clone(),
                body,
                host: headers.get("host").cloned(),
                port,
            });
        }
        let out = reader.get_mut();
        let ok = if method == "HEAD" {
            out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        } else if stream_requested {
            write_sse(out)
        } else {
            out.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_1\r\ncontent-length: {}\r\n\r\n{W1_RESPONSE}",
                    W1_RESPONSE.len()
                )
                .as_bytes(),
            )
        };
        if ok.is_err() {
            return;
        }
    }
}

fn write_sse(out: &mut TcpStream) -> std::io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
    )?;
    for piece in SSE_PIECES {
        out.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes())?;
        out.flush()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    out.write_all(b"0\r\n\r\n")
}

// ----- the client side -----

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn exchange(port: u16, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    read_response(&mut BufReader::new(stream))
}

fn read_response(reader: &mut impl BufRead) -> Response {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if resp.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            assert_eq!(&chunk[size..], b"\r\n");
            if size == 0 {
                break;
            }
            resp.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = resp.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        reader.read_exact(&mut body).unwrap();
        resp.body = body;
    } else {
        reader.read_to_end(&mut resp.body).unwrap();
    }
    resp
}

// ----- helpers -----

struct Row {
    lifecycle: String,
    status: i64,
    streamed: i64,
    prompt: i64,
    completion: i64,
    total: i64,
    cost_nanousd: i64,
    cost_status: String,
}

/// The newest finalized row. Rows reach the database from the spool within
/// `SPOOL_INGEST_MAX_DELAY_MS` (`docs/spool.md` S7), so this polls for a while.
fn last_row(dir: &Path) -> Row {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(row) = read_last_row(dir)
            && row.lifecycle != "pending"
        {
            return row;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no finalized row within 5 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn read_last_row(dir: &Path) -> Option<Row> {
    let db = rusqlite::Connection::open(dir.join("proxy.db")).ok()?;
    db.query_row(
        "SELECT lifecycle_status, status, streamed, prompt_tokens, completion_tokens, total_tokens, cost_nanousd, cost_status FROM request_logs ORDER BY id DESC LIMIT 1",
        [],
        |r| {
            Ok(Row {
                lifecycle: r.get(0)?,
                status: r.get(1)?,
                streamed: r.get(2)?,
                prompt: r.get(3)?,
                completion: r.get(4)?,
                total: r.get(5)?,
                cost_nanousd: r.get(6)?,
                cost_status: r.get(7)?,
            })
        },
    )
    .ok()
}

fn environment(dir: &Path, port: u16, upstream_port: u16) -> BTreeMap<String, String> {
    let api = dir.join("api.json");
    std::fs::write(&api, PRICING).unwrap();
    let path = |p: &str| dir.join(p).display().to_string();
    [
        ("HOME", path("home")),
        ("XDG_CONFIG_HOME", path("config")),
        ("XDG_DATA_HOME", path("data")),
        ("XDG_STATE_HOME", path("state")),
        ("XDG_CACHE_HOME", path("cache")),
        ("AGENT_CLI_PROXY_DATA_DIR", path("data")),
        ("PROXY_HOST", "127.0.0.1".to_owned()),
        ("PROXY_PORT", port.to_string()),
        (
            "CLI_PROXY_API_URL",
            format!("http://127.0.0.1:{upstream_port}"),
        ),
        ("DB_PATH", path("proxy.db")),
        ("PRICING_CACHE_PATH", path("pricing-cache.json")),
        ("PRICING_URL", format!("file://{}", api.display())),
        ("LOG_LEVEL", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_health(port: u16) {
    let ok = wait_until(Duration::from_secs(10), || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out.starts_with(b"HTTP/1.1 200")
    });
    assert!(ok, "/health did not answer");
}

/// The startup pricing refresh runs in the background. Its cache file appears before the
/// prices are in memory, so wait for `/admin/pricing` (open on loopback without
/// `ADMIN_API_KEY`) to report them: the daemon publishes there only after the core has them.
fn wait_prices_loaded(port: u16) {
    let loaded = wait_until(Duration::from_secs(10), || {
        let resp = exchange(
            port,
            b"GET /admin/pricing?model=claude-sonnet-4-5&provider=anthropic HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        );
        resp.status == 200
            && serde_json::from_slice::<serde_json::Value>(&resp.body)
                .is_ok_and(|v| !v["fetchedAt"].is_null() && !v["match"].is_null())
    });
    assert!(loaded, "prices not loaded within 10 s");
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}
