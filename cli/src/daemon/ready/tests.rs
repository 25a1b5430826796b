use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use futures_lite::FutureExt;

use super::*;

/// A runtime stand-in: blocking work runs inline, timeouts use async-io's timer, and the
/// upstream probe waits for the test to open a gate. When the second whole-run deadline is
/// armed (the joiner's wait), it first lets the run finish completely, so the joiner's wait
/// begins after the run's wake-up: exactly the window in which a lazily registered waiter
/// (tokio's `Notified` before it is polled) would sleep until the deadline.
#[derive(Default)]
struct Scripted {
    probe_started: AtomicBool,
    gate_open: AtomicBool,
    gate: Event,
    run_done: AtomicBool,
    deadlines_armed: AtomicUsize,
}

impl ReadyIo for Scripted {
    async fn run_blocking<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        Some(f())
    }

    fn timeout<F>(&self, limit: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        if limit == Duration::from_millis(READY_DEADLINE_MS)
            && self.deadlines_armed.fetch_add(1, Ordering::SeqCst) == 1
        {
            self.gate_open.store(true, Ordering::SeqCst);
            self.gate.notify(usize::MAX);
            let waited = Instant::now();
            while !self.run_done.load(Ordering::SeqCst) {
                assert!(
                    waited.elapsed() < Duration::from_secs(5),
                    "the run never finished"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        async move {
            async { Some(f.await) }
                .or(async {
                    async_io::Timer::after(limit).await;
                    None
                })
                .await
        }
    }

    fn probe_upstream(&self, _url: &str) -> impl Future<Output = Result<u16, String>> + Send {
        self.probe_started.store(true, Ordering::SeqCst);
        async move {
            loop {
                if self.gate_open.load(Ordering::SeqCst) {
                    return Ok(204);
                }
                let listener = self.gate.listen();
                if self.gate_open.load(Ordering::SeqCst) {
                    return Ok(204);
                }
                listener.await;
            }
        }
    }
}

fn daemon(dir: &std::path::Path) -> Daemon {
    let path = |name: &str| dir.join(name).display().to_string();
    let env: BTreeMap<String, String> = [
        ("HOME", path("home")),
        ("DB_PATH", path("usage.db")),
        ("PRICING_CACHE_PATH", path("prices.json")),
        ("SPOOL_DIR", path("spool")),
        // Router mode, so the upstream check runs (through `Scripted`, never the network).
        ("CLI_PROXY_API_URL", "http://127.0.0.1:9".to_owned()),
        ("LOG_LEVEL", "error".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    match Daemon::prepare(&env, 7) {
        Ok(d) => d,
        Err(_) => panic!("the daemon did not start (see its log above)"),
    }
}

/// A caller that joins a run in its last moments gets that run's report as soon as it is
/// stored, not a "deadline exceeded" answer after 1 500 ms.
#[test]
fn joiner_arriving_while_the_run_finishes_gets_the_fresh_report() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(dir.path());
    let state = ReadyState::default();
    let io = Scripted::default();
    let (first, joined, joined_in) = std::thread::scope(|s| {
        let runner = s.spawn(|| {
            let reply = future::block_on(state.handle(&daemon, &io));
            io.run_done.store(true, Ordering::SeqCst);
            reply
        });
        let waited = Instant::now();
        while !io.probe_started.load(Ordering::SeqCst) {
            assert!(
                waited.elapsed() < Duration::from_secs(5),
                "the run never probed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        let joined = future::block_on(state.handle(&daemon, &io));
        let joined_in = started.elapsed();
        (runner.join().unwrap(), joined, joined_in)
    });
    assert_eq!(
        io.deadlines_armed.load(Ordering::SeqCst),
        2,
        "one run and one joiner"
    );
    assert_eq!(joined.status, first.status);
    assert_eq!(
        joined.body, first.body,
        "the joiner gets the run's own report"
    );
    let body = String::from_utf8_lossy(&joined.body);
    assert!(!body.contains("deadline exceeded"), "{body}");
    assert!(
        body.contains("HTTP 204"),
        "the probe's answer is in the report: {body}"
    );
    assert!(
        joined_in < Duration::from_millis(1_000),
        "the joiner waited {joined_in:?} for a run that had already finished"
    );
    daemon.shutdown_storage();
}

/// Within the memo window a second caller is served from the cache without a new run.
#[test]
fn second_caller_within_the_memo_is_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(dir.path());
    let state = ReadyState::default();
    let io = Scripted::default();
    io.gate_open.store(true, Ordering::SeqCst);
    let first = future::block_on(state.handle(&daemon, &io));
    let second = future::block_on(state.handle(&daemon, &io));
    assert_eq!(second.body, first.body);
    assert_eq!(
        io.deadlines_armed.load(Ordering::SeqCst),
        1,
        "the cached answer started no run and waited for none"
    );
    daemon.shutdown_storage();
}
