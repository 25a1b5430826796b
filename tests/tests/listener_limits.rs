//! The listener's time limits (`datapath.md` §1, `reliability.md` RQ-L1, RQ-L7), run with
//! the limits shortened through the test seam `ACP_TEST_LIMITS` so each case takes seconds.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::canary;
use agent_cli_proxy_tests::support::client::RawConn;
use agent_cli_proxy_tests::support::proc::{ProxyOptions, ProxyProcess};
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;

agent_cli_proxy_tests::child_entry!();

both_shells! {
    /// RQ-L7 / E23: a request that stops sending its body gets 408 with
    /// `{"error":"request body timeout"}` once the body idle limit passes, the connection
    /// closes, and the upstream never sees the request.
    async fn stalled_request_body_gets_408_and_no_upstream_call(shell: Shell) {
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

    /// An HTTP/1.0 request without `connection: keep-alive` gets a complete answer that says
    /// `connection: close`, and the connection closes after it (`datapath.md` §1).
    async fn http10_request_gets_a_closing_answer(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let options = ProxyOptions::new(shell).env(&[("CLI_PROXY_API_URL", url.as_str())]);
        let proxy = ProxyProcess::start_with(options);
        let mut conn = RawConn::connect(proxy.addr()).await.expect("connect");
        conn.send(b"GET /health HTTP/1.0\r\n\r\n").await.expect("send");
        let raw = conn.read_until_close(Duration::from_secs(10)).await;
        assert!(raw.closed, "an HTTP/1.0 connection must close after its answer");
        let responses = raw.responses();
        assert_eq!(responses.len(), 1, "{:?}", String::from_utf8_lossy(&raw.bytes));
        assert_eq!(responses[0].status, 200);
        // HTTP/1.0 closes by default, so hyper (tokio) sends no `connection` header; the
        // smol codec says `close` explicitly. Neither may announce keep-alive.
        let connection = responses[0].header("connection");
        assert!(matches!(connection, None | Some("close")), "{connection:?}");
        assert!(raw.elapsed < Duration::from_secs(5), "closed late: {:?}", raw.elapsed);
    }

    /// An `/admin/*` body over 1 MiB gets 413 with `connection: close`, and the connection
    /// closes: the proxy never reads the rest, so it cannot frame another request on it.
    async fn oversized_admin_body_gets_413_and_closes(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let options = ProxyOptions::new(shell).env(&[("CLI_PROXY_API_URL", url.as_str())]);
        let proxy = ProxyProcess::start_with(options);
        // One byte over the limit: the proxy reads all of it before deciding, so no unread
        // bytes can turn the close into a reset that destroys the answer.
        let body = vec![b' '; 1_048_577];
        let mut request = format!(
            "POST /admin/api-keys HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let mut conn = RawConn::connect(proxy.addr()).await.expect("connect");
        conn.send(&request).await.expect("send");
        let raw = conn.read_until_close(Duration::from_secs(10)).await;
        let responses = raw.responses();
        assert_eq!(responses.len(), 1, "{:?}", String::from_utf8_lossy(&raw.bytes));
        assert_eq!(responses[0].status, 413, "{}", String::from_utf8_lossy(&responses[0].body));
        assert_eq!(responses[0].header("connection"), Some("close"));
        assert!(raw.closed, "the connection must close after the 413");
        assert!(raw.elapsed < Duration::from_secs(5), "closed late: {:?}", raw.elapsed);
        assert_eq!(canary(proxy.addr()).status, 200);
    }

    /// A kept-alive connection waits the keep-alive idle time for its next request, not the
    /// shorter header read timeout (`datapath.md` §1), and is closed once that time passes
    /// without a request (hyper alone would close it after its header read timeout:
    /// `shell-tokio/src/conntimer.rs`).
    async fn idle_kept_alive_connection_is_closed(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let options = ProxyOptions::new(shell).env(&[
            ("CLI_PROXY_API_URL", url.as_str()),
            ("ACP_TEST_LIMITS", "header_read_timeout_ms=400,keep_alive_idle_ms=1500"),
        ]);
        let proxy = ProxyProcess::start_with(options);
        let request = b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n";
        let mut conn = RawConn::connect(proxy.addr()).await.expect("connect");
        conn.send(request).await.expect("send");
        // Idle for well over the header read timeout, then a second request on the same
        // connection.
        let first = conn.read_for(Duration::from_millis(900)).await.expect("read");
        assert!(first.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first));
        conn.send(request).await.expect("the connection is still open");
        let second_sent = Instant::now();
        let raw = conn.read_until_close(Duration::from_secs(10)).await;
        assert!(raw.closed, "the idle connection must be closed");
        assert_eq!(raw.statuses(), vec![200], "the second request is answered");
        let idle = second_sent.elapsed();
        assert!(idle >= Duration::from_millis(1_300), "closed early: {idle:?}");
        assert!(idle < Duration::from_secs(8), "closed late: {idle:?}");
    }
}
