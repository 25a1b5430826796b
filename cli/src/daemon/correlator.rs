//! The `correlator` loop body (`control.md` §8.2–§8.4), shared by both shells: read the
//! candidates, call the management API, match in the core, apply through the writer.
//!
//! Shells provide IO through [`HttpGet`]: a bounded `GET` and a way to run a blocking
//! closure (the reader queries) off the async threads. The trait is object-safe so the
//! admin handler can hold the shell's implementation behind an `Arc` (see
//! [`super::quota::QuotaService::install_http`]). No runtime type appears here.
//!
//! Management calls time out after the correlation interval, clamped to 1 000..10 000 ms
//! (the spec gives no figure; a tick should end before the next one is due).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agent_cli_proxy_core::breaker::OutcomeClass;
use agent_cli_proxy_core::config::Config;
use agent_cli_proxy_core::correlate::{
    BREAKER_ID, CANDIDATE_LIMIT, Candidate, Correlator, FetchResponse, FetchStep, MatchConfig,
};
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_storage::{Correlation, Op, Reply as StoreReply};
use serde_json::json;

use super::Daemon;

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

    /// The pricing document at `url` (`file:///abs/path`, or http(s) with at most 5
    /// redirects, 64 MiB and 30 s, `accounting.md` §4.1).
    fn fetch_document<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>>;
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
}

/// The correlator's state across ticks.
pub struct CorrelatorLoop {
    state: Mutex<Correlator>,
    timeout: Duration,
}

impl CorrelatorLoop {
    /// A correlator for `config` (`CLI_PROXY_API_URL`, `CLIPROXY_CORRELATION_*`).
    pub fn new(config: &Config) -> CorrelatorLoop {
        let match_config = MatchConfig {
            window_ms: config.correlation_window_ms,
            lookback_ms: config.correlation_lookback_ms,
        };
        CorrelatorLoop {
            state: Mutex::new(Correlator::new(&config.cli_proxy_api_url, match_config)),
            timeout: Duration::from_millis(config.correlation_interval_ms.clamp(1_000, 10_000)),
        }
    }

    /// True once both endpoints answered 404 (no more HTTP calls).
    pub fn disabled(&self) -> bool {
        self.state().fetch_state().disabled()
    }

    /// One tick (`control.md` §8.3). `Err` when the fetch failed or a write failed.
    pub async fn tick(&self, d: &Daemon, io: &dyn HttpGet) -> Result<TickSummary, String> {
        let mut summary = TickSummary::default();
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
                FetchStep::Next(next, next_url) => (endpoint, url) = (next, next_url),
                FetchStep::Nothing => return Ok(summary),
                FetchStep::Failed(message) => return Err(message),
            }
        };
        let outcome = self.state().match_tick(&candidates, records, d.wall());
        let now = d.wall().to_iso();
        let mut write_error = None;
        for a in &outcome.assignments {
            let op = Op::Correlate(Correlation {
                id: a.row_id,
                source: a.source.clone(),
                auth_index: a.auth_index.clone(),
                now: now.clone(),
            });
            match d.writer.send(op).await {
                Ok(StoreReply::Changed(true)) => summary.matched += 1,
                Ok(_) => {}
                Err(e) => write_error = Some(e.to_string()),
            }
        }
        summary.unmatched_rows = outcome.total - summary.matched;
        summary.unused_records = outcome.unused_records;
        summary.skipped_applied = outcome.skipped_applied;
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
            ],
        );
        match write_error {
            Some(e) => Err(format!("correlation write failed: {e}")),
            None => Ok(summary),
        }
    }

    fn state(&self) -> MutexGuard<'_, Correlator> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
