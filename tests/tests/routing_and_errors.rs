//! CI-11: routing, the admin gate, the client errors that reject before any upstream work
//! (E2–E9, E11, E12), the security headers on every kind of response, and the `/ready`
//! pass/fail shapes (`datapath.md` §2, §3, §5, §7, §15; `control.md` §7).
//!
//! Each case starts one proxy and sends many requests to it; rejected requests are checked
//! against the fake upstream's ledger (no upstream traffic) and the database (no row).

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{
    canary, metric_sample, panics_total, security_header_problems, wait_prices_loaded,
};
use agent_cli_proxy_tests::support::client::{Response, request_blocking};
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use serde_json::{Value, json};

agent_cli_proxy_tests::child_entry!();

const CHAT: &[u8] = br#"{"model":"gpt-5","messages":[]}"#;
const JSON: (&str, &str) = ("content-type", "application/json");

fn send(proxy: &ProxyProcess, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    send_body(proxy, method, path, headers, b"")
}

fn send_body(
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

/// Status, exact JSON body, `content-type: application/json` and the security headers.
fn assert_error(res: &Response, status: u16, body: Value, what: &str) {
    assert_eq!(res.status, status, "{what}: {}", res.text());
    assert_eq!(res.json(), Some(body), "{what}: body {:?}", res.text());
    assert_eq!(
        res.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    assert_secure(res, what);
}

fn assert_no_store(res: &Response, what: &str) {
    assert_eq!(res.header("cache-control"), Some("no-store"), "{what}");
}

fn assert_secure(res: &Response, what: &str) {
    let problems = security_header_problems(&res.headers);
    assert!(problems.is_empty(), "{what}: {problems:?}");
}

fn forbidden(code: &str) -> Value {
    json!({"error": "Forbidden", "code": code})
}

fn row_count(proxy: &ProxyProcess) -> i64 {
    db::settled_scalar(&proxy.db_path(), "SELECT COUNT(*) FROM request_logs")
}

both_shells! {
    /// `/health`, the 404 of everything outside the fixed routes, `/v1/` and `/api/`, and the
    /// security headers on health, 404, proxied, admin, metrics and ready responses.
    fn health_404s_and_security_headers_on_every_response(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);

        let health = send(&proxy, "GET", "/health", &[("origin", "http://evil.example")]);
        assert_error(&health, 200, json!({"status": "ok"}), "/health needs no checks");
        // `/dashboard` is the dashboard now (`dashboard.md` §1); a look-alike is still 404.
        for path in ["/v1", "/dashboards", "/v1beta", "/", "/v2/chat/completions", "/apix"] {
            let res = send(&proxy, "GET", path, &[]);
            assert_error(&res, 404, json!({"error": "not found"}), path);
            let res = send_body(&proxy, "POST", path, &[JSON], CHAT);
            assert_error(&res, 404, json!({"error": "not found"}), path);
        }
        assert!(upstream.ledger().is_empty(), "{:?}", upstream.ledger().entries());

        let proxied = send_body(&proxy, "POST", "/v1/chat/completions", &[JSON], CHAT);
        assert_eq!(proxied.status, 200, "{}", proxied.text());
        assert_secure(&proxied, "proxied JSON");
        let upstream_error = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON, ("x-fake-status", "404")],
            CHAT,
        );
        assert_eq!(upstream_error.status, 404);
        assert_secure(&upstream_error, "relayed upstream error");
        let non_llm = send(&proxy, "GET", "/v1/models", &[]);
        assert_eq!(non_llm.status, 200);
        assert_secure(&non_llm, "non-LLM call");
        let admin = send(&proxy, "GET", "/admin/stats", &[]);
        assert_eq!(admin.status, 200, "{}", admin.text());
        assert_secure(&admin, "admin");
        assert_no_store(&admin, "admin");
        let admin_404 = send(&proxy, "GET", "/admin/nope", &[]);
        assert_error(&admin_404, 404, json!({"error": "Not found"}), "unknown admin path");
        let metrics = send(&proxy, "GET", "/metrics", &[]);
        assert_eq!(metrics.status, 200);
        assert_secure(&metrics, "metrics");
        let ready = send(&proxy, "GET", "/ready", &[]);
        assert_secure(&ready, "ready");
        assert_eq!(upstream.ledger().len(), 4, "proxied calls and the ready probe");
        assert_eq!(panics_total(proxy.addr(), &[]), 0.0);
    }

    /// The admin gate without `ADMIN_API_KEY`: Host (E2), Origin (E3, `null` included) and
    /// the JSON content type of mutations (E5); every rejection is `no-store`.
    fn admin_gate_checks_host_origin_and_content_type(shell: Shell) {
        let proxy = ProxyProcess::start(shell, &[]);
        let port = proxy.addr().port();
        let other_port = format!("127.0.0.1:{}", port.wrapping_add(1).max(1));
        for host in ["evil.example", "evil.example:80", other_port.as_str(), "127.0.0.2"] {
            for path in ["/admin/stats", "/metrics"] {
                let res = send(&proxy, "GET", path, &[("host", host)]);
                assert_error(&res, 403, forbidden("BAD_HOST"), &format!("{path} host {host}"));
                assert_no_store(&res, host);
            }
        }
        let localhost = format!("LocalHost:{port}");
        let ipv6 = format!("[::1]:{port}");
        for host in ["localhost", localhost.as_str(), ipv6.as_str(), "127.0.0.1"] {
            let res = send(&proxy, "GET", "/admin/stats", &[("host", host)]);
            assert_eq!(res.status, 200, "host {host}: {}", res.text());
        }
        for origin in ["http://evil.example", "null", "file://", "http://localhost.evil.example"] {
            for path in ["/admin/stats", "/metrics"] {
                let res = send(&proxy, "GET", path, &[("origin", origin)]);
                assert_error(&res, 403, forbidden("BAD_ORIGIN"), &format!("{path} origin {origin}"));
                assert_no_store(&res, origin);
            }
        }
        for origin in ["http://localhost:5173", "https://127.0.0.1", "http://[::1]:8080"] {
            let res = send(&proxy, "GET", "/admin/stats", &[("origin", origin)]);
            assert_eq!(res.status, 200, "origin {origin}: {}", res.text());
        }
        let plain = send_body(
            &proxy,
            "POST",
            "/admin/api-keys",
            &[("content-type", "text/plain")],
            br#"{"name":"x"}"#,
        );
        assert_error(
            &plain,
            415,
            json!({"error": "Content-Type must be application/json"}),
            "text/plain admin POST",
        );
        assert_no_store(&plain, "E5");
        let keys = db::scalar(&proxy.db_path(), "SELECT COUNT(*) FROM api_keys", &[]);
        assert_eq!(keys, 0, "a rejected mutation stores nothing");
        let with_charset = send_body(
            &proxy,
            "POST",
            "/admin/api-keys",
            &[("content-type", "application/json; charset=utf-8")],
            br#"{"name":"ok"}"#,
        );
        assert_eq!(with_charset.status, 201, "{}", with_charset.text());
    }

    /// With `ADMIN_API_KEY`: no or a wrong token is E4; the right one passes through
    /// `x-admin-token` or `Authorization: Bearer` (any case), and `x-admin-token` wins.
    fn admin_gate_with_admin_key(shell: Shell) {
        let key = "adm-7d1e0c2b9f3a";
        let proxy = ProxyProcess::start(shell, &[("ADMIN_API_KEY", key)]);
        let bearer = format!("Bearer {key}");
        let lower = format!("bearer   {key}");
        let padded = format!("  {key} ");
        let rejected: [&[(&str, &str)]; 5] = [
            &[],
            &[("x-admin-token", "wrong")],
            &[("authorization", "Bearer wrong")],
            &[("authorization", key)],
            &[("x-admin-token", "wrong"), ("authorization", bearer.as_str())],
        ];
        for headers in rejected {
            for path in ["/admin/stats", "/metrics", "/admin/breakers"] {
                let res = send(&proxy, "GET", path, headers);
                assert_error(&res, 403, forbidden("UNAUTHORIZED"), &format!("{path} {headers:?}"));
                assert_no_store(&res, path);
            }
        }
        let accepted: [&[(&str, &str)]; 4] = [
            &[("x-admin-token", key)],
            &[("x-admin-token", padded.as_str())],
            &[("authorization", bearer.as_str())],
            &[("authorization", lower.as_str())],
        ];
        for headers in accepted {
            let res = send(&proxy, "GET", "/admin/stats", headers);
            assert_eq!(res.status, 200, "{headers:?}: {}", res.text());
            let metrics = send(&proxy, "GET", "/metrics", headers);
            assert_eq!(metrics.status, 200, "{headers:?}");
        }
        let bad_host = send(&proxy, "GET", "/admin/stats", &[("host", "evil.example"), ("x-admin-token", key)]);
        assert_error(&bad_host, 403, forbidden("BAD_HOST"), "host is checked before the token");
        assert_eq!(panics_total(proxy.addr(), &[("x-admin-token", key)]), 0.0);
    }

    /// The checks of `/v1/*` before any upstream work without keys: cross-origin (E3),
    /// content encoding (E8), body limit by length and by count (E9), unknown provider
    /// (E12). None of them reaches the upstream or writes a row.
    fn proxy_rejections_before_upstream(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[("CLI_PROXY_API_URL", url.as_str()), ("MAX_REQUEST_BODY_BYTES", "1000")],
        );
        for origin in ["http://evil.example", "null", "https://localhost.evil.example:5173"] {
            for path in ["/v1/chat/completions", "/api/chat", "/v1/models"] {
                let res = send_body(&proxy, "POST", path, &[JSON, ("origin", origin)], CHAT);
                assert_error(&res, 403, forbidden("BAD_ORIGIN"), &format!("{path} {origin}"));
                assert_no_store(&res, origin);
            }
        }
        let gzip = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON, ("content-encoding", "gzip")],
            CHAT,
        );
        assert_error(&gzip, 415, json!({"error": "unsupported content-encoding"}), "E8");
        let too_big = json!({"error": "request body exceeds 1000 bytes", "limit": 1000});
        let declared = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON, ("content-length", "1001")],
            b"",
        );
        assert_error(&declared, 413, too_big.clone(), "E9 by content-length, before the body");
        let big = vec![b' '; 1001];
        let counted = send_body(&proxy, "POST", "/v1/chat/completions", &[JSON], &big);
        assert_error(&counted, 413, too_big.clone(), "E9 with the body sent");
        let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
        chunked.extend_from_slice(&big);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let by_count = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON, ("transfer-encoding", "chunked")],
            &chunked,
        );
        assert_error(&by_count, 413, too_big, "E9 by count (chunked)");
        let unknown = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON, ("x-provider", "nope")],
            CHAT,
        );
        assert_error(
            &unknown,
            400,
            json!({"error": "unknown provider: nope", "code": "UNKNOWN_PROVIDER"}),
            "E12 by header",
        );
        let by_body = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON],
            br#"{"model":"gpt-5","provider":"elsewhere"}"#,
        );
        assert_error(
            &by_body,
            400,
            json!({"error": "unknown provider: elsewhere", "code": "UNKNOWN_PROVIDER"}),
            "E12 by body field",
        );
        let long_id = "p".repeat(150);
        let long = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON, ("x-provider", long_id.as_str())],
            CHAT,
        );
        let cut = format!("unknown provider: {}", "p".repeat(100));
        assert_error(&long, 400, json!({"error": cut, "code": "UNKNOWN_PROVIDER"}), "E12 id cut");
        assert!(upstream.ledger().is_empty(), "{:?}", upstream.ledger().entries());
        assert_eq!(row_count(&proxy), 0, "rejections create no row");

        let allowed = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON, ("origin", "http://localhost:5173"), ("content-encoding", "identity")],
            CHAT,
        );
        assert_eq!(allowed.status, 200, "{}", allowed.text());
        assert_eq!(upstream.ledger().len(), 1);
        assert_eq!(panics_total(proxy.addr(), &[]), 0.0);
        canary(proxy.addr());
    }

    /// `PROXY_REQUIRE_API_KEY=true`: no or an unknown key is E7 (whatever the Origin, since
    /// the key protects the route) and nothing reaches the upstream.
    fn required_keys_reject_missing_and_unknown_keys(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[("CLI_PROXY_API_URL", url.as_str()), ("PROXY_REQUIRE_API_KEY", "true")],
        );
        let e7 = json!({"error": "Valid Authorization Bearer token or x-api-key required."});
        let unknown = format!("Bearer {}", "ab".repeat(32));
        let cases: [&[(&str, &str)]; 6] = [
            &[],
            &[("authorization", unknown.as_str())],
            &[("x-api-key", "not-a-key")],
            &[("x-proxy-key", "not-a-key")],
            &[("authorization", "Bearer ")],
            &[("origin", "http://evil.example")],
        ];
        for headers in cases {
            let mut all = vec![JSON];
            all.extend_from_slice(headers);
            let res = send_body(&proxy, "POST", "/v1/chat/completions", &all, CHAT);
            assert_error(&res, 401, e7.clone(), &format!("{headers:?}"));
            assert_no_store(&res, "E7");
        }
        assert!(upstream.ledger().is_empty());
        assert_eq!(row_count(&proxy), 0);
    }

    /// `RATE_LIMIT_PER_CLIENT_PER_MIN=1`: the second request of one client is E11 with
    /// `retry-after: 60`; another client has its own bucket; no upstream call for the
    /// rejection; the counter counts it.
    fn rate_limit_rejects_with_retry_after(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[("CLI_PROXY_API_URL", url.as_str()), ("RATE_LIMIT_PER_CLIENT_PER_MIN", "1")],
        );
        let first = send_body(&proxy, "POST", "/v1/chat/completions", &[JSON], CHAT);
        assert_eq!(first.status, 200, "{}", first.text());
        let second = send(&proxy, "GET", "/v1/models", &[]);
        assert_error(
            &second,
            429,
            json!({"error": "rate limit exceeded", "code": "RATE_LIMITED"}),
            "E11",
        );
        assert_no_store(&second, "E11");
        assert_eq!(second.header("retry-after"), Some("60"));
        let other = send_body(
            &proxy,
            "POST",
            "/v1/chat/completions",
            &[JSON, ("x-agent-name", "other")],
            CHAT,
        );
        assert_eq!(other.status, 200, "a different client_id has its own bucket");
        assert_eq!(upstream.ledger().len(), 2);
        assert_eq!(row_count(&proxy), 2, "the rejection has no row");
        let metrics = send(&proxy, "GET", "/metrics", &[]).text();
        assert_eq!(
            metric_sample(
                &metrics,
                "agent_cli_proxy_rate_limited_total"
            ),
            Some(1.0),
            "{metrics}"
        );
    }

    /// `/ready` with the upstream down: 503, `fail`, the upstream check failed, the shape of
    /// every check; `no-store`.
    fn ready_fails_when_the_upstream_is_down(shell: Shell) {
        let proxy = ProxyProcess::start(shell, &[]);
        let res = send(&proxy, "GET", "/ready", &[]);
        assert_eq!(res.status, 503, "{}", res.text());
        assert_no_store(&res, "/ready");
        assert_secure(&res, "/ready");
        let body = res.json().expect("json");
        assert_eq!(body["status"], "fail", "{body}");
        assert_ready_shape(&body);
        assert_eq!(body["checks"]["upstream"]["status"], "fail", "{body}");
        assert!(body["checks"]["upstream"]["output"].is_string(), "{body}");
        assert_eq!(body["checks"]["database"]["status"], "pass", "{body}");
    }

    /// `/ready` with the upstream up: 200, the upstream check passed with `HTTP 200` after a
    /// `HEAD /health` that the fake upstream saw; a second call within 3 s is the memo.
    fn ready_passes_when_the_upstream_answers(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        // The pricing check needs the background refresh that follows startup.
        wait_prices_loaded(proxy.addr(), &[]);
        let res = send(&proxy, "GET", "/ready", &[]);
        assert_eq!(res.status, 200, "{}", res.text());
        assert_no_store(&res, "/ready");
        let body = res.json().expect("json");
        assert!(["pass", "warn"].contains(&body["status"].as_str().unwrap_or("")), "{body}");
        assert_ready_shape(&body);
        assert_eq!(body["checks"]["upstream"]["status"], "pass", "{body}");
        assert_eq!(body["checks"]["upstream"]["output"], "HTTP 200", "{body}");
        let probes = upstream.ledger().entries();
        assert_eq!(probes.len(), 1, "{probes:?}");
        assert_eq!((probes[0].method.as_str(), probes[0].path()), ("HEAD", "/health"));
        let again = send(&proxy, "GET", "/ready", &[]);
        assert_eq!(again.status, 200);
        assert_eq!(upstream.ledger().len(), 1, "the result is reused for 3 000 ms");
    }

    /// E1: a non-loopback peer is refused on admin routes and `/metrics` whatever the
    /// forwarding headers say. Needs a non-loopback local address; skipped with a notice
    /// when the machine has none.
    fn admin_gate_refuses_a_non_loopback_peer(shell: Shell) {
        let Some(ip) = non_loopback_address() else {
            println!("SKIP E1: no non-loopback local address");
            return;
        };
        let proxy = ProxyProcess::start(
            shell,
            &[("PROXY_HOST", "0.0.0.0"), ("PROXY_REQUIRE_API_KEY", "true")],
        );
        let addr = SocketAddr::new(ip, proxy.addr().port());
        let spoofed: [(&str, &str); 4] = [
            ("host", "127.0.0.1"),
            ("x-forwarded-for", "127.0.0.1"),
            ("forwarded", "for=127.0.0.1"),
            ("x-real-ip", "127.0.0.1"),
        ];
        for path in ["/admin/stats", "/metrics", "/dashboard/", "/admin/session"] {
            let res = match request_blocking(addr, "GET", path, &spoofed, b"") {
                Ok(res) => res,
                Err(err) => panic!("{path} via {addr}: {err}"),
            };
            assert_error(&res, 403, forbidden("LOCAL_ONLY"), path);
            assert_no_store(&res, path);
        }
        let health = request_blocking(addr, "GET", "/health", &[], b"").expect("health");
        assert_eq!(health.status, 200);
    }
}

fn assert_ready_shape(body: &Value) {
    for check in ["database", "pricing", "upstream", "supervisor"] {
        let status = body["checks"][check]["status"].as_str().unwrap_or("");
        assert!(
            ["pass", "warn", "fail"].contains(&status),
            "check {check}: {body}"
        );
    }
}

/// A local address that is not loopback, found by routing a UDP socket (no packet is sent).
fn non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    let usable = !ip.is_loopback() && !ip.is_unspecified();
    let reachable = usable
        && std::net::TcpStream::connect_timeout(
            &SocketAddr::new(ip, 9),
            Duration::from_millis(200),
        )
        .map_or_else(
            |e| e.kind() == std::io::ErrorKind::ConnectionRefused,
            |_| true,
        );
    reachable.then_some(ip)
}
