//! RQ-H4 and RQ-H5: hop-by-hop and proxy-private headers stop at the proxy in both
//! directions, the proxy-injected upstream credential arrives, and end-to-end headers pass
//! unchanged (`datapath.md` §10 and §13.2).

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::security_header_problems;
use agent_cli_proxy_tests::support::client::{SseRequest, request};
use agent_cli_proxy_tests::support::ledger::LedgerEntry;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;

agent_cli_proxy_tests::child_entry!();

const UPSTREAM_KEY: &str = "cpak-3e9d0f6a1b7c";

/// Client headers that must never reach the upstream (RQ-H4 plus `datapath.md` §10 step 2).
const HOP_REQUEST: [(&str, &str); 18] = [
    (
        "connection",
        "keep-alive, x-custom, x-api-key, authorization",
    ),
    ("keep-alive", "timeout=5"),
    ("te", "trailers"),
    ("trailer", "x-checksum"),
    ("upgrade", "websocket"),
    ("proxy-authorization", "Basic dXNlcjpwYXNz"),
    ("proxy-connection", "keep-alive"),
    ("x-custom", "named-in-connection"),
    ("x-api-key", "client-secret-key"),
    ("authorization", "Bearer client-secret-token"),
    ("x-proxy-key", "proxy-key-value"),
    ("x-forwarded-for", "203.0.113.7"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("cf-connecting-ip", "203.0.113.8"),
    ("cf-ray", "8f0c1d2e3a4b5c6d-AMS"),
    ("forwarded", "for=203.0.113.9"),
    ("x-real-ip", "203.0.113.10"),
];

/// Client headers that are end-to-end and must arrive unchanged.
const END_TO_END_REQUEST: [(&str, &str); 4] = [
    ("user-agent", "claude-cli/2.0.14 (external, cli)"),
    ("anthropic-beta", "prompt-caching-2024-07-31"),
    ("x-end-to-end", "kept as is"),
    ("x-cf-ray", "kept: the cf- prefix counts at the start only"),
];

/// Upstream response headers that must not reach the client (RQ-H5).
const HOP_RESPONSE: [&str; 8] = [
    "connection: x-leak",
    "x-leak: secret",
    "keep-alive: timeout=5",
    "upgrade: h2c",
    "proxy-authenticate: Basic",
    "proxy-status: fake",
    "te: trailers",
    "trailer: x-checksum",
];

/// Upstream response headers that are end-to-end and must reach the client.
const END_TO_END_RESPONSE: [(&str, &str); 6] = [
    ("request-id", "req_upstream_1"),
    ("anthropic-ratelimit-requests-remaining", "41"),
    ("anthropic-ratelimit-tokens-reset", "2026-05-04T10:00:00Z"),
    ("x-ratelimit-remaining-requests", "5"),
    ("cache-control", "no-cache"),
    ("x-upstream-custom", "passes"),
];

both_shells! {
    /// RQ-H4: for a plain LLM call, a stream and a non-LLM GET, the upstream sees none of
    /// the hop-by-hop, proxy and forwarding headers, receives `authorization: Bearer
    /// <CLI_PROXY_API_KEY>` and `accept-encoding: identity`, and the end-to-end headers.
    async fn request_hop_by_hop_headers_stop_at_the_proxy(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(
            shell,
            &[("CLI_PROXY_API_URL", url.as_str()), ("CLI_PROXY_API_KEY", UPSTREAM_KEY)],
        );
        let mut headers: Vec<(&str, &str)> = HOP_REQUEST.to_vec();
        headers.extend(END_TO_END_REQUEST);
        headers.push(("content-type", "application/json"));

        let calls: [(&str, &str, &[u8]); 3] = [
            ("POST", "/v1/messages", br#"{"model":"claude-sonnet-4-5","messages":[]}"#),
            ("POST", "/v1/chat/completions", br#"{"model":"gpt-5","messages":[]}"#),
            ("GET", "/v1/models", b""),
        ];
        for (i, (method, path, body)) in calls.into_iter().enumerate() {
            let id = format!("hop-req-{i}");
            let mut all = headers.clone();
            all.push(("x-request-id", id.as_str()));
            let res = request(proxy.addr(), method, path, &all, body)
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}; logs:\n{}", proxy.logs()));
            assert_eq!(res.status, 200, "{method} {path}: {}", res.text());
            let sent = upstream.ledger().by_request_id(&id);
            assert_eq!(sent.len(), 1, "{method} {path}");
            assert_request_headers(&sent[0]);
        }
        let stream = SseRequest::post(
            proxy.addr(),
            "/v1/messages",
            br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#,
        )
        .header("x-request-id", "hop-req-sse");
        let stream = HOP_REQUEST
            .iter()
            .chain(END_TO_END_REQUEST.iter())
            .fold(stream, |r, (n, v)| r.header(n, v));
        let out = stream.send().await.expect("stream");
        assert_eq!(out.status, 200);
        let sent = upstream.ledger().by_request_id("hop-req-sse");
        assert_eq!(sent.len(), 1);
        assert_request_headers(&sent[0]);
        assert_eq!(upstream.ledger().violations(), Vec::<String>::new());
    }

    /// RQ-H5: hop-by-hop response headers and every header `Connection` names are removed,
    /// end-to-end ones (request ids, retry-after, rate-limit families, repeated headers in
    /// order) pass, and the security headers overwrite upstream values.
    async fn response_hop_by_hop_headers_stop_at_the_proxy(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let mut script: Vec<(&str, &str)> = HOP_RESPONSE.iter().map(|h| ("x-fake-header", *h)).collect();
        let e2e: Vec<String> = END_TO_END_RESPONSE.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        script.extend(e2e.iter().map(|h| ("x-fake-header", h.as_str())));
        script.extend([
            ("x-fake-header", "x-multi: first"),
            ("x-fake-header", "x-multi: second"),
            ("x-fake-header", "x-frame-options: SAMEORIGIN"),
            ("x-fake-retry-after", "3"),
            ("content-type", "application/json"),
        ]);
        let calls: [(&str, &str, &[u8]); 3] = [
            ("POST", "/v1/messages", br#"{"model":"claude-sonnet-4-5","messages":[]}"#),
            ("POST", "/v1/messages", br#"{"model":"claude-sonnet-4-5","messages":[],"stream":true}"#),
            ("GET", "/v1/models", b""),
        ];
        for (method, path, body) in calls {
            let what = format!("{method} {path} {}", String::from_utf8_lossy(body));
            let res = request(proxy.addr(), method, path, &script, body)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}; logs:\n{}", proxy.logs()));
            assert_eq!(res.status, 200, "{what}");
            for hop in HOP_RESPONSE {
                let (name, value) = hop.split_once(": ").expect("name: value");
                let leaked = res
                    .headers
                    .iter()
                    .any(|(n, v)| n == name && (name != "connection" || v == value));
                assert!(!leaked, "{what}: {hop} reached the client: {:?}", res.headers);
            }
            for (name, value) in END_TO_END_RESPONSE {
                assert_eq!(res.header(name), Some(value), "{what}: {:?}", res.headers);
            }
            assert_eq!(res.header("retry-after"), Some("3"), "{what}");
            let multi: Vec<&str> = res
                .headers
                .iter()
                .filter(|(n, _)| n == "x-multi")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(multi, ["first", "second"], "{what}: repeated headers in order");
            let te: Vec<&str> = res
                .headers
                .iter()
                .filter(|(n, _)| n == "transfer-encoding")
                .map(|(_, v)| v.as_str())
                .collect();
            assert!(te.is_empty() || te == ["chunked"], "{what}: only the proxy's own framing: {te:?}");
            let problems = security_header_problems(&res.headers);
            assert!(problems.is_empty(), "{what}: {problems:?}");
        }
    }
}

fn assert_request_headers(entry: &LedgerEntry) {
    let what = format!("{} {}", entry.method, entry.target);
    let forbidden = |name: &str| {
        matches!(
            name,
            "connection"
                | "keep-alive"
                | "te"
                | "trailer"
                | "upgrade"
                | "proxy-connection"
                | "x-custom"
                | "x-api-key"
                | "x-proxy-key"
                | "forwarded"
                | "x-real-ip"
                | "x-provider"
        ) || name.starts_with("proxy-")
            || name.starts_with("x-forwarded-")
            || name.starts_with("cf-")
    };
    let leaked: Vec<&(String, String)> =
        entry.headers.iter().filter(|(n, _)| forbidden(n)).collect();
    // `connection: close` or `keep-alive` of the proxy's own upstream connection is its own
    // hop-by-hop header, not the client's; the client's value names x-custom.
    let leaked: Vec<_> = leaked
        .into_iter()
        .filter(|(n, v)| n != "connection" || v.contains("x-custom"))
        .collect();
    assert!(leaked.is_empty(), "{what}: {leaked:?}");
    assert_eq!(
        entry.header_all("authorization"),
        [format!("Bearer {UPSTREAM_KEY}").as_str()],
        "{what}: the proxy-injected credential replaces the client's"
    );
    assert_eq!(entry.header("accept-encoding"), Some("identity"), "{what}");
    for (name, value) in END_TO_END_REQUEST {
        assert_eq!(entry.header_all(name), [value], "{what}: {name}");
    }
    let flat = format!("{:?}", entry.headers);
    for secret in [
        "client-secret-key",
        "client-secret-token",
        "proxy-key-value",
        "203.0.113.",
    ] {
        assert!(
            !flat.contains(secret),
            "{what}: {secret} reached the upstream: {flat}"
        );
    }
}
