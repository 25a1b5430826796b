//! The bodies of the background loops that both shells run the same way (`control.md`
//! §8.1, `accounting.md` §4.5, §6.2): pricing refresh, cost backfill and quota retention. The
//! shells own the schedule (sleeps, stop signals); the IO they need — a document fetch and a
//! blocking pool — comes through [`HttpGet`].

use std::sync::Arc;

use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::pricing::PriceTable;
use agent_cli_proxy_core::pricing::cache_file::from_cache_file;
use agent_cli_proxy_core::pricing::refresh::{RefreshAction, refresh_action};
use agent_cli_proxy_core::time::UnixMillis;
use agent_cli_proxy_storage::{BackfillFlight, BackfillOptions, Op, Reply as StoreReply};
use serde_json::json;

use super::Daemon;
use super::correlator::{HttpGet, blocking};

/// `refresh(force)`: keep the fresh in-memory table, or fetch `PRICING_URL`, write the cache
/// file and hand the new table to the core.
pub async fn refresh_prices(d: &Daemon, io: &dyn HttpGet, force: bool) -> Result<(), String> {
    let cfg = &d.config;
    let path = d.pricing.cache_path().to_path_buf();
    let file_fetched_at = blocking(io, move || {
        std::fs::read(&path)
            .ok()
            .and_then(|b| from_cache_file(&b).ok())
            .map(|f| f.fetched_at)
    })
    .await?;
    match refresh_action(
        force,
        d.wall(),
        cfg.pricing_cache_ttl_ms,
        d.pricing.fetched_at(),
        file_fetched_at,
    ) {
        RefreshAction::KeepMemory | RefreshAction::LoadFile => return Ok(()),
        RefreshAction::Fetch => {}
    }
    let bytes = io.fetch_document(&cfg.pricing_url).await?;
    let table = PriceTable::from_models_dev(&bytes).map_err(|e| e.to_string())?;
    let table = Arc::new(table);
    let url = cfg.pricing_url.clone();
    let pricing = Arc::clone(&d.pricing);
    let wall = d.wall();
    let written = Arc::clone(&table);
    blocking(io, move || pricing.write_cache(&written, wall, &url))
        .await?
        .map_err(|e| e.to_string())?;
    // Core before the observable state: a test or an operator that sees the new prices in
    // `/admin/pricing` or `/ready` must not then get a row costed with the old ones.
    d.core().set_prices(Arc::clone(&table));
    d.pricing.publish(table, wall);
    Ok(())
}

/// One `cost-backfill` run: a forced pricing refresh (a failure only warns), then the chunked
/// backfill over the lookback window.
pub async fn backfill(d: &Daemon, io: &dyn HttpGet, flight: &BackfillFlight) -> Result<(), String> {
    if let Err(e) = refresh_prices(d, io, true).await {
        d.logger.event(
            Level::Warn,
            "cost.backfill_pricing_failed",
            "pricing refresh before backfill failed",
            vec![("err", json!(e))],
        );
    }
    let since_ms = d
        .wall()
        .0
        .saturating_sub(d.config.cost_backfill_lookback_ms);
    let opts = BackfillOptions {
        since: Some(UnixMillis(since_ms).to_iso()),
        chunk_size: d.config.cost_backfill_chunk_size,
        limit: None,
    };
    let counts = agent_cli_proxy_storage::run_backfill(&d.writer, flight, opts, d.recoster())
        .await
        .map_err(|e| e.to_string())?;
    d.logger.event(
        Level::Info,
        "cost.backfill",
        "cost backfill finished",
        vec![
            ("scanned", json!(counts.scanned)),
            ("updated", json!(counts.updated)),
            ("ok", json!(counts.ok)),
            ("pending", json!(counts.pending)),
            ("unsupported", json!(counts.unsupported)),
        ],
    );
    Ok(())
}

/// Deletes quota snapshots older than `QUOTA_SNAPSHOT_RETENTION_DAYS`.
pub async fn quota_retention(d: &Daemon) -> Result<(), String> {
    let days = u64::from(d.config.quota_snapshot_retention_days);
    let before = UnixMillis(d.wall().0.saturating_sub(days.saturating_mul(86_400_000))).to_iso();
    match d.writer.send(Op::PruneQuotaSnapshots { before }).await {
        Ok(StoreReply::Count(n)) => {
            d.logger.event(
                Level::Info,
                "quota.retention_cleanup",
                "old quota snapshots deleted",
                vec![("deleted_count", json!(n))],
            );
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// One enabled loop's work.
pub enum Tick {
    /// `pricing-refresh`: a forced refresh.
    PricingRefresh,
    /// `cost-backfill`, single-flight through its gate.
    CostBackfill(Arc<BackfillFlight>),
    /// `quota-retention`.
    QuotaRetention,
    /// `correlator` (only with `CLIPROXY_MGMT_KEY`).
    Correlator(Arc<super::correlator::CorrelatorLoop>),
    /// `quota-refresh` (only with a readable `CLIPROXY_AUTH_DIR` holding auth files).
    QuotaRefresh,
}

/// The loops to run with their intervals (`control.md` §8.1), in start order; logs why the
/// correlator and the quota refresh are skipped when they are. `io` becomes the client of
/// admin-triggered quota refreshes.
pub fn enabled_loops(
    d: &Daemon,
    io: Arc<dyn HttpGet>,
) -> Vec<(agent_cli_proxy_core::supervisor::LoopKind, u64, Tick)> {
    use agent_cli_proxy_core::supervisor::LoopKind;
    let cfg = &d.config;
    // With PostgreSQL the retention tick also aborts the rows of lost replicas, which must not
    // wait a day: every 5 minutes, so they end 10 to 15 minutes after the replica was last seen.
    let retention_ms = if cfg.postgres.is_some() {
        300_000
    } else {
        agent_cli_proxy_core::supervisor::QUOTA_RETENTION_INTERVAL_MS
    };
    let mut loops = vec![
        (
            LoopKind::PricingRefresh,
            cfg.pricing_refresh_interval_ms,
            Tick::PricingRefresh,
        ),
        (
            LoopKind::CostBackfill,
            cfg.cost_backfill_interval_ms,
            Tick::CostBackfill(Arc::new(BackfillFlight::new())),
        ),
        (LoopKind::QuotaRetention, retention_ms, Tick::QuotaRetention),
    ];
    d.quota.install_http(io);
    if cfg.cliproxy_mgmt_key.is_empty() {
        d.logger.event(
            Level::Warn,
            "correlator.skipped",
            "CLIPROXY_MGMT_KEY not set, skipping correlator",
            vec![],
        );
    } else {
        loops.push((
            LoopKind::Correlator,
            cfg.correlation_interval_ms,
            Tick::Correlator(Arc::new(super::correlator::CorrelatorLoop::new(
                cfg,
                d.logger.clone(),
            ))),
        ));
    }
    match super::quota::enablement(cfg) {
        Ok(_) => loops.push((
            LoopKind::QuotaRefresh,
            cfg.quota_refresh_interval_ms,
            Tick::QuotaRefresh,
        )),
        Err(reason) => super::quota::log_skipped(d, reason),
    }
    loops
}

/// What a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// The work ran.
    Done,
    /// Another replica holds the loop; nothing ran here (`docs/replicas.md` §5).
    Standby,
}

/// Runs one tick of `tick`, after claiming the loop when it must run on one replica at a
/// time (a database round trip with PostgreSQL; always granted with SQLite).
pub async fn run_tick(tick: &Tick, d: &Daemon, io: &dyn HttpGet) -> Result<Ran, String> {
    let kind = tick.kind();
    if super::OnceLoops::is_once_only(kind) && d.once.is_shared() {
        let once = std::sync::Arc::clone(&d.once);
        if blocking(io, move || once.claim(kind)).await?? == super::Claim::Standby {
            return Ok(Ran::Standby);
        }
    }
    match tick {
        Tick::PricingRefresh => refresh_prices(d, io, true).await,
        Tick::CostBackfill(flight) => backfill(d, io, flight).await,
        Tick::QuotaRetention => retention(d, io).await,
        Tick::Correlator(c) => c.tick(d, io).await.map(|_| ()),
        Tick::QuotaRefresh => d
            .quota
            .refresh(d, io)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
    .map(|()| Ran::Done)
}

/// The retention tick: old quota snapshots, and with PostgreSQL the pending rows of replicas
/// gone for ten minutes (`docs/replicas.md` §3).
async fn retention(d: &Daemon, io: &dyn HttpGet) -> Result<(), String> {
    quota_retention(d).await?;
    if !d.once.is_shared() {
        return Ok(());
    }
    let once = std::sync::Arc::clone(&d.once);
    let (now, recoster) = (d.wall(), d.recoster());
    let aborted = blocking(io, move || once.sweep_lost_replicas(now, recoster.as_ref())).await??;
    if aborted > 0 {
        d.logger.event(
            Level::Warn,
            "replica.lost_rows_aborted",
            "pending rows of a replica gone for ten minutes aborted",
            vec![("aborted_rows", json!(aborted))],
        );
    }
    Ok(())
}

impl Tick {
    /// The loop this tick belongs to.
    pub fn kind(&self) -> agent_cli_proxy_core::supervisor::LoopKind {
        use agent_cli_proxy_core::supervisor::LoopKind;
        match self {
            Tick::PricingRefresh => LoopKind::PricingRefresh,
            Tick::CostBackfill(_) => LoopKind::CostBackfill,
            Tick::QuotaRetention => LoopKind::QuotaRetention,
            Tick::Correlator(_) => LoopKind::Correlator,
            Tick::QuotaRefresh => LoopKind::QuotaRefresh,
        }
    }
}

/// The one non-forced refresh of startup (step 9 of `control.md` §1), run in the background.
pub async fn startup_refresh(d: &Daemon, io: &dyn HttpGet) {
    if let Err(e) = refresh_prices(d, io, false).await {
        d.logger.event(
            Level::Warn,
            "pricing.fetch_failed",
            "pricing fetch failed, using cached data",
            vec![("err", json!(e))],
        );
    }
}

/// One loop from its start to its stop, for both shells' schedulers: `sleep(delay)` waits
/// out the supervisor's delay and says `true` when the loop must stop instead.
pub async fn run_loop<S: std::future::Future<Output = bool>>(
    d: &Daemon,
    health: &std::sync::Mutex<Vec<agent_cli_proxy_core::supervisor::LoopState>>,
    (kind, interval, tick): (agent_cli_proxy_core::supervisor::LoopKind, u64, Tick),
    io: &dyn HttpGet,
    mut sleep: impl FnMut(std::time::Duration) -> S,
) {
    let (mut run, mut delay) = LoopRun::start(d, health, kind, interval);
    while !sleep(std::time::Duration::from_millis(delay)).await {
        let started = std::time::Instant::now();
        let result = run_tick(&tick, d, io).await;
        match run.record(d, health, result, started.elapsed()) {
            Some(next) => delay = next,
            None => break,
        }
    }
    run.stopped(d);
}

/// Waits for the stopped loops' tasks within what is left of `hard_stop` since `started` (at
/// least 1 ms): `wait(left)` is the shell's timed wait, `true` when every task ended. Logs
/// `loop.stop_timeout` and returns `false` when some did not.
pub async fn wait_stopped<W: std::future::Future<Output = bool>>(
    d: &Daemon,
    hard_stop: std::time::Duration,
    started: std::time::Instant,
    wait: impl FnOnce(std::time::Duration) -> W,
) -> bool {
    let left = hard_stop
        .saturating_sub(started.elapsed())
        .max(std::time::Duration::from_millis(1));
    let ended = wait(left).await;
    if !ended {
        d.logger.event(
            Level::Warn,
            "loop.stop_timeout",
            "loops did not stop in time",
            vec![("timeout_ms", json!(left.as_millis() as u64))],
        );
    }
    ended
}

/// One loop's bookkeeping, shared by both shells' schedulers: its health entry for `/ready`,
/// the supervisor's delays (jitter, backoff, disable) and the `loop.*` events.
pub struct LoopRun {
    name: &'static str,
    rng: fastrand::Rng,
}

impl LoopRun {
    /// Registers the loop's health entry, logs `loop.started`, and returns the runner with
    /// the delay before its first tick.
    pub fn start(
        d: &Daemon,
        health: &std::sync::Mutex<Vec<agent_cli_proxy_core::supervisor::LoopState>>,
        kind: agent_cli_proxy_core::supervisor::LoopKind,
        interval: u64,
    ) -> (LoopRun, u64) {
        let name = kind.name();
        health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(agent_cli_proxy_core::supervisor::LoopState::new(
                name, interval,
            ));
        d.logger.event(
            Level::Info,
            "loop.started",
            "loop started",
            vec![("name", json!(name)), ("interval_ms", json!(interval))],
        );
        let run = LoopRun {
            name,
            rng: fastrand::Rng::with_seed(super::seed()),
        };
        (run, kind.first_run_delay_ms(interval))
    }

    /// Records a tick's result; the delay before the next tick, or `None` when the loop is
    /// disabled (or its entry is gone) and must stop.
    pub fn record(
        &mut self,
        d: &Daemon,
        health: &std::sync::Mutex<Vec<agent_cli_proxy_core::supervisor::LoopState>>,
        result: Result<Ran, String>,
        took: std::time::Duration,
    ) -> Option<u64> {
        use agent_cli_proxy_core::supervisor::AfterFailure;
        let name = self.name;
        let now = d.now();
        let mut loops = health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = loops.iter_mut().find(|l| l.name == name)?;
        match result {
            Ok(Ran::Standby) => Some(state.handle_standby(&mut self.rng)),
            Ok(Ran::Done) => {
                let delay = state.handle_success(now, &mut self.rng);
                d.logger.event(
                    Level::Debug,
                    "loop.tick",
                    "loop tick",
                    vec![
                        ("name", json!(name)),
                        ("duration_ms", json!(took.as_millis() as u64)),
                    ],
                );
                Some(delay)
            }
            Err(err) => match state.handle_failure(err.clone(), now, &mut self.rng) {
                AfterFailure::Retry { attempt, delay_ms } => {
                    d.logger.event(
                        Level::Error,
                        "loop.error",
                        "loop tick failed",
                        vec![
                            ("name", json!(name)),
                            ("err", json!(err)),
                            ("attempt", json!(attempt)),
                            ("next_delay_ms", json!(delay_ms)),
                        ],
                    );
                    Some(delay_ms)
                }
                AfterFailure::Disabled { total_failures } => {
                    d.logger.event(
                        Level::Error,
                        "loop.disabled",
                        "loop disabled after repeated failures",
                        vec![
                            ("name", json!(name)),
                            ("total_failures", json!(total_failures)),
                        ],
                    );
                    None
                }
            },
        }
    }

    /// Logs `loop.stopped`.
    pub fn stopped(&self, d: &Daemon) {
        d.logger.event(
            Level::Info,
            "loop.stopped",
            "loop stopped",
            vec![("name", json!(self.name))],
        );
    }
}
