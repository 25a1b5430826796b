//! The dashboard in a real headless Chromium (`docs/dashboard.md` §4), driven over the
//! DevTools protocol by `headless_chrome`: after a known set of calls through the daemon,
//! every overview `data-metric` equals the value computed from the database here; the
//! requests view lists them newest first, a filter narrows them, export returns the same
//! rows; the page makes no request outside the daemon's origin and logs no console error;
//! screenshots at 1280×800 and 390×844, light and dark, are written as artefacts.
//!
//! Runs against the tokio shell only: the page and every byte of it come from the core, which
//! both shells serve unchanged (the HTTP tests in `dashboard_http.rs` cover both).
//!
//! Chromium: `ACP_CHROMIUM` if set, else `chromium`, `chromium-browser` or `google-chrome` on
//! `PATH`. Without one the test fails and says how to install it. Artefacts go to
//! `ACP_ARTEFACT_DIR` (default `target/test-artefacts/dashboard`). With
//! `ACP_README_SCREENSHOT=1` the light 1280×800 overview is also copied to
//! `docs/img/dashboard-overview.png`.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_cli_proxy_tests::support::checks::wait_prices_loaded;
use agent_cli_proxy_tests::support::client::request_blocking;
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::proc::{ProxyProcess, run_child_if_requested};
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use headless_chrome::protocol::cdp::Emulation;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

agent_cli_proxy_tests::child_entry!();

const WAIT: Duration = Duration::from_secs(15);

/// The Chromium binary, or a failure that says how to get one.
fn chromium() -> PathBuf {
    if let Ok(p) = std::env::var("ACP_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Chromium found for the dashboard browser tests: install it with \
         `apt-get install -y chromium` (Debian; `.ci/run` does this), or set ACP_CHROMIUM \
         to a Chrome or Chromium binary"
    );
}

fn artefact_dir() -> PathBuf {
    let dir = std::env::var_os("ACP_ARTEFACT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts/dashboard")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the page did that the test must see: every request URL, every console error.
#[derive(Default)]
struct Observed {
    urls: Vec<String>,
    errors: Vec<String>,
}

fn launch(profile: &Path) -> Browser {
    let flags: Vec<&OsStr> = [
        "--disable-quic",
        "--disable-component-update",
        "--no-default-browser-check",
        "--lang=en-US",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(chromium()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1280, 800)))
        .user_data_dir(Some(profile.to_path_buf()))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(flags)
        .build()
        .unwrap();
    Browser::new(options).unwrap_or_else(|e| panic!("could not start Chromium: {e}"))
}

fn observe(tab: &Arc<Tab>) -> Arc<Mutex<Observed>> {
    let seen = Arc::new(Mutex::new(Observed::default()));
    tab.enable_runtime().unwrap();
    tab.enable_log().unwrap();
    tab.call_method(headless_chrome::protocol::cdp::Network::Enable {
        max_total_buffer_size: None,
        max_resource_buffer_size: None,
        max_post_data_size: None,
        report_direct_socket_traffic: None,
        enable_durable_messages: None,
    })
    .unwrap();
    let sink = Arc::clone(&seen);
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let mut s = sink.lock().unwrap();
        match event {
            Event::NetworkRequestWillBeSent(e) => s.urls.push(e.params.request.url.clone()),
            Event::RuntimeExceptionThrown(e) => s
                .errors
                .push(format!("exception: {:?}", e.params.exception_details)),
            Event::RuntimeConsoleAPICalled(e) => {
                let kind = format!("{:?}", e.params.Type).to_ascii_lowercase();
                if kind.contains("error") || kind.contains("assert") {
                    s.errors
                        .push(format!("console.{kind}: {:?}", e.params.args))
                }
            }
            Event::LogEntryAdded(e) => {
                let level = format!("{:?}", e.params.entry.level).to_ascii_lowercase();
                if level.contains("error") {
                    s.errors.push(format!(
                        "log: {} {:?}",
                        e.params.entry.text, e.params.entry.url
                    ))
                }
            }
            _ => {}
        }
    }))
    .unwrap();
    seen
}

/// Evaluates `js` (which must produce a string, or a promise of one) and returns it.
fn eval(tab: &Tab, js: &str) -> String {
    let out = tab
        .evaluate(js, true)
        .unwrap_or_else(|e| panic!("evaluate {js}: {e}"));
    match out.value {
        Some(Value::String(s)) => s,
        other => panic!("evaluate {js}: not a string: {other:?}"),
    }
}

fn eval_json(tab: &Tab, js: &str) -> Value {
    serde_json::from_str(&eval(tab, &format!("JSON.stringify({js})"))).unwrap()
}

/// Polls `js` (a boolean expression) until it is true.
fn wait_for(tab: &Tab, js: &str, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if eval(tab, &format!("String(Boolean({js}))")) == "true" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({js})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set_view(tab: &Tab, width: u32, height: u32, dark: bool) {
    tab.call_method(Emulation::SetDeviceMetricsOverride {
        width,
        height,
        device_scale_factor: 1.0,
        mobile: width < 600,
        scale: None,
        screen_width: None,
        screen_height: None,
        position_x: None,
        position_y: None,
        dont_set_visible_size: None,
        screen_orientation: None,
        viewport: None,
        display_feature: None,
        device_posture: None,
    })
    .unwrap();
    tab.call_method(Emulation::SetEmulatedMedia {
        media: None,
        features: Some(vec![Emulation::MediaFeature {
            name: "prefers-color-scheme".to_owned(),
            value: if dark { "dark" } else { "light" }.to_owned(),
        }]),
    })
    .unwrap();
}

fn ids_in(tab: &Tab, selector: &str) -> Vec<i64> {
    let v = eval_json(
        tab,
        &format!("[...document.querySelectorAll('{selector}')].map(e => Number(e.dataset.rowId))"),
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn db_ids(proxy: &ProxyProcess, filter: &str) -> Vec<i64> {
    db::rows(
        &proxy.db_path(),
        &format!("SELECT id FROM request_logs {filter} ORDER BY started_at DESC, id DESC"),
        &[],
    )
    .iter()
    .map(|r| r["id"].as_i64().unwrap())
    .collect()
}

/// The known set of calls: Anthropic (with cache tokens), a Chat call from codex, two from
/// claude-cli, and an upstream 500.
type Call<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

fn make_calls(proxy: &ProxyProcess) {
    let json = ("content-type", "application/json");
    let calls: [Call<'_>; 5] = [
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            vec![("x-fake-fixture", "anthropic/w1_plain.json")],
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-5","messages":[]}"#,
            vec![
                ("x-fake-fixture", "openai_chat/plain.json"),
                ("user-agent", "codex_cli_rs/0.101.0 (Linux; x86_64)"),
            ],
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            vec![
                ("x-fake-fixture", "anthropic/w1_plain.json"),
                ("user-agent", "claude-cli/2.0.31 (external, cli)"),
            ],
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            vec![("x-fake-status", "500")],
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-5","messages":[]}"#,
            vec![
                ("x-fake-fixture", "openai_chat/plain.json"),
                ("user-agent", "codex_cli_rs/0.101.0 (Linux; x86_64)"),
            ],
        ),
    ];
    for (i, (path, body, extra)) in calls.iter().enumerate() {
        let msg = format!("dash-{i}");
        let mut headers = vec![json, ("x-request-id", msg.as_str())];
        headers.extend_from_slice(extra);
        let res = request_blocking(proxy.addr(), "POST", path, &headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("{path}: {e}; logs:\n{}", proxy.logs()));
        assert!(res.status == 200 || i == 3, "{path}: {}", res.text());
        db::final_row(&proxy.db_path(), &msg, Duration::from_secs(5));
    }
}

/// The overview figures of the default range (the last 7 UTC days), from the database.
fn expected_metrics(proxy: &ProxyProcess) -> Value {
    let rows = db::rows(
        &proxy.db_path(),
        "SELECT COUNT(*) AS requests,
           SUM(CASE WHEN status BETWEEN 200 AND 299 THEN 0 ELSE 1 END) AS errors,
           SUM(prompt_tokens) AS input, SUM(completion_tokens) AS output,
           SUM(cache_read_tokens) AS cache_read, SUM(cache_creation_tokens) AS cache_write,
           SUM(cost_nanousd) AS cost
         FROM request_logs
         WHERE lifecycle_status != 'pending'
           AND substr(started_at, 1, 10) >= date('now', '-6 days')",
        &[],
    );
    rows[0].clone()
}

fn screenshot(tab: &Tab, name: &str) -> PathBuf {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let path = artefact_dir().join(name);
    std::fs::write(&path, &png).unwrap();
    println!("ARTEFACT {}", path.display());
    path
}

#[test]
fn dashboard_in_a_real_browser_tokio() {
    run_child_if_requested();
    let chromium = chromium();
    let upstream = FakeUpstream::start();
    let url = upstream.url();
    let proxy = ProxyProcess::start(Shell::Tokio, &[("CLI_PROXY_API_URL", url.as_str())]);
    wait_prices_loaded(proxy.addr(), &[]);
    make_calls(&proxy);
    let origin = format!("http://127.0.0.1:{}", proxy.addr().port());

    let profile = tempfile::tempdir().unwrap();
    let browser = launch(profile.path());
    println!(
        "chromium {}: {:?}",
        chromium.display(),
        browser.get_version().ok().map(|v| v.product)
    );
    let tab = browser.new_tab().unwrap();
    let seen = observe(&tab);
    // A unique `n` makes every open a full page load: a change of the fragment alone would
    // be a same-document navigation with no load event to wait for.
    let loads = std::cell::Cell::new(0);
    let open = |query: &str, hash: &str| {
        loads.set(loads.get() + 1);
        let sep = if query.is_empty() { "?" } else { "&" };
        let n = loads.get();
        tab.navigate_to(&format!("{origin}/dashboard/{query}{sep}n={n}{hash}"))
            .unwrap()
            .wait_until_navigated()
            .unwrap();
    };

    // Overview: each figure's twin equals the database's value.
    set_view(&tab, 1280, 800, false);
    open("", "");
    wait_for(
        &tab,
        "document.querySelector('#view-overview[data-ready=\"1\"]')",
        "the overview",
    );
    let metrics = eval_json(
        &tab,
        "Object.fromEntries([...document.querySelectorAll('#view-overview [data-metric]')].map(e => [e.dataset.metric, e.dataset.value]))",
    );
    let want = expected_metrics(&proxy);
    let num = |name: &str| -> i64 {
        metrics[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(want["requests"], 5, "{want}");
    assert_eq!(
        num("requests-total"),
        want["requests"].as_i64().unwrap(),
        "{metrics}"
    );
    assert_eq!(
        num("cost-total"),
        want["cost"].as_i64().unwrap(),
        "{metrics}"
    );
    assert_eq!(
        num("tokens-input"),
        want["input"].as_i64().unwrap(),
        "{metrics}"
    );
    assert_eq!(
        num("tokens-output"),
        want["output"].as_i64().unwrap(),
        "{metrics}"
    );
    assert_eq!(
        num("tokens-cache-read"),
        want["cache_read"].as_i64().unwrap(),
        "{metrics}"
    );
    assert_eq!(
        num("tokens-cache-write"),
        want["cache_write"].as_i64().unwrap(),
        "{metrics}"
    );
    let error_rate: f64 = metrics["error-rate"].as_str().unwrap().parse().unwrap();
    let want_rate = want["errors"].as_f64().unwrap() / want["requests"].as_f64().unwrap();
    assert!(
        (error_rate - want_rate).abs() < 1e-12,
        "{error_rate} vs {want_rate}"
    );
    assert!(
        want["cost"].as_i64().unwrap() > 0 && want["errors"] == 1,
        "{want}"
    );
    // The chart was drawn with one band per tool, and the top tables name every model.
    assert_eq!(
        eval(
            &tab,
            "String(document.querySelectorAll('#chart canvas').length)"
        ),
        "1"
    );
    let models = eval_json(
        &tab,
        "[...document.querySelectorAll('#top-models tr[data-row-id]')].map(e => e.dataset.rowId)",
    );
    assert_eq!(
        models,
        serde_json::json!(["claude-sonnet-4-5", "gpt-5"]),
        "ordered by cost"
    );
    let shots = [
        ("overview-1280x800-light.png", 1280, 800, false),
        ("overview-1280x800-dark.png", 1280, 800, true),
        ("overview-390x844-light.png", 390, 844, false),
        ("overview-390x844-dark.png", 390, 844, true),
    ];
    for (name, w, h, dark) in shots {
        set_view(&tab, w, h, dark);
        open("?range=7d", "");
        wait_for(
            &tab,
            "document.querySelector('#view-overview[data-ready=\"1\"]')",
            name,
        );
        let path = screenshot(&tab, name);
        if name == "overview-1280x800-light.png"
            && std::env::var_os("ACP_README_SCREENSHOT").is_some()
        {
            let dest =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/dashboard-overview.png");
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&path, &dest).unwrap();
        }
    }
    // A range picked by URL: today only still holds every call (they were all made now).
    set_view(&tab, 1280, 800, false);
    open("?range=today", "");
    wait_for(
        &tab,
        "document.querySelector('#view-overview[data-ready=\"1\"]')",
        "today",
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('[data-metric=\"requests-total\"]').dataset.value"
        ),
        "5"
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('[data-range=\"today\"]').getAttribute('aria-pressed')"
        ),
        "true"
    );

    // Requests: newest first, then narrowed by a filter, then exported.
    open("", "#requests");
    wait_for(
        &tab,
        "document.querySelector('#view-requests[data-ready=\"1\"]')",
        "the requests view",
    );
    let all = db_ids(&proxy, "");
    assert_eq!(all.len(), 5);
    assert_eq!(
        ids_in(&tab, "#requests-table tr[data-row-id]"),
        all,
        "newest first"
    );
    // Auto-refresh: a call made now shows up within one refresh period, with no reload.
    let late = request_blocking(
        proxy.addr(),
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("x-request-id", "dash-late"),
            ("x-fake-fixture", "openai_chat/plain.json"),
            ("user-agent", "codex_cli_rs/0.101.0 (Linux; x86_64)"),
        ],
        br#"{"model":"gpt-5","messages":[]}"#,
    )
    .unwrap();
    assert_eq!(late.status, 200, "{}", late.text());
    db::final_row(&proxy.db_path(), "dash-late", Duration::from_secs(5));
    let all = db_ids(&proxy, "");
    assert_eq!(all.len(), 6);
    let want_all = serde_json::to_string(&all).unwrap();
    wait_for(
        &tab,
        &format!(
            "JSON.stringify([...document.querySelectorAll('#requests-table tr[data-row-id]')].map(e => Number(e.dataset.rowId))) === '{want_all}'"
        ),
        "the auto-refresh",
    );
    let codex = db_ids(&proxy, "WHERE tool = 'codex'");
    assert!(!codex.is_empty() && codex.len() < all.len(), "{codex:?}");
    eval(
        &tab,
        "(() => { const i = document.querySelector('#filters [name=tool]'); i.value = 'codex'; i.dispatchEvent(new Event('input', {bubbles: true})); return ''; })()",
    );
    let want_ids = serde_json::to_string(&codex).unwrap();
    wait_for(
        &tab,
        &format!(
            "JSON.stringify([...document.querySelectorAll('#requests-table tr[data-row-id]')].map(e => Number(e.dataset.rowId))) === '{want_ids}'"
        ),
        "the tool filter",
    );
    eval(
        &tab,
        "(() => { document.getElementById('export-json').click(); return ''; })()",
    );
    wait_for(
        &tab,
        "document.getElementById('export-link').dataset.format === 'json'",
        "the JSON export",
    );
    let exported: Value = serde_json::from_str(&eval(
        &tab,
        "fetch(document.getElementById('export-link').href).then(r => r.text())",
    ))
    .unwrap();
    let exported_ids: Vec<i64> = exported
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(exported_ids, codex, "JSON export holds the filtered rows");
    for row in exported.as_array().unwrap() {
        let id = row["id"].as_i64().unwrap();
        let stored = &db::rows(
            &proxy.db_path(),
            "SELECT cost_nanousd, prompt_tokens, model FROM request_logs WHERE id = ?1",
            &[&id],
        )[0];
        assert_eq!(
            (&row["cost_nanousd"], &row["prompt_tokens"], &row["model"]),
            (
                &stored["cost_nanousd"],
                &stored["prompt_tokens"],
                &stored["model"]
            )
        );
    }
    eval(
        &tab,
        "(() => { document.getElementById('export-csv').click(); return ''; })()",
    );
    wait_for(
        &tab,
        "document.getElementById('export-link').dataset.format === 'csv'",
        "the CSV export",
    );
    let csv = eval(
        &tab,
        "fetch(document.getElementById('export-link').href).then(r => r.text())",
    );
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().starts_with("id,started_at,tool,"),
        "{csv}"
    );
    let csv_ids: Vec<i64> = lines
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(csv_ids, codex, "CSV export holds the filtered rows");

    // The detail panel of a row shows every column of it.
    let first = codex[0];
    eval(
        &tab,
        &format!(
            "(() => {{ document.querySelector('#requests-table tr[data-row-id=\"{first}\"]').click(); return ''; }})()"
        ),
    );
    wait_for(
        &tab,
        &format!(
            "!document.getElementById('detail').hidden && document.querySelector('#detail [data-field=\"id\"]')?.dataset.value === '{first}'"
        ),
        "the detail panel",
    );
    screenshot(&tab, "requests-detail-1280x800-light.png");

    // Health lists the /ready checks; keys can be created (secret once) and revoked.
    open("", "#health");
    wait_for(
        &tab,
        "document.querySelector('#view-health[data-ready=\"1\"]')",
        "the health view",
    );
    screenshot(&tab, "health-1280x800-light.png");
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('[data-metric=\"check-database\"]').dataset.value"
        ),
        "pass"
    );
    // Every check /ready reports (the spool's too, when the daemon has one) is on the page.
    let ready = request_blocking(proxy.addr(), "GET", "/ready", &[], b"")
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&String> = ready["checks"].as_object().unwrap().keys().collect();
    assert!(names.len() >= 4, "{ready}");
    for name in names {
        let shown = eval(
            &tab,
            &format!(
                "document.querySelector('[data-metric=\"check-{name}\"]')?.dataset.value ?? 'missing'"
            ),
        );
        assert_ne!(shown, "missing", "check {name} not shown");
    }
    open("", "#accounts");
    wait_for(
        &tab,
        "document.querySelector('#view-accounts[data-ready=\"1\"]')",
        "the accounts view",
    );
    assert!(
        eval(&tab, "document.getElementById('accounts-note').textContent")
            .contains("CLIPROXY_AUTH_DIR")
    );
    open("", "#keys");
    wait_for(
        &tab,
        "document.querySelector('#view-keys[data-ready=\"1\"]')",
        "the keys view",
    );
    eval(
        &tab,
        "(() => { const f = document.getElementById('key-form'); f.elements.name.value = 'browser-test'; f.requestSubmit(); return ''; })()",
    );
    wait_for(
        &tab,
        "!document.getElementById('key-secret').hidden",
        "the new key's secret",
    );
    screenshot(&tab, "keys-1280x800-light.png");
    let secret = eval(
        &tab,
        "document.getElementById('key-secret-value').textContent",
    );
    assert!(
        secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret}"
    );
    let key_id = eval(&tab, "document.getElementById('key-secret').dataset.keyId");
    wait_for(
        &tab,
        &format!(
            "document.querySelector('#keys-table tr[data-row-id=\"{key_id}\"] [data-action=revoke]')"
        ),
        "the key row",
    );
    eval(
        &tab,
        &format!(
            "(() => {{ const b = document.querySelector('#keys-table tr[data-row-id=\"{key_id}\"] [data-action=revoke]'); b.click(); b.click(); return ''; }})()"
        ),
    );
    wait_for(
        &tab,
        &format!(
            "document.querySelector('#keys-table tr[data-row-id=\"{key_id}\"]') && !document.querySelector('#keys-table tr[data-row-id=\"{key_id}\"] [data-action=revoke]')"
        ),
        "the revocation",
    );
    let revoked = db::scalar(
        &proxy.db_path(),
        "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NOT NULL AND id = ?1",
        &[&key_id.parse::<i64>().unwrap()],
    );
    assert_eq!(revoked, 1);

    let seen = seen.lock().unwrap();
    let foreign: Vec<&String> = seen
        .urls
        .iter()
        .filter(|u| {
            !u.starts_with(&format!("{origin}/"))
                && !u.starts_with("blob:")
                && !u.starts_with("data:")
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "requests outside the daemon's origin: {foreign:?}"
    );
    assert!(
        seen.urls.iter().any(|u| u.contains("/admin/usage/summary")),
        "{:?}",
        seen.urls
    );
    assert!(seen.errors.is_empty(), "console errors: {:#?}", seen.errors);
}

/// Sign-in in the browser with `DASHBOARD_PASSWORD_HASH`: the form, a wrong password, the
/// right one, the overview behind it, a reload that keeps the session, and sign-out.
#[test]
fn sign_in_in_the_browser_tokio() {
    run_child_if_requested();
    let phc =
        agent_cli_proxy_core::dashboard::session::hash_password("open sesame", [5; 16]).unwrap();
    let proxy = ProxyProcess::start(Shell::Tokio, &[("DASHBOARD_PASSWORD_HASH", phc.as_str())]);
    let origin = format!("http://127.0.0.1:{}", proxy.addr().port());
    let profile = tempfile::tempdir().unwrap();
    let browser = launch(profile.path());
    let tab = browser.new_tab().unwrap();
    let seen = observe(&tab);
    tab.navigate_to(&format!("{origin}/dashboard/"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    wait_for(
        &tab,
        "!document.getElementById('login').hidden",
        "the sign-in form",
    );
    assert_eq!(
        eval(&tab, "String(document.getElementById('tabs').hidden)"),
        "true"
    );
    let submit = |password: &str| {
        eval(
            &tab,
            &format!(
                "(() => {{ document.getElementById('login-secret').value = {}; document.getElementById('login-form').requestSubmit(); return ''; }})()",
                serde_json::to_string(password).unwrap()
            ),
        );
    };
    submit("wrong");
    wait_for(
        &tab,
        "document.getElementById('login-error').textContent === 'Wrong password.'",
        "the wrong-password message",
    );
    submit("open sesame");
    wait_for(
        &tab,
        "document.querySelector('#view-overview[data-ready=\"1\"]')",
        "the overview after sign-in",
    );
    assert_eq!(
        eval(&tab, "document.cookie"),
        "",
        "the session cookie is HttpOnly"
    );
    tab.navigate_to(&format!("{origin}/dashboard/?again=1"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    wait_for(
        &tab,
        "document.querySelector('#view-overview[data-ready=\"1\"]')",
        "the overview after a reload",
    );
    eval(
        &tab,
        "(() => { document.getElementById('logout').click(); return ''; })()",
    );
    wait_for(
        &tab,
        "!document.getElementById('login').hidden",
        "the form after sign-out",
    );
    tab.navigate_to(&format!("{origin}/dashboard/?after=1"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    wait_for(
        &tab,
        "!document.getElementById('login').hidden",
        "the form after sign-out and reload",
    );
    let seen = seen.lock().unwrap();
    // The wrong password's 401 is logged by Chromium as a failed resource; nothing else may be.
    let unexpected: Vec<&String> = seen.errors.iter().filter(|e| !e.contains("401")).collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
}
