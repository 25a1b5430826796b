//! CI-12, hostile response bodies:
//!
//! | Case | Requirement |
//! |---|---|
//! | malformed and truncated SSE, whole and in 1-byte writes | RQ-F11: relayed byte-exact, usage as a conforming event-stream parser extracts it |
//! | one 16 MiB line, then a valid event | RQ-F12: forwarded in full, the later event accounted, `usage_incomplete = 1`, warning logged, RSS growth printed |
//! | `Content-Encoding: gzip` | RQ-F14: bytes and header unchanged, no decompression, `usage_incomplete = 1` |
//! | plain body over 50 MiB, by `Content-Length` and streamed | RQ-F15: E19, row O5, RSS growth printed |
//!
//! The fixtures are written by the test into a temporary directory that the fake upstream
//! serves, so each case states its bytes and its expected usage side by side.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::{finish_with_canary, wait_prices_loaded};
use agent_cli_proxy_tests::support::client::{BodyEnd, SseOutcome, SseRequest, print_figure};
use agent_cli_proxy_tests::support::db::final_row_async;
use agent_cli_proxy_tests::support::memory::{kib_to_mib, peak_rss_kib};
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::sha256_hex;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::{FakeUpstream, UpstreamOptions};
use serde_json::{Value, json};

agent_cli_proxy_tests::child_entry!();

const STREAM: &[u8] = br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;
const PLAIN: &[u8] = br#"{"model":"claude-sonnet-4-5","messages":[]}"#;
const ROW_WAIT: Duration = Duration::from_secs(10);
const MAX_PLAIN: usize = 52_428_800;

/// The events of a well-formed Anthropic stream: input 100, output 50 in the end.
const START: &str = r#"{"type":"message_start","message":{"id":"msg_f","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":100,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#;
const DELTA: &str =
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#;
const USAGE: &str =
    r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":50}}"#;
const STOP: &str = r#"{"type":"message_stop"}"#;

/// One malformed-SSE case: its bytes, and the prompt and completion tokens and
/// `usage_incomplete` a conforming parser gets from them.
struct Malformed {
    name: &'static str,
    bytes: Vec<u8>,
    tokens: (i64, i64),
    usage_incomplete: i64,
}

both_shells! {
    /// RQ-F11: every malformed fixture, relayed whole and in 1-byte upstream writes.
    async fn malformed_sse_is_relayed_byte_exact_and_accounted(shell: Shell) {
        let fixtures = tempfile::tempdir().expect("tempdir");
        let cases = malformed_cases();
        for case in &cases {
            std::fs::write(fixtures.path().join(format!("{}.sse", case.name)), &case.bytes).expect("fixture");
        }
        let (upstream, proxy) = start(shell, fixtures.path());
        let mut problems = Vec::new();
        for case in &cases {
            for piece in ["0", "1"] {
                let id = format!("{}-{piece}", case.name);
                let fixture = format!("{}.sse", case.name);
                let mut headers = vec![("x-fake-fixture", fixture.as_str())];
                if piece == "1" {
                    headers.push(("x-fake-chunk", "1"));
                }
                let out = post(&proxy, STREAM, &id, &headers).await;
                problems.extend(check_relay(&out, &case.bytes, &id));
                let row = final_row_async(&proxy.db_path(), &id, ROW_WAIT).await;
                let want = [
                    ("lifecycle_status", json!("completed")),
                    ("status", json!(200)),
                    ("prompt_tokens", json!(case.tokens.0)),
                    ("completion_tokens", json!(case.tokens.1)),
                    ("total_tokens", json!(case.tokens.0 + case.tokens.1)),
                    ("usage_incomplete", json!(case.usage_incomplete)),
                ];
                problems.extend(check_columns(&row, &want, &id));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert_eq!(upstream.ledger().violations(), Vec::<String>::new());
        finish_with_canary(proxy.addr()).await;
    }

    /// RQ-F12, RQ-F14 and RQ-F15 on one proxy, with the peak-RSS growth of each printed.
    async fn long_lines_gzip_and_oversized_bodies(shell: Shell) {
        let fixtures = tempfile::tempdir().expect("tempdir");
        let long = long_line_stream(16 * 1024 * 1024);
        std::fs::write(fixtures.path().join("long_line.sse"), &long).expect("fixture");
        let message = r#"{"id":"msg_gz","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":100,"output_tokens":50}}"#;
        let gzipped = gzip_stored(message.as_bytes());
        std::fs::write(fixtures.path().join("gzipped.json"), &gzipped).expect("fixture");
        let (_upstream, proxy) = start(shell, fixtures.path());
        let pid = proxy.pid().expect("pid");

        let before = peak_rss_kib(pid).expect("rss");
        let out = post(&proxy, STREAM, "long-line", &[("x-fake-fixture", "long_line.sse")]).await;
        let mut problems = check_relay(&out, &long, "long-line");
        let growth = peak_rss_kib(pid).expect("rss").saturating_sub(before);
        let row = final_row_async(&proxy.db_path(), "long-line", ROW_WAIT).await;
        let want = [
            ("lifecycle_status", json!("completed")),
            ("prompt_tokens", json!(100)),
            ("completion_tokens", json!(50)),
            ("usage_incomplete", json!(1)),
        ];
        problems.extend(check_columns(&row, &want, "long-line"));
        let warned = proxy
            .log_events()
            .iter()
            .any(|e| e["event"] == "passthrough.sse_line_too_long");
        if !warned {
            problems.push("long-line: no passthrough.sse_line_too_long warning".into());
        }
        assert!(print_figure("CI-12-RQ-F12-rss-growth-MiB", shell, kib_to_mib(growth), 4.0));

        let out = post(
            &proxy,
            PLAIN,
            "gzip",
            &[("x-fake-fixture", "gzipped.json"), ("x-fake-header", "content-encoding: gzip")],
        )
        .await;
        problems.extend(check_relay(&out, &gzipped, "gzip"));
        if out.header("content-encoding") != Some("gzip") {
            problems.push(format!("gzip: content-encoding {:?}", out.header("content-encoding")));
        }
        let row = final_row_async(&proxy.db_path(), "gzip", ROW_WAIT).await;
        let want = [
            ("lifecycle_status", json!("completed")),
            ("status", json!(200)),
            ("prompt_tokens", json!(0)),
            ("usage_incomplete", json!(1)),
        ];
        problems.extend(check_columns(&row, &want, "gzip"));

        let before = peak_rss_kib(pid).expect("rss");
        let declared = (MAX_PLAIN + 1).to_string();
        let by_length = post(&proxy, PLAIN, "too-large-cl", &[("x-fake-content-length", declared.as_str())]).await;
        let streamed = post(
            &proxy,
            PLAIN,
            "too-large-chunked",
            &[("x-fake-framing", "chunked"), ("x-fake-pad", &(MAX_PLAIN + 4096).to_string())],
        )
        .await;
        let growth = peak_rss_kib(pid).expect("rss").saturating_sub(before);
        for (out, id) in [(by_length, "too-large-cl"), (streamed, "too-large-chunked")] {
            if out.status != 502
                || out.body != br#"{"error":{"type":"proxy_error","message":"upstream response too large"}}"#
            {
                problems.push(format!("{id}: {} {}", out.status, String::from_utf8_lossy(&out.body)));
            }
            let row = final_row_async(&proxy.db_path(), id, ROW_WAIT).await;
            let want = [
                ("lifecycle_status", json!("error")),
                ("status", json!(502)),
                ("error_code", json!("response_too_large")),
                ("error_message", json!("upstream response body exceeded 50MB limit")),
            ];
            problems.extend(check_columns(&row, &want, id));
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(print_figure("CI-12-RQ-F15-rss-growth-MiB", shell, kib_to_mib(growth), 64.0));
        finish_with_canary(proxy.addr()).await;
    }
}

/// The RQ-F11 fixtures. Line endings, BOM and framing vary; the usage they carry does not,
/// except where the case breaks the usage event itself.
fn malformed_cases() -> Vec<Malformed> {
    let events = [
        ("message_start", START),
        ("content_block_delta", DELTA),
        ("message_delta", USAGE),
        ("message_stop", STOP),
    ];
    let with = |eol: &str| -> Vec<u8> {
        events
            .iter()
            .map(|(name, data)| format!("event: {name}{eol}data: {data}{eol}{eol}"))
            .collect::<String>()
            .into_bytes()
    };
    let full = |name, bytes| Malformed {
        name,
        bytes,
        tokens: (100, 50),
        usage_incomplete: 0,
    };
    let lf = String::from_utf8(with("\n")).unwrap_or_default();
    // Each event keeps one ending for its lines and its blank line, so a CR is never
    // followed by the LF of a blank line (that pair would be one CRLF).
    let mixed: String = events
        .iter()
        .zip(["\n", "\r\n", "\r", "\n"])
        .map(|((name, data), eol)| format!("event: {name}{eol}data: {data}{eol}{eol}"))
        .collect();
    let no_final_blank = lf.trim_end_matches('\n').to_owned();
    let no_space = lf.replace("data: ", "data:").replace("event: ", "event:");
    let usage_split = USAGE.replacen(",\"usage\"", "\ndata: ,\"usage\"", 1);
    let multi_line = lf.replace(USAGE, &usage_split);
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(lf.as_bytes());
    let noise = lf.replacen(
        "event: content_block_delta",
        "data: not json at all\n\nevent: ping\ndata: {\"type\":\n\n: comment line\n\nevent: mystery_event\ndata: {\"type\":\"mystery_event\"}\n\nevent: content_block_delta",
        1,
    );
    let truncated = lf.replace(
        USAGE,
        r#"{"type":"message_delta","usage":{"output_tokens":5"#,
    );
    vec![
        full("crlf", with("\r\n")),
        full("cr_only", with("\r")),
        full("mixed_endings", mixed.into_bytes()),
        full("no_final_blank_line", no_final_blank.into_bytes()),
        full("data_without_space", no_space.into_bytes()),
        full("multi_line_data", multi_line.into_bytes()),
        full("bom", bom),
        full("non_json_and_unknown_events", noise.into_bytes()),
        Malformed {
            name: "truncated_json",
            bytes: truncated.into_bytes(),
            tokens: (100, 1),
            usage_incomplete: 0,
        },
        Malformed {
            name: "comments_only",
            bytes: b": ping\n\n: ping\r\n\r\n:\r\r".to_vec(),
            tokens: (0, 0),
            usage_incomplete: 1,
        },
    ]
}

/// message_start, then one `data:` line of `len` bytes, then the usage and the stop.
fn long_line_stream(len: usize) -> Vec<u8> {
    let mut out = format!("event: message_start\ndata: {START}\n\ndata: ").into_bytes();
    out.resize(out.len() + len, b'x');
    out.extend_from_slice(
        format!("\n\nevent: message_delta\ndata: {USAGE}\n\nevent: message_stop\ndata: {STOP}\n\n")
            .as_bytes(),
    );
    out
}

/// A valid gzip member holding `data` in stored (uncompressed) deflate blocks, so the test
/// needs no compression library; the proxy must relay it untouched either way.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let blocks: Vec<&[u8]> = data.chunks(u16::MAX as usize).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn start(shell: Shell, fixtures: &Path) -> (FakeUpstream, ProxyProcess) {
    let upstream = FakeUpstream::try_start(UpstreamOptions {
        fixtures_dir: fixtures.to_path_buf(),
        ..UpstreamOptions::default()
    })
    .expect("upstream");
    let url = upstream.url();
    let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
    wait_prices_loaded(proxy.addr(), &[]);
    (upstream, proxy)
}

async fn post(proxy: &ProxyProcess, body: &[u8], id: &str, headers: &[(&str, &str)]) -> SseOutcome {
    let mut request = SseRequest::post(proxy.addr(), "/v1/messages", body)
        .header("x-request-id", id)
        .timeout(Duration::from_secs(60));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(out) => out,
        Err(err) => panic!("{id}: {err}; logs:\n{}", proxy.logs()),
    }
}

fn check_relay(out: &SseOutcome, sent: &[u8], id: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if out.status != 200 || out.end != BodyEnd::Clean {
        problems.push(format!(
            "{id}: status {} end {:?} {:?}",
            out.status, out.end, out.error
        ));
    }
    if out.body_sha256 != sha256_hex(sent) {
        problems.push(format!(
            "{id}: client bytes differ ({} received, {} sent)",
            out.body.len(),
            sent.len()
        ));
    }
    problems
}

fn check_columns(row: &Value, want: &[(&str, Value)], id: &str) -> Vec<String> {
    want.iter()
        .filter(|(column, value)| row[*column] != *value)
        .map(|(column, value)| format!("{id}: {column} = {}, want {value}", row[*column]))
        .collect()
}
