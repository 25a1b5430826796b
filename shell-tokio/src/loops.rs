//! Background loops (`control.md` §8.1) on tokio: tasks, sleeps and the stop signal only.
//! Which loops run, what each tick does and each loop's health for `/ready` are shared
//! (`agent_cli_proxy_cli::daemon::ticks`); the timing (jitter, backoff, disable after 100
//! failures) is the core supervisor's.

use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::ticks;
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
        for spec in specs {
            let s = Arc::clone(shared);
            let stop_rx = stop.subscribe();
            tasks.spawn(async move {
                let sleep = |delay| sleep_or_stop(stop_rx.clone(), delay);
                ticks::run_loop(&s.daemon, &s.ready.loops, spec, &s.upstream, sleep).await;
            });
        }
        Loops { stop, tasks }
    }

    /// Stops the loops: sleeps are interrupted at once, a running tick may finish within
    /// `max(1, 15 000 − elapsed)` ms; tasks still running then are aborted.
    pub async fn stop(mut self, shared: &Arc<Shared>, started: std::time::Instant) {
        let _ = self.stop.send(true);
        let tasks = &mut self.tasks;
        let hard_stop = shared.limits.hard_stop;
        let ended =
            ticks::wait_stopped(&shared.daemon, hard_stop, started, move |left| async move {
                let all = async { while tasks.join_next().await.is_some() {} };
                tokio::time::timeout(left, all).await.is_ok()
            })
            .await;
        if !ended {
            self.tasks.abort_all();
        }
    }
}

/// Sleeps `delay`; `true` when the loops were stopped first. A clone of the receiver still
/// sees a stop sent before it was made.
async fn sleep_or_stop(mut stop: watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}
