//! Background loops (`control.md` §8.1) on smol: the schedule only. Which loops run and
//! what each tick does is shared (`agent_cli_proxy_cli::daemon::ticks`); the timing (jitter,
//! backoff, disable after 100 failures) is the core supervisor's; this module sleeps, runs
//! ticks, records each loop's health for `/ready` and stops on shutdown.

use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::ticks::{self, LoopRun, Tick};
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::supervisor::LoopKind;
use async_executor::Task;
use async_io::Timer;
use futures_lite::future;
use serde_json::json;

use crate::latch::Latch;
use crate::shared::Shared;

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
        let s = Arc::clone(shared);
        tasks.push(
            shared
                .ex
                .spawn(async move { ticks::startup_refresh(&s.daemon, &s.upstream).await }),
        );
        let specs = ticks::enabled_loops(&shared.daemon, Arc::new(shared.upstream.clone()));
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
        let done = crate::timer::timeout(left, async {
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
    tick: Tick,
    stop: Arc<Latch>,
) {
    let d = &shared.daemon;
    let health = &shared.ready.loops;
    let (mut run, mut delay) = LoopRun::start(d, health, kind, interval);
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
        let result = ticks::run_tick(&tick, d, &shared.upstream).await;
        match run.record(d, health, result, started.elapsed()) {
            Some(next) => delay = next,
            None => break,
        }
    }
    run.stopped(d);
}
