//! Background loops (`control.md` §8.1) on tokio: the schedule only. Which loops run and
//! what each tick does is shared (`agent_cli_proxy_cli::daemon::ticks`); the timing (jitter,
//! backoff, disable after 100 failures) is the core supervisor's; this module sleeps, runs
//! ticks, records each loop's health for `/ready` and stops on shutdown.

use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::ticks::{self, LoopRun, Tick};
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::supervisor::LoopKind;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::shared::Shared;

/// The running loops.
pub struct Loops {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Loops {
    /// Starts the enabled loops and the one background pricing refresh of startup.
    pub fn start(shared: &Arc<Shared>) -> Loops {
        let (stop, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let s = Arc::clone(shared);
        tasks.spawn(async move { ticks::startup_refresh(&s.daemon, &s.upstream).await });
        let specs = ticks::enabled_loops(&shared.daemon, Arc::new(shared.upstream.clone()));
        for (kind, interval, tick) in specs {
            let s = Arc::clone(shared);
            let stop_rx = stop.subscribe();
            tasks.spawn(run_loop(s, kind, interval, tick, stop_rx));
        }
        Loops { stop, tasks }
    }

    /// Stops the loops: sleeps are interrupted at once, a running tick may finish within
    /// `max(1, 15 000 − elapsed)` ms.
    pub async fn stop(mut self, shared: &Arc<Shared>, started: std::time::Instant) {
        let _ = self.stop.send(true);
        let left = shared
            .limits
            .hard_stop
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let done = tokio::time::timeout(left, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if done.is_err() {
            shared.daemon.logger.event(
                Level::Warn,
                "loop.stop_timeout",
                "loops did not stop in time",
                vec![("timeout_ms", json!(left.as_millis() as u64))],
            );
            self.tasks.abort_all();
        }
    }
}

async fn run_loop(
    shared: Arc<Shared>,
    kind: LoopKind,
    interval: u64,
    tick: Tick,
    mut stop: watch::Receiver<bool>,
) {
    let d = &shared.daemon;
    let health = &shared.ready.loops;
    let (mut run, mut delay) = LoopRun::start(d, health, kind, interval);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
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
