//! [`FakeManagement`], a scriptable CLIProxyAPI management API: the destructive
//! `/v0/management/usage-queue` and the cumulative legacy `/v0/management/usage`, each of
//! which can answer normally, with a status, slowly or with malformed JSON. Requests without
//! the expected management key get 401. Every request is recorded with its key headers, and
//! the most management calls ever in flight at once is kept (single-flight checks).
//!
//! `POST /v1/messages` answers a small Anthropic message at once (usage 11 in / 7 out), so a
//! test can send real proxied calls through the proxy to the same `CLI_PROXY_API_URL`.
//!
//! Plain threads and blocking sockets: one request per connection (`connection: close`),
//! which is all a poller needs.
//!
//! Several pollers can share one queue through [`FakeManagement::start_shared`]: one listener
//! per poller, one state behind them, and each [`Call`] says which listener took it, so a test
//! knows which replica polled without relying on anything the pollers send.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

/// How an endpoint answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// 200 with the records (the queue pops them; the legacy endpoint keeps them).
    Serve,
    /// This status with a small body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Malformed,
    /// Takes the answer (the queue pops its records) at once, then waits this long before
    /// sending it, as a busy router does.
    Slow(Duration),
}

/// One recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Request target.
    pub target: String,
    /// `authorization` header.
    pub authorization: Option<String>,
    /// `x-management-key` header.
    pub management_key: Option<String>,
    /// Which listener took it: the index into [`FakeManagement::url_of`] (0 for
    /// [`FakeManagement::url`]).
    pub listener: usize,
    /// When it arrived and when its answer was written (after any [`Mode::Slow`] wait),
    /// measured from the start of the fake; `done` is `None` while it is being answered.
    pub arrived: Duration,
    /// See [`Call::arrived`].
    pub done: Option<Duration>,
}

#[derive(Debug)]
struct State {
    key: String,
    queue_mode: Mode,
    legacy_mode: Mode,
    queue: Vec<Value>,
    legacy: Vec<Value>,
    calls: Vec<Call>,
    in_flight: usize,
    max_in_flight: usize,
    epoch: std::time::Instant,
}

/// The fake management API; stops when dropped.
pub struct FakeManagement {
    addrs: Vec<SocketAddr>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeManagement {
    /// Starts on a free loopback port, expecting `key`; panics (failing the test) when the
    /// listener cannot be set up.
    pub fn start(key: &str) -> FakeManagement {
        match FakeManagement::try_start(key) {
            Ok(m) => m,
            Err(err) => panic!("fake management API failed to start: {err}"),
        }
    }

    /// Fallible form of [`FakeManagement::start`].
    pub fn try_start(key: &str) -> std::io::Result<FakeManagement> {
        FakeManagement::try_start_shared(key, 1)
    }

    /// Starts `listeners` listeners on free loopback ports, all answering from the same queue,
    /// legacy snapshot and call record; panics when one cannot be set up.
    pub fn start_shared(key: &str, listeners: usize) -> FakeManagement {
        match FakeManagement::try_start_shared(key, listeners) {
            Ok(m) => m,
            Err(err) => panic!("fake management API failed to start: {err}"),
        }
    }

    /// Fallible form of [`FakeManagement::start_shared`].
    pub fn try_start_shared(key: &str, listeners: usize) -> std::io::Result<FakeManagement> {
        let state = Arc::new(Mutex::new(State {
            key: key.to_owned(),
            queue_mode: Mode::Serve,
            legacy_mode: Mode::Serve,
            queue: Vec::new(),
            legacy: Vec::new(),
            calls: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
            epoch: std::time::Instant::now(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut addrs = Vec::with_capacity(listeners.max(1));
        for index in 0..listeners.max(1) {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            addrs.push(listener.local_addr()?);
            let (s, st) = (Arc::clone(&state), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("fake-mgmt".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if st.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let s = Arc::clone(&s);
                        let _ = std::thread::Builder::new()
                            .name("fake-mgmt-conn".into())
                            .spawn(move || serve(conn, &s, index));
                    }
                })?;
        }
        Ok(FakeManagement { addrs, state, stop })
    }

    /// `http://127.0.0.1:<port>` of the first listener, the proxy's `CLI_PROXY_API_URL`.
    pub fn url(&self) -> String {
        self.url_of(0)
    }

    /// The URL of listener `index` of [`FakeManagement::start_shared`]; panics when there is
    /// no such listener.
    pub fn url_of(&self, index: usize) -> String {
        match self.addrs.get(index) {
            Some(addr) => format!("http://{addr}"),
            None => panic!("the fake management API has {} listeners", self.addrs.len()),
        }
    }

    /// Sets the queue's mode.
    pub fn queue_mode(&self, mode: Mode) {
        self.lock().queue_mode = mode;
    }

    /// Sets the legacy endpoint's mode.
    pub fn legacy_mode(&self, mode: Mode) {
        self.lock().legacy_mode = mode;
    }

    /// Adds records to the queue (popped by the next served call).
    pub fn push_queue(&self, records: &[Value]) {
        self.lock().queue.extend_from_slice(records);
    }

    /// Adds records to the legacy snapshot (returned on every served call).
    pub fn push_legacy(&self, records: &[Value]) {
        self.lock().legacy.extend_from_slice(records);
    }

    /// Records waiting in the queue (not popped yet).
    pub fn queue_len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Management calls being answered right now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// The most management calls ever answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Requests whose target starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.target.starts_with(prefix))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeManagement {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for addr in &self.addrs {
            let _ = TcpStream::connect(addr);
        }
    }
}

/// A queue item / legacy detail in CLIProxyAPI's shape.
pub fn record(timestamp: &str, source: &str, auth_index: &str, model: &str, total: i64) -> Value {
    json!({
        "timestamp": timestamp, "latency_ms": 0, "source": source, "auth_index": auth_index,
        "provider": "claude", "model": model, "endpoint": "/v1/messages",
        "api_key": "sk-client-secret", "failed": false,
        "tokens": {"input_tokens": total, "output_tokens": 0, "reasoning_tokens": 0,
                   "cached_tokens": 0, "total_tokens": total}
    })
}

fn serve(mut conn: TcpStream, state: &Mutex<State>, listener: usize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 65_536 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    // Read the request body too: closing with unread bytes would reset the connection
    // before the proxy reads the answer.
    let head_len = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 4);
    let content_length = text
        .split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body_read = buf.len() - head_len;
    while body_read < content_length {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body_read += n,
        }
    }
    let mut lines = text.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let header = |name: &str| {
        text.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let (mode, authorized, index) = {
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        let call = Call {
            target: target.clone(),
            authorization: header("authorization"),
            management_key: header("x-management-key"),
            listener,
            arrived: st.epoch.elapsed(),
            done: None,
        };
        st.calls.push(call.clone());
        let index = st.calls.len() - 1;
        let authorized = call.authorization.as_deref() == Some(&format!("Bearer {}", st.key))
            && call.management_key.as_deref() == Some(st.key.as_str());
        let mode = if target.starts_with("/v0/management/usage-queue") {
            Some(st.queue_mode.clone())
        } else if target == "/v0/management/usage" {
            Some(st.legacy_mode.clone())
        } else {
            None
        };
        if mode.is_some() {
            st.in_flight += 1;
            st.max_in_flight = st.max_in_flight.max(st.in_flight);
        }
        (mode, authorized, index)
    };
    let management = mode.is_some();
    let (status, body) = match mode {
        None if target == "/v1/messages" => (200, MESSAGE.to_vec()),
        None => (404, b"{\"error\":\"not found\"}".to_vec()),
        Some(_) if !authorized => (401, b"{\"error\":\"invalid management key\"}".to_vec()),
        Some(Mode::Status(code)) => (code, b"{\"error\":\"scripted\"}".to_vec()),
        Some(Mode::Malformed) => (200, b"{\"usage\": [not json".to_vec()),
        Some(Mode::Slow(d)) => {
            let body = body_for(&target, state);
            std::thread::sleep(d);
            (200, body)
        }
        Some(Mode::Serve) => (200, body_for(&target, state)),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body);
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    let done = st.epoch.elapsed();
    if let Some(call) = st.calls.get_mut(index) {
        call.done = Some(done);
    }
    if management {
        st.in_flight -= 1;
    }
}

/// The answer to `POST /v1/messages`.
const MESSAGE: &[u8] = br#"{"id":"msg_fake","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":7}}"#;

fn body_for(target: &str, state: &Mutex<State>) -> Vec<u8> {
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    if target.starts_with("/v0/management/usage-queue") {
        // Half the items as JSON strings, the way some CLIProxyAPI versions send them.
        let items: Vec<Value> = std::mem::take(&mut st.queue)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                if i % 2 == 1 {
                    Value::String(v.to_string())
                } else {
                    v
                }
            })
            .collect();
        return Value::Array(items).to_string().into_bytes();
    }
    let mut models: serde_json::Map<String, Value> = serde_json::Map::new();
    for r in &st.legacy {
        let model = r["model"].as_str().unwrap_or("").to_owned();
        let entry = models
            .entry(model)
            .or_insert_with(|| json!({"details": []}));
        if let Some(details) = entry["details"].as_array_mut() {
            details.push(r.clone());
        }
    }
    json!({"usage": {"apis": {"key-1": {"models": models}}}})
        .to_string()
        .into_bytes()
}
