//! CI-13 (outcomes part): the relay is byte-exact for every API and kind, the row of each
//! LLM call holds the exact token columns and cost of the worked examples, and every
//! failure of the upstream or the client ends in the outcome of `datapath.md` §14.4.
//!
//! The client bytes are compared with the golden fixture the fake upstream sent (SHA-256,
//! and the fixture's `.expect.json`), rows are found through `msg_id` = the `x-request-id`
//! the client sent, and the ledger shows what the upstream received.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{
    finish_with_canary, metric_sample, metrics_text, security_header_problems, wait_prices_loaded,
};
use agent_cli_proxy_tests::support::client::{BodyEnd, SseOutcome, SseRequest};
use agent_cli_proxy_tests::support::db::{self, final_row_async, meta};
use agent_cli_proxy_tests::support::ledger::Ledger;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use agent_cli_proxy_tests::support::{fixtures_dir, sha256_hex};
use serde_json::{Value, json};

agent_cli_proxy_tests::child_entry!();

const ROW_WAIT: Duration = Duration::from_secs(5);
/// Keeps the breaker closed while a case provokes many upstream failures on purpose.
const NO_BREAKER: (&str, &str) = ("UPSTREAM_CIRCUIT_BREAKER_OPEN_AFTER_FAILURES", "1000");

/// One golden fixture relayed through the proxy, with the row it must produce.
struct Golden {
    path: &'static str,
    fixture: &'static str,
    body: &'static str,
    /// `client_sha256_removed` instead of `client_sha256` (usage-chunk removal).
    removed: bool,
    /// A stream with a terminal event, whose bytes the proxy holds until the row commits.
    held: bool,
    provider: &'static str,
    model: &'static str,
    actual_model: &'static str,
    streamed: i64,
    convention: &'static str,
    /// prompt, completion, cache_read, cache_creation, cache_write_1h, reasoning, total.
    tokens: [i64; 7],
    cost_nanousd: i64,
}

const GOLDEN: [Golden; 8] = [
    Golden {
        path: "/v1/messages",
        fixture: "anthropic/w1_plain.json",
        body: r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[]}"#,
        held: false,
        removed: false,
        provider: "anthropic",
        model: "claude-sonnet-4-5",
        actual_model: "claude-sonnet-4-5",
        streamed: 0,
        convention: "anthropic",
        tokens: [1000, 500, 0, 0, 0, 0, 1500],
        cost_nanousd: 10_500_000,
    },
    Golden {
        path: "/v1/messages",
        fixture: "anthropic/w2_cumulative.sse",
        body: r#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#,
        held: true,
        removed: false,
        provider: "anthropic",
        model: "claude-sonnet-4-5",
        actual_model: "claude-sonnet-4-5-20250929",
        streamed: 1,
        convention: "anthropic",
        tokens: [2000, 812, 50_000, 10_000, 0, 0, 62_812],
        cost_nanousd: 70_680_000,
    },
    Golden {
        path: "/v1/messages",
        fixture: "anthropic/no_terminal.sse",
        body: r#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#,
        held: false,
        removed: false,
        provider: "anthropic",
        model: "claude-sonnet-4-5",
        actual_model: "claude-sonnet-4-5-20250929",
        streamed: 1,
        convention: "anthropic",
        tokens: [2000, 1, 50_000, 10_000, 0, 0, 62_001],
        cost_nanousd: 58_515_000,
    },
    Golden {
        path: "/v1/chat/completions",
        fixture: "openai_chat/plain.json",
        body: r#"{"model":"gpt-5","messages":[]}"#,
        held: false,
        removed: false,
        provider: "openai",
        model: "gpt-5",
        actual_model: "gpt-5-2025-08-07",
        streamed: 0,
        convention: "openai",
        tokens: [100, 20, 64, 0, 0, 0, 120],
        cost_nanousd: 253_000,
    },
    Golden {
        path: "/v1/chat/completions",
        fixture: "openai_chat/w5_include_usage.sse",
        body: r#"{"model":"gpt-5","stream":true,"messages":[]}"#,
        held: true,
        removed: true,
        provider: "openai",
        model: "gpt-5",
        actual_model: "gpt-5-2025-08-07",
        streamed: 1,
        convention: "openai",
        tokens: [12_000, 1500, 8000, 0, 0, 1024, 13_500],
        cost_nanousd: 21_000_000,
    },
    Golden {
        path: "/v1/responses",
        fixture: "responses/w6_completed.sse",
        body: r#"{"model":"gpt-5","stream":true,"input":"hi"}"#,
        held: true,
        removed: false,
        provider: "openai",
        model: "gpt-5",
        actual_model: "gpt-5",
        streamed: 1,
        convention: "openai",
        tokens: [30_000, 4000, 20_000, 0, 0, 3000, 34_000],
        cost_nanousd: 55_000_000,
    },
    Golden {
        path: "/v1/responses",
        fixture: "responses/plain.json",
        body: r#"{"model":"gpt-5","input":"hi"}"#,
        held: false,
        removed: false,
        provider: "openai",
        model: "gpt-5",
        actual_model: "gpt-5",
        streamed: 0,
        convention: "openai",
        tokens: [30_000, 4000, 20_000, 0, 0, 3000, 34_000],
        cost_nanousd: 55_000_000,
    },
    Golden {
        path: "/api/chat",
        fixture: "ollama/chat_stream.ndjson",
        body: r#"{"model":"llama3.2","messages":[]}"#,
        held: true,
        removed: false,
        provider: "generic",
        model: "llama3.2",
        actual_model: "llama3.2",
        streamed: 1,
        convention: "openai",
        tokens: [26, 290, 0, 0, 0, 0, 316],
        cost_nanousd: 0,
    },
];

const TOKEN_COLUMNS: [&str; 7] = [
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "total_tokens",
];

const ANTHROPIC_STREAM: &[u8] = br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;
const ANTHROPIC_PLAIN: &[u8] = br#"{"model":"claude-sonnet-4-5","messages":[]}"#;

both_shells! {
    /// RQ-H6 and the completed outcome O1 for the plain bodies of every API and a stream that
    /// ends without a terminal event: client bytes = fixture bytes, exact columns and cost.
    async fn golden_plain_bodies_relay_byte_exact_into_exact_rows(shell: Shell) {
        run_golden(shell, false, true).await;
    }

    /// O1 for the streams with a terminal event (Anthropic SSE, Chat SSE with usage
    /// injection, Responses SSE, Ollama NDJSON): exact columns and cost, `include_usage`
    /// injected upstream, the usage chunk kept from the client while its usage is accounted.
    async fn golden_streams_finalize_exact_rows(shell: Shell) {
        run_golden(shell, true, false).await;
    }

    /// RQ-H6 for the same streams: client bytes = fixture bytes minus the documented
    /// usage-chunk removal, the terminal held until the commit and then released.
    async fn golden_streams_relay_byte_exact(shell: Shell) {
        run_golden(shell, true, true).await;
    }

    /// Upstream statuses: 500 plain (O2 with snippet), 500 SSE (O3), 429 relayed with its
    /// headers and never retried, redirects (E20, O4), and a dead upstream (E16, O6) after
    /// the retries of a POST.
    async fn upstream_failures_become_error_rows(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let providers = r#"{"providers":[{"id":"deadprov","type":"anthropic","paths":["/v1/messages"],"upstreamBaseUrl":"http://127.0.0.1:1"}]}"#;
        let proxy = ProxyProcess::start(
            shell,
            &[("CLI_PROXY_API_URL", url.as_str()), ("PROVIDERS_JSON", providers), NO_BREAKER],
        );
        let db_path = proxy.db_path();
        let ledger = upstream.ledger();

        let out = post(&proxy, "/v1/messages", ANTHROPIC_PLAIN, "e-500", &[("x-fake-status", "500")]).await;
        assert_eq!(out.status, 500);
        let snippet = String::from_utf8_lossy(&out.body).trim().chars().take(300).collect::<String>();
        assert!(snippet.contains("fake upstream status 500"), "{snippet}");
        let row = final_row_async(&db_path, "e-500", ROW_WAIT).await;
        assert_row(&row, "error", 500, Some("upstream_error"), Some(&format!("upstream HTTP 500: {snippet}")));
        assert_eq!(ledger.by_request_id("e-500").len(), 1, "POST 500 is not retried");

        let out = post(&proxy, "/v1/messages", ANTHROPIC_STREAM, "e-500-sse", &[("x-fake-status", "500"), ("x-fake-kind", "sse")]).await;
        assert_eq!((out.status, out.end.clone()), (500, BodyEnd::Clean));
        let row = final_row_async(&db_path, "e-500-sse", ROW_WAIT).await;
        assert_row(&row, "error", 500, Some("upstream_error"), Some("upstream HTTP 500"));

        let out = post(
            &proxy,
            "/v1/messages",
            ANTHROPIC_PLAIN,
            "e-429",
            &[
                ("x-fake-status", "429"),
                ("x-fake-retry-after", "7"),
                ("x-fake-header", "anthropic-ratelimit-requests-remaining: 0"),
                ("x-fake-header", "request-id: req_up_1"),
            ],
        )
        .await;
        assert_eq!(out.status, 429);
        assert_eq!(out.header("retry-after"), Some("7"));
        assert_eq!(out.header("anthropic-ratelimit-requests-remaining"), Some("0"));
        assert_eq!(out.header("request-id"), Some("req_up_1"));
        let row = final_row_async(&db_path, "e-429", ROW_WAIT).await;
        assert_eq!((row["lifecycle_status"].clone(), row["status"].clone()), (json!("error"), json!(429)), "{row}");
        assert_eq!(ledger.by_request_id("e-429").len(), 1, "429 is never retried");

        for (id, status) in [("e-302", None), ("e-307", Some("307")), ("e-301", Some("301"))] {
            let mut headers = vec![("x-fake-redirect", "http://127.0.0.1:9/elsewhere")];
            headers.extend(status.map(|s| ("x-fake-status", s)));
            let out = post(&proxy, "/v1/messages", ANTHROPIC_PLAIN, id, &headers).await;
            assert_eq!(out.status, 502, "{id}");
            assert_eq!(out.body, br#"{"error":"Upstream redirect not followed"}"#, "{id}");
            assert!(out.header("location").is_none(), "{id}: no Location");
            let row = final_row_async(&db_path, id, ROW_WAIT).await;
            let code = status.unwrap_or("302");
            assert_row(&row, "error", 502, Some("bad_gateway"), Some(&format!("upstream redirect {code} not followed")));
        }

        let started = Instant::now();
        let out = post(&proxy, "/v1/messages", ANTHROPIC_PLAIN, "e-down", &[("x-provider", "deadprov")]).await;
        let took = started.elapsed();
        assert_eq!(out.status, 503, "{}", String::from_utf8_lossy(&out.body));
        let body: Value = serde_json::from_slice(&out.body).expect("E16 json");
        assert_eq!(body["error"]["code"], "network", "{body}");
        assert_eq!(body["error"]["status"], 503, "{body}");
        assert_eq!(body["error"]["providerId"], "deadprov", "{body}");
        assert_eq!(body["error"]["retryable"], true, "nothing was written: {body}");
        assert_eq!(body["error"]["cause"]["name"], "ConnectError", "{body}");
        assert!(took >= Duration::from_millis(600), "two backoffs of 200 and 400 ms: {took:?}");
        let row = final_row_async(&db_path, "e-down", ROW_WAIT).await;
        assert_row(&row, "error", 503, Some("upstream_error"), None);
        let message = row["error_message"].as_str().unwrap_or("");
        assert!(message.starts_with("upstream HTTP 503: {\"error\":{\"code\":\"network\""), "{message}");
        assert_eq!(row["provider"], "deadprov");
        assert_eq!(meta(&row)["attempts"], 3, "{row}");
        let metrics = tokio::task::spawn_blocking({
            let addr = proxy.addr();
            move || metrics_text(addr)
        })
        .await
        .expect("join");
        assert_eq!(
            metric_sample(&metrics, r#"agent_cli_proxy_upstream_retries_total{provider="deadprov"}"#),
            Some(2.0),
            "{metrics}"
        );
        assert!(ledger.by_request_id("e-down").is_empty());
        assert_eq!(ledger.violations(), Vec::<String>::new());
        finish_with_canary(proxy.addr()).await;
    }

    /// Faults in the middle: an upstream reset after the head (O10, the client body is cut
    /// without invented bytes), a first-byte timeout (E18, O8), a client abort mid-stream
    /// and before the head (O11 within about 1 s, the upstream is cancelled).
    async fn stream_faults_end_in_their_outcomes(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", url.as_str()),
                ("UPSTREAM_STREAM_FIRST_BYTE_TIMEOUT_MS", "500"),
                NO_BREAKER,
            ],
        );
        let addr = proxy.addr();
        tokio::task::spawn_blocking(move || wait_prices_loaded(addr, &[]))
            .await
            .expect("join");
        let db_path = proxy.db_path();
        let ledger = upstream.ledger();

        let out = post(&proxy, "/v1/messages", ANTHROPIC_STREAM, "f-reset", &[("x-fake-reset-after", "3")]).await;
        assert_eq!(out.status, 200);
        assert_eq!(out.end, BodyEnd::Cut, "the client can tell the body is truncated");
        assert_eq!(out.events.len(), 3, "exactly the events the upstream sent");
        assert!(!out.terminal_seen);
        let row = final_row_async(&db_path, "f-reset", ROW_WAIT).await;
        assert_row(&row, "error", 200, Some("stream_error"), None);
        assert_eq!(row["prompt_tokens"], 1000, "usage seen before the reset: {row}");

        let started = Instant::now();
        let out = post(&proxy, "/v1/messages", ANTHROPIC_STREAM, "f-first-byte", &[("x-fake-stall", "before-body")]).await;
        let took = started.elapsed();
        assert_eq!(out.status, 504, "{}", String::from_utf8_lossy(&out.body));
        assert_eq!(out.body, br#"{"error":"Upstream timeout"}"#);
        assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(5), "{took:?}");
        let row = final_row_async(&db_path, "f-first-byte", ROW_WAIT).await;
        assert_row(&row, "error", 504, Some("upstream_timeout"), Some("upstream_body_timeout"));
        let closed = ledger
            .wait_until_async(Duration::from_secs(2), |e| {
                e.iter().any(|e| e.request_id.as_deref() == Some("f-first-byte") && e.progress.peer_closed)
            })
            .await;
        assert!(closed, "the stalled upstream connection is closed");

        let out = SseRequest::post(proxy.addr(), "/v1/messages", ANTHROPIC_STREAM)
            .header("x-request-id", "f-abort")
            .header("x-fake-events", "100")
            .header("x-fake-delay-ms", "100")
            .abort_after_events(3)
            .send()
            .await
            .expect("head");
        assert_eq!(out.end, BodyEnd::Aborted);
        let aborted_at = Instant::now();
        let row = final_row_async(&db_path, "f-abort", Duration::from_secs(3)).await;
        let after = aborted_at.elapsed();
        assert_row(&row, "aborted", 499, Some("aborted"), Some("client aborted stream"));
        assert!(after <= Duration::from_millis(1500), "row aborted {after:?} after the client left");
        assert_eq!(row["prompt_tokens"], 1000, "costed from the usage seen: {row}");
        assert_eq!(row["usage_incomplete"], 1, "{row}");
        assert!(row["cost_nanousd"].as_i64().unwrap_or(0) > 0, "{row}");
        assert_upstream_cancelled(ledger, "f-abort").await;

        let out = SseRequest::post(proxy.addr(), "/v1/messages", ANTHROPIC_PLAIN)
            .header("x-request-id", "f-abort-head")
            .header("x-fake-stall", "before-head")
            .abort_after(Duration::from_millis(300))
            .send()
            .await;
        assert!(out.is_err(), "no head before the abort");
        let row = final_row_async(&db_path, "f-abort-head", Duration::from_secs(3)).await;
        assert_row(&row, "aborted", 499, Some("aborted"), Some("request aborted"));
        assert_upstream_cancelled(ledger, "f-abort-head").await;

        let metrics = tokio::task::spawn_blocking(move || metrics_text(addr)).await.expect("join");
        assert_eq!(metric_sample(&metrics, "agent_cli_proxy_active_streams"), Some(0.0), "{metrics}");
        finish_with_canary(proxy.addr()).await;
    }
}

/// Relays every golden fixture whose `held` is `held` through one proxy and checks them
/// (client bytes too when `bytes`), then the audit and daily rows they produced.
async fn run_golden(shell: Shell, held: bool, bytes: bool) {
    let upstream = FakeUpstream::start();
    let url = upstream.url();
    let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
    let addr = proxy.addr();
    tokio::task::spawn_blocking(move || wait_prices_loaded(addr, &[]))
        .await
        .expect("join");
    let cases: Vec<(usize, &Golden)> = GOLDEN
        .iter()
        .enumerate()
        .filter(|(_, c)| c.held == held)
        .collect();
    let mut problems = Vec::new();
    for (i, case) in &cases {
        let id = format!("golden-{i}-{}", case.fixture.replace('/', "-"));
        problems.extend(golden_case(&proxy, upstream.ledger(), case, &id, bytes).await);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let audits = db::scalar(&proxy.db_path(), "SELECT COUNT(*) FROM cost_audit", &[]);
    assert_eq!(
        audits,
        cases.len() as i64,
        "one cost audit row per finalized row"
    );
    let daily = db::scalar(
        &proxy.db_path(),
        "SELECT SUM(request_count) FROM daily_usage",
        &[],
    );
    assert_eq!(daily, cases.len() as i64);
    assert_eq!(upstream.ledger().violations(), Vec::<String>::new());
}

/// Relays one golden fixture and returns every way the response, the upstream request or
/// the row differs from what the case expects.
async fn golden_case(
    proxy: &ProxyProcess,
    ledger: &Ledger,
    case: &Golden,
    id: &str,
    bytes: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{id}: {what}"));
        }
    };
    let expect = expect_json(case.fixture);
    let out = post(
        proxy,
        case.path,
        case.body.as_bytes(),
        id,
        &[("x-fake-fixture", case.fixture), ("x-fake-chunk", "13")],
    )
    .await;
    check(out.status == 200, format!("status {}", out.status));
    check(
        out.end == BodyEnd::Clean,
        format!("body end {:?} {:?}", out.end, out.error),
    );
    let fixture = std::fs::read(fixtures_dir().join(case.fixture)).expect("fixture");
    check(
        expect["client_sha256"] == json!(sha256_hex(&fixture)),
        "fixture and expect.json disagree".into(),
    );
    let want = if case.removed {
        &expect["client_sha256_removed"]
    } else {
        &expect["client_sha256"]
    };
    check(
        !bytes || json!(out.body_sha256) == *want,
        format!(
            "client bytes differ from the fixture ({} of {} bytes received):\n{}",
            out.body.len(),
            fixture.len(),
            String::from_utf8_lossy(&out.body)
        ),
    );
    let headers = security_header_problems(&out.headers);
    check(headers.is_empty(), format!("{headers:?}"));

    let sent = ledger.by_request_id(id);
    check(sent.len() == 1, format!("{} upstream requests", sent.len()));
    let Some(sent) = sent.first() else {
        return problems;
    };
    check(
        sent.path() == case.path,
        format!("upstream path {}", sent.path()),
    );
    let injected = case.removed;
    if injected {
        let body = sent.body_json().unwrap_or(Value::Null);
        check(
            body["stream_options"] == json!({"include_usage": true}),
            format!("upstream body {body}"),
        );
        check(
            out.header("content-length").is_none(),
            "content-length after usage-chunk removal".into(),
        );
        let leaked = out
            .events
            .iter()
            .filter_map(|e| e.json())
            .any(|v| v.get("usage").is_some_and(|u| !u.is_null()));
        check(!leaked, "the usage chunk reached the client".into());
    } else {
        check(
            sent.body == case.body.as_bytes(),
            "request body changed".into(),
        );
    }

    let row = final_row_async(&proxy.db_path(), id, ROW_WAIT).await;
    let expected_columns = [
        ("lifecycle_status", json!("completed")),
        ("status", json!(200)),
        ("incomplete", json!(0)),
        ("usage_incomplete", json!(0)),
        ("error_code", Value::Null),
        ("provider", json!(case.provider)),
        ("model", json!(case.model)),
        ("actual_model", json!(case.actual_model)),
        ("streamed", json!(case.streamed)),
        ("path", json!(case.path)),
        ("msg_id", json!(id)),
        ("source", json!("proxy")),
        ("cost_nanousd", json!(case.cost_nanousd)),
    ];
    for (column, want) in expected_columns {
        check(
            row[column] == want,
            format!("{column} = {}, want {want}", row[column]),
        );
    }
    for (column, want) in TOKEN_COLUMNS.iter().zip(case.tokens) {
        check(
            row[*column] == json!(want),
            format!("{column} = {}, want {want}", row[*column]),
        );
    }
    if case.cost_nanousd > 0 {
        check(
            row["cost_status"] == "ok",
            format!("cost_status {}", row["cost_status"]),
        );
        let usd = row["cost_usd"].as_f64().unwrap_or(-1.0);
        check(
            (usd - case.cost_nanousd as f64 / 1e9).abs() < 1e-12,
            format!("cost_usd {usd}"),
        );
    }
    let meta = meta(&row);
    check(
        meta["usage_convention"] == case.convention,
        format!("meta {meta}"),
    );
    check(meta["method"] == "POST", format!("meta {meta}"));
    check(
        meta["stream_usage_injected"] == json!(injected),
        format!("meta {meta}"),
    );
    problems
}

async fn post(
    proxy: &ProxyProcess,
    path: &str,
    body: &[u8],
    id: &str,
    headers: &[(&str, &str)],
) -> SseOutcome {
    let mut request = SseRequest::post(proxy.addr(), path, body).header("x-request-id", id);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(out) => out,
        Err(err) => panic!("{id}: {err}; logs:\n{}", proxy.logs()),
    }
}

fn assert_row(
    row: &Value,
    lifecycle: &str,
    status: i64,
    error_code: Option<&str>,
    error_message: Option<&str>,
) {
    assert_eq!(row["lifecycle_status"], lifecycle, "{row}");
    assert_eq!(row["status"], status, "{row}");
    assert_eq!(row["incomplete"], 1, "{row}");
    assert_eq!(row["error_code"], json!(error_code), "{row}");
    if let Some(message) = error_message {
        assert_eq!(row["error_message"], message, "{row}");
    }
    assert_ne!(
        row["cost_status"], "unresolved",
        "a final row is costed: {row}"
    );
}

async fn assert_upstream_cancelled(ledger: &Ledger, id: &str) {
    let closed = ledger
        .wait_until_async(Duration::from_millis(1500), |e| {
            e.iter()
                .any(|e| e.request_id.as_deref() == Some(id) && e.progress.peer_closed)
        })
        .await;
    assert!(
        closed,
        "{id}: upstream request cancelled: {:?}",
        ledger.by_request_id(id)
    );
}

fn expect_json(fixture: &str) -> Value {
    let stem = Path::new(fixture).with_extension("expect.json");
    let text = std::fs::read_to_string(fixtures_dir().join(stem)).expect("expect file");
    serde_json::from_str(&text).expect("expect json")
}
