//! CI-17/CI-18 (small): the daemon as a process. SIGTERM drains open streams and exits
//! 143 with no pending row; SIGKILL during in-flight streams followed by a restart leaves
//! exactly one finalized row per upstream request (RQ-D3); a second daemon on the same
//! database exits 1 (`control.md` §1, §3.5, §9).

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{canary, wait_prices_loaded};
use agent_cli_proxy_tests::support::client::{SseOutcome, SseRequest};
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::ledger::check_rows_against_ledger;
use agent_cli_proxy_tests::support::proc::{ProxyOptions, ProxyProcess};
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;

agent_cli_proxy_tests::child_entry!();

const STREAM: &[u8] = br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;

/// Starts `n` Anthropic streams of `events` content events `delay_ms` apart, with
/// `x-request-id` `<prefix>-<i>`.
fn start_streams(
    proxy: &ProxyProcess,
    prefix: &str,
    n: usize,
    events: usize,
    delay_ms: u64,
) -> Vec<tokio::task::JoinHandle<std::io::Result<SseOutcome>>> {
    (0..n)
        .map(|i| {
            let request = SseRequest::post(proxy.addr(), "/v1/messages", STREAM)
                .header("x-request-id", &format!("{prefix}-{i}"))
                .header("x-fake-events", &events.to_string())
                .header("x-fake-delay-ms", &delay_ms.to_string())
                .timeout(Duration::from_secs(30));
            tokio::spawn(request.send())
        })
        .collect()
}

both_shells! {
    /// SIGTERM with 5 open streams (about 1 s each): exit code 143 after the drain, every
    /// stream's row `completed` with its usage, no pending row, the shutdown logged.
    async fn sigterm_drains_open_streams_and_exits_143(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let addr = proxy.addr();
        tokio::task::spawn_blocking(move || wait_prices_loaded(addr, &[])).await.expect("join");
        let streams = start_streams(&proxy, "term", 5, 10, 100);
        let ledger = upstream.ledger();
        let all_started = ledger
            .wait_until_async(Duration::from_secs(5), |e| e.len() == 5 && e.iter().all(|e| e.progress.head_sent))
            .await;
        assert!(all_started, "{:?}", ledger.entries());

        let (proxy, code) = tokio::task::spawn_blocking(move || {
            let mut proxy = proxy;
            proxy.sigterm();
            let code = proxy.wait_exit();
            (proxy, code)
        })
        .await
        .expect("join");
        assert_eq!(code, 143, "logs:\n{}", proxy.logs());
        for (i, stream) in streams.into_iter().enumerate() {
            let out = stream.await.expect("join").expect("stream");
            assert_eq!(out.status, 200, "term-{i}");
            assert!(out.events.len() >= 10 + 3, "term-{i}: the stream ran to its end: {} events", out.events.len());
        }
        let rows = db::rows(
            &proxy.db_path(),
            "SELECT msg_id, lifecycle_status, completion_tokens FROM request_logs ORDER BY msg_id",
            &[],
        );
        let got: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {} {}", r["msg_id"].as_str().unwrap_or(""), r["lifecycle_status"].as_str().unwrap_or(""), r["completion_tokens"]))
            .collect();
        let want: Vec<String> = (0..5).map(|i| format!("term-{i} completed 500")).collect();
        assert_eq!(got, want);
        let problems = check_rows_against_ledger(&proxy.open_db_readonly(), ledger);
        assert!(problems.is_empty(), "{problems:?}");
        let events: Vec<String> = proxy
            .log_events()
            .iter()
            .filter_map(|e| e["event"].as_str().map(str::to_owned))
            .collect();
        for name in ["shutdown.signal", "shutdown.complete"] {
            assert!(events.iter().any(|e| e == name), "{name} logged: {events:?}");
        }
    }

    /// SIGTERM with a stream that outlives the drain limit (shortened to 500 ms): the drain
    /// ends with one request pending, the exchange is aborted (O13, row `aborted` with
    /// `error_message` `shutdown`), and the daemon exits 143 well before the hard stop.
    async fn sigterm_aborts_a_stream_still_running_at_the_drain_limit(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let options = ProxyOptions::new(shell).env(&[
            ("CLI_PROXY_API_URL", url.as_str()),
            ("ACP_TEST_LIMITS", "drain_ms=500,hard_stop_ms=5000"),
        ]);
        let proxy = ProxyProcess::start_with(options);
        let addr = proxy.addr();
        tokio::task::spawn_blocking(move || wait_prices_loaded(addr, &[])).await.expect("join");
        // 100 events 200 ms apart: 20 s, far beyond the drain.
        let streams = start_streams(&proxy, "slow", 1, 100, 200);
        let ledger = upstream.ledger();
        let started = ledger
            .wait_until_async(Duration::from_secs(5), |e| e.len() == 1 && e[0].progress.head_sent)
            .await;
        assert!(started, "{:?}", ledger.entries());

        let (proxy, code, took) = tokio::task::spawn_blocking(move || {
            let mut proxy = proxy;
            let sent = std::time::Instant::now();
            proxy.sigterm();
            let code = proxy.wait_exit();
            (proxy, code, sent.elapsed())
        })
        .await
        .expect("join");
        assert_eq!(code, 143, "logs:\n{}", proxy.logs());
        assert!(took < Duration::from_secs(4), "exited after {took:?}; logs:\n{}", proxy.logs());
        for stream in streams {
            // Cut mid-stream: an error or a short stream, never the whole of it.
            if let Ok(Ok(out)) = stream.await {
                assert!(out.events.len() < 100, "the stream was not cut: {} events", out.events.len());
            }
        }
        let rows = db::rows(
            &proxy.db_path(),
            "SELECT lifecycle_status, error_message FROM request_logs WHERE msg_id = 'slow-0'",
            &[],
        );
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["lifecycle_status"], "aborted", "{rows:?}");
        assert_eq!(rows[0]["error_message"], "shutdown", "{rows:?}");
        let drain = proxy
            .log_events()
            .into_iter()
            .find(|e| e["event"] == "shutdown.drain")
            .unwrap_or_else(|| panic!("shutdown.drain logged; logs:\n{}", proxy.logs()));
        assert_eq!(drain["pending_requests"], 1, "{drain}");
        assert!(drain["elapsed_ms"].as_u64().is_some_and(|ms| ms >= 450), "{drain}");
    }

    /// SIGKILL while 20 streams are in flight, then a restart on the same database: boot
    /// recovery finalizes every orphan (no pending row), each upstream request has exactly
    /// one row, `integrity_check` is ok, and the daemon serves again.
    async fn sigkill_mid_stream_then_restart_leaves_one_final_row_per_request(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let streams = start_streams(&proxy, "kill", 20, 50, 200);
        let ledger = upstream.ledger();
        let all_started = ledger
            .wait_until_async(Duration::from_secs(10), |e| {
                e.len() == 20 && e.iter().all(|e| e.progress.events_sent >= 2)
            })
            .await;
        assert!(all_started, "{:?}", ledger.entries().iter().map(|e| e.progress.events_sent).collect::<Vec<_>>());

        let proxy = tokio::task::spawn_blocking(move || {
            let mut proxy = proxy;
            proxy.kill9();
            proxy
        })
        .await
        .expect("join");
        for stream in streams {
            let out = stream.await.expect("join").expect("head arrived before the kill");
            assert!(!out.terminal_seen, "a killed stream cannot have finished");
        }
        // The calls' records are in the spool; the last of them may not have reached the
        // database before the kill (`docs/spool.md` S7), but none of them was finalized.
        let finalized = db::scalar(
            &proxy.db_path(),
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status != 'pending'",
            &[],
        );
        assert_eq!(finalized, 0, "the kill left no call finished");

        let proxy = tokio::task::spawn_blocking(move || {
            let mut proxy = proxy;
            proxy.restart();
            proxy
        })
        .await
        .expect("join");
        let problems = check_rows_against_ledger(&proxy.open_db_readonly(), ledger);
        assert!(problems.is_empty(), "{problems:?}");
        let recovered = db::rows(
            &proxy.db_path(),
            "SELECT lifecycle_status, error_message, prompt_tokens, cost_status FROM request_logs",
            &[],
        );
        assert_eq!(recovered.len(), 20);
        for row in &recovered {
            assert_eq!(row["lifecycle_status"], "aborted", "{row}");
            assert_eq!(row["error_message"], "boot-recovery", "O17: {row}");
        }
        let addr = proxy.addr();
        tokio::task::spawn_blocking(move || canary(addr)).await.expect("join");
    }

    /// A second daemon on a database another daemon holds exits 1 with `startup.db_locked`,
    /// and the first keeps serving.
    fn second_daemon_on_the_same_database_exits_1(shell: Shell) {
        let first = ProxyProcess::start(shell, &[]);
        let db_path = first.db_path().display().to_string();
        let options = ProxyOptions {
            wait_health: false,
            take_slot: false,
            ..ProxyOptions::new(shell).env(&[("DB_PATH", db_path.as_str())])
        };
        let mut second = ProxyProcess::start_with(options);
        let code = second.wait_exit();
        assert_eq!(code, 1, "logs:\n{}", second.logs());
        let locked = second
            .log_events()
            .iter()
            .any(|e| e["event"] == "startup.db_locked");
        assert!(locked, "startup.db_locked logged:\n{}", second.logs());
        let health = agent_cli_proxy_tests::support::client::request_blocking(first.addr(), "GET", "/health", &[], b"")
            .expect("health");
        assert_eq!(health.status, 200);
    }

    /// `DATABASE_URL=postgres://…` naming a server that does not answer stops the start
    /// (the schema must be there before the first call) with a message naming the variable
    /// and the database, never the URL's password, rather than recording into SQLite behind
    /// the team's back. (The smol binary refuses any PostgreSQL URL: its own test,
    /// `shell-smol/tests/postgres_refused.rs`; this test binary's smol shell is built with the
    /// backend, as the workspace unifies the feature.)
    fn a_postgres_database_url_stops_the_start_without_echoing_it(shell: Shell) {
        let options = ProxyOptions {
            wait_health: false,
            take_slot: false,
            ..ProxyOptions::new(shell).env(&[(
                "DATABASE_URL",
                "postgres://acp:pw-zz-canary-71@127.0.0.1:1/acp",
            )])
        };
        let mut proxy = ProxyProcess::start_with(options);
        let code = proxy.wait_exit();
        assert_eq!(code, 1, "logs:\n{}", proxy.logs());
        let logs = proxy.logs();
        assert!(logs.contains("DATABASE_URL (PostgreSQL database acp on 127.0.0.1:1)"), "{logs}");
        assert!(!logs.contains("pw-zz-canary-71"), "the password leaked:\n{logs}");
        assert!(!proxy.db_path().exists(), "no SQLite database was created");
    }
}
