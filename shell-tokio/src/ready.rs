//! `GET /ready` (`control.md` §7): four checks with their own timeouts under a 1 500 ms
//! deadline, memoised for 3 000 ms with concurrent callers sharing one run. The decisions
//! (status, outputs, memo) are the core's; this module only runs the probes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::head::Reply;
use agent_cli_proxy_core::ready::{
    CheckName, CheckResult, DatabaseProbe, PricingFacts, ReadyCache, ReadyDecision, ReadyReport,
};
use agent_cli_proxy_core::supervisor::LoopState;
use agent_cli_proxy_core::time::UnixMillis;
use serde_json::json;
use tokio::sync::Notify;

use crate::server::Shared;

/// The whole run's deadline.
const DEADLINE: Duration = Duration::from_millis(1_500);

/// Memo and loop health, shared by requests and loops.
#[derive(Default)]
pub struct ReadyState {
    cache: Mutex<ReadyCache>,
    finished: Notify,
    /// Health of every started loop.
    pub loops: Mutex<Vec<LoopState>>,
}

/// Answers `/ready`.
pub async fn handle(shared: &Arc<Shared>) -> Reply {
    let d = &shared.daemon;
    // Subscribe before deciding: a run that completes between the decision and the wait
    // must still wake this joiner (`notify_waiters` wakes only registered waiters).
    let finished = shared.ready.finished.notified();
    tokio::pin!(finished);
    finished.as_mut().enable();
    let decision = lock(&shared.ready.cache).decide(d.now());
    match decision {
        ReadyDecision::Cached(report) => {
            d.logger.event(
                Level::Debug,
                "ready.cache_hit",
                "ready served from cache",
                vec![],
            );
            report.reply()
        }
        ReadyDecision::Join(_) => {
            let _ = tokio::time::timeout(DEADLINE, finished).await;
            match lock(&shared.ready.cache).last_report() {
                Some(report) => report.reply(),
                None => ReadyReport::deadline_exceeded().reply(),
            }
        }
        ReadyDecision::Start(run) => {
            let started = std::time::Instant::now();
            let report = match tokio::time::timeout(DEADLINE, run_checks(shared)).await {
                Ok(r) => r,
                Err(_) => ReadyReport::deadline_exceeded(),
            };
            let ms = started.elapsed().as_millis() as i64;
            let status = report.status();
            d.metrics().observe_ready(status.as_str(), ms);
            d.logger.event(
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
            lock(&shared.ready.cache).complete(run, report, d.now());
            shared.ready.finished.notify_waiters();
            reply
        }
    }
}

async fn run_checks(shared: &Arc<Shared>) -> ReadyReport {
    let (database, pricing, upstream) =
        tokio::join!(database(shared), pricing(shared), upstream(shared));
    let supervisor = {
        let loops = lock(&shared.ready.loops);
        CheckResult::supervisor(&loops, shared.daemon.now())
    };
    ReadyReport {
        database,
        pricing,
        upstream,
        supervisor,
        spool: CheckResult::spool(shared.daemon.spool_facts()),
    }
}

async fn database(shared: &Arc<Shared>) -> CheckResult {
    let s = Arc::clone(shared);
    let started = std::time::Instant::now();
    let probe = tokio::task::spawn_blocking(move || match s.daemon.readers.with(|st| st.ping()) {
        Ok(()) => DatabaseProbe::Row,
        Err(e) => DatabaseProbe::Error(e.to_string()),
    });
    match tokio::time::timeout(timeout_of(CheckName::Database), probe).await {
        Ok(Ok(p)) => CheckResult::database(p, started.elapsed().as_millis() as u64),
        Ok(Err(e)) => CheckResult::database(DatabaseProbe::Error(e.to_string()), 0),
        Err(_) => CheckResult::timed_out(CheckName::Database),
    }
}

async fn pricing(shared: &Arc<Shared>) -> CheckResult {
    let d = &shared.daemon;
    let started = std::time::Instant::now();
    let path = d.pricing.cache_path().to_path_buf();
    let meta = tokio::fs::metadata(&path).await.ok();
    let file_modified = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| UnixMillis(d.as_millis() as u64));
    let facts = PricingFacts {
        cache_path: path.display().to_string(),
        file_exists: meta.is_some(),
        loaded: !d.pricing.table().is_empty() || d.pricing.fetched_at().is_some(),
        fetched_at: d.pricing.fetched_at(),
        file_modified,
    };
    CheckResult::pricing(
        &facts,
        d.wall(),
        d.config.ready_pricing_max_age_ms,
        started.elapsed().as_millis() as u64,
    )
}

async fn upstream(shared: &Arc<Shared>) -> CheckResult {
    if !shared.daemon.config.has_router() {
        return CheckResult::upstream_direct();
    }
    let url = format!("{}/health", shared.daemon.config.cli_proxy_api_url);
    let started = std::time::Instant::now();
    let probe = shared.upstream.probe(http::Method::HEAD, &url);
    match tokio::time::timeout(timeout_of(CheckName::Upstream), probe).await {
        Ok(res) => CheckResult::upstream(res, started.elapsed().as_millis() as u64),
        Err(_) => CheckResult::timed_out(CheckName::Upstream),
    }
}

fn timeout_of(name: CheckName) -> Duration {
    Duration::from_millis(name.timeout_ms())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
