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

use super::{BoxFuture, CorrelatorLoop, Hop, HttpGet};
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

    fn get_hop(
        &self,
        _url: &str,
        _max: usize,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<Hop, String>> {
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

/// Answers document hops from a script keyed by URL, recording what was asked.
struct Hops {
    script: BTreeMap<String, Hop>,
    asked: std::sync::Mutex<Vec<String>>,
}

impl Hops {
    fn new(script: Vec<(&str, Hop)>) -> Hops {
        Hops {
            script: script.into_iter().map(|(u, h)| (u.to_owned(), h)).collect(),
            asked: std::sync::Mutex::new(Vec::new()),
        }
    }
}

fn copy(hop: &Hop) -> Hop {
    match hop {
        Hop::Redirect { status, location } => Hop::Redirect {
            status: *status,
            location: location.clone(),
        },
        Hop::Status(s) => Hop::Status(*s),
        Hop::Body(b) => Hop::Body(b.clone()),
    }
}

impl HttpGet for Hops {
    fn get(
        &self,
        _url: &str,
        _headers: &[(&str, &str)],
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(u16, Vec<u8>), String>> {
        Box::pin(std::future::ready(Err("not used".to_owned())))
    }

    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        job();
        Box::pin(std::future::ready(()))
    }

    fn get_hop(
        &self,
        url: &str,
        max: usize,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<Hop, String>> {
        assert_eq!(max, super::MAX_DOCUMENT);
        self.asked.lock().unwrap().push(url.to_owned());
        let hop = self
            .script
            .get(url)
            .map(copy)
            .ok_or_else(|| format!("unscripted {url}"));
        Box::pin(std::future::ready(hop))
    }
}

fn moved(location: &str) -> Hop {
    Hop::Redirect {
        status: http::StatusCode::MOVED_PERMANENTLY,
        location: Some(location.to_owned()),
    }
}

#[test]
fn document_fetch_follows_five_redirects_and_refuses_a_sixth() {
    let five = Hops::new(vec![
        ("http://h/1", moved("/2")),
        ("http://h/2", moved("http://h/3")),
        ("http://h/3", moved("/4")),
        ("http://h/4", moved("/5")),
        ("http://h/5", moved("/6")),
        ("http://h/6", Hop::Body(b"{}".to_vec())),
    ]);
    let got = future::block_on(five.fetch_document("http://h/1"));
    assert_eq!(got, Ok(b"{}".to_vec()), "five redirects are followed");
    assert_eq!(five.asked.lock().unwrap().len(), 6);

    let six = Hops::new(vec![
        ("http://h/0", moved("/1")),
        ("http://h/1", moved("/2")),
        ("http://h/2", moved("/3")),
        ("http://h/3", moved("/4")),
        ("http://h/4", moved("/5")),
        ("http://h/5", moved("/6")),
        ("http://h/6", Hop::Body(b"{}".to_vec())),
    ]);
    let got = future::block_on(six.fetch_document("http://h/0"));
    assert_eq!(got, Err("too many redirects".to_owned()));
}

#[test]
fn document_fetch_reports_statuses_and_a_redirect_without_location() {
    let hops = Hops::new(vec![
        ("http://h/gone", Hop::Status(http::StatusCode::NOT_FOUND)),
        (
            "http://h/odd",
            Hop::Redirect {
                status: http::StatusCode::FOUND,
                location: None,
            },
        ),
    ]);
    assert_eq!(
        future::block_on(hops.fetch_document("http://h/gone")),
        Err("HTTP 404".to_owned())
    );
    assert_eq!(
        future::block_on(hops.fetch_document("http://h/odd")),
        Err("HTTP 302 Found without location".to_owned())
    );
}

#[test]
fn document_fetch_reads_file_urls_without_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.json");
    std::fs::write(&path, b"{\"a\":1}").unwrap();
    let hops = Hops::new(vec![]);
    let url = format!("file://{}", path.display());
    assert_eq!(
        future::block_on(hops.fetch_document(&url)),
        Ok(b"{\"a\":1}".to_vec())
    );
    let missing = format!("file://{}", dir.path().join("nope.json").display());
    let err = future::block_on(hops.fetch_document(&missing)).unwrap_err();
    assert!(err.contains("nope.json"), "{err}");
    assert!(hops.asked.lock().unwrap().is_empty());
}
