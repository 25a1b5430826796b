//! The fake upstream's ledger: one entry per request received, updated as its response
//! progresses, plus the count of accepted connections.
//!
//! Correlation with the client log and the proxy's rows goes through `x-request-id`, which
//! the client sets and which lands in the row's `msg_id` (`reliability.md` §3).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The API a request path selects in the fake upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/v1/messages` (Anthropic Messages).
    Anthropic,
    /// `/v1/chat/completions` (OpenAI Chat Completions).
    Chat,
    /// `/v1/responses` (OpenAI Responses).
    Responses,
    /// `/api/chat` and `/api/generate` (Ollama).
    Ollama,
    /// `/health`.
    Health,
    /// Any other path: a small JSON body.
    Other,
}

/// Body kind of a fake response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `application/json`, one body.
    Json,
    /// `text/event-stream`.
    Sse,
    /// `application/x-ndjson`.
    Ndjson,
}

/// How far a response got before the fake upstream stopped writing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The status line and headers were written.
    pub head_sent: bool,
    /// Events (SSE events or NDJSON lines; 1 for a JSON body) written in full.
    pub events_sent: usize,
    /// The terminal event (or the whole JSON body) was written.
    pub terminal_sent: bool,
    /// The event carrying the final usage was written.
    pub usage_sent: bool,
    /// Body bytes written (before chunked framing).
    pub body_bytes_sent: u64,
    /// The response finished as scripted (including a scripted reset).
    pub finished: bool,
    /// The connection was closed with RST by script (`x-fake-reset-after`).
    pub reset: bool,
    /// The peer closed or reset the connection while this response was pending or stalled.
    pub peer_closed: bool,
    /// Time from the request's arrival to the peer closing, when `peer_closed`.
    pub peer_closed_after: Option<Duration>,
}

/// One request the fake upstream received.
#[derive(Clone, Debug)]
pub struct LedgerEntry {
    /// Position in the ledger, from 0.
    pub seq: usize,
    /// Id of the TCP connection it came on (accept order, from 0).
    pub conn: u64,
    /// Request method.
    pub method: String,
    /// Request target as sent (path and query).
    pub target: String,
    /// Headers in arrival order with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The decoded request body.
    pub body: Vec<u8>,
    /// Lower-case hex SHA-256 of `body`.
    pub body_sha256: String,
    /// The `x-request-id` header, if any.
    pub request_id: Option<String>,
    /// API chosen from the path.
    pub api: Api,
    /// Response kind chosen.
    pub kind: Kind,
    /// Response status chosen.
    pub status: u16,
    /// Final usage object the response reports, if the script reports one.
    pub usage: Option<Value>,
    /// Expected or forbidden header rules that failed for this request.
    pub violations: Vec<String>,
    /// When the request head and body were read.
    pub received_at: Instant,
    /// How far the response got.
    pub progress: Progress,
}

impl LedgerEntry {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in arrival order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }

    /// The request body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Shared, thread-safe ledger. Cloning shares the same entries.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<LedgerEntry>,
    connections: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// A snapshot of every entry, in arrival order.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        self.lock().entries.clone()
    }

    /// A snapshot of the entries from arrival number `start` on; a long loop checks only
    /// what arrived since its last check instead of copying the whole history each time.
    pub fn entries_from(&self, start: usize) -> Vec<LedgerEntry> {
        let inner = self.lock();
        inner
            .entries
            .get(start..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// Number of requests received.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// No request received yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `seq`, if it exists.
    pub fn get(&self, seq: usize) -> Option<LedgerEntry> {
        self.lock().entries.get(seq).cloned()
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<LedgerEntry> {
        self.lock().entries.last().cloned()
    }

    /// Entries whose `x-request-id` equals `id`.
    pub fn by_request_id(&self, id: &str) -> Vec<LedgerEntry> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.request_id.as_deref() == Some(id))
            .cloned()
            .collect()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.lock().connections
    }

    /// Every header-rule violation recorded, as `"<seq> <target>: <rule>"` lines.
    pub fn violations(&self) -> Vec<String> {
        self.lock()
            .entries
            .iter()
            .flat_map(|e| {
                e.violations
                    .iter()
                    .map(move |v| format!("{} {}: {v}", e.seq, e.target))
            })
            .collect()
    }

    /// Polls every 5 ms until `pred` holds for the ledger or `timeout` passes; returns
    /// whether it held.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[LedgerEntry]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.lock().entries) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Async form of [`Ledger::wait_until`] for tests on a tokio runtime.
    pub async fn wait_until_async(
        &self,
        timeout: Duration,
        pred: impl Fn(&[LedgerEntry]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.lock().entries) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Forgets every entry and resets the connection count.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.connections = 0;
    }

    pub(crate) fn count_connection(&self) -> u64 {
        let mut inner = self.lock();
        let id = inner.connections;
        inner.connections += 1;
        id
    }

    /// Appends `entry`, assigning its `seq`; returns the seq for later updates.
    pub(crate) fn push(&self, mut entry: LedgerEntry) -> usize {
        let mut inner = self.lock();
        let seq = inner.entries.len();
        entry.seq = seq;
        inner.entries.push(entry);
        seq
    }

    pub(crate) fn update(&self, seq: usize, f: impl FnOnce(&mut Progress)) {
        if let Some(entry) = self.lock().entries.get_mut(seq) {
            f(&mut entry.progress);
        }
    }

    /// A poisoned lock only means another harness thread panicked; the data is still the
    /// best record of what happened, so keep using it.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Checks the RQ-D3 invariants that tie the ledger to the proxy's database after a crash
/// and restart: `PRAGMA integrity_check` is `ok`, no `request_logs` row is `pending`, and
/// every distinct `x-request-id` the upstream received (retries share one) has exactly one
/// row with that `msg_id`. Returns one line per broken invariant; empty means all hold.
pub fn check_rows_against_ledger(db: &rusqlite::Connection, ledger: &Ledger) -> Vec<String> {
    check_rows_against_ledger_from(db, ledger, 0)
}

/// [`check_rows_against_ledger`] for the requests from arrival number `start` on (the
/// database-wide checks still cover every row).
pub fn check_rows_against_ledger_from(
    db: &rusqlite::Connection,
    ledger: &Ledger,
    start: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    match db.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(result) if result == "ok" => {}
        Ok(result) => problems.push(format!("integrity_check: {result}")),
        Err(err) => problems.push(format!("integrity_check failed: {err}")),
    }
    let pending = db.query_row(
        "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'pending'",
        [],
        |r| r.get::<_, i64>(0),
    );
    match pending {
        Ok(0) => {}
        Ok(n) => problems.push(format!("{n} rows are still pending")),
        Err(err) => problems.push(format!("counting pending rows failed: {err}")),
    }
    let ids: std::collections::BTreeSet<String> = ledger
        .entries_from(start)
        .into_iter()
        .filter(|e| !matches!(e.api, Api::Health | Api::Other))
        .filter_map(|e| e.request_id)
        .collect();
    for id in ids {
        let rows = db.query_row(
            "SELECT COUNT(*) FROM request_logs WHERE msg_id = ?1",
            [&id],
            |r| r.get::<_, i64>(0),
        );
        match rows {
            Ok(1) => {}
            Ok(n) => problems.push(format!("request {id}: {n} rows instead of 1")),
            Err(err) => problems.push(format!("request {id}: query failed: {err}")),
        }
    }
    problems
}
