//! Scenario tests of the exchange and the core's admission, named after the behaviour they
//! guard (`reliability.md` CI-8, the outcome table of `datapath.md` §14.4). Each runs in
//! virtual time through [`super::sim::Sim`].

mod aborts;
mod admission;
mod failures;
mod streams;

use bytes::Bytes;

use super::sim::{self, Feed, Rec, Sim, Up, body, head};
use super::{Downstream, UpstreamFailure};
use crate::errors::NetworkErrorName;

/// The W2 stream of `accounting.md` §7, one event per entry (event 4 is the terminal).
const W2: [&str; 4] = [
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"usage\":{\"input_tokens\":2000,\"cache_read_input_tokens\":50000,\"cache_creation_input_tokens\":10000,\"output_tokens\":1}}}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":300}}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":2000,\"cache_read_input_tokens\":50000,\"cache_creation_input_tokens\":10000,\"output_tokens\":812}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

const W1_BODY: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":1000,"output_tokens":500,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}"#;

/// A streamed Anthropic Messages call.
fn messages_stream() -> crate::proxy::InboundRequest {
    sim::request(
        "POST",
        "/v1/messages",
        &[
            ("content-type", "application/json"),
            ("user-agent", "claude-cli/2.0.14 (external, cli)"),
        ],
        r#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#,
    )
}

/// A non-streamed Anthropic Messages call.
fn messages_plain() -> crate::proxy::InboundRequest {
    sim::request(
        "POST",
        "/v1/messages",
        &[("content-type", "application/json")],
        r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
    )
}

fn sse_head() -> Up {
    Up::Head(head(200, &[("content-type", "text/event-stream")]))
}

fn json_head(status: u16) -> Up {
    Up::Head(head(status, &[("content-type", "application/json")]))
}

fn head_with(status: u16, pairs: &[(&str, &str)]) -> Up {
    Up::Head(head(status, pairs))
}

/// Head at 10 ms, then each chunk 10 ms apart, then (optionally) the end.
fn script(h: Up, chunks: &[&str], end: bool) -> Vec<(u64, Up)> {
    let mut steps = vec![(0, Up::Written), (10, h)];
    let mut t = 10;
    for c in chunks {
        t += 10;
        steps.push((t, body(c)));
    }
    if end {
        steps.push((t + 10, Up::End));
    }
    steps
}

fn refused() -> Up {
    Up::Error(UpstreamFailure::Connect {
        name: NetworkErrorName::Connect,
        written: false,
        message: "connection refused".to_owned(),
    })
}

fn reset() -> Up {
    Up::Error(UpstreamFailure::Read {
        message: "upstream connection reset".to_owned(),
    })
}

fn reply_status(s: &Sim) -> u16 {
    s.client_reply().expect("a reply").status.as_u16()
}

fn reply_body(s: &Sim) -> String {
    String::from_utf8_lossy(&s.client_reply().expect("a reply").body).into_owned()
}

fn last_down(s: &Sim) -> Option<Downstream> {
    s.downs().last().cloned()
}

/// Index of the first client body chunk containing `needle`.
fn body_with(s: &Sim, needle: &str) -> Option<usize> {
    s.position(|r| match r {
        Rec::Down(Downstream::Body(b)) => String::from_utf8_lossy(b).contains(needle),
        _ => false,
    })
}
