//! Background loops (`control.md` §8.1) on smol: tasks, sleeps and the stop signal only.
//! Which loops run, what each tick does and each loop's health for `/ready` are shared
//! (`agent_cli_proxy_cli::daemon::ticks`); the timing (jitter, backoff, disable after 100
//! failures) is the core supervisor's.

use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::ticks;
use async_executor::Task;
use async_io::Timer;
use futures_lite::future;

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
        for spec in specs {
            let s = Arc::clone(shared);
            let stop = Arc::clone(&stop);
            tasks.push(shared.ex.spawn(async move {
                let sleep = |delay| sleep_or_stop(Arc::clone(&stop), delay);
                ticks::run_loop(&s.daemon, &s.ready.loops, spec, &s.upstream, sleep).await;
            }));
        }
        Loops { stop, tasks }
    }

    /// Stops the loops: sleeps are interrupted at once, a running tick may finish within
    /// `max(1, 15 000 − elapsed)` ms; tasks still running then are cancelled.
    pub async fn stop(self, shared: &Arc<Shared>, started: std::time::Instant) {
        self.stop.fire();
        let mut tasks = self.tasks;
        let running = &mut tasks;
        let hard_stop = shared.limits.hard_stop;
        ticks::wait_stopped(&shared.daemon, hard_stop, started, move |left| async move {
            let all = async {
                for t in running.iter_mut() {
                    t.await;
                }
            };
            crate::timer::timeout(left, all).await.is_some()
        })
        .await;
        // Dropping a task cancels it (a no-op for finished ones).
        drop(tasks);
    }
}

/// Sleeps `delay`; `true` when the loops were stopped first.
async fn sleep_or_stop(stop: Arc<Latch>, delay: Duration) -> bool {
    future::or(
        async {
            stop.wait().await;
            true
        },
        async {
            Timer::after(delay).await;
            false
        },
    )
    .await
}
