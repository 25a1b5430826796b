//! CI-23: the correlator against a fake CLIProxyAPI management API, on the tokio daemon —
//! queue, queue 404 → legacy, legacy 404 → disabled (no more calls), a slow router with a
//! short interval, a database refusing writes, records held at shutdown, malformed answers,
//! auth failures, matching on a mixed workload, idempotent application, the loop's
//! health in `/ready`; and the quota endpoints answering from stored snapshots.
// A test file: its helpers fail the test on any setup error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use agent_cli_proxy_core::time::UnixMillis;
use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::client::request_blocking;
use agent_cli_proxy_tests::support::mgmt::{FakeManagement, Mode, record};
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use rusqlite::{Connection, params};
use serde_json::Value;

agent_cli_proxy_tests::child_entry!();

const KEY: &str = "mgmt-key-7f3a91";
const MODEL: &str = "claude-sonnet-4-5";

fn start(shell: Shell, mgmt: &FakeManagement, extra: &[(&str, &str)]) -> ProxyProcess {
    let url = mgmt.url();
    let mut env = vec![
        ("CLI_PROXY_API_URL", url.as_str()),
        ("CLIPROXY_MGMT_KEY", KEY),
        ("CLIPROXY_CORRELATION_INTERVAL_MS", "1000"),
    ];
    env.extend_from_slice(extra);
    ProxyProcess::start(shell, &env)
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn iso(ms: u64) -> String {
    UnixMillis(ms).to_iso()
}

fn db(p: &ProxyProcess) -> Connection {
    let c = Connection::open(p.db_path()).expect("open db");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    c
}

/// A finished 200 row, as the proxy would have written it.
fn insert_row(p: &ProxyProcess, model: &str, started_ms: u64, total: i64) -> i64 {
    let c = db(p);
    c.execute(
        "INSERT INTO request_logs (request_id, provider, model, path, status, started_at,
           prompt_tokens, total_tokens, lifecycle_status, cost_status, cost_nanousd, cost_usd)
         VALUES ('r', 'anthropic', ?1, '/v1/messages', 200, ?2, ?3, ?3, 'completed', 'ok',
           ?3 * 1000, ?3 * 1000 / 1e9)",
        params![model, iso(started_ms), total],
    )
    .expect("insert row");
    c.last_insert_rowid()
}

fn account(p: &ProxyProcess, id: i64) -> (Option<String>, Option<String>, Option<String>) {
    db(p)
        .query_row(
            "SELECT cliproxy_account, cliproxy_auth_index, cliproxy_source FROM request_logs WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("row")
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

fn get_json(p: &ProxyProcess, path: &str) -> (u16, Value) {
    let r = request_blocking(p.addr(), "GET", path, &[], b"").expect("request");
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn loop_health(p: &ProxyProcess, name: &str) -> Option<Value> {
    let (_, ready) = get_json(p, "/ready");
    ready["checks"]["supervisor"]["loopHealth"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)
        .cloned()
}

fn has_log(p: &ProxyProcess, msg: &str) -> bool {
    p.log_events().iter().any(|e| e["msg"] == msg)
}

both_shells! {
    fn queue_mixed_workload_matches_each_account_once(shell: Shell) {
        let mgmt = FakeManagement::start(KEY);
        let p = start(shell, &mgmt, &[]);
        let t = wall_ms() - 20_000;
        let rows = [
            insert_row(&p, MODEL, t, 1000),
            insert_row(&p, MODEL, t + 200, 2000),
            insert_row(&p, MODEL, t + 400, 3000),
        ];
        mgmt.push_queue(&[
            record(&iso(t + 30), "a@example.com", "0", MODEL, 1000),
            record(&iso(t + 250), "b@example.com", "1", MODEL, 2000),
            record(&iso(t + 380), "c@example.com", "2", MODEL, 3000),
            record(&iso(t + 200), "d@example.com", "3", "gpt-5", 2000),
        ]);
        wait_for("three correlated rows", Duration::from_secs(20), || {
            rows.iter().all(|id| account(&p, *id).0.is_some())
        });
        let got: Vec<_> = rows.iter().map(|id| account(&p, *id)).collect();
        let expect = |a: &str, i: &str| (Some(a.to_owned()), Some(i.to_owned()), Some(a.to_owned()));
        assert_eq!(
            got,
            vec![
                expect("a@example.com", "0"),
                expect("b@example.com", "1"),
                expect("c@example.com", "2")
            ]
        );
        let daily: Vec<(String, i64, i64, i64)> = db(&p)
            .prepare(
                "SELECT cliproxy_account, request_count, total_tokens, cost_nanousd
                 FROM daily_account_usage ORDER BY cliproxy_account",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            daily,
            vec![
                ("a@example.com".into(), 1, 1000, 1_000_000),
                ("b@example.com".into(), 1, 2000, 2_000_000),
                ("c@example.com".into(), 1, 3000, 3_000_000),
            ]
        );
        let calls: Vec<_> = mgmt
            .calls()
            .into_iter()
            .filter(|c| c.target.starts_with("/v0/"))
            .collect();
        assert!(calls.iter().all(
            |c| c.authorization.as_deref() == Some(&format!("Bearer {KEY}"))
                && c.management_key.as_deref() == Some(KEY)
        ));
        assert!(
            calls
                .iter()
                .any(|c| c.target == "/v0/management/usage-queue?count=500")
        );
        assert_eq!(
            mgmt.count("/v0/management/usage-queue"),
            calls.len(),
            "no legacy call"
        );
        let logs = p.logs();
        assert!(has_log(&p, "correlated logs"));
        assert!(!logs.contains(KEY) && !logs.contains("sk-client-secret"));
        let health = loop_health(&p, "correlator").expect("correlator in /ready");
        assert_eq!(health["status"], "pass");
        assert_eq!(health["consecutiveFailures"], 0);
    }
}

both_shells! {
    fn queue_404_falls_back_to_legacy_and_never_reuses_a_record(shell: Shell) {
        let mgmt = FakeManagement::start(KEY);
        mgmt.queue_mode(Mode::Status(404));
        let t = wall_ms() - 30_000;
        mgmt.push_legacy(&[
            record(&iso(t), "a@example.com", "0", MODEL, 500),
            record(&iso(t + 5_000), "b@example.com", "1", MODEL, 700),
        ]);
        let p = start(shell, &mgmt, &[]);
        let first = insert_row(&p, MODEL, t + 100, 500);
        let second = insert_row(&p, MODEL, t + 5_050, 700);
        wait_for("both rows correlated", Duration::from_secs(20), || {
            account(&p, first).0.is_some() && account(&p, second).0.is_some()
        });
        assert_eq!(account(&p, first).0.as_deref(), Some("a@example.com"));
        assert_eq!(account(&p, second).0.as_deref(), Some("b@example.com"));
        // A new row that fits record a better than any other: the snapshot still holds a, but
        // it was applied in an earlier tick, so the row stays uncorrelated.
        let late = insert_row(&p, MODEL, t, 500);
        let legacy_before = mgmt.count("/v0/management/usage");
        wait_for("three more legacy calls", Duration::from_secs(15), || {
            mgmt.count("/v0/management/usage") >= legacy_before + 3
        });
        assert_eq!(account(&p, late), (None, None, None));
        assert_eq!(
            mgmt.count("/v0/management/usage-queue"),
            1,
            "queue marked unsupported"
        );
        assert!(has_log(
            &p,
            "usage queue endpoint unavailable, falling back to legacy usage endpoint"
        ));
        let n: i64 = db(&p)
            .query_row(
                "SELECT SUM(request_count) FROM daily_account_usage",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 2, "each record counted once");
    }
}

both_shells! {
    fn legacy_404_disables_correlation_and_stops_calling(shell: Shell) {
        let mgmt = FakeManagement::start(KEY);
        mgmt.queue_mode(Mode::Status(404));
        mgmt.legacy_mode(Mode::Status(404));
        let p = start(shell, &mgmt, &[]);
        let id = insert_row(&p, MODEL, wall_ms() - 1_000, 10);
        wait_for("disable warning", Duration::from_secs(20), || {
            has_log(
                &p,
                "usage fetch endpoint unavailable, disabling correlation",
            )
        });
        let calls = mgmt.count("/v0/");
        assert_eq!(calls, 2, "one queue call and one legacy call");
        std::thread::sleep(Duration::from_millis(3_500));
        assert_eq!(mgmt.count("/v0/"), calls, "no call after both answered 404");
        assert_eq!(account(&p, id).0, None);
        let health = loop_health(&p, "correlator").expect("loop keeps ticking");
        assert_eq!(health["status"], "pass");
    }
}

/// A proxied Anthropic call through the proxy; its row (status 200, 18 tokens) becomes a
/// correlation candidate. Returns the call's time.
fn send_call(p: &ProxyProcess, request_id: &str) -> Duration {
    let began = Instant::now();
    let r = request_blocking(
        p.addr(),
        "POST",
        "/v1/messages",
        &[("content-type", "application/json"), ("x-request-id", request_id)],
        br#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .expect("proxied call");
    let took = began.elapsed();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    took
}

/// The id and `started_at` (ms) of the finished row of `request_id`.
fn row_of(p: &ProxyProcess, request_id: &str) -> (i64, u64) {
    let mut row = None;
    wait_for("the proxied call's row", Duration::from_secs(10), || {
        row = db(p)
            .query_row(
                "SELECT id, started_at, total_tokens FROM request_logs
                 WHERE msg_id = ?1 AND lifecycle_status != 'pending' AND status = 200",
                [request_id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .ok();
        row.is_some()
    });
    let (id, started, total) = row.unwrap();
    assert_eq!(total, 18);
    let started = agent_cli_proxy_core::correlate::parse_timestamp(&started).unwrap();
    (id, started.0)
}

fn timed_health(p: &ProxyProcess) -> Duration {
    let began = Instant::now();
    let r = request_blocking(p.addr(), "GET", "/health", &[], b"").expect("health");
    assert_eq!(r.status, 200);
    began.elapsed()
}

fn daily_counts(p: &ProxyProcess) -> Vec<(String, i64)> {
    db(p)
        .prepare(
            "SELECT cliproxy_account, request_count FROM daily_account_usage
             ORDER BY cliproxy_account",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

both_shells! {
    /// Issue 17: a router that takes 3 s to answer, a 400 ms interval. The answer is never cut
    /// off (its records would be gone), ticks never overlap, nothing counts as a failure,
    /// and the proxy keeps serving at full speed meanwhile.
    fn slow_queue_with_a_short_interval_still_correlates_every_row(shell: Shell) {
        let mgmt = FakeManagement::start(KEY);
        mgmt.queue_mode(Mode::Slow(Duration::from_millis(3_000)));
        let p = start(
            shell,
            &mgmt,
            &[("CLIPROXY_CORRELATION_INTERVAL_MS", "400"), ("CLI_PROXY_API_KEY", "upstream-key")],
        );
        let mut rows = Vec::new();
        for i in 0..3 {
            send_call(&p, &format!("slow-{i}"));
            let (id, started) = row_of(&p, &format!("slow-{i}"));
            rows.push((id, started, format!("acct{i}@example.com")));
            // Distinct start times: each record then fits its own row exactly.
            std::thread::sleep(Duration::from_millis(30));
        }
        let t = wall_ms() - 20_000;
        let inserted = insert_row(&p, MODEL, t, 5_000);
        rows.push((inserted, t, "acct3@example.com".into()));
        let records: Vec<Value> = rows
            .iter()
            .enumerate()
            .map(|(i, (id, started, acct))| {
                let total = if *id == inserted { 5_000 } else { 18 };
                record(&iso(*started), acct, &i.to_string(), MODEL, total)
            })
            .collect();
        mgmt.push_queue(&records);
        // While a slow management call is being answered, the proxy is not held up: both
        // checks start and end inside one slow call (a call lasts 3 s, ticks are 400 ms
        // apart, so a few tries find one).
        let mut overlapped = 0;
        for attempt in 0..5 {
            wait_for("a slow queue call in flight", Duration::from_secs(20), || mgmt.in_flight() > 0);
            let calls_before = mgmt.count("/v0/management/usage-queue");
            let health = timed_health(&p);
            let took = send_call(&p, &format!("slow-during-{attempt}"));
            assert!(health < Duration::from_millis(1_000), "/health took {health:?}");
            assert!(took < Duration::from_millis(2_000), "proxied call took {took:?}");
            if mgmt.in_flight() > 0 && mgmt.count("/v0/management/usage-queue") == calls_before {
                overlapped += 1;
            }
            let (id, started) = row_of(&p, &format!("slow-during-{attempt}"));
            let acct = format!("during{attempt}@example.com");
            mgmt.push_queue(&[record(&iso(started), &acct, "9", MODEL, 18)]);
            rows.push((id, started, acct));
            if overlapped > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        assert!(overlapped > 0, "no check ran inside a slow management call");

        wait_for("every row correlated", Duration::from_secs(45), || {
            rows.iter().all(|(id, _, _)| account(&p, *id).0.is_some())
        });
        for (id, _, acct) in &rows {
            assert_eq!(account(&p, *id).0.as_deref(), Some(acct.as_str()), "row {id}");
        }
        assert_eq!(mgmt.queue_len(), 0);
        assert_eq!(mgmt.max_in_flight(), 1, "one management call at a time");
        assert!(!has_log(&p, "usage queue fetch failed"), "no call was cut off");
        assert_eq!(
            mgmt.calls().iter().filter(|c| c.target == "/v0/management/usage").count(),
            0,
            "never fell back to the legacy endpoint"
        );
        let health = loop_health(&p, "correlator").expect("correlator in /ready");
        assert_eq!(health["consecutiveFailures"], 0);
        let daily = daily_counts(&p);
        assert_eq!(daily.len(), rows.len());
        assert!(daily.iter().all(|(_, n)| *n == 1), "each record applied once: {daily:?}");
    }
}

both_shells! {
    /// Issue 17: a tick pops records while the database refuses writes (another process
    /// holds the write lock past the writer's retries). The records are kept, and written once
    /// the database is back — each exactly once.
    fn records_popped_while_the_database_refuses_writes_are_applied_once_it_is_back(shell: Shell) {
        let mgmt = FakeManagement::start(KEY);
        let p = start(shell, &mgmt, &[("CLIPROXY_CORRELATION_INTERVAL_MS", "400")]);
        let t = wall_ms() - 20_000;
        let rows = [insert_row(&p, MODEL, t, 1_000), insert_row(&p, MODEL, t + 300, 2_000)];
        // Let startup writes (pricing, backfill) finish so the lock catches the correlator.
        std::thread::sleep(Duration::from_millis(1_000));
        let blocker = db(&p);
        blocker.execute_batch("BEGIN EXCLUSIVE").expect("take the write lock");
        mgmt.push_queue(&[
            record(&iso(t + 20), "a@example.com", "0", MODEL, 1_000),
            record(&iso(t + 320), "b@example.com", "1", MODEL, 2_000),
        ]);
        wait_for("the records popped", Duration::from_secs(20), || mgmt.queue_len() == 0);
        wait_for("a refused correlation write", Duration::from_secs(45), || {
            p.log_events().iter().any(|e| {
                e["msg"] == "loop tick failed"
                    && e["name"] == "correlator"
                    && e["err"].as_str().is_some_and(|m| m.contains("correlation write failed"))
            })
        });
        let uncorrelated: i64 = blocker
            .query_row(
                "SELECT COUNT(*) FROM request_logs WHERE cliproxy_account IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(uncorrelated, 2, "nothing written while locked");
        blocker.execute_batch("ROLLBACK").expect("release the lock");
        drop(blocker);

        wait_for("both rows correlated", Duration::from_secs(45), || {
            rows.iter().all(|id| account(&p, *id).0.is_some())
        });
        assert_eq!(account(&p, rows[0]).0.as_deref(), Some("a@example.com"));
        assert_eq!(account(&p, rows[1]).0.as_deref(), Some("b@example.com"));
        assert!(has_log(&p, "correlations held from an earlier tick were written"));
        // A few more ticks: nothing is written a second time.
        std::thread::sleep(Duration::from_millis(2_000));
        assert_eq!(
            daily_counts(&p),
            vec![("a@example.com".into(), 1), ("b@example.com".into(), 1)]
        );
        assert!(!p.logs().contains(KEY) && !p.logs().contains("sk-client-secret"));
    }
}

both_shells! {
    /// Records popped but matched to no row are still held at shutdown: the log says how
    /// many, and nothing about them.
    fn records_still_held_at_shutdown_are_logged_as_a_count(shell: Shell) {
        let mgmt = FakeManagement::start(KEY);
        let mut p = start(shell, &mgmt, &[("CLIPROXY_CORRELATION_INTERVAL_MS", "400")]);
        let t = wall_ms() - 20_000;
        let id = insert_row(&p, MODEL, t, 10);
        // The router finished two calls whose rows the proxy never wrote (another model).
        mgmt.push_queue(&[
            record(&iso(t), "held-a@example.com", "0", "gpt-5", 10),
            record(&iso(t + 5), "held-b@example.com", "1", "gpt-5", 10),
        ]);
        wait_for("the records popped", Duration::from_secs(20), || mgmt.queue_len() == 0);
        let calls = mgmt.count("/v0/management/usage-queue");
        wait_for("a later tick", Duration::from_secs(20), || {
            mgmt.count("/v0/management/usage-queue") > calls
        });
        assert_eq!(account(&p, id).0, None);
        p.sigterm();
        p.wait_exit();
        let held: Vec<Value> = p
            .log_events()
            .into_iter()
            .filter(|e| e["event"] == "correlator.unapplied_at_shutdown"
                || e["msg"] == "correlator stopped holding usage records it could not apply")
            .collect();
        assert_eq!(held.len(), 1, "logged once: {held:?}");
        assert_eq!(held[0]["unmatched"], 2);
        assert_eq!(held[0]["unconfirmed"], 0);
        let logs = p.logs();
        assert!(!logs.contains("held-a@example.com") && !logs.contains("sk-client-secret"));
    }
}

both_shells! {
    fn malformed_answers_and_auth_failures_show_as_loop_failures(shell: Shell) {
        let mgmt = FakeManagement::start("some-other-key");
        mgmt.legacy_mode(Mode::Malformed);
        let p = start(shell, &mgmt, &[]);
        let id = insert_row(&p, MODEL, wall_ms() - 1_000, 10);
        wait_for(
            "a failing correlator in /ready",
            Duration::from_secs(20),
            || loop_health(&p, "correlator").is_some_and(|h| h["status"] == "warn"),
        );
        let health = loop_health(&p, "correlator").unwrap();
        assert!(health["consecutiveFailures"].as_u64().unwrap() >= 1);
        assert!(
            mgmt.calls()
                .iter()
                .filter(|c| c.target.starts_with("/v0/"))
                .all(|c| c.management_key.as_deref() == Some(KEY))
        );
        assert_eq!(account(&p, id).0, None);
        // 401 from the queue is not a 404: the queue stays in use.
        wait_for(
            "a second tick that tries the queue again",
            Duration::from_secs(15),
            || mgmt.count("/v0/management/usage-queue") >= 2,
        );
        let logs = p.logs();
        assert!(
            !logs.contains("invalid management key"),
            "error bodies are never logged"
        );
    }
}

both_shells! {
    fn quota_endpoints_answer_from_stored_snapshots(shell: Shell) {
        let mgmt = FakeManagement::start(KEY);
        let auth = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(auth.path().join(name), text).unwrap();
        write(
            "a-gemini.json",
            r#"{"type":"gemini","email":"g@example.com","access_token":"tok-gem-SECRET"}"#,
        );
        write(
            "b-claude.json",
            r#"{"type":"claude","email":"c@example.com"}"#,
        );
        write(
            "c-broken.json",
            r#"{"type":"codex","access_token":"tok-broken-SECRET""#,
        );
        write(
            "d-codex.json",
            r#"{"type":"codex","email":"x@example.com","access_token":"tok-cx-SECRET","disabled":true}"#,
        );
        write("notes.txt", "ignored");
        let dir = auth.path().to_str().unwrap().to_owned();
        let p = start(shell, &mgmt, &[("CLIPROXY_AUTH_DIR", dir.as_str())]);

        let now = wall_ms();
        {
            let c = db(&p);
            let mut ins = c
                .prepare(
                    "INSERT INTO quota_snapshots (timestamp, provider, account, quota_type, model,
                       used_pct, remaining, remaining_raw, resets_at, raw_json)
                     VALUES (?1, 'claude', 'c@example.com', ?2, NULL, ?3, 100 - ?3, NULL, NULL, '{}')",
                )
                .unwrap();
            ins.execute(params![iso(now - 20 * 60_000), "5h", 10.0])
                .unwrap();
            ins.execute(params![iso(now - 10 * 60_000), "5h", 30.0])
                .unwrap();
            ins.execute(params![iso(now - 10 * 60_000), "week", 5.0])
                .unwrap();
            ins.execute(params![iso(now - 9 * 86_400_000), "5h", 99.0])
                .unwrap();
        }
        let (status, latest) = get_json(&p, "/admin/quotas");
        assert_eq!(status, 200);
        let snaps: Vec<(String, f64)> = latest["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["quota_type"].as_str().unwrap().to_owned(),
                    s["used_pct"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(snaps, vec![("5h".into(), 30.0), ("week".into(), 5.0)]);

        let (_, history) = get_json(&p, "/admin/quotas/history?hours=1&provider=claude");
        let buckets = history["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 13, "1 h in 300 s buckets");
        let filled: usize = buckets
            .iter()
            .map(|b| b["snapshots"].as_array().unwrap().len())
            .sum();
        assert_eq!(filled, 3);

        let (_, probes) = get_json(&p, "/admin/quotas/probes");
        assert_eq!(
            probes,
            serde_json::json!({"probes": ["claude", "codex", "kimi"]})
        );

        let (status, refresh) = get_json(&p, "/admin/quotas/refresh");
        assert_eq!(status, 200, "{refresh}");
        assert_eq!(refresh["inserted"], 0);
        let accounts = refresh["accounts"].as_array().unwrap();
        let summary: Vec<(&str, &str, &str)> = accounts
            .iter()
            .map(|a| {
                (
                    a["provider"].as_str().unwrap(),
                    a["account"].as_str().unwrap(),
                    a["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("gemini", "g@example.com", "unsupported"),
                ("claude", "c@example.com", "error"),
                ("codex", "x@example.com", "disabled"),
            ]
        );
        assert_eq!(accounts[1]["error"], "missing access_token");
        assert_eq!(accounts[1]["local_usage"]["five_hour"]["requests"], 0);
        assert!(has_log(&p, "failed to read auth file"));
        assert!(
            p.log_events()
                .iter()
                .any(|e| e["msg"] == "failed to read auth file" && e["name"] == "c-broken.json")
        );
        let (_, again) = get_json(&p, "/admin/quotas?refresh=true");
        assert_eq!(again["accounts"].as_array().unwrap().len(), 3);
        assert!(
            loop_health(&p, "quota-refresh").is_some(),
            "quota-refresh runs with auth files"
        );
        assert!(!p.logs().contains("SECRET"), "tokens are never logged");
    }
}
