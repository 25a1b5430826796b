//! CI-13/CI-14 over raw sockets: request smuggling shapes, header limits and pipelining
//! (`datapath.md` §1, `reliability.md` RQ-H1–RQ-H3).
//!
//! Every hostile request must end in its status (or a close) without a panic: after each
//! one a canary request succeeds and `agent_cli_proxy_panics_total` stays 0, and the fake
//! upstream's ledger shows no request for rejected framing.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{canary, panics_total};
use agent_cli_proxy_tests::support::client::{RawConn, RawResponse, build_request};
use agent_cli_proxy_tests::support::ledger::Ledger;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;

agent_cli_proxy_tests::child_entry!();

const READ: Duration = Duration::from_secs(5);
const CHAT: &str = r#"{"model":"gpt-5","messages":[]}"#;

/// A request that must be refused at the framing level (RQ-H2).
struct Refused {
    name: &'static str,
    wire: Vec<u8>,
    /// Statuses accepted besides a bare close.
    statuses: &'static [u16],
}

both_shells! {
    /// RQ-H2 and the header limits: each shape gets its status (or a close), the connection
    /// serves nothing more, the upstream sees nothing, and the daemon keeps serving.
    async fn malformed_framing_is_refused_without_upstream_traffic(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let addr = proxy.addr();
        let mut failures = Vec::new();
        for case in refused_cases(addr) {
            let before = upstream.ledger().len();
            let mut wire = case.wire.clone();
            // A well-formed request after the hostile one must never be executed.
            wire.extend(build_request(
                addr,
                "POST",
                "/v1/chat/completions",
                &[("x-request-id", "smuggled"), ("content-type", "application/json")],
                CHAT.as_bytes(),
            ));
            let raw = exchange(addr, &wire).await;
            let statuses = raw.statuses();
            // The header limits have a status of their own (E24); framing errors may
            // also end in a bare close (RQ-H2).
            let close_ok = !case.statuses.iter().any(|s| *s == 431 || *s == 414);
            let refused = match statuses.as_slice() {
                [] => raw.closed && close_ok,
                [status] => case.statuses.contains(status) && raw.closed,
                _ => false,
            };
            if !refused {
                failures.push(format!(
                    "{}: statuses {statuses:?}, closed {} (want one of {:?} then close); got {:?}",
                    case.name,
                    raw.closed,
                    case.statuses,
                    String::from_utf8_lossy(&raw.bytes[..raw.bytes.len().min(300)])
                ));
            }
            let reached: Vec<String> = upstream.ledger().entries()[before..]
                .iter()
                .map(|e| format!("{} {} {:?}", e.method, e.target, e.request_id))
                .collect();
            if !reached.is_empty() {
                failures.push(format!("{}: the upstream received {reached:?}", case.name));
            }
            still_serving(addr, &upstream, case.name).await;
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// RQ-H1: `Content-Length` with `Transfer-Encoding: chunked` is framed as chunked, the
    /// upstream gets exactly one well-framed request, and the connection closes after the
    /// response so trailing bytes are never executed.
    async fn content_length_with_chunked_uses_chunked_and_closes(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let addr = proxy.addr();
        let mut wire = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             x-request-id: cl-te\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        wire.extend(chunked(CHAT.as_bytes()));
        wire.extend(build_request(addr, "GET", "/v1/models", &[("x-request-id", "cl-te-smuggled")], b""));
        let raw = exchange(addr, &wire).await;
        let statuses = raw.statuses();
        assert!(raw.closed, "the connection closes after the response");
        assert!(
            statuses == [200] || statuses == [400],
            "chunked wins (200) or the request is refused (400): {statuses:?}"
        );
        let entries = upstream.ledger().entries();
        assert!(
            entries.iter().all(|e| e.request_id.as_deref() != Some("cl-te-smuggled")),
            "the trailing request was executed: {entries:?}"
        );
        if statuses == [200] {
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert_eq!(entries[0].body, CHAT.as_bytes(), "the chunked body, decoded");
        } else {
            assert!(entries.is_empty(), "{entries:?}");
        }
        still_serving(addr, &upstream, "CL+TE").await;
    }

    /// RQ-H3: 2 and 10 pipelined requests in one write are answered in order and complete;
    /// after a malformed request the connection closes and later requests are not run.
    async fn pipelined_requests_are_answered_in_order(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let addr = proxy.addr();
        for n in [2usize, 10] {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for i in 0..n {
                let id = format!("pipe-{n}-{i}");
                let last = i + 1 == n;
                let connection = if last { "close" } else { "keep-alive" };
                let request = match i % 3 {
                    0 => build_request(addr, "GET", "/health", &[("connection", connection)], b""),
                    1 => build_request(
                        addr,
                        "POST",
                        "/v1/chat/completions",
                        &[
                            ("connection", connection),
                            ("x-request-id", id.as_str()),
                            ("content-type", "application/json"),
                            ("x-fake-model", id.as_str()),
                        ],
                        CHAT.as_bytes(),
                    ),
                    _ => build_request(addr, "GET", "/nope", &[("connection", connection)], b""),
                };
                wire.extend(request);
                want.push((i % 3, id));
            }
            let raw = exchange(addr, &wire).await;
            let responses = raw.responses();
            assert_eq!(responses.len(), n, "{n} pipelined: {:?}", raw.statuses());
            for (res, (kind, id)) in responses.iter().zip(&want) {
                match kind {
                    0 => assert_eq!((res.status, res.text()), (200, r#"{"status":"ok"}"#.to_owned())),
                    1 => {
                        assert_eq!(res.status, 200, "{id}");
                        assert_eq!(res.json().expect("json")["model"], id.as_str(), "in order");
                    }
                    _ => assert_eq!(res.status, 404, "{id}"),
                }
            }
        }
        let before = upstream.ledger().len();
        let mut wire = b"GET /health HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab".to_vec();
        wire.extend(build_request(addr, "POST", "/v1/chat/completions", &[("x-request-id", "after-bad")], CHAT.as_bytes()));
        let raw = exchange(addr, &wire).await;
        assert!(raw.closed);
        assert!(raw.statuses().len() <= 1 && raw.statuses().iter().all(|s| *s == 400), "{:?}", raw.statuses());
        assert_eq!(upstream.ledger().len(), before, "nothing after the malformed request runs");
        still_serving(addr, &upstream, "pipelining").await;
    }
}

fn refused_cases(addr: SocketAddr) -> Vec<Refused> {
    let post = |extra: &str, body: &[u8]| -> Vec<u8> {
        let mut wire = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{extra}\r\n"
        )
        .into_bytes();
        wire.extend_from_slice(body);
        wire
    };
    let n = CHAT.len();
    let many_headers: String = (0..101).map(|i| format!("x-h{i}: v\r\n")).collect();
    let long_target = format!("/v1/{}", "a".repeat(70 * 1024));
    let mut cases = vec![
        Refused {
            name: "two different content-lengths",
            wire: post(
                &format!("content-length: {n}\r\ncontent-length: {}\r\n", n + 1),
                CHAT.as_bytes(),
            ),
            statuses: &[400],
        },
        Refused {
            name: "transfer-encoding gzip",
            wire: post("transfer-encoding: gzip\r\n", CHAT.as_bytes()),
            statuses: &[400, 501],
        },
        Refused {
            name: "transfer-encoding chunked, gzip",
            wire: post(
                "transfer-encoding: chunked, gzip\r\n",
                &chunked(CHAT.as_bytes()),
            ),
            statuses: &[400, 501],
        },
        Refused {
            name: "bad chunk size",
            wire: post("transfer-encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
            statuses: &[400],
        },
        Refused {
            name: "chunk size over 64 bits",
            wire: post(
                "transfer-encoding: chunked\r\n",
                b"1ffffffffffffffff\r\n{}\r\n0\r\n\r\n",
            ),
            statuses: &[400],
        },
        Refused {
            name: "bare LF in chunk size line",
            wire: post("transfer-encoding: chunked\r\n", b"2\n{}\r\n0\r\n\r\n"),
            statuses: &[400],
        },
        Refused {
            name: "101 headers",
            wire: post(&many_headers, b""),
            statuses: &[431],
        },
        Refused {
            name: "70 KiB target",
            wire: format!("GET {long_target} HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes(),
            statuses: &[414],
        },
        Refused {
            name: "obs-fold",
            wire: post(
                &format!("x-folded: a\r\n  b\r\ncontent-length: {n}\r\n"),
                CHAT.as_bytes(),
            ),
            statuses: &[400],
        },
        Refused {
            name: "space before the colon",
            wire: post(&format!("content-length : {n}\r\n"), CHAT.as_bytes()),
            statuses: &[400],
        },
        Refused {
            name: "transfer-encoding on HTTP/1.0",
            wire: {
                let mut w = format!(
                    "POST /v1/chat/completions HTTP/1.0\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                .into_bytes();
                w.extend(chunked(CHAT.as_bytes()));
                w
            },
            statuses: &[400],
        },
    ];
    let mut nul = post("x-nul: a", b"");
    let at = nul.len() - 2;
    nul.splice(
        at..at,
        format!("\0b\r\ncontent-length: {n}\r\n").into_bytes(),
    );
    nul.extend_from_slice(CHAT.as_bytes());
    cases.push(Refused {
        name: "NUL in a header value",
        wire: nul,
        statuses: &[400],
    });
    let mut path = b"POST /v1/\xff\xfe/chat HTTP/1.1\r\n".to_vec();
    path.extend(format!("host: {addr}\r\ncontent-length: {n}\r\n\r\n{CHAT}").into_bytes());
    cases.push(Refused {
        name: "invalid UTF-8 path",
        wire: path,
        statuses: &[400, 404],
    });
    cases
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

async fn exchange(addr: SocketAddr, wire: &[u8]) -> RawResponse {
    let mut conn = RawConn::connect(addr).await.expect("connect");
    // The proxy may answer and close before reading everything; a failed write is part of
    // the outcome, not a test error.
    let _ = conn.send(wire).await;
    conn.read_until_close(READ).await
}

/// The canary and the panic counter after a hostile case; also checks that no smuggled
/// request ever reached the upstream.
async fn still_serving(addr: SocketAddr, upstream: &FakeUpstream, after: &str) {
    let ledger: Ledger = upstream.ledger().clone();
    let panics = tokio::task::spawn_blocking(move || {
        canary(addr);
        panics_total(addr, &[])
    })
    .await
    .unwrap_or_else(|e| panic!("canary after {after}: {e}"));
    assert_eq!(panics, 0.0, "after {after}");
    assert!(
        ledger.by_request_id("smuggled").is_empty(),
        "after {after}: a request behind hostile framing was executed"
    );
}
