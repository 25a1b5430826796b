//! The admin API of `control.md` §6 and `/metrics` (`datapath.md` §16) after a few proxied
//! calls: every endpoint answers with its documented shape and numbers, validation errors
//! are 400 with the documented messages, and the managed-key life cycle works end to end
//! (create → use → restrict → revoke).

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{metric_sample, wait_prices_loaded};
use agent_cli_proxy_tests::support::client::{Response, request_blocking};
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::sha256_hex;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use serde_json::{Value, json};

agent_cli_proxy_tests::child_entry!();

const UPSTREAM_KEY: &str = "cpak-admin-5b8e21f0c4";
const JSON: (&str, &str) = ("content-type", "application/json");
const ROW_WAIT: Duration = Duration::from_secs(5);

/// Path, body and extra headers of one proxied call.
type Call<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

fn call(
    proxy: &ProxyProcess,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    match request_blocking(proxy.addr(), method, path, headers, body) {
        Ok(res) => res,
        Err(err) => panic!("{method} {path}: {err}; logs:\n{}", proxy.logs()),
    }
}

/// `GET path` on the admin API: 200, `no-store`, JSON.
fn get_json(proxy: &ProxyProcess, path: &str) -> Value {
    let res = call(proxy, "GET", path, &[], b"");
    assert_eq!(res.status, 200, "{path}: {}", res.text());
    assert_eq!(res.header("cache-control"), Some("no-store"), "{path}");
    match res.json() {
        Some(v) => v,
        None => panic!("{path}: not JSON: {}", res.text()),
    }
}

fn assert_400(proxy: &ProxyProcess, path: &str, message: &str) {
    let res = call(proxy, "GET", path, &[], b"");
    assert_eq!(res.status, 400, "{path}: {}", res.text());
    assert_eq!(res.json(), Some(json!({"error": message})), "{path}");
}

fn keys_of(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    keys.sort();
    keys
}

const DAILY_USAGE: [&str; 11] = [
    "day",
    "provider",
    "model",
    "request_count",
    "prompt_tokens",
    "completion_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost_usd",
    "cost_nanousd",
];

const METRIC_SERIES: [&str; 19] = [
    "agent_cli_proxy_up",
    "agent_cli_proxy_requests_today",
    "agent_cli_proxy_tokens_today",
    "agent_cli_proxy_cost_usd_today",
    "agent_cli_proxy_proxy_request_duration_ms",
    "agent_cli_proxy_ready_check_duration_ms",
    "agent_cli_proxy_rate_limited_total",
    "agent_cli_proxy_breaker_rejections_total",
    "agent_cli_proxy_upstream_retries_total",
    "agent_cli_proxy_usage_incomplete_total",
    "agent_cli_proxy_storage_failures_total",
    "agent_cli_proxy_active_streams",
    "agent_cli_proxy_panics_total",
    "agent_cli_proxy_log_dropped_lines_total",
    "agent_cli_proxy_spool_bytes",
    "agent_cli_proxy_spool_records_total",
    "agent_cli_proxy_ingest_lag_ms",
    "agent_cli_proxy_ingest_batch_records",
    "agent_cli_proxy_ingest_failures_total",
];

both_shells! {
    /// Usage, stats, logs, cost audit, quotas, providers, pricing, config, breakers and
    /// `/metrics` after three calls: W1 (Anthropic JSON), a Chat JSON call from codex and an
    /// upstream 500.
    fn admin_endpoints_answer_with_documented_shapes(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[("CLI_PROXY_API_URL", url.as_str()), ("CLI_PROXY_API_KEY", UPSTREAM_KEY)],
        );
        wait_prices_loaded(proxy.addr(), &[]);
        let calls: [Call; 3] = [
            ("/v1/messages", r#"{"model":"claude-sonnet-4-5","messages":[]}"#, &[("x-fake-fixture", "anthropic/w1_plain.json")]),
            ("/v1/chat/completions", r#"{"model":"gpt-5","messages":[]}"#, &[("x-fake-fixture", "openai_chat/plain.json"), ("user-agent", "codex_cli_rs/0.101.0 (Linux; x86_64)")]),
            ("/v1/messages", r#"{"model":"claude-sonnet-4-5","messages":[]}"#, &[("x-fake-status", "500")]),
        ];
        let mut ids = Vec::new();
        for (i, (path, body, extra)) in calls.iter().enumerate() {
            let msg = format!("adm-{i}");
            let mut headers = vec![JSON, ("x-request-id", msg.as_str())];
            headers.extend_from_slice(extra);
            let res = call(&proxy, "POST", path, &headers, body.as_bytes());
            assert!(res.status == 200 || i == 2, "{path}: {}", res.text());
            let row = db::final_row(&proxy.db_path(), &msg, ROW_WAIT);
            ids.push(row["id"].as_i64().expect("id"));
        }
        let first = db::rows(&proxy.db_path(), "SELECT started_at FROM request_logs ORDER BY id LIMIT 1", &[]);
        let today = first[0]["started_at"].as_str().expect("started_at")[..10].to_owned();
        let total_cost = 10_500_000 + 253_000;

        let usage = get_json(&proxy, "/admin/usage/today");
        assert_eq!(sorted(&["date", "requests", "total_tokens", "cost_usd", "cost_nanousd", "breakdown"]), keys_of(&usage), "{usage}");
        assert_eq!((usage["date"].clone(), usage["requests"].clone()), (json!(today), json!(3)), "{usage}");
        assert_eq!((usage["total_tokens"].clone(), usage["cost_nanousd"].clone()), (json!(1620), json!(total_cost)), "{usage}");
        let breakdown = usage["breakdown"].as_array().expect("breakdown");
        let pairs: Vec<(Value, Value, Value)> = breakdown
            .iter()
            .map(|d| (d["provider"].clone(), d["model"].clone(), d["request_count"].clone()))
            .collect();
        assert_eq!(
            pairs,
            [(json!("anthropic"), json!("claude-sonnet-4-5"), json!(2)), (json!("openai"), json!("gpt-5"), json!(1))],
            "ordered provider, model"
        );
        assert_eq!(keys_of(&breakdown[0]), sorted(&DAILY_USAGE));
        assert_eq!(breakdown[0]["cost_nanousd"], 10_500_000);

        let range = get_json(&proxy, &format!("/admin/usage/range?from={today}&to={today}"));
        assert_eq!(range.as_array().map(Vec::len), Some(1), "{range}");
        assert_eq!((range[0]["date"].clone(), range[0]["requests"].clone()), (json!(today), json!(3)));
        let models = get_json(&proxy, &format!("/admin/usage/models?day={today}"));
        assert_eq!(models.as_array().map(Vec::len), Some(2), "{models}");
        assert_eq!(models[1]["total_tokens"], 120);
        let summed = get_json(&proxy, &format!("/admin/usage/models?from={today}&to={today}"));
        assert!(summed[0].get("day").is_none(), "range form has no day: {summed}");
        assert_eq!(summed[0]["request_count"], 2, "{summed}");
        let providers = get_json(&proxy, "/admin/usage/providers");
        assert_eq!(
            providers,
            json!([
                {"provider": "anthropic", "request_count": 2, "total_tokens": 1500, "cost_usd": 0.0105, "cost_nanousd": 10_500_000},
                {"provider": "openai", "request_count": 1, "total_tokens": 120, "cost_usd": 0.000253, "cost_nanousd": 253_000}
            ])
        );
        assert_eq!(get_json(&proxy, "/admin/usage/accounts"), json!([]));
        assert_eq!(get_json(&proxy, &format!("/admin/usage/accounts/range?from={today}&to={today}")), json!([]));
        assert_eq!(get_json(&proxy, "/admin/usage/accounts/summary"), json!([]));
        let trend = get_json(&proxy, "/admin/usage/trend");
        let buckets = trend["buckets"].as_array().expect("buckets");
        assert!((24..=25).contains(&buckets.len()), "24 h in 3 600 s buckets: {}", buckets.len());
        let requests: i64 = buckets.iter().filter_map(|b| b["requests"].as_i64()).sum();
        let cost: i64 = buckets.iter().filter_map(|b| b["cost_nanousd"].as_i64()).sum();
        assert_eq!((requests, cost), (3, total_cost), "{trend}");
        assert_eq!(keys_of(&buckets[0]), sorted(&["timestamp", "requests", "tokens", "cost_usd", "cost_nanousd"]));
        let filtered = get_json(&proxy, "/admin/usage/trend?hours=5&tool=codex");
        let buckets = filtered["buckets"].as_array().expect("buckets");
        assert_eq!(buckets.len(), 61, "5 h in 300 s buckets, both ends inclusive");
        assert_eq!(buckets.iter().filter_map(|b| b["requests"].as_i64()).sum::<i64>(), 1);

        for (path, message) in [
            ("/admin/usage/range?from=2026-01-01", "Missing from or to parameter"),
            ("/admin/usage/range?from=2026-13-01&to=2026-01-01", "Invalid from parameter; expected YYYY-MM-DD"),
            ("/admin/usage/range?from=2026-02-01&to=2026-02-30", "Invalid to parameter; expected YYYY-MM-DD"),
            ("/admin/usage/range?from=2026-02-02&to=2026-02-01", "from must be on or before to"),
            ("/admin/usage/range?from=2025-01-01&to=2026-01-02", "Date range cannot exceed 366 days"),
            ("/admin/usage/models?from=2026-01-01", "Both from and to are required when using date range"),
            ("/admin/usage/models?day=yesterday", "Invalid day parameter; expected YYYY-MM-DD"),
            ("/admin/usage/trend?hours=0", "Invalid hours parameter"),
            ("/admin/usage/trend?hours=8785", "Invalid hours parameter"),
            ("/admin/logs?limit=0", "Invalid limit or offset"),
            ("/admin/logs?limit=201", "Invalid limit or offset"),
            ("/admin/logs?offset=-1", "Invalid limit or offset"),
            ("/admin/logs?limit=ten", "Invalid limit or offset"),
            ("/admin/logs?offset=100001", "Invalid limit or offset"),
            ("/admin/logs?tool=", "Invalid filter parameter"),
            ("/admin/logs?provider=%20", "Invalid filter parameter"),
            ("/admin/logs?status_min=x", "Invalid filter parameter"),
            ("/admin/logs?lifecycle_status=done", "Invalid filter parameter"),
            ("/admin/quotas/history?hours=0", "Invalid hours parameter"),
        ] {
            assert_400(&proxy, path, message);
        }

        let stats = get_json(&proxy, "/admin/stats");
        assert_eq!(stats["total_requests"], 3, "{stats}");
        assert_eq!(stats["total_tokens"], 1620, "{stats}");
        assert_eq!(stats["total_cost_nanousd"], total_cost, "{stats}");
        assert!(stats["first_request_at"].is_string() && stats["last_request_at"].is_string(), "{stats}");

        let logs = get_json(&proxy, "/admin/logs");
        let got: Vec<i64> = logs.as_array().expect("logs").iter().filter_map(|r| r["id"].as_i64()).collect();
        assert_eq!(got, [ids[2], ids[1], ids[0]], "started_at then id descending");
        assert!(logs[0].get("cost_nanousd").is_some() && logs[0].get("meta_json").is_some(), "{}", logs[0]);
        for (query, want) in [
            ("limit=1", vec![ids[2]]),
            ("limit=1&offset=1", vec![ids[1]]),
            ("tool=codex", vec![ids[1]]),
            ("provider=anthropic", vec![ids[2], ids[0]]),
            ("lifecycle_status=error", vec![ids[2]]),
            ("status_min=400", vec![ids[2]]),
            ("status_max=299&model=gpt-5", vec![ids[1]]),
            ("client_id=nobody", vec![]),
        ] {
            let rows = get_json(&proxy, &format!("/admin/logs?{query}"));
            let got: Vec<i64> = rows.as_array().expect("rows").iter().filter_map(|r| r["id"].as_i64()).collect();
            assert_eq!(got, want, "{query}");
        }
        let one = get_json(&proxy, &format!("/admin/logs/{}", ids[0]));
        assert_eq!((one["id"].clone(), one["msg_id"].clone()), (json!(ids[0]), json!("adm-0")));
        assert_eq!(one["cost_nanousd"], 10_500_000);
        for path in ["/admin/logs/999999", "/admin/logs/abc", "/admin/logs/999999/cost-audit"] {
            let res = call(&proxy, "GET", path, &[], b"");
            assert_eq!((res.status, res.json()), (404, Some(json!({"error": "Not found"}))), "{path}");
        }
        let audit = get_json(&proxy, &format!("/admin/logs/{}/cost-audit", ids[0]));
        let audit = audit.as_array().expect("audit");
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert_eq!(
            keys_of(&audit[0]),
            sorted(&["id", "request_log_id", "model", "provider", "source", "base_cost_usd", "cost_nanousd", "calc_at"])
        );
        assert_eq!((audit[0]["request_log_id"].clone(), audit[0]["cost_nanousd"].clone()), (json!(ids[0]), json!(10_500_000)));

        assert_eq!(get_json(&proxy, "/admin/quotas"), json!({"snapshots": []}));
        assert_eq!(get_json(&proxy, "/admin/quotas/probes"), json!({"probes": ["claude", "codex", "kimi"]}));
        let refresh = get_json(&proxy, "/admin/quotas/refresh");
        assert_eq!((refresh["accounts"].clone(), refresh["inserted"].clone()), (json!([]), json!(0)), "{refresh}");
        assert!(refresh["timestamp"].is_string() || refresh["timestamp"].is_number(), "{refresh}");
        let history = get_json(&proxy, "/admin/quotas/history?hours=5");
        assert_eq!(history["buckets"].as_array().map(Vec::len), Some(61), "{history}");
        assert_eq!(history["buckets"][0]["snapshots"], json!([]));

        let providers = get_json(&proxy, "/admin/providers");
        let ids_listed: Vec<&str> = providers["providers"].as_array().expect("providers").iter().filter_map(|p| p["id"].as_str()).collect();
        assert_eq!(ids_listed, ["anthropic", "xai", "kimi", "zai", "minimax", "openai", "google"]);
        assert_eq!(providers["source"]["kind"], "built-in");
        assert_eq!(providers["providers"][1]["models"], json!(["grok"]));
        assert_eq!(providers["providers"][0]["hasCustomUpstream"], false);

        let pricing = get_json(&proxy, "/admin/pricing?model=claude-sonnet-4-5&provider=anthropic");
        assert_eq!(pricing["model"], "claude-sonnet-4-5");
        assert_eq!(pricing["loaded"], true, "{pricing}");
        assert_eq!(pricing["match"]["source"], "exact", "{pricing}");
        assert_eq!((pricing["match"]["pricing"]["input"].as_f64(), pricing["match"]["pricing"]["output"].as_f64()), (Some(3.0), Some(15.0)));
        assert!(pricing["fetchedAt"].is_number() && pricing["ageMs"].is_number(), "{pricing}");
        assert_eq!(get_json(&proxy, "/admin/pricing")["match"], Value::Null);

        let config_res = call(&proxy, "GET", "/admin/config", &[], b"");
        assert!(!config_res.text().contains(UPSTREAM_KEY), "secrets only as booleans");
        let config = config_res.json().expect("json");
        assert_eq!(config["proxy"]["port"], proxy.addr().port(), "{config}");
        assert_eq!(config["proxy"]["proxyRequireApiKey"], false);
        assert_eq!(config["upstream"]["cliProxyApiUrl"], url.as_str());
        assert_eq!(config["upstream"]["maxRetries"], 2);
        assert_eq!(config["pricing"]["streamUsageInject"], true);
        assert_eq!(config["features"]["hasAdminApiKey"], false);
        assert_eq!(config["features"]["customProviders"], 0);
        assert_eq!(config["dbPath"], proxy.db_path().display().to_string());

        let breakers = get_json(&proxy, "/admin/breakers");
        let list = breakers["breakers"].as_array().expect("breakers");
        let names: Vec<&str> = list.iter().filter_map(|b| b["providerId"].as_str()).collect();
        let mut sorted_names = names.clone();
        sorted_names.sort_unstable();
        assert_eq!(names, sorted_names, "sorted by providerId");
        assert!(names.contains(&"anthropic") && names.contains(&"openai"), "{breakers}");
        let anthropic = get_json(&proxy, "/admin/breakers/anthropic");
        assert_eq!(keys_of(&anthropic), sorted(&["providerId", "state", "failures", "openedAt", "lastActivity"]));
        assert_eq!((anthropic["state"].clone(), anthropic["failures"].clone(), anthropic["openedAt"].clone()), (json!("closed"), json!(1), json!(0)), "the 500 is a failure: {anthropic}");
        let reset = call(&proxy, "POST", "/admin/breakers/anthropic/reset", &[], b"");
        assert_eq!((reset.status, reset.json()), (200, Some(json!({"ok": true, "providerId": "anthropic"}))));
        assert_eq!(get_json(&proxy, "/admin/breakers/anthropic")["failures"], 0);
        for (method, path) in [("GET", "/admin/breakers/nope"), ("POST", "/admin/breakers/nope/reset")] {
            let res = call(&proxy, method, path, &[], b"");
            assert_eq!((res.status, res.json()), (404, Some(json!({"error": "Breaker not found"}))), "{path}");
        }

        let metrics = call(&proxy, "GET", "/metrics", &[], b"");
        assert_eq!(metrics.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        let text = metrics.text();
        assert!(text.ends_with('\n'));
        for series in METRIC_SERIES {
            assert!(text.contains(&format!("# HELP {series} ")), "{series} HELP:\n{text}");
            assert!(text.contains(&format!("# TYPE {series} ")), "{series} TYPE:\n{text}");
        }
        assert_eq!(metric_sample(&text, "agent_cli_proxy_up"), Some(1.0));
        assert_eq!(metric_sample(&text, r#"agent_cli_proxy_requests_today{model="claude-sonnet-4-5",provider="anthropic"}"#), Some(2.0), "{text}");
        assert_eq!(metric_sample(&text, r#"agent_cli_proxy_tokens_today{model="gpt-5",provider="openai"}"#), Some(120.0), "{text}");
        assert_eq!(
            metric_sample(&text, r#"agent_cli_proxy_proxy_request_duration_ms_count{lifecycle_status="completed",provider="anthropic",status="200",streamed="false"}"#),
            Some(1.0),
            "{text}"
        );
        assert!(!text.contains("adm-0") && !text.contains(UPSTREAM_KEY), "no request id or credential in labels");
    }

    /// Managed keys (`control.md` §6.7, `datapath.md` §4): created once with the key shown
    /// only then, stored as hash and prefix, used for attribution and never forwarded,
    /// restricted by provider (E14, O14), and refused within about 1 s of revocation.
    fn managed_key_life_cycle(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[
                ("CLI_PROXY_API_URL", url.as_str()),
                ("CLI_PROXY_API_KEY", UPSTREAM_KEY),
                ("PROXY_REQUIRE_API_KEY", "true"),
            ],
        );
        for (body, message) in [
            (r#"{"name":""}"#, "name is required"),
            (r#"{"name":"   "}"#, "name is required"),
            (r#"{"name":5}"#, "Invalid request body"),
            ("[1]", "Invalid request body"),
            ("not json", "Invalid request body"),
            (r#"{"name":"a\u0007b"}"#, "Invalid request body"),
            (r#"{"name":"x","allowed_providers":"openai"}"#, "Invalid request body"),
        ] {
            let res = call(&proxy, "POST", "/admin/api-keys", &[JSON], body.as_bytes());
            assert_eq!((res.status, res.json()), (400, Some(json!({"error": message}))), "{body}");
        }
        assert_eq!(db::scalar(&proxy.db_path(), "SELECT COUNT(*) FROM api_keys", &[]), 0);

        let created = call(&proxy, "POST", "/admin/api-keys", &[JSON], br#"{"name":"alice","allowed_accounts":[" a@x ","a@x",""]}"#);
        assert_eq!(created.status, 201, "{}", created.text());
        let created = created.json().expect("json");
        let key = created["key"].as_str().expect("key").to_owned();
        let id = created["id"].as_i64().expect("id");
        assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{key}");
        assert_eq!(created["keyPrefix"], &key[..8]);
        assert_eq!(created["name"], "alice");
        assert_eq!(created["allowedAccounts"], json!(["a@x"]), "trimmed, de-duplicated, blanks dropped");
        assert_eq!(created["allowedProviders"], Value::Null);
        let stored = db::rows(&proxy.db_path(), "SELECT * FROM api_keys", &[]);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["key_hash"], sha256_hex(key.as_bytes()));
        assert_eq!(stored[0]["key_prefix"], &key[..8]);
        assert!(!stored[0].to_string().contains(&key), "the key itself is never stored");
        let listed = call(&proxy, "GET", "/admin/api-keys", &[], b"");
        assert!(!listed.text().contains(&key), "the key is shown only at creation");
        let listed = listed.json().expect("json");
        assert_eq!(listed["apiKeys"][0]["id"], id);
        assert_eq!(listed["apiKeys"][0]["requestCount"], 0);

        let bearer = format!("Bearer {key}");
        for (i, auth) in [("authorization", bearer.as_str()), ("x-api-key", key.as_str())].into_iter().enumerate() {
            let msg = format!("key-{i}");
            let res = call(
                &proxy,
                "POST",
                "/v1/chat/completions",
                &[JSON, auth, ("x-request-id", msg.as_str())],
                br#"{"model":"gpt-5","messages":[]}"#,
            );
            assert_eq!(res.status, 200, "{auth:?}: {}", res.text());
            let row = db::final_row(&proxy.db_path(), &msg, ROW_WAIT);
            assert_eq!(row["proxy_api_key_id"], id, "{row}");
            let sent = upstream.ledger().by_request_id(&msg);
            assert_eq!(sent[0].header_all("authorization"), [format!("Bearer {UPSTREAM_KEY}").as_str()]);
            assert!(sent[0].header("x-api-key").is_none());
            assert!(!format!("{:?}", sent[0].headers).contains(&key), "the managed key never reaches the upstream");
        }
        let usage = get_json(&proxy, &format!("/admin/api-keys/{id}/usage"));
        assert_eq!((usage["id"].clone(), usage["requestCount"].clone()), (json!(id), json!(2)), "{usage}");
        let (_, touched) = db::wait_rows(&proxy.db_path(), "SELECT last_used_at FROM api_keys", &[], ROW_WAIT, |r| {
            r.first().is_some_and(|r| r["last_used_at"].is_string())
        });
        assert!(touched, "last_used_at is set");

        let patch = call(&proxy, "PATCH", &format!("/admin/api-keys/{id}"), &[JSON], br#"{"allowed_providers":["anthropic"]}"#);
        assert_eq!((patch.status, patch.json()), (200, Some(json!({"ok": true}))));
        // A key lookup may be cached for up to 1 000 ms, so the restriction applies within it.
        let patched_at = Instant::now();
        let (res, denied) = loop {
            let denied = format!("key-denied-{}", patched_at.elapsed().as_millis());
            let res = call(&proxy, "POST", "/v1/chat/completions", &[JSON, ("authorization", bearer.as_str()), ("x-request-id", denied.as_str())], br#"{"model":"gpt-5"}"#);
            if res.status != 200 || patched_at.elapsed() > Duration::from_millis(1500) {
                break (res, denied);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!((res.status, res.json()), (403, Some(json!({"error": "provider not allowed for this API key"}))));
        let row = db::final_row(&proxy.db_path(), &denied, ROW_WAIT);
        assert_eq!(
            (row["lifecycle_status"].clone(), row["status"].clone(), row["error_code"].clone()),
            (json!("error"), json!(403), json!("provider_not_allowed")),
            "O14: {row}"
        );
        assert!(upstream.ledger().by_request_id(&denied).is_empty());
        let res = call(&proxy, "POST", "/v1/messages", &[JSON, ("authorization", bearer.as_str())], br#"{"model":"claude-sonnet-4-5"}"#);
        assert_eq!(res.status, 200, "anthropic is allowed: {}", res.text());
        for (method, path) in [("PATCH", "/admin/api-keys/999"), ("DELETE", "/admin/api-keys/999"), ("GET", "/admin/api-keys/999/usage")] {
            let res = call(&proxy, method, path, &[JSON], br#"{"allowed_providers":null}"#);
            assert_eq!(res.status, 404, "{method} {path}");
        }

        let revoked = call(&proxy, "DELETE", &format!("/admin/api-keys/{id}"), &[], b"");
        let revoked_at = Instant::now();
        assert_eq!(revoked.status, 200, "{}", revoked.text());
        let stamp = revoked.json().expect("json")["revokedAt"].as_str().unwrap_or("").to_owned();
        assert_eq!(stamp.len(), 19, "YYYY-MM-DD HH:MM:SS: {stamp}");
        let refused_after = loop {
            let res = call(&proxy, "POST", "/v1/messages", &[JSON, ("authorization", bearer.as_str())], br#"{"model":"claude-sonnet-4-5"}"#);
            if res.status == 401 {
                break revoked_at.elapsed();
            }
            assert!(revoked_at.elapsed() < Duration::from_secs(3), "still accepted 3 s after revocation");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(refused_after <= Duration::from_millis(1200), "refused {refused_after:?} after revocation");
        let patch = call(&proxy, "PATCH", &format!("/admin/api-keys/{id}"), &[JSON], br#"{"allowed_providers":null}"#);
        assert_eq!(patch.status, 404, "a revoked key cannot be patched");
    }
}
