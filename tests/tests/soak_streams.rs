//! SK-1 (soak tier): N concurrent SSE streams held through the proxy for a while, each
//! reconnecting when it ends, with the proxy's RSS and open fds sampled; at the end every
//! upstream request has exactly one row, none is pending, and every client that saw the
//! terminal event has a `completed` row with its tokens (RQ-D3).
//!
//! Knobs (environment of the test run): `ACP_SOAK_STREAMS` (default
//! min(8 000, (nofile − 200) / 2), where nofile is this process's soft limit; the harness
//! process holds both the client and the upstream end of every stream, so raise `ulimit -n`
//! to at least 4 N + 200), `ACP_SOAK_MINUTES` (default 30), `ACP_SOAK_STREAM_SECS` (stream
//! length range, default `30-300`) and `ACP_SOAK_EVENT_SECS` (event spacing range, default
//! `5-15`). Run with
//!
//! ```text
//! ulimit -n 65536
//! ACP_SOAK_STREAMS=2000 ACP_SOAK_MINUTES=2 cargo test -p agent-cli-proxy-tests --release \
//!     --test soak_streams -- --ignored --test-threads 1 --nocapture
//! ```
//!
//! Figures printed: streams held, duration, RSS at minute 5 and at the end (drift), peak
//! RSS against 40 MiB + 48 KiB × N, RSS per stream, fds against 2 N + 100.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{panics_total, wait_prices_loaded};
use agent_cli_proxy_tests::support::client::{SseRequest, print_figure};
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::ledger::check_rows_against_ledger;
use agent_cli_proxy_tests::support::memory::{kib_to_mib, open_fds, rss_kib};
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::seed;
use agent_cli_proxy_tests::support::shells::{Shell, skip_unbuilt};
use agent_cli_proxy_tests::support::upstream::FakeUpstream;

agent_cli_proxy_tests::child_entry!();

const STREAM: &[u8] = br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;

both_shells! {
    /// SK-1: `ACP_SOAK_STREAMS` streams for `ACP_SOAK_MINUTES` minutes.
    #[ignore = "soak tier: ACP_SOAK_STREAMS concurrent SSE streams for ACP_SOAK_MINUTES minutes"]
    async fn soak_concurrent_streams_hold_with_bounded_memory(shell: Shell) {
        if skip_unbuilt(shell) {
            return;
        }
        soak(shell).await;
    }
}

/// Settings of one soak run.
struct Settings {
    streams: usize,
    duration: Duration,
    stream_secs: (u64, u64),
    event_secs: (u64, u64),
}

impl Settings {
    fn from_env() -> Settings {
        let nofile = nofile_soft_limit().unwrap_or(1024);
        let default_streams = 8_000.min(nofile.saturating_sub(200) / 2);
        Settings {
            streams: env_number("ACP_SOAK_STREAMS").unwrap_or(default_streams as u64) as usize,
            duration: Duration::from_secs(60 * env_number("ACP_SOAK_MINUTES").unwrap_or(30)),
            stream_secs: env_range("ACP_SOAK_STREAM_SECS").unwrap_or((30, 300)),
            event_secs: env_range("ACP_SOAK_EVENT_SECS").unwrap_or((5, 15)),
        }
    }
}

async fn soak(shell: Shell) {
    let settings = Settings::from_env();
    let seed = seed(&format!("SK-1 {shell}"));
    let upstream = FakeUpstream::start();
    let url = upstream.url();
    let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
    let pid = proxy.pid().expect("pid");
    let addr = proxy.addr();
    tokio::task::spawn_blocking(move || wait_prices_loaded(addr, &[]))
        .await
        .expect("join");
    let base_rss = rss_kib(pid).expect("rss");
    println!(
        "SK-1 {shell}: {} streams for {:?}, streams of {:?} s with events every {:?} s, base RSS {:.1} MiB",
        settings.streams,
        settings.duration,
        settings.stream_secs,
        settings.event_secs,
        kib_to_mib(base_rss)
    );

    let started = Instant::now();
    let deadline = started + settings.duration;
    let open = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(settings.streams);
    for worker in 0..settings.streams {
        let mut rng = fastrand::Rng::with_seed(seed ^ worker as u64);
        let open = Arc::clone(&open);
        let (stream_secs, event_secs) = (settings.stream_secs, settings.event_secs);
        workers.push(tokio::spawn(async move {
            let mut finished = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let every = rng.u64(event_secs.0..=event_secs.1).max(1);
                let length = rng.u64(stream_secs.0..=stream_secs.1);
                let events = (length / every).max(1);
                let id = format!("soak-{worker}-{n}");
                n += 1;
                open.fetch_add(1, Ordering::Relaxed);
                let out = SseRequest::post(addr, "/v1/messages", STREAM)
                    .header("x-request-id", &id)
                    .header("x-fake-events", &events.to_string())
                    .header("x-fake-delay-ms", &(every * 1000).to_string())
                    .timeout(Duration::from_secs(length + 120))
                    .send()
                    .await;
                open.fetch_sub(1, Ordering::Relaxed);
                finished.push((id, out.map(|o| o.terminal_seen).unwrap_or(false)));
            }
            finished
        }));
        // Ramp up over about 10 s so the accept queue is not flooded at once.
        if worker % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(
                10_000 * 100 / settings.streams.max(100) as u64,
            ))
            .await;
        }
    }

    let mut peak_rss = 0u64;
    let mut peak_fds = 0u64;
    let mut min_open = usize::MAX;
    let mut rss_at_5 = None;
    let mut last_report = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_kib(pid).expect("the proxy is alive");
        let fds = open_fds(pid).unwrap_or(0);
        peak_rss = peak_rss.max(rss);
        peak_fds = peak_fds.max(fds);
        if started.elapsed() > Duration::from_secs(20) {
            min_open = min_open.min(open.load(Ordering::Relaxed));
        }
        if rss_at_5.is_none() && started.elapsed() >= Duration::from_secs(300) {
            rss_at_5 = Some(rss);
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            println!(
                "SK-1 {shell}: t={:>4}s open={} rss={:.1} MiB fds={}",
                started.elapsed().as_secs(),
                open.load(Ordering::Relaxed),
                kib_to_mib(rss),
                fds
            );
        }
    }
    let end_rss = rss_kib(pid).expect("rss");
    let held_for = started.elapsed();
    let mut finished = Vec::new();
    for worker in workers {
        finished.extend(worker.await.expect("join"));
    }

    let n = settings.streams as f64;
    let bound_mib = 40.0 + 48.0 * n / 1024.0;
    print_figure(
        "SK-1-streams-held",
        shell,
        min_open.min(settings.streams) as f64,
        n,
    );
    print_figure(
        "SK-1-duration-s",
        shell,
        held_for.as_secs_f64(),
        settings.duration.as_secs_f64(),
    );
    let rss_ok = print_figure("SK-1-peak-rss-MiB", shell, kib_to_mib(peak_rss), bound_mib);
    print_figure(
        "SK-1-rss-per-stream-KiB",
        shell,
        peak_rss.saturating_sub(base_rss) as f64 / n,
        48.0,
    );
    print_figure("SK-1-fds", shell, peak_fds as f64, 2.0 * n + 100.0);
    if let Some(at5) = rss_at_5 {
        let drift = (end_rss as f64 - at5 as f64) / at5 as f64 * 100.0;
        print_figure("SK-1-rss-drift-pct", shell, drift, 10.0);
    }

    let ledger = upstream.ledger();
    let problems = check_rows_against_ledger(&proxy.open_db_readonly(), ledger);
    assert!(
        problems.is_empty(),
        "{} problems, first: {:?}",
        problems.len(),
        problems.first()
    );
    let completed_ok = finished
        .iter()
        .filter(|(_, terminal)| *terminal)
        .filter(|(id, _)| {
            db::rows_by_msg_id(&proxy.db_path(), id)
                .first()
                .is_some_and(|r| {
                    r["lifecycle_status"] == "completed" && r["completion_tokens"] == 500
                })
        })
        .count();
    let terminal = finished.iter().filter(|(_, t)| *t).count();
    println!(
        "SK-1 {shell}: {} requests, {terminal} saw the terminal event, {completed_ok} of them have their completed row, {} upstream requests",
        finished.len(),
        ledger.len()
    );
    assert_eq!(
        completed_ok, terminal,
        "every terminal event has its exact row"
    );
    assert!(
        min_open >= settings.streams * 95 / 100,
        "streams held: at least {min_open} of {}",
        settings.streams
    );
    assert!(rss_ok, "peak RSS {:.1} MiB", kib_to_mib(peak_rss));
    assert_eq!(panics_total(addr, &[]), 0.0);
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// `a-b` in seconds.
fn env_range(name: &str) -> Option<(u64, u64)> {
    let value = std::env::var(name).ok()?;
    let (a, b) = value.trim().split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    Some((a.min(b), a.max(b)))
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits`.
fn nofile_soft_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
