//! Gemini through the proxy (`gemini.md` §5): the golden Gemini streams of
//! `tests/fixtures/gemini/` (SSE with `alt=sse`, the streamed JSON array without it, the
//! `/v1internal` wrapping, a plain `generateContent`) relayed byte-exact into exact rows
//! (worked example W7 of `accounting.md` §7), and `:countTokens` forwarded without a row.
//! One case list, run against both shells.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::wait_prices_loaded;
use agent_cli_proxy_tests::support::client::{BodyEnd, SseOutcome, SseRequest};
use agent_cli_proxy_tests::support::db::{self, final_row_async, meta};
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use agent_cli_proxy_tests::support::{fixtures_dir, sha256_hex};
use serde_json::json;

agent_cli_proxy_tests::child_entry!();

const ROW_WAIT: Duration = Duration::from_secs(5);
const UA: &str = "GeminiCLI-tui/0.61.0/gemini-2.5-pro (linux; x64)";
const W7_TOKENS: [i64; 7] = [12_500, 1500, 8000, 0, 0, 1200, 14_000];
const W7_COST: i64 = 23_105_000;

/// One Gemini call relayed from a golden fixture.
struct Case {
    /// Request target (path and query) the client sends.
    target: &'static str,
    fixture: &'static str,
    body: &'static str,
    /// Extra fake-upstream script headers (framing of the JSON array).
    script: &'static [(&'static str, &'static str)],
    streamed: i64,
}

const API_KEY_BODY: &str = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":{"includeThoughts":true}}}"#;
const CODE_ASSIST_BODY: &str = r#"{"model":"gemini-2.5-pro","project":"p-1","user_prompt_id":"u1","request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}"#;

const CASES: [Case; 4] = [
    Case {
        target: "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        fixture: "gemini/w7_stream.sse",
        body: API_KEY_BODY,
        script: &[("x-fake-chunk", "13")],
        streamed: 1,
    },
    Case {
        target: "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        fixture: "gemini/w7_array.json",
        body: API_KEY_BODY,
        script: &[("x-fake-chunk", "11"), ("x-fake-framing", "chunked")],
        streamed: 1,
    },
    Case {
        target: "/v1internal:streamGenerateContent?alt=sse",
        fixture: "gemini/v1internal_wrapped.sse",
        body: CODE_ASSIST_BODY,
        script: &[("x-fake-chunk", "17")],
        streamed: 1,
    },
    Case {
        target: "/v1beta/models/gemini-2.5-pro:generateContent",
        fixture: "gemini/w7_plain.json",
        body: API_KEY_BODY,
        script: &[],
        streamed: 0,
    },
];

async fn post(
    proxy: &ProxyProcess,
    target: &str,
    body: &str,
    id: &str,
    extra: &[(&str, &str)],
) -> SseOutcome {
    let mut request = SseRequest::post(proxy.addr(), target, body.as_bytes())
        .header("x-request-id", id)
        .header("user-agent", UA)
        .header("x-goog-api-key", "dummy-gemini-key")
        .header("x-gemini-api-privileged-user-id", "install-7f3a")
        .header("content-type", "application/json");
    for (name, value) in extra {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(out) => out,
        Err(err) => panic!("{id}: {err}; logs:\n{}", proxy.logs()),
    }
}

both_shells! {
    /// W7 through every Gemini form: client bytes = fixture bytes, the upstream got the path,
    /// the query and the client's `x-goog-api-key`; the row says `gemini-cli`, `google`, the
    /// model from the path (or the body, for `/v1internal`), W7's columns and cost.
    async fn gemini_golden_streams_give_exact_rows(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let addr = proxy.addr();
        tokio::task::spawn_blocking(move || wait_prices_loaded(addr, &[]))
            .await
            .expect("join");
        let ledger = upstream.ledger();
        let mut problems = Vec::new();
        for (i, case) in CASES.iter().enumerate() {
            let id = format!("gemini-{i}");
            let mut extra = vec![("x-fake-fixture", case.fixture)];
            extra.extend_from_slice(case.script);
            let out = post(&proxy, case.target, case.body, &id, &extra).await;
            let mut check = |ok: bool, what: String| {
                if !ok {
                    problems.push(format!("{id} ({}): {what}", case.fixture));
                }
            };
            check(out.status == 200, format!("status {}", out.status));
            check(out.end == BodyEnd::Clean, format!("body end {:?} {:?}", out.end, out.error));
            let fixture = std::fs::read(fixtures_dir().join(case.fixture)).expect("fixture");
            check(
                out.body_sha256 == sha256_hex(&fixture),
                format!("client bytes differ:\n{}", String::from_utf8_lossy(&out.body)),
            );
            let sent = ledger.by_request_id(&id);
            check(sent.len() == 1, format!("{} upstream requests", sent.len()));
            if let Some(sent) = sent.first() {
                check(sent.target == case.target, format!("upstream target {}", sent.target));
                check(
                    sent.header("x-goog-api-key") == Some("dummy-gemini-key"),
                    "x-goog-api-key not forwarded untouched".into(),
                );
                check(sent.body == case.body.as_bytes(), "request body changed".into());
            }

            let row = final_row_async(&proxy.db_path(), &id, ROW_WAIT).await;
            let path = case.target.split('?').next().unwrap();
            let expected = [
                ("lifecycle_status", json!("completed")),
                ("status", json!(200)),
                ("usage_incomplete", json!(0)),
                ("tool", json!("gemini-cli")),
                ("client_id", json!("gemini-cli")),
                ("provider", json!("google")),
                ("actual_provider", json!("google")),
                ("model", json!("gemini-2.5-pro")),
                ("actual_model", json!("gemini-2.5-pro")),
                ("path", json!(path)),
                ("user_agent", json!(UA)),
                ("streamed", json!(case.streamed)),
                ("cost_status", json!("ok")),
                ("cost_nanousd", json!(W7_COST)),
            ];
            for (column, want) in expected {
                check(row[column] == want, format!("{column} = {}, want {want}", row[column]));
            }
            let columns = [
                "prompt_tokens",
                "completion_tokens",
                "cache_read_tokens",
                "cache_creation_tokens",
                "cache_write_1h_tokens",
                "reasoning_tokens",
                "total_tokens",
            ];
            for (column, want) in columns.iter().zip(W7_TOKENS) {
                check(row[*column] == json!(want), format!("{column} = {}, want {want}", row[*column]));
            }
            check(meta(&row)["usage_convention"] == "openai", format!("meta {}", meta(&row)));
            check(
                !row.to_string().contains("install-7f3a"),
                "the privileged user id reached the row".into(),
            );
        }
        assert!(problems.is_empty(), "{}\nlogs:\n{}", problems.join("\n"), proxy.logs());
        assert!(
            !proxy.logs().contains("install-7f3a") && !proxy.logs().contains("dummy-gemini-key"),
            "an installation id or API key reached the logs"
        );
        assert_eq!(ledger.violations(), Vec::<String>::new());
    }

    /// `:countTokens` (and a model listing) are forwarded and answered, but leave no row; an
    /// error answer to a stream call is an error row with the upstream's snippet.
    async fn gemini_non_generation_calls_leave_no_row(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let addr = proxy.addr();
        tokio::task::spawn_blocking(move || wait_prices_loaded(addr, &[]))
            .await
            .expect("join");
        let ledger = upstream.ledger();

        let out = post(
            &proxy,
            "/v1beta/models/gemini-2.5-pro:countTokens",
            r#"{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}]}]}"#,
            "gemini-count",
            &[("x-fake-fixture", "gemini/count_tokens.json")],
        )
        .await;
        assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
        assert_eq!(out.body_sha256, sha256_hex(&std::fs::read(fixtures_dir().join("gemini/count_tokens.json")).unwrap()));
        assert_eq!(ledger.by_request_id("gemini-count").len(), 1, "forwarded upstream");

        let out = post(&proxy, "/v1internal:countTokens", CODE_ASSIST_BODY, "gemini-count-internal", &[]).await;
        assert_eq!(out.status, 200);
        assert_eq!(ledger.by_request_id("gemini-count-internal").len(), 1);

        let list = SseRequest::get(proxy.addr(), "/v1beta/models")
            .header("x-request-id", "gemini-list")
            .send()
            .await
            .unwrap();
        assert_eq!(list.status, 200);

        // A generation call after them: its row is committed, so theirs would be too.
        let out = post(
            &proxy,
            "/v1beta/models/gemini-2.5-pro:generateContent",
            API_KEY_BODY,
            "gemini-after",
            &[("x-fake-fixture", "gemini/w7_plain.json")],
        )
        .await;
        assert_eq!(out.status, 200);
        let row = final_row_async(&proxy.db_path(), "gemini-after", ROW_WAIT).await;
        assert_eq!(row["cost_nanousd"], W7_COST, "{row}");
        let rows = db::scalar(&proxy.db_path(), "SELECT COUNT(*) FROM request_logs", &[]);
        assert_eq!(rows, 1, "only the generation call has a row");

        // Outside the Gemini prefixes, `/v1beta` alone is still the proxy's own 404.
        let out = SseRequest::get(proxy.addr(), "/v1beta").send().await.unwrap();
        assert_eq!(out.status, 404);

        let out = post(
            &proxy,
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
            API_KEY_BODY,
            "gemini-429",
            &[("x-fake-status", "429"), ("x-fake-kind", "json")],
        )
        .await;
        assert_eq!(out.status, 429);
        let row = final_row_async(&proxy.db_path(), "gemini-429", ROW_WAIT).await;
        assert_eq!(row["lifecycle_status"], "error", "{row}");
        assert_eq!(row["error_code"], "upstream_error", "{row}");
        let message = row["error_message"].as_str().unwrap_or("");
        assert!(message.starts_with("upstream HTTP 429: "), "plain error keeps its snippet: {message}");
        assert_eq!(ledger.violations(), Vec::<String>::new());
    }
}
