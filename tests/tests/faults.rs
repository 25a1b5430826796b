//! CI-12, transport and upstream-status faults not covered by `relay_and_rows.rs`:
//!
//! | Case | Requirement |
//! |---|---|
//! | slow reader, write stall | RQ-F9: backpressure bounds the proxy's RSS; the write stall closes both sides and the row is O12 |
//! | 5xx storm, breaker | RQ-F8 (open after 5, E15 without an upstream request, one probe among 50, probe success closes, failure re-opens, an aborted probe releases the slot) and RQ-F7 (429 is neutral) |
//! | retries and timeouts | RQ-F6 (GET 502 retried after `Retry-After`, POST not retried, short-circuit 503 not retried), RQ-F5 (GET to a refused port: 3 attempts, E16), RQ-F3 (connect timeout: E17, breaker failure) |
//! | client disconnects | RQ-F10 before the pre-log commit, before the head with no timer set, mid-stream with the upstream idle; never a breaker failure |
//!
//! Timing figures (breaker rejection latency, close times, RSS growth) are printed and gate
//! at 10 × their target (`reliability.md` §1); functional results always gate.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{
    canary, finish_with_canary, metric_sample, metrics_text,
};
use agent_cli_proxy_tests::support::client::{
    BodyEnd, Latency, SlowReader, SseOutcome, SseRequest, build_request, print_duration_figure,
    print_figure, request_blocking,
};
use agent_cli_proxy_tests::support::db::{self, final_row_async};
use agent_cli_proxy_tests::support::ledger::{Ledger, check_rows_against_ledger};
use agent_cli_proxy_tests::support::memory::{kib_to_mib, rss_kib};
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::{FakeUpstream, UpstreamOptions};
use serde_json::{Value, json};

agent_cli_proxy_tests::child_entry!();

const STREAM: &[u8] = br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;
const PLAIN: &[u8] = br#"{"model":"claude-sonnet-4-5","messages":[]}"#;
const ROW_WAIT: Duration = Duration::from_secs(5);
const E15: &str = r#"{"error":{"code":"short-circuit","status":503,"providerId":"anthropic","retryable":false,"cause":"circuit breaker open"}}"#;

both_shells! {
    /// RQ-F9: a client with a 4 KiB receive buffer that never reads, while the upstream
    /// offers 100 MiB of SSE. Backpressure keeps the proxy's RSS growth small (target
    /// 2 MiB); with the write-stall limit at 2 000 ms both sides close at 2 000 ± 1 000 ms
    /// and the row is O12.
    async fn slow_reader_is_backpressured_then_closed_by_the_write_stall(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[("CLI_PROXY_API_URL", url.as_str()), ("ACP_TEST_LIMITS", "write_stall_ms=2000")],
        );
        let pid = proxy.pid().expect("pid");
        let addr = proxy.addr();
        tokio::task::spawn_blocking(move || canary(addr)).await.expect("join");
        let base = rss_kib(pid).expect("rss");

        // 2 000 content events of 50 000 filler bytes: about 100 MiB of SSE.
        let wire = build_request(
            addr,
            "POST",
            "/v1/messages",
            &[
                ("content-type", "application/json"),
                ("x-request-id", "slow-reader"),
                ("x-fake-events", "2000"),
                ("x-fake-pad", "50000"),
            ],
            STREAM,
        );
        let reader = SlowReader::start(addr, 4096, &wire).await.expect("connect");
        let ledger = upstream.ledger().clone();
        let watch = tokio::task::spawn_blocking(move || watch_stall(&ledger, pid, "slow-reader"))
            .await
            .expect("join");
        let growth = watch.peak_rss_kib.saturating_sub(base);
        let within = print_figure("CI-12-RQ-F9-rss-growth-MiB", shell, kib_to_mib(growth), 2.0);
        assert!(within, "RSS grew {growth} KiB while the client did not read");
        let Some(stall) = watch.closed_after_stall else {
            panic!("the upstream side is not closed: {:?}\n{}", upstream.ledger().by_request_id("slow-reader"), proxy.logs());
        };
        assert!(
            watch.bytes_sent < 50 * 1024 * 1024,
            "backpressure reached the upstream: {} bytes sent",
            watch.bytes_sent
        );
        assert!(stall >= Duration::from_millis(1_000), "not before the stall limit: {stall:?}");
        let within = print_duration_figure("CI-12-RQ-F9-stall-close", shell, stall, Duration::from_millis(3_000));
        assert!(within, "closed {stall:?} after the upstream stopped making progress");
        println!("{shell}: the upstream wrote {} of 100 MiB before the stall", watch.bytes_sent);

        let out = reader.drain(Duration::from_secs(10)).await;
        assert!(out.closed, "the client side is closed too");
        let row = final_row_async(&proxy.db_path(), "slow-reader", ROW_WAIT).await;
        assert_row(&row, "aborted", 499, "aborted", "client write stalled");
        finish_with_canary(proxy.addr()).await;
    }

    /// RQ-F8 and RQ-F7 on the `anthropic` breaker with a 1 500 ms half-open window.
    async fn server_error_storm_opens_the_breaker_and_one_probe_closes_it(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", url.as_str()),
                ("UPSTREAM_CIRCUIT_BREAKER_HALF_OPEN_AFTER_MS", "1500"),
            ],
        );
        let ledger = upstream.ledger();

        // 4 failures, then a 429 storm: neutral, so the 5th failure still opens the breaker
        // (a success would have reset the count, a failure would have opened it earlier).
        for (i, status) in ["500", "529", "500", "529"].into_iter().enumerate() {
            let out = post(&proxy, PLAIN, &format!("storm-{i}"), &[("x-fake-status", status)]).await;
            assert_eq!(out.status.to_string(), status);
        }
        for i in 0..10 {
            let out = post(&proxy, PLAIN, &format!("r429-{i}"), &[("x-fake-status", "429"), ("x-fake-retry-after", "3")]).await;
            assert_eq!(out.status, 429, "429 is relayed while the breaker counts 4 failures");
            assert_eq!(out.header("retry-after"), Some("3"));
        }
        assert_eq!(breaker(&proxy).await["state"], "closed");
        let out = post(&proxy, PLAIN, "storm-4", &[("x-fake-status", "500")]).await;
        assert_eq!(out.status, 500);
        assert_eq!(breaker(&proxy).await["state"], "open");
        assert_eq!(ledger.len(), 15, "every request so far reached the upstream once");

        let connections = ledger.connections();
        let mut latency = Latency::new();
        for i in 0..20 {
            let started = Instant::now();
            let out = post(&proxy, PLAIN, &format!("rejected-{i}"), &[]).await;
            latency.record(started.elapsed());
            assert_e15(&out, 1..=2);
        }
        assert_eq!(ledger.len(), 15, "a rejection makes no upstream request");
        assert_eq!(ledger.connections(), connections, "nor an upstream connection");
        let within = print_duration_figure("CI-12-RQ-F8-rejection-p99", shell, latency.p99(), Duration::from_millis(5));
        assert!(within, "breaker rejection p99 {:?}", latency.p99());
        let row = final_row_async(&proxy.db_path(), "rejected-0", ROW_WAIT).await;
        assert_row(&row, "error", 503, "upstream_error", &format!("upstream HTTP 503: {E15}"));

        // Half-open: 50 concurrent requests, exactly one probe reaches the upstream.
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        let probes: Vec<_> = (0..50)
            .map(|i| {
                SseRequest::post(proxy.addr(), "/v1/messages", STREAM)
                    .header("x-request-id", &format!("half-open-{i}"))
                    .header("x-fake-delay-ms", "300")
                    .send()
            })
            .map(tokio::spawn)
            .collect();
        let mut admitted = 0;
        for probe in probes {
            let out = probe.await.expect("join").expect("response");
            match out.status {
                200 => {
                    admitted += 1;
                    assert!(out.terminal_seen && out.end == BodyEnd::Clean);
                }
                _ => assert_e15(&out, 1..=1),
            }
        }
        assert_eq!(admitted, 1, "one probe");
        assert_eq!(ledger.len(), 16, "exactly one upstream request in the half-open state");
        assert_eq!(breaker(&proxy).await["state"], "closed", "the probe's success closes");
        assert_eq!(post(&proxy, PLAIN, "after-close", &[]).await.status, 200);

        // Re-open, then a failing probe re-opens at once.
        for i in 0..5 {
            assert_eq!(post(&proxy, PLAIN, &format!("again-{i}"), &[("x-fake-status", "503")]).await.status, 503);
        }
        assert_e15(&post(&proxy, PLAIN, "again-rejected", &[]).await, 1..=2);
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        assert_eq!(post(&proxy, PLAIN, "probe-fails", &[("x-fake-status", "500")]).await.status, 500);
        let before = ledger.len();
        assert_e15(&post(&proxy, PLAIN, "after-failed-probe", &[]).await, 1..=2);
        assert_eq!(ledger.len(), before, "re-opened: no upstream request");

        // A probe whose client disconnects releases the slot: the next request is admitted.
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        let gone = SseRequest::post(proxy.addr(), "/v1/messages", PLAIN)
            .header("x-request-id", "probe-abandoned")
            .header("x-fake-stall", "before-head")
            .abort_after(Duration::from_millis(300))
            .send()
            .await;
        assert!(gone.is_err(), "the abandoned probe got no head");
        let row = final_row_async(&proxy.db_path(), "probe-abandoned", ROW_WAIT).await;
        assert_row(&row, "aborted", 499, "aborted", "request aborted");
        assert_eq!(breaker(&proxy).await["state"], "half-open", "a neutral probe leaves it half-open");
        let out = post(&proxy, PLAIN, "next-probe", &[]).await;
        assert_eq!(out.status, 200, "the released slot admits the next probe");
        assert_eq!(breaker(&proxy).await["state"], "closed");
        let rejections = tokio::task::spawn_blocking({
            let addr = proxy.addr();
            move || metrics_text(addr)
        })
        .await
        .expect("join");
        let counted = metric_sample(&rejections, r#"agent_cli_proxy_breaker_rejections_total{provider="anthropic"}"#);
        assert_eq!(counted, Some(20.0 + 49.0 + 2.0), "{rejections}");
        assert_eq!(ledger.violations(), Vec::<String>::new());
        finish_with_canary(proxy.addr()).await;
    }

    /// RQ-F6, RQ-F5 (GET) and RQ-F3 (connect timeout).
    async fn retries_and_connect_timeout_follow_the_policy(shell: Shell) {
        let fixtures = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            fixtures.path().join("short_circuit.json"),
            br#"{"error":{"code":"short-circuit","message":"cooling down"}}"#,
        )
        .expect("fixture");
        let upstream = FakeUpstream::try_start(UpstreamOptions {
            fixtures_dir: fixtures.path().to_path_buf(),
            ..UpstreamOptions::default()
        })
        .expect("upstream");
        let url = upstream.url();
        let providers = r#"{"providers":[{"id":"deadprov","type":"openai-compatible","paths":["/v1/dead/models"],"upstreamBaseUrl":"http://127.0.0.1:1"}]}"#;
        let proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", url.as_str()),
                ("PROVIDERS_JSON", providers),
                ("UPSTREAM_CONNECT_TIMEOUT_MS", "1000"),
            ],
        );
        let ledger = upstream.ledger();

        let out = get(&proxy, "/v1/models", "get-502", &[("x-fake-fail-first", "502"), ("x-fake-retry-after", "1")]).await;
        assert_eq!(out.status, 200, "the client sees one clean response: {} {:?} logs:\n{}", String::from_utf8_lossy(&out.body), ledger.by_request_id("get-502").iter().map(|e| (e.status, e.target.clone())).collect::<Vec<_>>(), proxy.logs());
        assert_eq!(out.end, BodyEnd::Clean);
        let attempts = ledger.by_request_id("get-502");
        assert_eq!(attempts.iter().map(|e| e.status).collect::<Vec<_>>(), vec![502, 200]);
        let gap = attempts[1].received_at - attempts[0].received_at;
        assert!(gap >= Duration::from_millis(1_000), "Retry-After: 1 waits at least 1 s: {gap:?}");

        let out = post(&proxy, PLAIN, "post-502", &[("x-fake-fail-first", "502")]).await;
        assert_eq!(out.status, 502, "POST is not retried");
        assert_eq!(ledger.by_request_id("post-502").len(), 1);

        let out = get(&proxy, "/v1/models", "get-short-circuit", &[("x-fake-fixture", "short_circuit.json"), ("x-fake-status", "503")]).await;
        assert_eq!(out.status, 503);
        assert_eq!(out.body, br#"{"error":{"code":"short-circuit","message":"cooling down"}}"#, "relayed as is");
        assert_eq!(ledger.by_request_id("get-short-circuit").len(), 1, "short-circuit 503 is never retried");

        let started = Instant::now();
        let out = get(&proxy, "/v1/dead/models", "get-refused", &[]).await;
        let took = started.elapsed();
        assert_eq!(out.status, 503, "{}", String::from_utf8_lossy(&out.body));
        let body: Value = serde_json::from_slice(&out.body).expect("E16");
        assert_eq!((body["error"]["code"].clone(), body["error"]["retryable"].clone()), (json!("network"), json!(true)), "{body}");
        assert!(took >= Duration::from_millis(600), "backoffs of 200 and 400 ms at least: {took:?}");
        assert!(took < Duration::from_millis(1_000 + 5_000), "backoffs within their bounds: {took:?}");
        let metrics = tokio::task::spawn_blocking({
            let addr = proxy.addr();
            move || metrics_text(addr)
        })
        .await
        .expect("join");
        assert_eq!(
            metric_sample(&metrics, r#"agent_cli_proxy_upstream_retries_total{provider="deadprov"}"#),
            Some(2.0),
            "3 attempts: {metrics}"
        );

        let failures_before = breaker(&proxy).await["failures"].as_i64().expect("failures");
        let started = Instant::now();
        let out = post(&proxy, PLAIN, "connect-timeout", &[("x-fake-stall", "before-head")]).await;
        let took = started.elapsed();
        assert_eq!(out.status, 504, "{}", String::from_utf8_lossy(&out.body));
        let body: Value = serde_json::from_slice(&out.body).expect("E17");
        assert_eq!(body["error"]["code"], "aborted-due-to-timeout", "{body}");
        assert_eq!(body["error"]["cause"]["timeoutKind"], "connect", "{body}");
        assert!(took >= Duration::from_millis(800), "not before 1 000 - 200 ms: {took:?}");
        let within = print_duration_figure("CI-12-RQ-F3-connect-timeout", shell, took, Duration::from_millis(1_200));
        assert!(within, "E17 after {took:?}");
        let row = final_row_async(&proxy.db_path(), "connect-timeout", ROW_WAIT).await;
        assert_eq!((row["lifecycle_status"].clone(), row["status"].clone()), (json!("error"), json!(504)), "O7: {row}");
        let failures = breaker(&proxy).await["failures"].as_i64().expect("failures");
        assert_eq!(failures, failures_before + 1, "a timeout is a breaker failure");
        assert_upstream_closed(ledger, "connect-timeout").await;
        finish_with_canary(proxy.addr()).await;
    }

    /// RQ-F10 and the disconnect before the pre-log commit: every row ends `aborted`, no
    /// row stays pending, every upstream request has its row and is cancelled, and the
    /// breaker never counts a disconnect.
    async fn client_disconnects_abort_rows_and_never_trip_the_breaker(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let ledger = upstream.ledger();
        let db_path = proxy.db_path();

        // Before the pre-log commit: the request is sent and the socket reset at once.
        for i in 0..20 {
            let wire = build_request(
                proxy.addr(),
                "POST",
                "/v1/messages",
                &[("content-type", "application/json"), ("x-request-id", &format!("early-{i}")), ("x-fake-delay-ms", "500")],
                STREAM,
            );
            let stream = tokio::net::TcpStream::connect(proxy.addr()).await.expect("connect");
            let mut stream = stream;
            tokio::io::AsyncWriteExt::write_all(&mut stream, &wire).await.expect("write");
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).expect("linger");
            drop(stream);
        }

        // Before the head with no timer set: nothing fires until the client leaves.
        let out = SseRequest::post(proxy.addr(), "/v1/messages", STREAM)
            .header("x-request-id", "idle-before-body")
            .header("x-fake-stall", "before-body")
            .abort_after(Duration::from_millis(1_500))
            .send()
            .await;
        assert!(out.is_err(), "no head is written before the first body byte: {out:?}");
        let row = final_row_async(&db_path, "idle-before-body", ROW_WAIT).await;
        assert_row(&row, "aborted", 499, "aborted", "request aborted");

        // Mid-stream while the upstream is idle between events.
        let aborts: Vec<_> = (0..6)
            .map(|i| {
                SseRequest::post(proxy.addr(), "/v1/messages", STREAM)
                    .header("x-request-id", &format!("idle-mid-{i}"))
                    .header("x-fake-delay-ms", "3000")
                    .abort_after_events(1)
                    .send()
            })
            .map(tokio::spawn)
            .collect();
        let mut aborted_at = Vec::new();
        for abort in aborts {
            let out = abort.await.expect("join").expect("head");
            assert_eq!(out.end, BodyEnd::Aborted);
            aborted_at.push(Instant::now());
        }
        let mut slowest_row = Duration::ZERO;
        let mut slowest_upstream = Duration::ZERO;
        for (i, at) in aborted_at.iter().enumerate() {
            let id = format!("idle-mid-{i}");
            let row = final_row_async(&db_path, &id, ROW_WAIT).await;
            slowest_row = slowest_row.max(at.elapsed());
            assert_row(&row, "aborted", 499, "aborted", "client aborted stream");
            assert_upstream_closed(ledger, &id).await;
            slowest_upstream = slowest_upstream.max(at.elapsed());
        }
        let target = Duration::from_millis(1_000);
        assert!(print_duration_figure("CI-12-RQ-F10-row-aborted", shell, slowest_row, target));
        assert!(print_duration_figure("CI-12-RQ-F10-upstream-closed", shell, slowest_upstream, target));

        // The early resets: whatever reached the upstream has exactly one row, nothing
        // stays pending, and every row the proxy wrote is an abort.
        let (rows, settled) = db::wait_rows(
            &db_path,
            "SELECT msg_id, lifecycle_status, status FROM request_logs WHERE msg_id LIKE 'early-%'",
            &[],
            ROW_WAIT,
            |rows| rows.iter().all(|r| r["lifecycle_status"] != "pending"),
        );
        assert!(settled, "{rows:?}");
        for row in &rows {
            assert_eq!((row["lifecycle_status"].clone(), row["status"].clone()), (json!("aborted"), json!(499)), "{row}");
        }
        let problems = check_rows_against_ledger(&proxy.open_db_readonly(), ledger);
        assert!(problems.is_empty(), "{problems:?}");
        for entry in ledger.entries().iter().filter(|e| e.request_id.as_deref().is_some_and(|id| id.starts_with("early-"))) {
            assert_upstream_closed(ledger, entry.request_id.as_deref().unwrap_or("")).await;
        }
        println!(
            "{shell}: {} of 20 early resets reached the pre-log, {} reached the upstream",
            rows.len(),
            ledger.entries().iter().filter(|e| e.request_id.as_deref().is_some_and(|id| id.starts_with("early-"))).count()
        );

        let state = breaker(&proxy).await;
        assert_eq!((state["state"].clone(), state["failures"].clone()), (json!("closed"), json!(0)), "{state}");
        finish_with_canary(proxy.addr()).await;
    }
}

/// What [`watch_stall`] saw.
struct StallWatch {
    peak_rss_kib: u64,
    bytes_sent: u64,
    /// Time from the last progress of the upstream's writes to the close of its connection.
    closed_after_stall: Option<Duration>,
}

/// Samples the proxy's RSS and the upstream's progress on request `id` every 10 ms until
/// the proxy closes the upstream connection (or 20 s pass).
fn watch_stall(ledger: &Ledger, pid: u32, id: &str) -> StallWatch {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut watch = StallWatch {
        peak_rss_kib: 0,
        bytes_sent: 0,
        closed_after_stall: None,
    };
    let mut last_progress = Instant::now();
    while Instant::now() < deadline {
        watch.peak_rss_kib = watch.peak_rss_kib.max(rss_kib(pid).unwrap_or(0));
        if let Some(entry) = ledger.by_request_id(id).first() {
            if entry.progress.body_bytes_sent != watch.bytes_sent {
                watch.bytes_sent = entry.progress.body_bytes_sent;
                last_progress = Instant::now();
            }
            if entry.progress.peer_closed {
                watch.closed_after_stall = Some(last_progress.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    watch
}

async fn post(proxy: &ProxyProcess, body: &[u8], id: &str, headers: &[(&str, &str)]) -> SseOutcome {
    let mut request =
        SseRequest::post(proxy.addr(), "/v1/messages", body).header("x-request-id", id);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(out) => out,
        Err(err) => panic!("{id}: {err}; logs:\n{}", proxy.logs()),
    }
}

async fn get(proxy: &ProxyProcess, path: &str, id: &str, headers: &[(&str, &str)]) -> SseOutcome {
    let mut request = SseRequest::get(proxy.addr(), path).header("x-request-id", id);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(out) => out,
        Err(err) => panic!("{id}: {err}; logs:\n{}", proxy.logs()),
    }
}

/// The `anthropic` breaker snapshot from `GET /admin/breakers/anthropic`.
async fn breaker(proxy: &ProxyProcess) -> Value {
    let addr = proxy.addr();
    let res = tokio::task::spawn_blocking(move || {
        request_blocking(addr, "GET", "/admin/breakers/anthropic", &[], b"")
    })
    .await
    .expect("join")
    .expect("admin");
    assert_eq!(res.status, 200, "{}", res.text());
    res.json().expect("json")
}

fn assert_e15(out: &SseOutcome, retry_after: std::ops::RangeInclusive<u64>) {
    assert_eq!(out.status, 503, "{}", String::from_utf8_lossy(&out.body));
    assert_eq!(String::from_utf8_lossy(&out.body), E15);
    let value: u64 = out
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!(
        retry_after.contains(&value),
        "retry-after {value}, want {retry_after:?}"
    );
}

fn assert_row(row: &Value, lifecycle: &str, status: i64, error_code: &str, error_message: &str) {
    assert_eq!(row["lifecycle_status"], lifecycle, "{row}");
    assert_eq!(row["status"], status, "{row}");
    assert_eq!(row["error_code"], error_code, "{row}");
    assert_eq!(row["error_message"], error_message, "{row}");
}

async fn assert_upstream_closed(ledger: &Ledger, id: &str) {
    let closed = ledger
        .wait_until_async(Duration::from_millis(1_500), |e| {
            e.iter()
                .filter(|e| e.request_id.as_deref() == Some(id))
                .all(|e| e.progress.peer_closed || e.progress.finished)
        })
        .await;
    assert!(
        closed,
        "{id}: upstream request closed: {:?}",
        ledger.by_request_id(id)
    );
}
