//! The `correlator` loop body (`control.md` §8.2–§8.4), shared by both shells: read the
//! candidates, call the management API, match in the core, apply through the writer.
//!
//! Shells provide IO through [`HttpGet`]: a bounded `GET` and a way to run a blocking
//! closure (the reader queries) off the async threads. The trait is object-safe so the
//! admin handler can hold the shell's implementation behind an `Arc` (see
//! [`super::quota::QuotaService::install_http`]). No runtime type appears here.
//!
//! A management call's time limit is the core's [`management_timeout_ms`] (60 s, or
//! `UPSTREAM_TIMEOUT_MS` when longer), never the loop interval: the queue pops its records
//! when it answers, so an answer cut off early is lost for good. Ticks are single-flight:
//! the shell's loop starts the next one only after the previous ended, and [`CorrelatorLoop`]
//! refuses to run two at once whoever calls it. Records the queue returned are held by the
//! core until the writer confirms them (`correlate::carry`); what is still held when the loop
//! ends is logged as counts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agent_cli_proxy_core::breaker::OutcomeClass;
use agent_cli_proxy_core::config::Config;
use agent_cli_proxy_core::correlate::{
    Assignment, BREAKER_ID, CANDIDATE_LIMIT, Candidate, Correlator, FetchResponse, FetchStep,
    MatchConfig, management_timeout_ms,
};
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_storage::{Correlation, Op, Reply as StoreReply};
use serde_json::json;

use super::Daemon;
use super::log::Logger;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The IO a shell lends to the loop bodies.
pub trait HttpGet: Send + Sync {
    /// `GET url` with `headers` through the shell's upstream client, aborted after
    /// `timeout`: the status and the whole body, or the error's message. Implementations
    /// copy the arguments before returning the future.
    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(u16, Vec<u8>), String>>;

    /// Runs `job` where blocking is allowed (`spawn_blocking`, `blocking::unblock`, or
    /// inline when the caller is already on a blocking thread); resolves when it is done.
    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()>;

    /// One plain `GET url` (no credentials, redirects not followed) through the shell's
    /// control-plane client, aborted after `timeout`: a 2xx body is read whole, at most
    /// `max` bytes (more is the error `length limit exceeded`); other answers are not read.
    fn get_hop(
        &self,
        url: &str,
        max: usize,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Hop, String>>;

    /// The pricing document at `url` (`accounting.md` §4.1): `file:///abs/path` reads the
    /// file; http(s) follows at most 5 redirects, carries no credentials and accepts at most
    /// 64 MiB within 30 s. One policy for both shells, on top of [`HttpGet::get_hop`].
    fn fetch_document<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            if let Some(path) = url.strip_prefix("file://") {
                let slot = Arc::new(Mutex::new(None));
                let out = Arc::clone(&slot);
                let owned = path.to_owned();
                self.run_blocking(Box::new(move || {
                    let read = std::fs::read(&owned);
                    *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(read);
                }))
                .await;
                let read = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                let bytes = read
                    .ok_or_else(|| format!("{path}: the read did not complete"))?
                    .map_err(|e| format!("{path}: {e}"))?;
                if bytes.len() > MAX_DOCUMENT {
                    return Err("pricing document exceeds 64 MiB".to_owned());
                }
                return Ok(bytes);
            }
            let deadline = std::time::Instant::now() + DOCUMENT_TIMEOUT;
            let timed_out = || {
                format!(
                    "pricing fetch timed out after {}ms",
                    DOCUMENT_TIMEOUT.as_millis()
                )
            };
            let mut target = url.to_owned();
            for _ in 0..=MAX_REDIRECTS {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                let hop = match self.get_hop(&target, MAX_DOCUMENT, left).await {
                    Ok(hop) => hop,
                    Err(_) if std::time::Instant::now() >= deadline => return Err(timed_out()),
                    Err(e) => return Err(e),
                };
                match hop {
                    Hop::Body(body) => return Ok(body),
                    Hop::Status(status) => return Err(format!("HTTP {}", status.as_u16())),
                    Hop::Redirect {
                        status,
                        location: None,
                    } => {
                        return Err(format!("HTTP {status} without location"));
                    }
                    Hop::Redirect {
                        location: Some(loc),
                        ..
                    } => target = agent_cli_proxy_core::http1::redirect_target(&target, &loc),
                }
            }
            Err("too many redirects".to_owned())
        })
    }
}

/// Largest pricing document (`accounting.md` §4.1).
pub const MAX_DOCUMENT: usize = 67_108_864;
/// Redirects a document fetch follows.
const MAX_REDIRECTS: usize = 5;
/// The whole document fetch's limit.
const DOCUMENT_TIMEOUT: Duration = Duration::from_millis(30_000);

/// One answer of a document fetch.
#[derive(Debug)]
pub enum Hop {
    /// A 3xx, with its `Location` if it has a readable one.
    Redirect {
        /// The status.
        status: http::StatusCode,
        /// The `Location` header.
        location: Option<String>,
    },
    /// Any other status that is not 2xx.
    Status(http::StatusCode),
    /// A 2xx answer's whole body.
    Body(Vec<u8>),
}

/// Runs `f` through [`HttpGet::run_blocking`] and returns its value.
pub async fn blocking<T: Send + 'static>(
    io: &dyn HttpGet,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let slot = Arc::new(Mutex::new(None));
    let out = Arc::clone(&slot);
    io.run_blocking(Box::new(move || {
        let value = f();
        *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
    }))
    .await;
    let value = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    value.ok_or_else(|| "blocking task did not complete".to_owned())
}

/// A `GET` guarded by the breaker `breaker_id` of the core: rejected while it is open;
/// a transport error or a 5xx counts as a failure, anything else as a success.
pub async fn guarded_get(
    d: &Daemon,
    io: &dyn HttpGet,
    breaker_id: &str,
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let permit = d
        .core()
        .breakers_mut()
        .admit(breaker_id, d.now())
        .map_err(|r| {
            format!(
                "circuit breaker {breaker_id} is open (retry after {}s)",
                r.retry_after_secs
            )
        })?;
    let result = io.get(url, headers, timeout).await;
    let class = match &result {
        Ok((status, _)) if *status >= 500 => OutcomeClass::Failure,
        Ok(_) => OutcomeClass::Success,
        Err(_) => OutcomeClass::Failure,
    };
    d.core()
        .breakers_mut()
        .handle_outcome(permit, class, d.now());
    result
}

/// What one tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickSummary {
    /// Candidates read.
    pub candidates: u64,
    /// HTTP calls made.
    pub calls: u32,
    /// Rows written.
    pub matched: u64,
    /// Candidates left uncorrelated.
    pub unmatched_rows: u64,
    /// Usable records left unused.
    pub unused_records: u64,
    /// Records skipped as applied in an earlier tick.
    pub skipped_applied: u64,
    /// Rows written from pairings an earlier tick could not confirm.
    pub retried: u64,
    /// True when another tick was still running and this one did nothing.
    pub skipped_in_flight: bool,
}

/// The correlator's state across ticks.
pub struct CorrelatorLoop {
    state: Mutex<Correlator>,
    timeout: Duration,
    running: AtomicBool,
    logger: Logger,
}

/// Holds the single-flight flag for one tick; released when the tick ends or its future is
/// dropped.
struct Flight<'a>(&'a AtomicBool);

impl<'a> Flight<'a> {
    fn enter(flag: &'a AtomicBool) -> Option<Flight<'a>> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Flight(flag))
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Drop for CorrelatorLoop {
    // The loop's task owns the only handle, so this runs when the loop ends — at shutdown,
    // when it is disabled, and also when a tick stuck past the stop deadline is cancelled,
    // which no code after the loop would see.
    fn drop(&mut self) {
        if let Some(rec) = self.state().shutdown_log() {
            self.logger.record(&rec);
        }
    }
}

impl CorrelatorLoop {
    /// A correlator for `config` (`CLI_PROXY_API_URL`, `CLIPROXY_CORRELATION_*`,
    /// `UPSTREAM_TIMEOUT_MS`); `logger` receives the count of records left unapplied when it
    /// is dropped.
    pub fn new(config: &Config, logger: Logger) -> CorrelatorLoop {
        let match_config = MatchConfig {
            window_ms: config.correlation_window_ms,
            lookback_ms: config.correlation_lookback_ms,
        };
        CorrelatorLoop {
            state: Mutex::new(Correlator::new(&config.cli_proxy_api_url, match_config)),
            timeout: Duration::from_millis(management_timeout_ms(config.upstream_timeout_ms)),
            running: AtomicBool::new(false),
            logger,
        }
    }

    /// The time limit of one management call.
    pub fn call_timeout(&self) -> Duration {
        self.timeout
    }

    /// Records held and not applied yet.
    pub fn unapplied(&self) -> agent_cli_proxy_core::correlate::Unapplied {
        self.state().unapplied()
    }

    /// Writes one pairing (§8.4) and confirms it to the core once the writer answered:
    /// `Ok(true)` when the row changed, `Ok(false)` when it already had an account.
    async fn apply(&self, d: &Daemon, a: &Assignment, now: &str) -> Result<bool, String> {
        let op = Op::Correlate(Correlation {
            id: a.row_id,
            source: a.source.clone(),
            auth_index: a.auth_index.clone(),
            now: now.to_owned(),
        });
        let changed = match d.writer.send(op).await {
            Ok(StoreReply::Changed(changed)) => changed,
            Ok(_) => false,
            Err(e) => return Err(format!("correlation write failed: {e}")),
        };
        self.state().confirm(a);
        Ok(changed)
    }

    /// True once both endpoints answered 404 (no more HTTP calls).
    pub fn disabled(&self) -> bool {
        self.state().fetch_state().disabled()
    }

    /// One tick (`control.md` §8.3). `Err` when the fetch failed or a write failed.
    pub async fn tick(&self, d: &Daemon, io: &dyn HttpGet) -> Result<TickSummary, String> {
        let mut summary = TickSummary::default();
        let Some(_flight) = Flight::enter(&self.running) else {
            summary.skipped_in_flight = true;
            return Ok(summary);
        };
        // Pairings an earlier tick could not confirm go first; while the database refuses
        // them there is no point popping more records.
        let (retries, logs) = self.state().begin_tick(d.wall());
        for rec in &logs {
            d.logger.record(rec);
        }
        if !retries.is_empty() {
            let now = d.wall().to_iso();
            for a in &retries {
                if self.apply(d, a, &now).await? {
                    summary.retried += 1;
                }
            }
            d.logger.event(
                Level::Info,
                "correlator.retried",
                "correlations held from an earlier tick were written",
                vec![
                    ("written", json!(retries.len())),
                    ("matched", json!(summary.retried)),
                ],
            );
        }
        let since = self.state().candidates_since(d.wall());
        let readers = d.readers.clone();
        let rows = blocking(io, move || {
            readers.with(|s| s.correlation_candidates(&since, CANDIDATE_LIMIT))
        })
        .await?
        .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(summary);
        }
        summary.candidates = rows.len() as u64;
        let candidates: Vec<Candidate> = rows
            .into_iter()
            .map(|r| Candidate {
                id: r.id,
                model: r.model,
                actual_model: r.actual_model,
                started_at: r.started_at,
                total_tokens: r.total_tokens,
                latency_ms: r.latency_ms,
            })
            .collect();
        let Some((mut endpoint, mut url)) = self.state().next_fetch() else {
            return Ok(summary);
        };
        let key = d.config.cliproxy_mgmt_key.expose();
        let bearer = format!("Bearer {key}");
        let headers = [
            ("authorization", bearer.as_str()),
            ("x-management-key", key),
        ];
        let records = loop {
            summary.calls += 1;
            let response = match guarded_get(d, io, BREAKER_ID, &url, &headers, self.timeout).await
            {
                Ok((status, body)) => FetchResponse::Http { status, body },
                Err(e) => FetchResponse::Transport(e),
            };
            let (step, logs) = self.state().handle_fetch(endpoint, response);
            for rec in &logs {
                d.logger.record(rec);
            }
            match step {
                FetchStep::Records(r) => break r,
                FetchStep::Held(_) => break Vec::new(),
                FetchStep::Next(next, next_url) => (endpoint, url) = (next, next_url),
                FetchStep::Nothing => return Ok(summary),
                FetchStep::Failed(message) => return Err(message),
            }
        };
        let outcome = self.state().match_tick(&candidates, records, d.wall());
        let now = d.wall().to_iso();
        let mut write_error = None;
        for a in &outcome.assignments {
            match self.apply(d, a, &now).await {
                Ok(true) => summary.matched += 1,
                Ok(false) => {}
                // The rest stay unconfirmed in the core and are written by the next tick.
                Err(e) => {
                    write_error = Some(e);
                    break;
                }
            }
        }
        summary.unmatched_rows = outcome.total - summary.matched;
        summary.unused_records = outcome.unused_records;
        summary.skipped_applied = outcome.skipped_applied;
        let held = self.state().unapplied().unmatched;
        let logs = self
            .state()
            .handle_applied(summary.matched, outcome.total, d.now());
        for rec in &logs {
            d.logger.record(rec);
        }
        d.logger.event(
            Level::Debug,
            "correlator.tick",
            "correlator tick",
            vec![
                ("endpoint", json!(endpoint.as_str())),
                ("matched", json!(summary.matched)),
                ("total", json!(outcome.total)),
                ("unmatched_rows", json!(summary.unmatched_rows)),
                ("unused_records", json!(summary.unused_records)),
                ("skipped_applied", json!(summary.skipped_applied)),
                ("dropped_records", json!(outcome.dropped)),
                ("retried", json!(summary.retried)),
                ("held_records", json!(held)),
            ],
        );
        match write_error {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }

    fn state(&self) -> MutexGuard<'_, Correlator> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
