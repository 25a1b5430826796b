//! SK-1 (soak tier): N concurrent SSE streams held through the proxy for a while, each
//! reconnecting when it ends, with the proxy's RSS, open fds and WAL size sampled; at the
//! end every upstream request has exactly one row, none is pending, and every client that
//! saw the terminal event has a `completed` row with its tokens (RQ-D3).
//!
//! As `reliability.md` §5 asks, the load generator, the fake upstream and the proxy are
//! three processes: this test process runs the fake upstream (its ledger is the oracle) and
//! samples the proxy; the load generator is this test binary re-executed as
//! `soak_load_child` with `ACP_SOAK_LOAD` set. Each process then holds N sockets (the proxy
//! 2 N), so the default `ulimit -n` of 20 000 is enough for 8 000 streams.
//!
//! Knobs (environment of the test run): `ACP_SOAK_STREAMS` (default
//! min(8 000, (nofile − 200) / 2), where nofile is this process's soft limit, which every
//! child inherits), `ACP_SOAK_MINUTES` (default 30), `ACP_SOAK_STREAM_SECS` (stream length
//! range, default `30-300`) and `ACP_SOAK_EVENT_SECS` (event spacing range, default `5-15`).
//! Run with
//!
//! ```text
//! cargo test -p agent-cli-proxy-tests --release --test soak_streams -- --ignored \
//!     --test-threads 1 --nocapture
//! ```
//!
//! Figures printed: streams held, duration, RSS at minute 5 and at the end (drift), peak
//! RSS against 40 MiB + 48 KiB × N, RSS per stream, fds against 2 N + 100, peak WAL size
//! against 64 MiB, requests that failed.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{panics_total, wait_prices_loaded};
use agent_cli_proxy_tests::support::client::{SseRequest, print_figure};
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::ledger::check_rows_against_ledger;
use agent_cli_proxy_tests::support::memory::{kib_to_mib, open_fds, rss_kib};
use agent_cli_proxy_tests::support::proc::{PARENT_ENV, ProxyProcess, exit_child, watch_parent};
use agent_cli_proxy_tests::support::seed;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;

agent_cli_proxy_tests::child_entry!();

const STREAM: &[u8] = br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;

/// Set (to the proxy's address) in the load generator child.
const LOAD_ENV: &str = "ACP_SOAK_LOAD";
/// The load generator's seed and the file it writes its results to.
const SEED_ENV: &str = "ACP_SOAK_SEED";
const OUT_ENV: &str = "ACP_SOAK_OUT";

both_shells! {
    /// SK-1: `ACP_SOAK_STREAMS` streams for `ACP_SOAK_MINUTES` minutes.
    #[ignore = "soak tier: ACP_SOAK_STREAMS concurrent SSE streams for ACP_SOAK_MINUTES minutes"]
    async fn soak_concurrent_streams_hold_with_bounded_memory(shell: Shell) {
        soak(shell).await;
    }
}

/// Entry point of the load generator process; returns at once in a normal test run.
#[test]
fn soak_load_child() {
    let Ok(addr) = std::env::var(LOAD_ENV) else {
        return;
    };
    watch_parent();
    let addr: SocketAddr = addr.parse().expect("ACP_SOAK_LOAD is the proxy's address");
    let settings = Settings::from_env();
    let seed = env_number(SEED_ENV).unwrap_or(0);
    let out = std::env::var(OUT_ENV).expect("ACP_SOAK_OUT");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime.block_on(generate_load(addr, &settings, seed));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out).expect("results file"));
    for (id, outcome) in results {
        writeln!(file, "{id}\t{outcome}").expect("write results");
    }
    file.flush().expect("flush results");
    exit_child(0);
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

    /// The same settings, as the environment of the load generator.
    fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ACP_SOAK_STREAMS", self.streams.to_string()),
            (
                "ACP_SOAK_MINUTES",
                (self.duration.as_secs() / 60).to_string(),
            ),
            (
                "ACP_SOAK_STREAM_SECS",
                format!("{}-{}", self.stream_secs.0, self.stream_secs.1),
            ),
            (
                "ACP_SOAK_EVENT_SECS",
                format!("{}-{}", self.event_secs.0, self.event_secs.1),
            ),
        ]
    }
}

/// How one request of the load generator ended.
enum Outcome {
    /// The terminal event arrived.
    Terminal,
    /// The body ended without it.
    Cut,
    /// The request failed (connect, head, read); the message says how.
    Error(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Terminal => f.write_str("terminal"),
            Outcome::Cut => f.write_str("cut"),
            Outcome::Error(message) => write!(f, "error {}", message.replace(['\t', '\n'], " ")),
        }
    }
}

/// The load generator: `settings.streams` workers, each sending one stream after another
/// until the deadline; prints `open <n>` every second for the parent.
async fn generate_load(addr: SocketAddr, settings: &Settings, seed: u64) -> Vec<(String, Outcome)> {
    let deadline = Instant::now() + settings.duration;
    let open = Arc::new(AtomicUsize::new(0));
    let reporter = {
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "open {}", open.load(Ordering::Relaxed));
                let _ = stdout.flush();
            }
        })
    };
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
                let outcome = match out {
                    Ok(o) if o.terminal_seen => Outcome::Terminal,
                    Ok(_) => Outcome::Cut,
                    Err(err) => Outcome::Error(err.to_string()),
                };
                finished.push((id, outcome));
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
    let mut finished = Vec::new();
    for worker in workers {
        finished.extend(worker.await.expect("join"));
    }
    reporter.abort();
    finished
}

/// The load generator process and the open-stream count it last reported.
struct LoadChild {
    child: Child,
    open: Arc<AtomicUsize>,
}

impl LoadChild {
    fn spawn(addr: SocketAddr, settings: &Settings, seed: u64, out: &Path) -> LoadChild {
        let mut command = Command::new(std::env::current_exe().expect("current exe"));
        command
            .args([
                "soak_load_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(LOAD_ENV, addr.to_string())
            .env(SEED_ENV, seed.to_string())
            .env(OUT_ENV, out)
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in settings.to_env() {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("load generator starts");
        let open = Arc::new(AtomicUsize::new(0));
        let stdout = child.stdout.take().expect("piped stdout");
        let reported = Arc::clone(&open);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("open ").and_then(|n| n.parse().ok()) {
                    reported.store(n, Ordering::Relaxed);
                }
            }
        });
        LoadChild { child, open }
    }

    /// Waits up to `limit` for the generator to exit; kills it and fails past that.
    fn wait(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "load generator: {status}");
                return;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("load generator still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for LoadChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    let results_dir = tempfile::tempdir().expect("tempdir");
    let results_path = results_dir.path().join("results.tsv");
    let started = Instant::now();
    let deadline = started + settings.duration;
    let mut load = LoadChild::spawn(addr, &settings, seed, &results_path);
    let wal = {
        let mut path = proxy.db_path().into_os_string();
        path.push("-wal");
        std::path::PathBuf::from(path)
    };

    let mut peak_rss = 0u64;
    let mut peak_fds = 0u64;
    let mut peak_wal = 0u64;
    let mut min_open = usize::MAX;
    let mut rss_at_5 = None;
    let mut last_report = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_kib(pid).expect("the proxy is alive");
        let fds = open_fds(pid).unwrap_or(0);
        let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
        peak_rss = peak_rss.max(rss);
        peak_fds = peak_fds.max(fds);
        peak_wal = peak_wal.max(wal_bytes);
        let open = load.open.load(Ordering::Relaxed);
        if started.elapsed() > Duration::from_secs(20) {
            min_open = min_open.min(open);
        }
        if rss_at_5.is_none() && started.elapsed() >= Duration::from_secs(300) {
            rss_at_5 = Some(rss);
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            println!(
                "SK-1 {shell}: t={:>4}s open={open} rss={:.1} MiB fds={fds} wal={:.1} MiB",
                started.elapsed().as_secs(),
                kib_to_mib(rss),
                wal_bytes as f64 / 1_048_576.0
            );
        }
    }
    let end_rss = rss_kib(pid).expect("rss");
    let held_for = started.elapsed();
    let wait_limit = Duration::from_secs(settings.stream_secs.1 + 180);
    tokio::task::spawn_blocking(move || {
        load.wait(wait_limit);
        load
    })
    .await
    .expect("join");
    let finished: Vec<(String, String)> = std::fs::read_to_string(&results_path)
        .expect("the load generator's results")
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, outcome)| (id.to_owned(), outcome.to_owned()))
        .collect();

    // The soak tier judges its figures against the targets themselves, not the CI tier's
    // 10 × gate that `print_figure` reports.
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
    print_figure("SK-1-peak-rss-MiB", shell, kib_to_mib(peak_rss), bound_mib);
    print_figure(
        "SK-1-rss-per-stream-KiB",
        shell,
        peak_rss.saturating_sub(base_rss) as f64 / n,
        48.0,
    );
    print_figure("SK-1-fds", shell, peak_fds as f64, 2.0 * n + 100.0);
    let peak_wal_mib = peak_wal as f64 / 1_048_576.0;
    print_figure("SK-1-wal-MiB", shell, peak_wal_mib, 64.0);
    let drift = rss_at_5.map(|at5| (end_rss as f64 - at5 as f64) / at5 as f64 * 100.0);
    if let Some(drift) = drift {
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
    let terminal: Vec<&str> = finished
        .iter()
        .filter(|(_, outcome)| outcome == "terminal")
        .map(|(id, _)| id.as_str())
        .collect();
    let errors: Vec<&(String, String)> = finished
        .iter()
        .filter(|(_, outcome)| outcome.starts_with("error"))
        .collect();
    let completed_ok = terminal
        .iter()
        .filter(|id| {
            db::rows_by_msg_id(&proxy.db_path(), id)
                .first()
                .is_some_and(|r| {
                    r["lifecycle_status"] == "completed" && r["completion_tokens"] == 500
                })
        })
        .count();
    println!(
        "SK-1 {shell}: {} requests, {} saw the terminal event, {completed_ok} of them have their completed row, {} failed, {} upstream requests",
        finished.len(),
        terminal.len(),
        errors.len(),
        ledger.len()
    );
    assert_eq!(
        completed_ok,
        terminal.len(),
        "every terminal event has its exact row"
    );
    assert!(
        errors.is_empty(),
        "unexpected errors, first: {:?}",
        errors.first()
    );
    assert!(
        min_open >= settings.streams * 95 / 100,
        "streams held: at least {min_open} of {}",
        settings.streams
    );
    assert!(
        kib_to_mib(peak_rss) <= bound_mib,
        "peak RSS {:.1} MiB over {bound_mib:.1} MiB",
        kib_to_mib(peak_rss)
    );
    assert!(
        peak_fds as f64 <= 2.0 * n + 100.0,
        "peak fds {peak_fds} over 2 N + 100"
    );
    assert!(peak_wal_mib <= 64.0, "peak WAL {peak_wal_mib:.1} MiB");
    if let Some(drift) = drift {
        assert!(drift <= 10.0, "RSS drift minute 5 → end {drift:.1} %");
    }
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
