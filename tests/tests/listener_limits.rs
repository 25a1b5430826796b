//! The listener's time limits (`datapath.md` §1, `reliability.md` RQ-L1, RQ-L7), run with
//! the limits shortened through the test seam `ACP_TEST_LIMITS` so each case takes seconds.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::canary;
use agent_cli_proxy_tests::support::client::RawConn;
use agent_cli_proxy_tests::support::proc::{ProxyOptions, ProxyProcess};
use agent_cli_proxy_tests::support::shells::{Shell, skip_unbuilt};
use agent_cli_proxy_tests::support::upstream::FakeUpstream;

agent_cli_proxy_tests::child_entry!();

both_shells! {
    /// RQ-L7 / E23: a request that stops sending its body gets 408 with
    /// `{"error":"request body timeout"}` once the body idle limit passes, the connection
    /// closes, and the upstream never sees the request.
    async fn stalled_request_body_gets_408_and_no_upstream_call(shell: Shell) {
        if skip_unbuilt(shell) {
            return;
        }
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let options = ProxyOptions::new(shell).env(&[
            ("CLI_PROXY_API_URL", url.as_str()),
            ("ACP_TEST_LIMITS", "body_idle_ms=1000"),
        ]);
        let proxy = ProxyProcess::start_with(options);
        let mut conn = RawConn::connect(proxy.addr()).await.expect("connect");
        conn.send(
            b"POST /v1/messages HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":",
        )
        .await
        .expect("send");
        let started = Instant::now();
        let raw = conn.read_until_close(Duration::from_secs(10)).await;
        let elapsed = started.elapsed();
        let text = String::from_utf8_lossy(&raw.bytes);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains(r#"{"error":"request body timeout"}"#), "{text}");
        assert!(raw.closed, "the connection must close after E23");
        assert!(elapsed >= Duration::from_millis(900), "fired early: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "fired late: {elapsed:?}");
        assert_eq!(upstream.ledger().len(), 0, "no upstream request for E23");
        assert_eq!(canary(proxy.addr()).status, 200);
    }

    /// RQ-L1: a connection that never finishes its request head is closed once the header
    /// read timeout passes, without a response, and the daemon keeps serving.
    async fn slow_request_head_is_closed_after_the_header_timeout(shell: Shell) {
        if skip_unbuilt(shell) {
            return;
        }
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let options = ProxyOptions::new(shell).env(&[
            ("CLI_PROXY_API_URL", url.as_str()),
            ("ACP_TEST_LIMITS", "header_read_timeout_ms=1000"),
        ]);
        let proxy = ProxyProcess::start_with(options);
        let mut conn = RawConn::connect(proxy.addr()).await.expect("connect");
        conn.send(b"GET /health HTTP/1.1\r\nhost: local").await.expect("send");
        let started = Instant::now();
        let raw = conn.read_until_close(Duration::from_secs(10)).await;
        let elapsed = started.elapsed();
        assert!(raw.closed, "the slow head must be closed");
        assert!(
            !String::from_utf8_lossy(&raw.bytes).starts_with("HTTP/1.1 2"),
            "no successful response to an unfinished head"
        );
        assert!(elapsed >= Duration::from_millis(900), "closed early: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "closed late: {elapsed:?}");
        assert_eq!(canary(proxy.addr()).status, 200);
    }
}
