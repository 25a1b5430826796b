//! Tests of the harness itself, without the proxy: the fake upstream's API shapes and
//! ledger, stalls and resets, the raw and SSE clients, the fault proxy, the process
//! re-exec scheme and the both-shells macro.

use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::client::{
    BodyEnd, RawConn, SlowReader, SseRequest, build_request, raw_exchange, request,
};
use agent_cli_proxy_tests::support::fault::{FaultOptions, FaultProxy};
use agent_cli_proxy_tests::support::ledger::{Api, Kind};
use agent_cli_proxy_tests::support::proc::{ProxyOptions, ProxyProcess, exit_code_number};
use agent_cli_proxy_tests::support::sha256_hex;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::{FakeUpstream, UpstreamOptions};
use serde_json::json;

agent_cli_proxy_tests::child_entry!();

const ANTHROPIC_BODY: &[u8] = br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;

#[tokio::test]
async fn anthropic_sse_has_cumulative_usage_and_is_in_the_ledger() {
    let upstream = FakeUpstream::start();
    let usage = r#"{"input_tokens":2000,"cache_read_input_tokens":50000,"cache_creation_input_tokens":10000,"output_tokens":812}"#;
    let out = SseRequest::post(upstream.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-request-id", "req-a1")
        .header("x-fake-usage", usage)
        .header("x-fake-events", "4")
        .send()
        .await
        .expect("response");

    assert_eq!(out.status, 200);
    assert_eq!(out.header("content-type"), Some("text/event-stream"));
    assert_eq!(out.end, BodyEnd::Clean);
    assert!(out.terminal_seen);
    let names: Vec<&str> = out
        .events
        .iter()
        .filter_map(|e| e.event.as_deref())
        .collect();
    assert_eq!(names.len(), 4 + 5);
    assert_eq!(names[0], "message_start");
    assert_eq!(names[names.len() - 2], "message_delta");
    assert_eq!(names[names.len() - 1], "message_stop");
    let start = out.events[0].json().expect("json");
    assert_eq!(start["message"]["usage"]["output_tokens"], 1);
    assert_eq!(start["message"]["usage"]["input_tokens"], 2000);
    let delta = out.events[out.events.len() - 2].json().expect("json");
    assert_eq!(delta["usage"]["output_tokens"], 812);

    let entries = upstream.ledger().by_request_id("req-a1");
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(
        (entry.method.as_str(), entry.path()),
        ("POST", "/v1/messages")
    );
    assert_eq!(entry.api, Api::Anthropic);
    assert_eq!(entry.kind, Kind::Sse);
    assert_eq!(entry.body_sha256, sha256_hex(ANTHROPIC_BODY));
    assert_eq!(entry.usage.as_ref().expect("usage")["output_tokens"], 812);
    assert!(entry.progress.head_sent && entry.progress.terminal_sent && entry.progress.usage_sent);
    assert_eq!(entry.progress.events_sent, 9);
    assert_eq!(entry.progress.body_bytes_sent, out.body.len() as u64);
    assert_eq!(upstream.ledger().connections(), 1);
}

#[tokio::test]
async fn chat_sse_sends_the_usage_chunk_only_when_asked() {
    let upstream = FakeUpstream::start();
    let with = br#"{"model":"gpt-5","stream":true,"stream_options":{"include_usage":true}}"#;
    let out = SseRequest::post(upstream.addr(), "/v1/chat/completions", with)
        .send()
        .await
        .expect("response");
    assert!(out.terminal_seen);
    assert_eq!(out.events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let usage_chunk = out.events[out.events.len() - 2].json().expect("json");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 1000);
    assert_eq!(usage_chunk["model"], "gpt-5");

    let without = br#"{"model":"gpt-5","stream":true}"#;
    let out = SseRequest::post(upstream.addr(), "/v1/chat/completions", without)
        .send()
        .await
        .expect("response");
    assert!(out.terminal_seen);
    assert!(
        out.events
            .iter()
            .filter_map(|e| e.json())
            .all(|v| v.get("usage").is_none())
    );
    let entries = upstream.ledger().entries();
    assert!(entries[0].usage.is_some() && entries[0].progress.usage_sent);
    assert!(entries[1].usage.is_none());
}

#[tokio::test]
async fn responses_sse_and_ollama_ndjson_end_with_their_terminal_events() {
    let upstream = FakeUpstream::start();
    let out = SseRequest::post(
        upstream.addr(),
        "/v1/responses",
        br#"{"model":"gpt-5","stream":true}"#,
    )
    .send()
    .await
    .expect("response");
    let last = out.events.last().expect("events");
    assert_eq!(last.event.as_deref(), Some("response.completed"));
    assert_eq!(
        last.json().expect("json")["response"]["usage"]["input_tokens"],
        1000
    );
    assert!(out.terminal_seen);

    let out = SseRequest::post(
        upstream.addr(),
        "/api/chat",
        br#"{"model":"llama3.2","messages":[]}"#,
    )
    .header("x-fake-usage", r#"{"prompt_eval_count":7,"eval_count":9}"#)
    .send()
    .await
    .expect("response");
    assert_eq!(out.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(out.events.len(), 4);
    let done = out.events.last().expect("events").json().expect("json");
    assert_eq!(
        (done["done"].clone(), done["eval_count"].clone()),
        (json!(true), json!(9))
    );
    assert!(out.terminal_seen);
    assert_eq!(upstream.ledger().get(1).expect("entry").kind, Kind::Ndjson);
}

#[tokio::test]
async fn plain_json_bodies_follow_each_api_and_health_answers() {
    let upstream = FakeUpstream::start();
    let cases = [
        ("/v1/messages", "type", json!("message")),
        ("/v1/chat/completions", "object", json!("chat.completion")),
        ("/v1/responses", "object", json!("response")),
        ("/api/generate", "done", json!(true)),
        ("/v1/models", "ok", json!(true)),
        ("/health", "status", json!("ok")),
    ];
    for (path, field, value) in cases {
        let body = br#"{"model":"m-1","stream":false}"#;
        let res = request(
            upstream.addr(),
            "POST",
            path,
            &[("x-fake-model", "m-2")],
            body,
        )
        .await
        .expect("response");
        assert_eq!(res.status, 200, "{path}");
        let json = res.json().expect("json body");
        assert_eq!(json[field], value, "{path}: {json}");
        if path.starts_with("/v1/messages") || path.starts_with("/v1/chat") {
            assert_eq!(json["model"], "m-2", "{path}");
        }
    }
    let head = request(upstream.addr(), "HEAD", "/health", &[], b"")
        .await
        .expect("response");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(upstream.ledger().len(), 7);
}

#[tokio::test]
async fn status_redirect_and_extra_headers_are_scripted() {
    let upstream = FakeUpstream::start();
    let res = request(
        upstream.addr(),
        "POST",
        "/v1/messages",
        &[
            ("x-fake-status", "429"),
            ("x-fake-retry-after", "7"),
            ("x-fake-header", "anthropic-ratelimit-requests-remaining: 0"),
            ("x-fake-header", "x-leak: 1"),
        ],
        b"{}",
    )
    .await
    .expect("response");
    assert_eq!(res.status, 429);
    assert_eq!(res.header("retry-after"), Some("7"));
    assert_eq!(
        res.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    assert_eq!(res.header("x-leak"), Some("1"));
    assert_eq!(res.json().expect("json")["type"], "error");

    let res = request(
        upstream.addr(),
        "GET",
        "/v1/models",
        &[("x-fake-redirect", "http://127.0.0.1:9/elsewhere")],
        b"",
    )
    .await
    .expect("response");
    assert_eq!(res.status, 302);
    assert_eq!(res.header("location"), Some("http://127.0.0.1:9/elsewhere"));
}

#[tokio::test]
async fn stall_before_head_holds_until_the_client_leaves() {
    let upstream = FakeUpstream::start();
    let started = Instant::now();
    let res = SseRequest::post(upstream.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-fake-stall", "before-head")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    let err = res.expect_err("no head must arrive");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let ledger = upstream.ledger();
    let closed = ledger
        .wait_until_async(Duration::from_secs(2), |e| e[0].progress.peer_closed)
        .await;
    assert!(closed, "the upstream notices the client closing");
    let entry = ledger.get(0).expect("entry");
    assert!(!entry.progress.head_sent);
    assert!(entry.progress.peer_closed_after.expect("time") >= Duration::from_millis(250));
}

#[tokio::test]
async fn stall_after_events_sends_exactly_those_events() {
    let upstream = FakeUpstream::start();
    let out = SseRequest::post(upstream.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-fake-stall", "after-events:2")
        .timeout(Duration::from_millis(400))
        .send()
        .await
        .expect("head arrives");
    assert_eq!(out.end, BodyEnd::TimedOut);
    assert_eq!(out.events.len(), 2);
    assert!(!out.terminal_seen);
    let entry = upstream.ledger().get(0).expect("entry");
    assert_eq!(entry.progress.events_sent, 2);
    assert!(!entry.progress.terminal_sent && !entry.progress.finished);

    let out = SseRequest::post(upstream.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-fake-stall", "before-body")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect("head arrives");
    assert_eq!((out.status, out.events.len()), (200, 0));
    assert_eq!(out.end, BodyEnd::TimedOut);
}

#[tokio::test]
async fn reset_after_events_is_seen_as_a_cut_body() {
    let upstream = FakeUpstream::start();
    let out = SseRequest::post(upstream.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-fake-reset-after", "3")
        .send()
        .await
        .expect("head arrives");
    assert_eq!(out.end, BodyEnd::Cut);
    assert!(out.error.is_some());
    assert_eq!(out.events.len(), 3);
    assert!(!out.terminal_seen);
    let entry = upstream.ledger().get(0).expect("entry");
    assert!(entry.progress.reset);
    assert_eq!(entry.progress.events_sent, 3);

    // A reset before any event: the raw client sees the head, then a reset.
    let wire = build_request(
        upstream.addr(),
        "POST",
        "/v1/messages",
        &[("x-fake-reset-after", "0")],
        ANTHROPIC_BODY,
    );
    let raw = raw_exchange(upstream.addr(), &wire, Duration::from_secs(2))
        .await
        .expect("connect");
    assert!(raw.closed && raw.reset, "zero-linger close is a reset");
    assert!(raw.bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[tokio::test]
async fn declared_content_length_longer_than_the_body_is_a_cut() {
    let upstream = FakeUpstream::start();
    let out = SseRequest::post(upstream.addr(), "/v1/messages", br#"{"stream":false}"#)
        .header("x-fake-content-length", "100000")
        .send()
        .await
        .expect("head arrives");
    assert_eq!(out.header("content-length"), Some("100000"));
    assert_eq!(out.end, BodyEnd::Cut);
    assert!(!out.body.is_empty() && out.body.len() < 100_000);
}

#[tokio::test]
async fn chunked_writes_and_delays_keep_the_bytes_identical() {
    let upstream = FakeUpstream::start();
    let whole = SseRequest::post(upstream.addr(), "/v1/messages", ANTHROPIC_BODY)
        .send()
        .await
        .expect("response");
    let sliced = SseRequest::post(upstream.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-fake-chunk", "7")
        .header("x-fake-delay-ms", "40")
        .send()
        .await
        .expect("response");
    // The message id carries the ledger position; everything else is identical.
    let normalize = |b: &[u8]| String::from_utf8_lossy(b).replace("msg_fake_1", "msg_fake_0");
    assert_eq!(normalize(&whole.body), normalize(&sliced.body));
    assert_eq!(sliced.end, BodyEnd::Clean);
    let gaps = sliced.inter_event();
    assert_eq!(gaps.count(), sliced.events.len() as u64 - 1);
    // A starved test thread can read several events at once, so bound the last arrival
    // (measured from the send, which precedes every scripted pause) instead of each gap.
    let span = sliced.events.last().expect("events").at;
    let scripted = Duration::from_millis(40) * (sliced.events.len() as u32 - 1);
    assert!(
        span >= scripted,
        "span {span:?} < scripted delays {scripted:?}"
    );
}

#[tokio::test]
async fn raw_client_pipelines_and_the_upstream_decodes_chunked_bodies() {
    let upstream = FakeUpstream::start();
    let addr = upstream.addr();
    let mut wire = Vec::new();
    wire.extend(build_request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
        ],
        b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
    ));
    wire.extend(build_request(addr, "GET", "/health", &[], b""));
    let mut conn = RawConn::connect(addr).await.expect("connect");
    conn.send(&wire).await.expect("send");
    let raw = conn.read_until_close(Duration::from_secs(5)).await;
    assert!(raw.closed);
    assert_eq!(raw.statuses(), vec![200, 200]);
    let entries = upstream.ledger().entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].body, br#"{"a":1}"#);
    assert_eq!(
        entries[0].conn, entries[1].conn,
        "one connection, kept alive"
    );
}

#[tokio::test]
async fn header_rules_and_bad_script_values_become_violations() {
    let options = UpstreamOptions {
        expect_headers: vec!["authorization".into()],
        forbid_headers: vec!["x-api-key".into()],
        ..UpstreamOptions::default()
    };
    let upstream = FakeUpstream::try_start(options).expect("start");
    let res = request(
        upstream.addr(),
        "POST",
        "/v1/messages",
        &[("x-api-key", "k"), ("x-fake-events", "many")],
        b"{}",
    )
    .await
    .expect("response");
    assert_eq!(res.status, 200);
    let violations = upstream.ledger().violations();
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert!(
        violations
            .iter()
            .any(|v| v.contains("authorization is missing"))
    );
    assert!(
        violations
            .iter()
            .any(|v| v.contains("x-api-key is present"))
    );
    assert!(violations.iter().any(|v| v.contains("x-fake-events")));
}

#[tokio::test]
async fn fixtures_are_served_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("anthropic")).expect("mkdir");
    let bytes = b"event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\nevent: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";
    std::fs::write(dir.path().join("anthropic/crlf.sse"), bytes).expect("write");
    let options = UpstreamOptions {
        fixtures_dir: dir.path().to_path_buf(),
        ..UpstreamOptions::default()
    };
    let upstream = FakeUpstream::try_start(options).expect("start");
    let out = SseRequest::post(upstream.addr(), "/v1/messages", b"{}")
        .header("x-fake-fixture", "anthropic/crlf")
        .header("x-fake-chunk", "5")
        .send()
        .await
        .expect("response");
    assert_eq!(out.body_sha256, sha256_hex(bytes));
    assert_eq!(out.events.len(), 2);
    assert!(out.terminal_seen);
    assert_eq!(
        upstream
            .ledger()
            .get(0)
            .expect("entry")
            .progress
            .events_sent,
        2
    );

    let missing = request(
        upstream.addr(),
        "POST",
        "/v1/messages",
        &[("x-fake-fixture", "../etc/passwd")],
        b"{}",
    )
    .await
    .expect("response");
    assert_eq!(missing.status, 500);
}

#[tokio::test]
async fn sse_client_detects_truncation_when_the_upstream_dies_mid_stream() {
    let upstream = FakeUpstream::start();
    let addr = upstream.addr();
    let pending = tokio::spawn(
        SseRequest::post(addr, "/v1/messages", ANTHROPIC_BODY)
            .header("x-fake-stall", "after-events:1")
            .send(),
    );
    let ledger = upstream.ledger().clone();
    assert!(
        ledger
            .wait_until_async(Duration::from_secs(2), |e| !e.is_empty()
                && e[0].progress.events_sent == 1)
            .await
    );
    drop(upstream);
    let out = pending.await.expect("join").expect("head arrived");
    assert_eq!(out.end, BodyEnd::Cut);
    assert_eq!(out.events.len(), 1);
}

#[tokio::test]
async fn fault_proxy_forwards_slices_and_delays() {
    let upstream = FakeUpstream::start();
    let seed = agent_cli_proxy_tests::support::seed("fault_proxy_forwards_slices_and_delays");
    let direct = SseRequest::post(upstream.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-fake-model", "m")
        .send()
        .await
        .expect("direct");
    let fault = FaultProxy::start(
        upstream.addr(),
        FaultOptions {
            slicer: Some(3),
            latency: Duration::from_millis(50),
            seed,
            ..FaultOptions::default()
        },
    );
    let started = Instant::now();
    let via = SseRequest::post(fault.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-fake-model", "m")
        .send()
        .await
        .expect("through the fault proxy");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "latency both ways"
    );
    let normalize = |b: &[u8]| String::from_utf8_lossy(b).replace("msg_fake_1", "msg_fake_0");
    assert_eq!(normalize(&direct.body), normalize(&via.body));
    assert_eq!(via.end, BodyEnd::Clean);
    assert_eq!(fault.connections(), 1);
    assert!(fault.bytes_down() > via.body.len() as u64);
    assert_eq!(upstream.ledger().len(), 2);
}

#[tokio::test]
async fn fault_proxy_limits_resets_and_black_holes() {
    let upstream = FakeUpstream::start();
    let fault = FaultProxy::start(
        upstream.addr(),
        FaultOptions {
            limit_data: Some(300),
            ..FaultOptions::default()
        },
    );
    let out = SseRequest::post(fault.addr(), "/v1/messages", ANTHROPIC_BODY)
        .send()
        .await
        .expect("head fits in 300 bytes");
    assert_eq!(out.end, BodyEnd::Cut);
    assert_eq!(fault.bytes_down(), 300);

    fault.set_options(FaultOptions {
        reset_peer: Some(Duration::from_millis(100)),
        ..FaultOptions::default()
    });
    let out = SseRequest::post(fault.addr(), "/v1/messages", ANTHROPIC_BODY)
        .header("x-fake-stall", "after-events:1")
        .send()
        .await
        .expect("head arrives before the reset");
    assert_eq!(out.end, BodyEnd::Cut);

    fault.set_options(FaultOptions {
        timeout: Some(Duration::ZERO),
        ..FaultOptions::default()
    });
    let res = SseRequest::post(fault.addr(), "/v1/messages", ANTHROPIC_BODY)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert_eq!(
        res.expect_err("nothing passes").kind(),
        std::io::ErrorKind::TimedOut
    );
    assert_eq!(fault.connections(), 3);
}

#[tokio::test]
async fn slow_reader_makes_the_upstream_wait() {
    let upstream = FakeUpstream::start();
    let wire = build_request(
        upstream.addr(),
        "POST",
        "/v1/chat/completions",
        &[("x-fake-events", "200"), ("x-fake-pad", "65536")],
        br#"{"stream":true}"#,
    );
    let reader = SlowReader::start(upstream.addr(), 4096, &wire)
        .await
        .expect("connect");
    let started = upstream
        .ledger()
        .wait_until_async(Duration::from_secs(10), |e| {
            e.first().is_some_and(|e| e.progress.head_sent)
        })
        .await;
    assert!(started, "the upstream starts answering");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let entry = upstream.ledger().get(0).expect("entry");
    assert!(entry.progress.head_sent);
    assert!(
        !entry.progress.finished && entry.progress.body_bytes_sent < 200 * 65536,
        "backpressure stops the writer at {} bytes",
        entry.progress.body_bytes_sent
    );
    let raw = reader.drain(Duration::from_secs(30)).await;
    assert!(raw.closed);
    assert!(raw.bytes.len() > 200 * 65536);
    assert!(upstream.ledger().get(0).expect("entry").progress.finished);
}

#[test]
fn exit_codes_map_back_to_numbers() {
    use std::process::ExitCode;
    assert_eq!(exit_code_number(ExitCode::SUCCESS), 0);
    assert_eq!(exit_code_number(ExitCode::FAILURE), 1);
    assert_eq!(exit_code_number(ExitCode::from(143)), 143);
}

both_shells! {
    fn both_shells_expands_into_named_tests(shell: Shell) {
        let name = std::thread::current().name().map(str::to_owned).unwrap_or_default();
        assert!(name.ends_with(&format!("both_shells_expands_into_named_tests_{shell}")), "{name}");
    }

    async fn both_shells_runs_async_cases(shell: Shell) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(Shell::parse(shell.as_str()), Some(shell));
    }
}

both_shells! {
    /// The re-exec scheme end to end: the child runs `child_entry`, which runs the shell.
    /// Until the shells are wired it reports `shell not built` and exits 1.
    fn proxy_child_is_the_reexecuted_test_binary(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let options = ProxyOptions::new(shell).env(&[("CLI_PROXY_API_URL", url.as_str())]);
        match ProxyProcess::try_start(options) {
            Ok(mut proxy) => {
                let res = agent_cli_proxy_tests::support::client::request_blocking(
                    proxy.addr(), "GET", "/health", &[], b"",
                )
                .expect("health");
                assert_eq!(res.status, 200);
                proxy.sigterm();
                assert_eq!(proxy.wait_exit(), 143, "logs:\n{}", proxy.logs());
                assert!(proxy.db_path().exists());
            }
            Err(err) => {
                let text = err.to_string();
                assert!(text.contains(&format!("shell not built: {shell}")), "{text}");
                assert!(text.contains("exited with exit status: 1"), "{text}");
            }
        }
    }
}

#[tokio::test]
async fn ledger_reconciliation_finds_missing_duplicate_and_pending_rows() {
    use agent_cli_proxy_tests::support::ledger::check_rows_against_ledger;
    let upstream = FakeUpstream::start();
    for id in ["r1", "r2", "r3", "r3"] {
        request(
            upstream.addr(),
            "POST",
            "/v1/messages",
            &[("x-request-id", id)],
            b"{}",
        )
        .await
        .expect("response");
    }
    let db = rusqlite::Connection::open_in_memory().expect("db");
    db.execute_batch(
        "CREATE TABLE request_logs (id INTEGER PRIMARY KEY, msg_id TEXT, lifecycle_status TEXT);
         INSERT INTO request_logs (msg_id, lifecycle_status) VALUES
           ('r1', 'completed'), ('r3', 'completed');",
    )
    .expect("schema");
    assert_eq!(
        check_rows_against_ledger(&db, upstream.ledger()),
        vec!["request r2: 0 rows instead of 1".to_owned()],
        "a retried request (r3 twice in the ledger) needs one row"
    );
    db.execute_batch(
        "INSERT INTO request_logs (msg_id, lifecycle_status) VALUES ('r2', 'pending'), ('r1', 'error');",
    )
    .expect("insert");
    assert_eq!(
        check_rows_against_ledger(&db, upstream.ledger()),
        vec![
            "1 rows are still pending".to_owned(),
            "request r1: 2 rows instead of 1".to_owned()
        ]
    );
}
