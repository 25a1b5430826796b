//! The dashboard over plain HTTP on both shells (`docs/dashboard.md` §1, §2, §4): the
//! redirect, the page and every embedded asset with their CSP, cache and compression headers;
//! the admin gate on `/dashboard/` (a non-loopback `Host` or `Origin` is refused); and the
//! sign-in flow with a password hash: wrong password 401, right password a cookie, admin calls
//! with the cookie, state-changing ones only with the CSRF header, sign-out ends the session,
//! and the attempt limit.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use agent_cli_proxy_core::dashboard::{self, ASSETS, CSP, IMMUTABLE, session};
use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::client::{Response, request_blocking};
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use serde_json::json;

agent_cli_proxy_tests::child_entry!();

const JSON: (&str, &str) = ("content-type", "application/json");

fn call(
    proxy: &ProxyProcess,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_blocking(proxy.addr(), method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}; logs:\n{}", proxy.logs()))
}

fn login(proxy: &ProxyProcess, password: &str) -> Response {
    let body = serde_json::to_vec(&json!({ "password": password })).unwrap();
    call(proxy, "POST", "/admin/session/login", &[JSON], &body)
}

both_shells! {
    /// The page, the redirect and every asset, with the headers of §1; the gate's Host and
    /// Origin checks; unknown paths.
    fn dashboard_is_served_with_its_headers(shell: Shell) {
        let proxy = ProxyProcess::start(shell, &[]);
        let res = call(&proxy, "GET", "/dashboard?range=30d", &[], b"");
        assert_eq!(res.status, 308);
        assert_eq!(res.header("location"), Some("/dashboard/?range=30d"));

        let page = call(&proxy, "GET", "/dashboard/", &[], b"");
        assert_eq!(page.status, 200);
        assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(page.header("cache-control"), Some("no-cache"));
        assert_eq!(page.header("content-security-policy"), Some(CSP));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        let html = page.text();
        assert!(html.contains(&dashboard::asset_url("app.js")), "{html}");

        for asset in ASSETS {
            let url = dashboard::asset_url(asset.path);
            let plain = call(&proxy, "GET", &url, &[], b"");
            assert_eq!(plain.status, 200, "{url}");
            assert_eq!(plain.header("cache-control"), Some(IMMUTABLE), "{url}");
            assert_eq!(plain.header("content-security-policy"), Some(CSP), "{url}");
            assert_eq!(plain.header("content-type"), Some(asset.content_type), "{url}");
            assert_eq!(plain.header("x-content-type-options"), Some("nosniff"), "{url}");
            assert_eq!(plain.body, asset.raw, "{url}");
            let gz = call(&proxy, "GET", &url, &[("accept-encoding", "gzip")], b"");
            if asset.gzip.len() < asset.raw.len() {
                assert_eq!(gz.header("content-encoding"), Some("gzip"), "{url}");
                assert_eq!(gz.body, asset.gzip, "{url}");
            }
        }
        let gz_page = call(&proxy, "GET", "/dashboard/", &[("accept-encoding", "br, gzip")], b"");
        assert_eq!(gz_page.header("content-encoding"), Some("gzip"));
        assert_eq!(gz_page.header("vary"), Some("accept-encoding"));

        for path in ["/dashboard/nope", "/dashboard/assets/000000000000/app.js"] {
            let res = call(&proxy, "GET", path, &[], b"");
            assert_eq!(res.status, 404, "{path}");
            assert_eq!(res.header("content-security-policy"), Some(CSP), "{path}");
        }
        for (headers, code) in [
            (vec![("host", "evil.example")], "BAD_HOST"),
            (vec![("origin", "http://evil.example")], "BAD_ORIGIN"),
            (vec![("origin", "null")], "BAD_ORIGIN"),
        ] {
            for path in ["/dashboard/", "/admin/session", "/admin/usage/summary"] {
                let res = call(&proxy, "GET", path, &headers, b"");
                assert_eq!(res.status, 403, "{path} {headers:?}");
                assert_eq!(res.json(), Some(json!({"error": "Forbidden", "code": code})), "{path}");
                assert_eq!(res.header("cache-control"), Some("no-store"), "{path}");
            }
        }
        let open = call(&proxy, "GET", "/admin/session", &[], b"");
        assert_eq!(open.json(), Some(json!({"mode": "open", "authenticated": true, "csrf": null})));

        // The endpoints the overview reads (`control.md` §6.9): shapes and validation.
        let summary = call(&proxy, "GET", "/admin/usage/summary?from=2026-01-01&to=2026-01-31", &[], b"");
        assert_eq!(summary.status, 200);
        let summary = summary.json().unwrap();
        assert_eq!((summary["from"].clone(), summary["requests"].clone(), summary["error_rate"].clone()), (json!("2026-01-01"), json!(0), json!(0.0)));
        let series = call(&proxy, "GET", "/admin/usage/series?by=model", &[], b"").json().unwrap();
        assert_eq!((series["by"].clone(), series["keys"].clone()), (json!("model"), json!([])));
        for (path, message) in [
            ("/admin/usage/series?by=colour", "Invalid by parameter; expected tool, model, provider, client or account"),
            ("/admin/usage/summary?from=2026-01-01", "Both from and to are required when using date range"),
            ("/admin/usage/summary?from=2026-02-02&to=2026-02-01", "from must be on or before to"),
            ("/admin/logs?q=%20", "Invalid filter parameter"),
        ] {
            let res = call(&proxy, "GET", path, &[], b"");
            assert_eq!((res.status, res.json()), (400, Some(json!({"error": message}))), "{path}");
        }
        let long = format!("/admin/logs?q={}", "a".repeat(201));
        assert_eq!(call(&proxy, "GET", &long, &[], b"").status, 400);
        assert_eq!(call(&proxy, "GET", "/admin/logs?q=messages", &[], b"").json(), Some(json!([])));
    }

    /// `DASHBOARD_PASSWORD_HASH` set: sign-in, cookie, CSRF, sign-out, attempt limit.
    fn sign_in_with_a_password(shell: Shell) {
        let phc = session::hash_password("correct horse", [9; 16]).unwrap();
        let proxy = ProxyProcess::start(shell, &[("DASHBOARD_PASSWORD_HASH", phc.as_str())]);

        let state = call(&proxy, "GET", "/admin/session", &[], b"");
        assert_eq!(state.json(), Some(json!({"mode": "password", "authenticated": false, "csrf": null})));
        assert_eq!(call(&proxy, "GET", "/dashboard/", &[], b"").status, 200, "the page itself needs no session");
        let denied = call(&proxy, "GET", "/admin/stats", &[], b"");
        assert_eq!((denied.status, denied.json()), (403, Some(json!({"error": "Forbidden", "code": "UNAUTHORIZED"}))));
        assert_eq!(call(&proxy, "GET", "/metrics", &[], b"").status, 403);

        let wrong = login(&proxy, "wrong horse");
        assert_eq!((wrong.status, wrong.json()), (401, Some(json!({"error": "Invalid password"}))));
        assert!(wrong.header("set-cookie").is_none());
        assert_eq!(call(&proxy, "POST", "/admin/session/login", &[JSON], b"{}").status, 400);

        let ok = login(&proxy, "correct horse");
        assert_eq!(ok.status, 200, "{}", ok.text());
        let set_cookie = ok.header("set-cookie").unwrap().to_owned();
        assert!(set_cookie.starts_with("acp_session=v1."), "{set_cookie}");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
            assert!(set_cookie.contains(attr), "{attr} in {set_cookie}");
        }
        let body = ok.json().unwrap();
        let csrf = body["csrf"].as_str().unwrap().to_owned();
        assert_eq!(body["ok"], true);
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let with_cookie = [("cookie", cookie.as_str())];

        assert_eq!(call(&proxy, "GET", "/admin/stats", &with_cookie, b"").status, 200);
        assert_eq!(call(&proxy, "GET", "/metrics", &with_cookie, b"").status, 200);
        let state = call(&proxy, "GET", "/admin/session", &with_cookie, b"").json().unwrap();
        assert_eq!((state["authenticated"].clone(), state["csrf"].clone()), (json!(true), json!(csrf)));

        let key_body = br#"{"name":"from-dashboard"}"#;
        let no_csrf = call(&proxy, "POST", "/admin/api-keys", &[JSON, with_cookie[0]], key_body);
        assert_eq!((no_csrf.status, no_csrf.json()), (403, Some(json!({"error": "Forbidden", "code": "CSRF"}))));
        let bad_csrf = call(&proxy, "POST", "/admin/api-keys", &[JSON, with_cookie[0], ("x-acp-csrf", "0000")], key_body);
        assert_eq!(bad_csrf.status, 403);
        let created = call(&proxy, "POST", "/admin/api-keys", &[JSON, with_cookie[0], ("x-acp-csrf", csrf.as_str())], key_body);
        assert_eq!(created.status, 201, "{}", created.text());

        // A forged or foreign cookie is not a session.
        let forged = cookie.replacen("acp_session=v1.", "acp_session=v1.1", 1);
        assert_eq!(call(&proxy, "GET", "/admin/stats", &[("cookie", forged.as_str())], b"").status, 403);

        let no_csrf_logout = call(&proxy, "POST", "/admin/session/logout", &with_cookie, b"");
        assert_eq!(no_csrf_logout.status, 403);
        let out = call(&proxy, "POST", "/admin/session/logout", &[with_cookie[0], ("x-acp-csrf", csrf.as_str())], b"");
        assert_eq!(out.status, 200);
        assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
        assert_eq!(call(&proxy, "GET", "/admin/stats", &with_cookie, b"").status, 403, "a signed-out cookie is void");

        // Three attempts so far (wrong, malformed, right); two more are checked, the sixth
        // within the minute is refused even with the right password.
        for _ in 0..2 {
            assert_eq!(login(&proxy, "nope").status, 401);
        }
        let limited = login(&proxy, "correct horse");
        assert_eq!(limited.status, 429, "{}", limited.text());
        assert!(limited.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|n| (1..=60).contains(&n))));

        // The generated secret sits next to the database, private.
        let secret = proxy.db_path().parent().unwrap().join(".dashboard-session-secret");
        let meta = std::fs::metadata(&secret).unwrap_or_else(|e| panic!("{}: {e}", secret.display()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(!proxy.logs().contains("correct horse"), "the password never reaches the logs");
    }

    /// `ADMIN_API_KEY` alone: the page loads, asks for the token, and the admin API wants it.
    fn token_mode(shell: Shell) {
        let proxy = ProxyProcess::start(shell, &[("ADMIN_API_KEY", "dash-admin-7f3a91")]);
        assert_eq!(call(&proxy, "GET", "/dashboard/", &[], b"").status, 200);
        let state = call(&proxy, "GET", "/admin/session", &[], b"").json().unwrap();
        assert_eq!(state, json!({"mode": "token", "authenticated": false, "csrf": null}));
        let token = [("x-admin-token", "dash-admin-7f3a91")];
        let state = call(&proxy, "GET", "/admin/session", &token, b"").json().unwrap();
        assert_eq!(state["authenticated"], true);
        assert_eq!(call(&proxy, "GET", "/admin/usage/summary", &[], b"").status, 403);
        assert_eq!(call(&proxy, "GET", "/admin/usage/summary", &token, b"").status, 200);
        let login = login(&proxy, "anything");
        assert_eq!((login.status, login.json()), (404, Some(json!({"error": "Password sign-in is not configured"}))));
    }
}
