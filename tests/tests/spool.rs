//! The spool of `docs/spool.md` through the real daemons: read-your-writes of the admin API
//! (S6), the data path answering while the database refuses writes (§7), a torn tail cut at
//! boot and corruption stopping the start (§4).

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::client::{Response, request_blocking};
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use serde_json::Value;

agent_cli_proxy_tests::child_entry!();

const CHAT: &[u8] = br#"{"model":"gpt-5","messages":[]}"#;
const JSON: (&str, &str) = ("content-type", "application/json");

fn send(proxy: &ProxyProcess, method: &str, path: &str, body: &[u8]) -> Response {
    match request_blocking(proxy.addr(), method, path, &[JSON], body) {
        Ok(res) => res,
        Err(err) => panic!("{method} {path}: {err}; logs:\n{}", proxy.logs()),
    }
}

fn chat(proxy: &ProxyProcess, n: usize) {
    for _ in 0..n {
        let res = send(proxy, "POST", "/v1/chat/completions", CHAT);
        assert_eq!(res.status, 200, "{}", res.text());
    }
}

fn json(res: &Response) -> Value {
    res.json()
        .unwrap_or_else(|| panic!("not JSON: {}", res.text()))
}

fn spool_dir(proxy: &ProxyProcess) -> std::path::PathBuf {
    let mut p = proxy.db_path().into_os_string();
    p.push(".spool");
    p.into()
}

fn segments(proxy: &ProxyProcess) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(spool_dir(proxy))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    found.sort();
    found
}

both_shells! {
    /// S6: with a 10 s ingest delay nothing would reach the database by itself for a while,
    /// yet every admin answer and `/metrics` already counts the calls made before it.
    fn admin_answers_and_metrics_read_their_writes(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", url.as_str()),
                ("SPOOL_INGEST_MAX_DELAY_MS", "10000"),
            ],
        );
        chat(&proxy, 3);
        let logs = json(&send(&proxy, "GET", "/admin/logs?limit=10", b""));
        let rows = logs["logs"].as_array().or_else(|| logs.as_array()).cloned().unwrap_or_default();
        assert_eq!(rows.len(), 3, "{logs}");
        let stats = json(&send(&proxy, "GET", "/admin/stats", b""));
        assert!(stats.to_string().contains('3'), "{stats}");
        chat(&proxy, 1);
        let today = json(&send(&proxy, "GET", "/admin/usage/today", b""));
        assert!(today.to_string().contains("\"gpt-5\""), "{today}");
        chat(&proxy, 1);
        let metrics = send(&proxy, "GET", "/metrics", b"").text();
        let today: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("agent_cli_proxy_requests_today{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(today, 5.0, "{metrics}");
        // And the plain SQLite reader sees them now too (they were applied by the flush).
        assert_eq!(
            db::scalar(&proxy.db_path(), "SELECT COUNT(*) FROM request_logs", &[]),
            5
        );
    }

    /// S6 for every admin endpoint whose answer depends on the rows: with a 10 s ingest
    /// delay, one more call changes each answer at once (it would not without the flush).
    fn every_row_dependent_admin_answer_changes_after_one_more_call(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", url.as_str()),
                ("SPOOL_INGEST_MAX_DELAY_MS", "10000"),
            ],
        );
        let date = {
            let logs = json(&send(&proxy, "GET", "/admin/usage/today", b""));
            logs["date"].as_str().map(str::to_owned).unwrap_or_default()
        };
        assert_eq!(date.len(), 10, "usage/today names its date");
        let endpoints = [
            "/admin/usage/today".to_owned(),
            format!("/admin/usage/range?from={date}&to={date}"),
            "/admin/usage/models".to_owned(),
            "/admin/usage/providers".to_owned(),
            "/admin/usage/trend".to_owned(),
            "/admin/stats".to_owned(),
            "/admin/logs?limit=5".to_owned(),
            "/metrics".to_owned(),
        ];
        chat(&proxy, 1);
        for path in &endpoints {
            let before = send(&proxy, "GET", path, b"");
            assert_eq!(before.status, 200, "{path}: {}", before.text());
            chat(&proxy, 1);
            let after = send(&proxy, "GET", path, b"");
            assert_eq!(after.status, 200, "{path}: {}", after.text());
            assert_ne!(before.text(), after.text(), "{path} did not see the call made before it");
            assert_eq!(after.header("x-acp-ingest-lag-ms"), None, "{path}");
        }
    }

    /// §7: another process holds the database's write lock for 6 s under traffic: every call
    /// still succeeds, `/ready` warns about the lag, and every row lands afterwards.
    fn a_locked_database_does_not_stop_the_data_path(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        chat(&proxy, 2);
        assert_eq!(db::settled_scalar(&proxy.db_path(), "SELECT COUNT(*) FROM request_logs"), 2);
        let blocker = rusqlite::Connection::open(proxy.db_path()).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = Instant::now();
        chat(&proxy, 20);
        assert!(started.elapsed() < Duration::from_secs(5), "calls waited for the database");
        let mut calls = 22;
        while started.elapsed() < Duration::from_millis(6_000) {
            chat(&proxy, 1);
            calls += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        let ready = send(&proxy, "GET", "/ready", b"");
        let report = json(&ready);
        assert_eq!(report["checks"]["spool"]["status"], "warn", "{report}");
        blocker.execute_batch("COMMIT").unwrap();
        drop(blocker);
        let total = calls;
        let landed = db::settled_scalar(
            &proxy.db_path(),
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'",
        );
        assert_eq!(landed, total, "every call lands once the database is back");
        assert!(db::aggregate_mismatches(&proxy.db_path()).is_empty());
    }

    /// §4: garbage after the last record (a torn write) is cut off with a warning; the rows
    /// before it are all there.
    fn a_torn_tail_is_cut_at_boot(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let mut proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        chat(&proxy, 3);
        proxy.kill9();
        let last = segments(&proxy).pop().unwrap();
        let mut bytes = std::fs::read(&last).unwrap();
        let valid = bytes.len();
        bytes.extend_from_slice(&[0x2a, 0, 0, 0, 1, 2, 3]);
        std::fs::write(&last, &bytes).unwrap();
        proxy.restart();
        assert_eq!(std::fs::metadata(&last).unwrap().len() as usize, valid);
        assert!(
            proxy.log_events().iter().any(|e| e["event"] == "spool.torn_tail"),
            "{}",
            proxy.logs()
        );
        assert_eq!(
            db::scalar(
                &proxy.db_path(),
                "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'",
                &[]
            ),
            3
        );
    }

    /// §4: a flipped bit in a record followed by valid ones is corruption: the start stops
    /// with the segment and offset, and changes nothing.
    fn corruption_in_the_middle_stops_the_start(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let mut proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", url.as_str()),
                ("SPOOL_INGEST_MAX_DELAY_MS", "10000"),
            ],
        );
        chat(&proxy, 3);
        proxy.kill9();
        let last = segments(&proxy).pop().unwrap();
        let mut bytes = std::fs::read(&last).unwrap();
        // Inside the first record's payload (header 20 bytes, frame head 9).
        bytes[40] ^= 0x01;
        std::fs::write(&last, &bytes).unwrap();
        let err = proxy.try_restart().expect_err("the start must stop");
        let text = err.to_string();
        let name = last.file_name().unwrap().to_string_lossy().to_string();
        assert!(text.contains(&name) && text.contains("offset 20"), "{text}");
        assert_eq!(std::fs::read(&last).unwrap(), bytes, "the segment is left as it was");
    }
}
