//! Assertions shared by the black-box suites: the security headers of `datapath.md` §3,
//! reading `/metrics` samples, and the canary request of `reliability.md` §3 that must
//! succeed after every negative case.

use std::net::SocketAddr;

use crate::support::client::{Response, request_blocking};

/// The headers of `datapath.md` §3 that every response carries (HSTS only on a secure
/// request, so it is checked as absent on the plain listener).
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("x-permitted-cross-domain-policies", "none"),
];

/// Returns one line per missing or wrong security header in `headers` (names lower-case),
/// and one for an HSTS header on a plain-HTTP response; empty when all are right.
pub fn security_header_problems(headers: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, want) in SECURITY_HEADERS {
        let got: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if got != [want] {
            problems.push(format!("{name}: want [{want:?}], got {got:?}"));
        }
    }
    if headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("strict-transport-security"))
    {
        problems.push("strict-transport-security on a plain request".to_owned());
    }
    problems
}

/// The value of the sample whose series (name plus label block, exactly as written, e.g.
/// `agent_cli_proxy_upstream_retries_total{provider="x"}`) is `series`.
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.trim().parse().ok())?
    })
}

/// `GET /metrics` over loopback; panics when it does not answer 200.
pub fn metrics_text(proxy: SocketAddr) -> String {
    match request_blocking(proxy, "GET", "/metrics", &[], b"") {
        Ok(res) if res.status == 200 => res.text(),
        Ok(res) => panic!("/metrics answered {}: {}", res.status, res.text()),
        Err(err) => panic!("/metrics failed: {err}"),
    }
}

/// `agent_cli_proxy_panics_total` from `/metrics` (`admin_headers` carry a token when
/// `ADMIN_API_KEY` is set).
pub fn panics_total(proxy: SocketAddr, admin_headers: &[(&str, &str)]) -> f64 {
    let res = match request_blocking(proxy, "GET", "/metrics", admin_headers, b"") {
        Ok(res) if res.status == 200 => res,
        Ok(res) => panic!("/metrics answered {}: {}", res.status, res.text()),
        Err(err) => panic!("/metrics failed: {err}"),
    };
    match metric_sample(&res.text(), "agent_cli_proxy_panics_total") {
        Some(n) => n,
        None => panic!("no agent_cli_proxy_panics_total sample:\n{}", res.text()),
    }
}

/// The canary: a plain Chat request through the proxy that must answer 200 with the fake
/// upstream's JSON body (the proxy must point at a running [`FakeUpstream`]).
///
/// [`FakeUpstream`]: crate::support::upstream::FakeUpstream
pub fn canary(proxy: SocketAddr) -> Response {
    let res = request_blocking(
        proxy,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        br#"{"model":"gpt-5","messages":[]}"#,
    );
    match res {
        Ok(res) if res.status == 200 => res,
        Ok(res) => panic!("canary answered {}: {}", res.status, res.text()),
        Err(err) => panic!("canary failed: {err}"),
    }
}

/// The end of a fault case: the proxy still serves the [`canary`] and has caught no panic
/// (its panic counter is 0). Runs the blocking calls off the test's runtime thread.
pub async fn finish_with_canary(proxy: SocketAddr) {
    let checked = tokio::task::spawn_blocking(move || {
        canary(proxy);
        panics_total(proxy, &[])
    })
    .await;
    match checked {
        Ok(panics) => assert_eq!(panics, 0.0, "panics caught by the proxy"),
        Err(err) => panic!("canary check failed: {err}"),
    }
}

/// Waits until the proxy's in-memory price table knows `gpt-5` (the background pricing
/// refresh after startup has finished), polling `/admin/pricing` every 20 ms; panics after
/// 10 s. Cases that assert costs call it first, since the first refresh runs after `/health`
/// already answers.
pub fn wait_prices_loaded(proxy: SocketAddr, admin_headers: &[(&str, &str)]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(res) = request_blocking(
            proxy,
            "GET",
            "/admin/pricing?model=gpt-5&provider=openai",
            admin_headers,
            b"",
        ) {
            // Not the snapshot compiled into the binary: it prices gpt-5 from the first
            // instant, before the fixture's prices the cases' exact costs assume.
            if res.status == 200
                && res
                    .json()
                    .is_some_and(|v| !v["match"].is_null() && v["source"]["kind"] != "snapshot")
            {
                return;
            }
            last = format!("{} {}", res.status, res.text());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("prices not loaded within 10 s; last /admin/pricing: {last}");
}
