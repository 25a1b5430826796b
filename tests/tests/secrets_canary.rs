//! CI-16 / RQ-S6: secrets are never logged or stored.
//!
//! A proxy runs at `LOG_LEVEL=debug` with a unique canary in every secret it holds
//! (`CLI_PROXY_API_KEY`, `ADMIN_API_KEY`, `CLIPROXY_MGMT_KEY`, a provider token in
//! `PROVIDERS_JSON`, a managed key created through the admin API, a wrong key a client
//! tries) and in a prompt and a response. A mix of requests (streams, plain bodies, upstream
//! errors, auth failures, unknown providers, admin reads) runs through it; each canary is
//! first shown to be live (it reached the upstream, or it authorized a call). Then stdout,
//! stderr, the `.db` and `-wal` files (while running and after the stop), every error
//! response body and every admin output are scanned: each canary occurs 0 times.
//!
//! Not covered here: an OAuth token in a CLIProxyAPI auth file (quota probes need a fake
//! provider quota API, which the harness does not have yet).

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::client::{Response, SseRequest, request_blocking};
use agent_cli_proxy_tests::support::db::final_row;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::{FakeUpstream, UpstreamOptions};

agent_cli_proxy_tests::child_entry!();

const JSON: (&str, &str) = ("content-type", "application/json");

/// The canaries of one run; the random suffix keeps them unique to this test process.
struct Canaries {
    proxy_api_key: String,
    admin_key: String,
    mgmt_key: String,
    provider_token: String,
    wrong_key: String,
    prompt: String,
    response: String,
}

impl Canaries {
    fn new() -> Canaries {
        let tag = format!("{:016x}", fastrand::u64(..));
        Canaries {
            proxy_api_key: format!("cpak-canary-{tag}"),
            admin_key: format!("admin-canary-{tag}"),
            mgmt_key: format!("mgmt-canary-{tag}"),
            provider_token: format!("provider-canary-{tag}"),
            wrong_key: format!("wrong-key-canary-{tag}"),
            prompt: format!("prompt-canary-{tag}"),
            response: format!("response-canary-{tag}"),
        }
    }

    fn all<'a>(&'a self, managed: &'a str) -> [(&'static str, &'a str); 8] {
        [
            ("CLI_PROXY_API_KEY", &self.proxy_api_key),
            ("ADMIN_API_KEY", &self.admin_key),
            ("CLIPROXY_MGMT_KEY", &self.mgmt_key),
            ("provider token", &self.provider_token),
            ("wrong client key", &self.wrong_key),
            ("managed key", managed),
            ("prompt", &self.prompt),
            ("response", &self.response),
        ]
    }
}

both_shells! {
    /// RQ-S6 over one daemon's life: every canary is live, and none is written anywhere.
    fn secrets_never_reach_logs_database_or_responses(shell: Shell) {
        let canaries = Canaries::new();
        let fixtures = tempfile::tempdir().expect("tempdir");
        let stream = format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"claude-sonnet-4-5\",\"usage\":{{\"input_tokens\":100,\"output_tokens\":1}}}}}}\n\n\
             event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"usage\":{{\"output_tokens\":50}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
            canaries.response
        );
        std::fs::write(fixtures.path().join("canary.sse"), &stream).expect("fixture");
        let plain = format!(
            r#"{{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-5","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}}}"#,
            canaries.response
        );
        std::fs::write(fixtures.path().join("canary.json"), &plain).expect("fixture");
        let upstream = FakeUpstream::try_start(UpstreamOptions {
            fixtures_dir: fixtures.path().to_path_buf(),
            ..UpstreamOptions::default()
        })
        .expect("upstream");
        let url = upstream.url();
        let providers = format!(
            r#"{{"providers":[{{"id":"canaryprov","type":"openai-compatible","paths":["/v1/canary/chat/completions"],"upstreamBaseUrl":"{url}","auth":{{"type":"bearer","value":"{}"}}}}]}}"#,
            canaries.provider_token
        );
        let mut proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", url.as_str()),
                ("CLI_PROXY_API_KEY", &canaries.proxy_api_key),
                ("ADMIN_API_KEY", &canaries.admin_key),
                ("CLIPROXY_MGMT_KEY", &canaries.mgmt_key),
                ("CLIPROXY_CORRELATION_INTERVAL_MS", "200"),
                ("PROVIDERS_JSON", &providers),
                ("PROXY_REQUIRE_API_KEY", "true"),
                ("LOG_LEVEL", "debug"),
            ],
        );
        let admin_bearer = format!("Bearer {}", canaries.admin_key);
        let admin = [("authorization", admin_bearer.as_str())];
        let mut outputs = Outputs { addr: proxy.addr(), scanned: Vec::new() };

        // The admin key is live: without it admin routes are refused.
        assert_eq!(outputs.call("admin without key", "GET", "/admin/stats", &[], b"").status, 403);
        let created = outputs.call("create key", "POST", "/admin/api-keys", &[JSON, admin[0]], br#"{"name":"canary"}"#);
        assert_eq!(created.status, 201, "{}", created.text());
        let managed = created.json().expect("json")["key"].as_str().expect("key").to_owned();
        // The creation response is the one place the key may appear; it is not scanned.
        outputs.scanned.pop();
        let key_bearer = format!("Bearer {managed}");
        let auth = ("authorization", key_bearer.as_str());

        let prompt = format!(r#"{{"model":"claude-sonnet-4-5","stream":true,"messages":[{{"role":"user","content":"{}"}}]}}"#, canaries.prompt);
        let chat_prompt = format!(r#"{{"model":"gpt-5","messages":[{{"role":"user","content":"{}"}}]}}"#, canaries.prompt);
        let streamed = agent_cli_proxy_tests::support::shells::block_on(
            SseRequest::post(proxy.addr(), "/v1/messages", prompt.as_bytes())
                .header("authorization", &key_bearer)
                .header("x-request-id", "canary-stream")
                .header("x-fake-fixture", "canary.sse")
                .send(),
        )
        .expect("stream");
        assert!(streamed.terminal_seen && String::from_utf8_lossy(&streamed.body).contains(&canaries.response));
        let res = outputs.call("plain", "POST", "/v1/chat/completions", &[JSON, auth, ("x-request-id", "canary-plain"), ("x-fake-fixture", "canary.json")], chat_prompt.as_bytes());
        assert_eq!(res.status, 200, "{}", res.text());
        assert!(res.text().contains(&canaries.response), "the response canary reached the client");
        // A successful response carries the response canary by design; it is not scanned.
        outputs.scanned.pop();
        let res = outputs.call("custom provider", "POST", "/v1/canary/chat/completions", &[JSON, auth, ("x-request-id", "canary-provider")], chat_prompt.as_bytes());
        assert_eq!(res.status, 200, "{}", res.text());
        let res = outputs.call("upstream 500", "POST", "/v1/chat/completions", &[JSON, auth, ("x-request-id", "canary-500"), ("x-fake-status", "500")], chat_prompt.as_bytes());
        assert_eq!(res.status, 500);
        let wrong = format!("Bearer {}", canaries.wrong_key);
        assert_eq!(outputs.call("wrong key", "POST", "/v1/chat/completions", &[JSON, ("authorization", wrong.as_str())], chat_prompt.as_bytes()).status, 401);
        assert_eq!(outputs.call("wrong x-api-key", "POST", "/v1/messages", &[JSON, ("x-api-key", canaries.wrong_key.as_str())], prompt.as_bytes()).status, 401);
        assert_eq!(outputs.call("unknown provider", "POST", "/v1/chat/completions", &[JSON, auth, ("x-provider", "nope")], chat_prompt.as_bytes()).status, 400);
        assert_eq!(outputs.call("not found", "GET", "/nope", &[auth], b"").status, 404);
        let wrong_admin = [("x-admin-token", canaries.wrong_key.as_str())];
        assert_eq!(outputs.call("wrong admin token", "GET", "/admin/config", &wrong_admin, b"").status, 403);
        for path in [
            "/admin/config",
            "/admin/providers",
            "/admin/api-keys",
            "/admin/logs?limit=200",
            "/admin/stats",
            "/admin/usage/today",
            "/admin/breakers",
            "/admin/logs/1",
            "/metrics",
        ] {
            let res = outputs.call(path, "GET", path, &admin, b"");
            assert_eq!(res.status, 200, "{path}: {}", res.text());
        }
        for id in ["canary-stream", "canary-plain", "canary-provider", "canary-500"] {
            final_row(&proxy.db_path(), id, Duration::from_secs(5));
        }

        // Every canary was live: it reached the upstream or authorized a call.
        let ledger = upstream.ledger();
        let correlated = ledger.wait_until(Duration::from_secs(5), |entries| {
            entries.iter().any(|e| e.headers.iter().any(|(_, v)| v.contains(&canaries.mgmt_key)))
        });
        assert!(correlated, "{shell}: the correlator called the management API with CLIPROXY_MGMT_KEY");
        let sent_with = |needle: &str| {
            ledger.entries().iter().any(|e| e.headers.iter().any(|(_, v)| v.contains(needle)) || String::from_utf8_lossy(&e.body).contains(needle))
        };
        assert!(sent_with(&canaries.proxy_api_key), "CLI_PROXY_API_KEY reached the upstream");
        assert!(sent_with(&canaries.provider_token), "the provider token reached the upstream");
        assert!(sent_with(&canaries.prompt), "the prompt reached the upstream");
        assert!(!sent_with(&managed), "the managed key is removed before forwarding");

        let mut findings = Vec::new();
        let db_path = proxy.db_path();
        scan_files(&db_path, &canaries, &managed, "while running", &mut findings);
        proxy.sigterm();
        let code = proxy.wait_exit();
        assert_eq!(code, 143, "logs:\n{}", proxy.logs());
        scan_files(&db_path, &canaries, &managed, "after the stop", &mut findings);
        for (name, canary) in canaries.all(&managed) {
            for (stream, text) in [("stdout", proxy.stdout()), ("stderr", proxy.stderr())] {
                let n = text.matches(canary).count();
                if n > 0 {
                    findings.push(format!("{name} appears {n} times in {stream}"));
                }
            }
            for (label, res) in &outputs.scanned {
                let text = String::from_utf8_lossy(&res.body);
                let in_headers = res.headers.iter().any(|(_, v)| v.contains(canary));
                if text.contains(canary) || in_headers {
                    findings.push(format!("{name} appears in the response to {label}: {text}"));
                }
            }
        }
        assert!(findings.is_empty(), "{}", findings.join("\n"));
        let logs = proxy.logs();
        assert!(logs.contains("\"event\":\"lifecycle.finalized\""), "the scan read real logs");
        // RQ-S6: token counts are not secrets and do appear (on `lifecycle.finalized`).
        assert!(
            logs.contains("\"total_tokens\":") && logs.contains("\"prompt_tokens\":"),
            "token counts must be visible in the logs"
        );
    }
}

/// Responses whose bodies and headers are scanned for canaries.
struct Outputs {
    addr: std::net::SocketAddr,
    scanned: Vec<(String, Response)>,
}

impl Outputs {
    fn call(
        &mut self,
        label: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let res = request_blocking(self.addr, method, path, headers, body).expect(label);
        self.scanned.push((label.to_owned(), res.clone()));
        res
    }
}

/// Scans the database, its WAL and its shared-memory file for every canary.
fn scan_files(
    db: &Path,
    canaries: &Canaries,
    managed: &str,
    when: &str,
    findings: &mut Vec<String>,
) {
    let mut scanned = 0;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        scanned += 1;
        for (name, canary) in canaries.all(managed) {
            let n = bytes
                .windows(canary.len())
                .filter(|w| *w == canary.as_bytes())
                .count();
            if n > 0 {
                findings.push(format!("{name} appears {n} times in {path} ({when})"));
            }
        }
    }
    assert!(scanned > 0, "no database file found at {}", db.display());
}
