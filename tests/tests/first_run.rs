//! First run on a fresh machine (issue "install and first run anywhere"), against both shells:
//!
//! * direct mode: `init --non-interactive --direct` in a temporary HOME writes a configuration
//!   that `serve` accepts without `CLI_PROXY_API_URL`; each generation route reaches its fake
//!   vendor with the client's own key and no other credential; what only a router could serve
//!   is refused (404 `NO_ROUTE`, 502 `NO_UPSTREAM`) without reaching either vendor;
//! * offline first start: no pricing cache and a `PRICING_URL` that cannot be fetched, yet a
//!   known model is priced exactly from the snapshot compiled into the binary,
//!   `/admin/pricing` and `doctor --json` say the snapshot is in force; once the document can
//!   be fetched, the next refresh (the cost-backfill loop's) replaces the snapshot.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::client::{Response, request_blocking};
use agent_cli_proxy_tests::support::db::final_row;
use agent_cli_proxy_tests::support::proc::{ProxyOptions, ProxyProcess, file_url};
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use serde_json::Value;

agent_cli_proxy_tests::child_entry!();

const ROW_WAIT: Duration = Duration::from_secs(5);

/// Runs a one-shot CLI command through the shell's entry point (outside the proxy slots);
/// returns (exit code, stdout without libtest's own lines).
fn cli(shell: Shell, args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> (i32, String) {
    let options = ProxyOptions {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        wait_health: false,
        take_slot: false,
        unset: unset.iter().map(|u| (*u).to_owned()).collect(),
        ..ProxyOptions::new(shell).env(env)
    };
    let mut process = ProxyProcess::start_with(options);
    let code = process.wait_exit();
    let stdout = process
        .stdout()
        .lines()
        .filter(|l| !l.starts_with("running 1 test") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    (code, stdout)
}

fn call(
    proxy: &ProxyProcess,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    request_blocking(proxy.addr(), method, path, headers, body.as_bytes()).unwrap()
}

/// Credential headers a request carried.
fn credentials(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n == "authorization" || n == "x-api-key" || n == "proxy-authorization")
        .map(|(n, v)| format!("{n}: {v}"))
        .collect()
}

fn direct_init(shell: Shell, dir: &Path, anthropic: &str, openai: &str) -> PathBuf {
    let env_path = dir.join("acp.env");
    let data = dir.join("data");
    let (code, out) = cli(
        shell,
        &[
            "init",
            "--non-interactive",
            "--direct",
            "--anthropic-url",
            anthropic,
            "--openai-url",
            openai,
            "--env",
            &env_path.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
        ],
        &[],
        &["CLI_PROXY_API_URL"],
    );
    assert_eq!(code, 0, "init failed: {out}");
    env_path
}

both_shells! {
    fn direct_mode_calls_reach_each_vendor_with_the_clients_own_key(shell: Shell) {
        let anthropic = FakeUpstream::start();
        let openai = FakeUpstream::start();
        let dir = tempfile::tempdir().unwrap();
        let env_path = direct_init(shell, dir.path(), &anthropic.url(), &openai.url());
        let env_text = std::fs::read_to_string(&env_path).unwrap();
        assert!(env_text.contains("CLI_PROXY_API_URL=\n"), "{env_text}");

        // `serve` with that env file and no router anywhere.
        let proxy = ProxyProcess::start_with(ProxyOptions {
            args: vec!["serve".into(), "--env".into(), env_path.display().to_string()],
            unset: vec!["CLI_PROXY_API_URL".into()],
            ..ProxyOptions::new(shell)
        });

        let anthropic_key = "sk-ant-client-own-key-1";
        let openai_key = "sk-openai-client-own-key-2";
        let cases: [(&str, &str, &FakeUpstream, (&str, &str)); 4] = [
            ("/v1/messages", r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}"#, &anthropic, ("x-api-key", anthropic_key)),
            ("/v1/messages/count_tokens", r#"{"model":"claude-sonnet-4-5","messages":[]}"#, &anthropic, ("x-api-key", anthropic_key)),
            ("/v1/chat/completions", r#"{"model":"gpt-5","messages":[]}"#, &openai, ("authorization", "Bearer sk-openai-client-own-key-2")),
            ("/v1/responses", r#"{"model":"gpt-5","input":"hi"}"#, &openai, ("authorization", "Bearer sk-openai-client-own-key-2")),
        ];
        for (path, body, vendor, credential) in cases {
            let before = vendor.ledger().len();
            let res = call(&proxy, "POST", path, &[credential, ("content-type", "application/json")], body);
            assert_eq!(res.status, 200, "{path}: {}", res.text());
            let got = vendor.ledger().entries_from(before);
            assert_eq!(got.len(), 1, "{path} reached its vendor once");
            assert_eq!(got[0].path(), path, "request path kept");
            assert_eq!(
                credentials(&got[0].headers),
                vec![format!("{}: {}", credential.0, credential.1)],
                "{path}: the client's own key and nothing else"
            );
        }
        assert_eq!(anthropic.ledger().len(), 2);
        assert_eq!(openai.ledger().len(), 2);
        assert!(!openai.ledger().entries().iter().any(|e| e.header("x-api-key").is_some()));
        assert!(!proxy.logs().contains(anthropic_key) && !proxy.logs().contains(openai_key));

        // What only a router could serve is refused, and reaches neither vendor.
        let models = call(&proxy, "GET", "/v1/models", &[("authorization", "Bearer k")], "");
        assert_eq!(models.status, 404, "{}", models.text());
        assert_eq!(models.json().unwrap()["code"], "NO_ROUTE");
        let grok = call(&proxy, "POST", "/v1/chat/completions", &[("authorization", "Bearer k")], r#"{"model":"grok-4","messages":[]}"#);
        assert_eq!(grok.status, 502, "{}", grok.text());
        assert_eq!(grok.json().unwrap()["code"], "NO_UPSTREAM");
        assert_eq!((anthropic.ledger().len(), openai.ledger().len()), (2, 2));

        // /ready does not probe a router that does not exist.
        let ready = call(&proxy, "GET", "/ready", &[], "");
        let ready = ready.json().unwrap();
        assert_eq!(ready["checks"]["upstream"]["status"], "pass", "{ready}");
    }

    fn offline_first_start_prices_from_the_built_in_snapshot(shell: Shell) {
        let upstream = FakeUpstream::start();
        // The pricing document does not exist yet: every fetch fails, as with no network.
        let later = tempfile::tempdir().unwrap();
        let later_doc = later.path().join("api.json");
        let proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", &upstream.url()),
                ("PRICING_URL", &file_url(&later_doc)),
                // The cost-backfill loop forces a pricing refresh on every run.
                ("COST_BACKFILL_INTERVAL_MS", "300"),
            ],
        );
        let cache = proxy.dir().join("data").join("pricing-cache.json");
        assert!(!cache.exists(), "a first start has no cache file");

        let pricing = call(&proxy, "GET", "/admin/pricing?model=claude-sonnet-4-5&provider=anthropic", &[], "");
        let pricing = pricing.json().unwrap();
        assert_eq!(pricing["source"]["kind"], "snapshot", "{pricing}");
        assert_eq!(pricing["source"]["license"], "MIT", "{pricing}");
        assert_eq!(pricing["fetchedAt"], Value::Null, "{pricing}");
        assert_eq!(pricing["match"]["source"], "exact", "{pricing}");

        let id = "first-run-offline-1";
        let res = call(
            &proxy,
            "POST",
            "/v1/messages",
            &[
                ("x-request-id", id),
                ("x-fake-kind", "json"),
                ("x-fake-usage", r#"{"input_tokens":1000,"output_tokens":100}"#),
            ],
            r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}"#,
        );
        assert_eq!(res.status, 200, "{}", res.text());
        let row = final_row(&proxy.db_path(), id, ROW_WAIT);
        // $3/M input and $15/M output: 1 000 × 3 000 + 100 × 15 000 nUSD.
        assert_eq!(row["cost_status"], "ok", "{row}");
        assert_eq!(row["cost_nanousd"], 4_500_000, "{row}");
        assert!(!cache.exists(), "the failed fetch wrote no cache");

        let db = proxy.db_path().display().to_string();
        let cache_path = cache.display().to_string();
        let (code, out) = cli(
            shell,
            &["doctor", "--json"],
            &[
                ("CLI_PROXY_API_URL", &upstream.url()),
                ("DB_PATH", &db),
                ("PRICING_CACHE_PATH", &cache_path),
            ],
            &[],
        );
        let json = &out[out.find('{').expect("doctor JSON")..];
        let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(code, 0, "{v:#}");
        let source = &v["checks"]["pricingCache"]["details"]["source"];
        assert_eq!(source["kind"], "snapshot", "{v:#}");
        assert_eq!(source["date"], pricing["source"]["date"], "{v:#}");

        // The network comes back: the next refresh replaces the snapshot and writes the cache.
        std::fs::copy(proxy.dir().join("pricing").join("api.json"), &later_doc).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let fetched = loop {
            let now = call(&proxy, "GET", "/admin/pricing", &[], "").json().unwrap();
            if now["source"]["kind"] == "fetched" {
                break now;
            }
            assert!(std::time::Instant::now() < deadline, "snapshot never replaced: {now}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(fetched["fetchedAt"].is_number(), "{fetched}");
        assert!(cache.exists(), "the successful fetch wrote the cache");
    }
}
