//! `GET /ready` (`control.md` §7) for both shells: four checks with their own timeouts under a
//! 1 500 ms deadline, memoised for 3 000 ms with concurrent callers sharing one run. The
//! decisions (status, outputs, memo) are the core's ([`agent_cli_proxy_core::ready`]); this
//! module runs the probes and the single flight. A shell supplies only what needs its runtime,
//! through [`ReadyIo`].

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::head::Reply;
use agent_cli_proxy_core::ready::{
    CheckName, CheckResult, DatabaseProbe, PricingFacts, READY_DEADLINE_MS, ReadyCache,
    ReadyDecision, ReadyReport,
};
use agent_cli_proxy_core::supervisor::LoopState;
use agent_cli_proxy_core::time::UnixMillis;
use event_listener::Event;
use futures_lite::future;
use serde_json::json;

use super::Daemon;

/// What `/ready` needs from the shell's runtime.
pub trait ReadyIo: Sync {
    /// Runs `f` where blocking is allowed (SQLite, file metadata); `None` when the blocking
    /// task could not run to completion.
    fn run_blocking<T, F>(&self, f: F) -> impl Future<Output = Option<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static;

    /// `f`'s output, or `None` once `limit` has passed.
    fn timeout<F>(&self, limit: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send,
        F::Output: Send;

    /// `HEAD url` on the shell's control-plane client: the status code or an error text.
    fn probe_upstream(&self, url: &str) -> impl Future<Output = Result<u16, String>> + Send;
}

/// The memo, the wake-up of joiners, and loop health, shared by requests and loops.
#[derive(Default)]
pub struct ReadyState {
    cache: Mutex<ReadyCache>,
    finished: Event,
    /// Health of every started loop.
    pub loops: Mutex<Vec<LoopState>>,
}

impl ReadyState {
    /// Answers `/ready`: from the memo, by joining the run in progress, or by starting one.
    pub async fn handle(&self, daemon: &Daemon, io: &impl ReadyIo) -> Reply {
        let deadline = Duration::from_millis(READY_DEADLINE_MS);
        // The listener is registered under the same lock as the decision, and a run
        // completes and notifies under that lock too: a joiner can never decide `Join` and
        // then miss the wake-up of the run it joined.
        let (decision, finished) = {
            let mut cache = lock(&self.cache);
            (cache.decide(daemon.now()), self.finished.listen())
        };
        match decision {
            ReadyDecision::Cached(report) => {
                daemon.logger.event(
                    Level::Debug,
                    "ready.cache_hit",
                    "ready served from cache",
                    vec![],
                );
                report.reply()
            }
            ReadyDecision::Join(_) => {
                let _ = io.timeout(deadline, finished).await;
                match lock(&self.cache).last_report() {
                    Some(report) => report.reply(),
                    None => ReadyReport::deadline_exceeded().reply(),
                }
            }
            ReadyDecision::Start(run) => {
                drop(finished);
                let started = std::time::Instant::now();
                let report = io
                    .timeout(deadline, self.run_checks(daemon, io))
                    .await
                    .unwrap_or_else(ReadyReport::deadline_exceeded);
                let ms = started.elapsed().as_millis() as i64;
                let status = report.status();
                daemon.metrics().observe_ready(status.as_str(), ms);
                daemon.logger.event(
                    Level::Info,
                    "ready.check",
                    "readiness checked",
                    vec![
                        ("status", json!(status.as_str())),
                        ("duration_ms", json!(ms)),
                        ("checks", report.to_json()["checks"].clone()),
                    ],
                );
                let reply = report.reply();
                let mut cache = lock(&self.cache);
                cache.complete(run, report, daemon.now());
                self.finished.notify(usize::MAX);
                reply
            }
        }
    }

    async fn run_checks(&self, daemon: &Daemon, io: &impl ReadyIo) -> ReadyReport {
        let ((database, pricing), upstream) = future::zip(
            future::zip(database(daemon, io), pricing(daemon, io)),
            upstream(daemon, io),
        )
        .await;
        let supervisor = CheckResult::supervisor(&lock(&self.loops), daemon.now());
        ReadyReport {
            database,
            pricing,
            upstream,
            supervisor,
            spool: CheckResult::spool(daemon.spool_facts()),
        }
    }
}

async fn database(daemon: &Daemon, io: &impl ReadyIo) -> CheckResult {
    let readers = daemon.readers.clone();
    let started = std::time::Instant::now();
    let probe = io.run_blocking(move || match readers.with(|st| st.ping()) {
        Ok(()) => DatabaseProbe::Row,
        Err(e) => DatabaseProbe::Error(e.to_string()),
    });
    let result = match io.timeout(timeout_of(CheckName::Database), probe).await {
        Some(Some(p)) => CheckResult::database(p, started.elapsed().as_millis() as u64),
        Some(None) => CheckResult::database(
            DatabaseProbe::Error("the blocking probe did not complete".to_owned()),
            started.elapsed().as_millis() as u64,
        ),
        None => CheckResult::timed_out(CheckName::Database),
    };
    if daemon.config.postgres.is_some() {
        result.covered_by_spool()
    } else {
        result
    }
}

async fn pricing(daemon: &Daemon, io: &impl ReadyIo) -> CheckResult {
    let started = std::time::Instant::now();
    let path = daemon.pricing.cache_path().to_path_buf();
    let stat_path = path.clone();
    let modified = io
        .run_blocking(move || {
            std::fs::metadata(&stat_path).ok().map(|m| {
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| UnixMillis(d.as_millis() as u64))
            })
        })
        .await
        .flatten();
    let facts = PricingFacts {
        cache_path: path.display().to_string(),
        file_exists: modified.is_some(),
        loaded: !daemon.pricing.table().is_empty() || daemon.pricing.fetched_at().is_some(),
        fetched_at: daemon.pricing.fetched_at(),
        file_modified: modified.flatten(),
    };
    CheckResult::pricing(
        &facts,
        daemon.wall(),
        daemon.config.ready_pricing_max_age_ms,
        started.elapsed().as_millis() as u64,
    )
}

async fn upstream(daemon: &Daemon, io: &impl ReadyIo) -> CheckResult {
    if !daemon.config.has_router() {
        return CheckResult::upstream_direct();
    }
    let url = format!("{}/health", daemon.config.cli_proxy_api_url);
    let started = std::time::Instant::now();
    match io
        .timeout(timeout_of(CheckName::Upstream), io.probe_upstream(&url))
        .await
    {
        Some(res) => CheckResult::upstream(res, started.elapsed().as_millis() as u64),
        None => CheckResult::timed_out(CheckName::Upstream),
    }
}

fn timeout_of(name: CheckName) -> Duration {
    Duration::from_millis(name.timeout_ms())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
