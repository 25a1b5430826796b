//! The loop-level rules of the correlator on a real daemon (database, writer, logger): the
//! time limit of a management call and single flight.
// A test module: setup failures fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use agent_cli_proxy_core::config::{Config, ExternalInputs};
use futures_lite::future;

use super::{BoxFuture, CorrelatorLoop, HttpGet};
use crate::daemon::Daemon;

fn env(dir: &std::path::Path, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("DB_PATH", dir.join("proxy.db").display().to_string()),
        (
            "PRICING_CACHE_PATH",
            dir.join("pricing.json").display().to_string(),
        ),
        ("PRICING_URL", format!("file://{}/none.json", dir.display())),
        ("CLI_PROXY_API_URL", "http://127.0.0.1:9".to_owned()),
        ("CLIPROXY_MGMT_KEY", "k".to_owned()),
        ("CLIPROXY_CORRELATION_INTERVAL_MS", "400".to_owned()),
        ("LOG_LEVEL", "error".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

fn config(extra: &[(&str, &str)]) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let inputs = ExternalInputs::default();
    Config::from_env(&env(dir.path(), extra), &inputs)
        .unwrap()
        .0
}

/// Blocking jobs stay pending for a few polls (as on a busy pool), so a tick is in flight
/// across polls; management calls are counted and answer an empty queue.
#[derive(Default)]
struct SlowPool {
    gets: AtomicUsize,
}

impl HttpGet for SlowPool {
    fn get(
        &self,
        _url: &str,
        _headers: &[(&str, &str)],
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(u16, Vec<u8>), String>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(Ok((200, b"[]".to_vec()))))
    }

    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        let mut job = Some(job);
        let mut polls = 0;
        Box::pin(future::poll_fn(move |cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Some(job) = job.take() {
                job();
            }
            Poll::Ready(())
        }))
    }

    fn fetch_document<'a>(&'a self, _url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(std::future::ready(Err("no documents here".to_owned())))
    }
}

#[test]
fn the_call_limit_is_60_s_or_a_longer_upstream_timeout_never_the_interval() {
    let logger = crate::daemon::log::Logger::start(
        agent_cli_proxy_core::exchange::Level::Error,
        crate::daemon::log::Format::Json,
    );
    let short = CorrelatorLoop::new(&config(&[]), logger.clone());
    assert_eq!(short.call_timeout(), Duration::from_secs(60));
    let shorter_upstream = config(&[("UPSTREAM_TIMEOUT_MS", "5000")]);
    let c = CorrelatorLoop::new(&shorter_upstream, logger.clone());
    assert_eq!(c.call_timeout(), Duration::from_secs(60));
    let longer_upstream = config(&[("UPSTREAM_TIMEOUT_MS", "120000")]);
    let c = CorrelatorLoop::new(&longer_upstream, logger);
    assert_eq!(c.call_timeout(), Duration::from_secs(120));
}

#[test]
fn a_tick_still_running_is_not_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::prepare(&env(dir.path(), &[]), 7).expect("daemon");
    let c = CorrelatorLoop::new(&d.config, d.logger.clone());
    let io = SlowPool::default();

    let (first, second) = future::block_on(future::zip(c.tick(&d, &io), c.tick(&d, &io)));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(!first.skipped_in_flight);
    assert!(
        second.skipped_in_flight,
        "the second tick found the first running"
    );

    // A tick whose future is dropped half-way (a cancelled task) releases the flag.
    {
        let mut pending = Box::pin(c.tick(&d, &io));
        assert!(future::block_on(future::poll_once(&mut pending)).is_none());
        let blocked = future::block_on(c.tick(&d, &io)).unwrap();
        assert!(blocked.skipped_in_flight);
    }
    let after = future::block_on(c.tick(&d, &io)).unwrap();
    assert!(!after.skipped_in_flight);
    // No candidates: no management call was made by any of them.
    assert_eq!(io.gets.load(Ordering::SeqCst), 0);
    assert_eq!(c.unapplied().total(), 0);
    d.shutdown_storage();
}
