//! Background loops (`control.md` §8.1) on smol: pricing refresh, cost backfill and quota
//! retention, each reporting its health for `/ready`. The schedule (jitter, backoff, disable
//! after 100 failures) is the core supervisor's; this module only sleeps and runs ticks.
//! Mirrors `shell-tokio/src/loops.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::correlator::CorrelatorLoop;
use agent_cli_proxy_cli::daemon::quota;
use agent_cli_proxy_cli::daemon::ticks;
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::supervisor::{AfterFailure, LoopKind, LoopState};
use agent_cli_proxy_storage::BackfillFlight;
use async_executor::Task;
use async_io::Timer;
use futures_lite::future;
use serde_json::json;

use crate::latch::Latch;
use crate::server::Shared;

type Tick = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type TickFn = Box<dyn Fn(Arc<Shared>) -> Tick + Send + Sync>;

/// The running loops.
pub struct Loops {
    stop: Arc<Latch>,
    tasks: Vec<Task<()>>,
}

impl Loops {
    /// Starts the enabled loops and the one background pricing refresh of startup.
    pub fn start(shared: &Arc<Shared>) -> Loops {
        let stop = Arc::new(Latch::default());
        let mut tasks = Vec::new();
        let cfg = &shared.daemon.config;
        let flight = Arc::new(BackfillFlight::new());
        let s = Arc::clone(shared);
        tasks.push(shared.ex.spawn(async move {
            if let Err(e) = ticks::refresh_prices(&s.daemon, &s.upstream, false).await {
                s.daemon.logger.event(
                    Level::Warn,
                    "pricing.fetch_failed",
                    "pricing fetch failed, using cached data",
                    vec![("err", json!(e))],
                );
            }
        }));
        let specs: Vec<(LoopKind, u64, TickFn)> = vec![
            (
                LoopKind::PricingRefresh,
                cfg.pricing_refresh_interval_ms,
                Box::new(|s| {
                    Box::pin(
                        async move { ticks::refresh_prices(&s.daemon, &s.upstream, true).await },
                    )
                }),
            ),
            (
                LoopKind::CostBackfill,
                cfg.cost_backfill_interval_ms,
                Box::new(move |s| {
                    let flight = Arc::clone(&flight);
                    Box::pin(async move { ticks::backfill(&s.daemon, &s.upstream, &flight).await })
                }),
            ),
            (
                LoopKind::QuotaRetention,
                86_400_000,
                Box::new(|s| Box::pin(async move { ticks::quota_retention(&s.daemon).await })),
            ),
        ];
        shared
            .daemon
            .quota
            .install_http(Arc::new(shared.upstream.clone()));
        let mut specs = specs;
        if cfg.cliproxy_mgmt_key.is_empty() {
            shared.daemon.logger.event(
                Level::Warn,
                "correlator.skipped",
                "CLIPROXY_MGMT_KEY not set, skipping correlator",
                vec![],
            );
        } else {
            let correlator = Arc::new(CorrelatorLoop::new(cfg));
            specs.push((
                LoopKind::Correlator,
                cfg.correlation_interval_ms,
                Box::new(move |s| {
                    let c = Arc::clone(&correlator);
                    Box::pin(async move { c.tick(&s.daemon, &s.upstream).await.map(|_| ()) })
                }),
            ));
        }
        match quota::enablement(cfg) {
            Ok(_) => specs.push((
                LoopKind::QuotaRefresh,
                cfg.quota_refresh_interval_ms,
                Box::new(|s| {
                    Box::pin(async move {
                        s.daemon
                            .quota
                            .refresh(&s.daemon, &s.upstream)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                }),
            )),
            Err(reason) => quota::log_skipped(&shared.daemon, reason),
        }
        for (kind, interval, tick) in specs {
            let s = Arc::clone(shared);
            let stop = Arc::clone(&stop);
            tasks.push(shared.ex.spawn(run_loop(s, kind, interval, tick, stop)));
        }
        Loops { stop, tasks }
    }

    /// Stops the loops: sleeps are interrupted at once, a running tick may finish within
    /// `max(1, 15 000 − elapsed)` ms; tasks still running then are cancelled.
    pub async fn stop(self, shared: &Arc<Shared>, started: std::time::Instant) {
        self.stop.fire();
        let left = shared
            .limits
            .hard_stop
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let mut tasks = self.tasks;
        let done = crate::server::timeout(left, async {
            for t in tasks.iter_mut() {
                t.await;
            }
        })
        .await;
        if done.is_none() {
            shared.daemon.logger.event(
                Level::Warn,
                "loop.stop_timeout",
                "loops did not stop in time",
                vec![("timeout_ms", json!(left.as_millis() as u64))],
            );
        }
        // Dropping a task cancels it (a no-op for finished ones).
        drop(tasks);
    }
}

async fn run_loop(
    shared: Arc<Shared>,
    kind: LoopKind,
    interval: u64,
    tick: TickFn,
    stop: Arc<Latch>,
) {
    let d = &shared.daemon;
    let name = kind.name();
    let mut rng = fastrand::Rng::with_seed(agent_cli_proxy_cli::daemon::seed());
    {
        let mut loops = shared.ready.loops.lock().unwrap_or_else(|p| p.into_inner());
        loops.push(LoopState::new(name, interval));
    }
    d.logger.event(
        Level::Info,
        "loop.started",
        "loop started",
        vec![("name", json!(name)), ("interval_ms", json!(interval))],
    );
    let mut delay = kind.first_run_delay_ms(interval);
    loop {
        let stopped = future::or(
            async {
                stop.wait().await;
                true
            },
            async {
                Timer::after(Duration::from_millis(delay)).await;
                false
            },
        )
        .await;
        if stopped {
            break;
        }
        let started = std::time::Instant::now();
        let result = tick(Arc::clone(&shared)).await;
        let now = d.now();
        let mut loops = shared.ready.loops.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = loops.iter_mut().find(|l| l.name == name) else {
            break;
        };
        match result {
            Ok(()) => {
                delay = state.handle_success(now, &mut rng);
                d.logger.event(
                    Level::Debug,
                    "loop.tick",
                    "loop tick",
                    vec![
                        ("name", json!(name)),
                        ("duration_ms", json!(started.elapsed().as_millis() as u64)),
                    ],
                );
            }
            Err(err) => match state.handle_failure(err.clone(), now, &mut rng) {
                AfterFailure::Retry { attempt, delay_ms } => {
                    delay = delay_ms;
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
                    break;
                }
            },
        }
    }
    d.logger.event(
        Level::Info,
        "loop.stopped",
        "loop stopped",
        vec![("name", json!(name))],
    );
}
