//! A fast canned upstream for the load benchmark (`bench/run.sh`).
//!
//! The mock answers like an Anthropic Messages endpoint with fixed bytes so that the
//! benchmark measures the proxy, not the upstream:
//!
//! * `POST /v1/messages` → a fixed JSON message (`application/json`, with a
//!   content-length), or, when the request body carries `"stream":true` (with or without a
//!   space after the colon) or the query has an `sse` key, a fixed Anthropic SSE stream of
//!   [`SSE_EVENTS`] sent as one HTTP/1.1 chunk per event, the way a real streaming upstream
//!   frames it.
//! * `GET`/`HEAD /health` → `200 ok` (the proxies' readiness probe and the script's wait).
//! * anything else → `404`.
//!
//! Both bodies report 1 000 input and 500 output tokens for `claude-sonnet-4-5`, so every
//! row the proxy writes is priced (worked example W1 of the accounting spec:
//! `cost_nanousd = 10 500 000`), and the script can check that accounting really ran.
//!
//! Every response is built from `&'static` bytes; the only per-request work is reading the
//! request body, which the mock must do anyway to keep the connection reusable.

#![warn(missing_docs)]

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::stream;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The model named by the canned responses; the benchmark's pricing file prices it.
pub const MODEL: &str = "claude-sonnet-4-5";

/// Input tokens reported by both canned bodies.
pub const INPUT_TOKENS: u64 = 1_000;

/// Output tokens reported by both canned bodies.
pub const OUTPUT_TOKENS: u64 = 500;

/// The non-streaming Anthropic Messages response.
pub const MESSAGE_JSON: &str = concat!(
    r#"{"id":"msg_bench_0001","type":"message","role":"assistant","model":"claude-sonnet-4-5","#,
    r#""content":[{"type":"text","text":"Hello! This is a canned answer from the benchmark mock upstream."}],"#,
    r#""stop_reason":"end_turn","stop_sequence":null,"#,
    r#""usage":{"input_tokens":1000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":500}}"#
);

/// The streaming Anthropic Messages response, one complete SSE event per element.
pub const SSE_EVENTS: [&str; 10] = [
    concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_bench_0002","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        "\n\n"
    ),
    concat!(
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\n"
    ),
    concat!("event: ping\n", r#"data: {"type":"ping"}"#, "\n\n"),
    concat!(
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello! "}}"#,
        "\n\n"
    ),
    concat!(
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"This is a canned "}}"#,
        "\n\n"
    ),
    concat!(
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"answer from the "}}"#,
        "\n\n"
    ),
    concat!(
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"benchmark mock upstream."}}"#,
        "\n\n"
    ),
    concat!(
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\n"
    ),
    concat!(
        "event: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":500}}"#,
        "\n\n"
    ),
    concat!(
        "event: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
        "\n\n"
    ),
];

/// What the mock does with a request, decided from the method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/messages`: a canned message, JSON or SSE.
    Messages,
    /// `GET` or `HEAD /health`: `200 ok`.
    Health,
    /// Anything else: `404`.
    NotFound,
}

/// Chooses the [`Route`] for a method and path (the path without its query).
#[must_use]
pub fn route(method: &Method, path: &str) -> Route {
    match (method, path) {
        (&Method::POST, "/v1/messages") => Route::Messages,
        (&Method::GET | &Method::HEAD, "/health") => Route::Health,
        _ => Route::NotFound,
    }
}

/// Whether a messages request asks for the SSE stream: an `sse` key in the query, or
/// `"stream":true` / `"stream": true` in the body.
///
/// A byte search, not a JSON parse: the mock must cost next to nothing, and the benchmark
/// controls the request bodies.
#[must_use]
pub fn wants_stream(query: Option<&str>, body: &[u8]) -> bool {
    let query_asks = query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next().is_some_and(|key| key == "sse"))
    });
    query_asks || contains(body, b"\"stream\":true") || contains(body, b"\"stream\": true")
}

/// Serves the canned upstream on `listener` until the process ends.
///
/// Each connection runs in its own task with keep-alive on and Nagle off (the benchmark
/// measures microseconds at concurrency 1). Accept errors such as `EMFILE` are retried
/// after a short pause rather than ending the server.
///
/// # Errors
///
/// Never returns under normal operation; the `io::Result` leaves room for callers that
/// wrap it.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _peer): (_, SocketAddr) = match listener.accept().await {
            Ok(pair) => pair,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Best effort: a socket that refuses TCP_NODELAY still serves, only slower.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            // A client closing mid-request is normal under wrk's shutdown; nothing to report.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service_fn(handle))
                .await;
        });
    }
}

/// The reply body type of the mock: either a full buffer or a stream of SSE chunks.
pub type MockBody = BoxBody<Bytes, Infallible>;

/// Answers one request.
///
/// # Errors
///
/// Never fails: a body that cannot be read gets a `400`.
pub async fn handle(req: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
    let route = route(req.method(), req.uri().path());
    let query = req.uri().query().map(str::to_owned);
    let reply = match route {
        Route::Messages => match req.into_body().collect().await {
            Ok(collected) => {
                if wants_stream(query.as_deref(), &collected.to_bytes()) {
                    sse_response()
                } else {
                    json_response()
                }
            }
            Err(_) => plain(StatusCode::BAD_REQUEST, "bad request body\n"),
        },
        Route::Health => plain(StatusCode::OK, "ok\n"),
        Route::NotFound => plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(reply)
}

/// The canned JSON message as a response.
#[must_use]
pub fn json_response() -> Response<MockBody> {
    let mut res = Response::new(Full::new(Bytes::from_static(MESSAGE_JSON.as_bytes())).boxed());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// The canned SSE stream as a response: chunked, one chunk per event.
#[must_use]
pub fn sse_response() -> Response<MockBody> {
    let frames = SSE_EVENTS
        .iter()
        .map(|event| Ok::<_, Infallible>(Frame::data(Bytes::from_static(event.as_bytes()))));
    let mut res = Response::new(StreamBody::new(stream::iter(frames)).boxed());
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    res
}

fn plain(status: StatusCode, text: &'static str) -> Response<MockBody> {
    let mut res = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    res
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_chosen_by_body_or_query() {
        assert!(wants_stream(None, br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(None, br#"{"model":"m","stream": true}"#));
        assert!(wants_stream(Some("sse"), b"{}"));
        assert!(wants_stream(Some("beta=true&sse=1"), b"{}"));
        assert!(!wants_stream(None, br#"{"model":"m","stream":false}"#));
        assert!(!wants_stream(Some("beta=true"), br#"{"model":"m"}"#));
        assert!(!wants_stream(Some("ssex=1"), b""));
    }

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route(&Method::POST, "/v1/messages"), Route::Messages);
        assert_eq!(route(&Method::GET, "/health"), Route::Health);
        assert_eq!(route(&Method::HEAD, "/health"), Route::Health);
        assert_eq!(route(&Method::GET, "/v1/messages"), Route::NotFound);
        assert_eq!(
            route(&Method::POST, "/v1/chat/completions"),
            Route::NotFound
        );
    }

    #[test]
    fn json_body_is_a_priced_anthropic_message() {
        let v: serde_json::Value = serde_json::from_str(MESSAGE_JSON).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["model"], MODEL);
        assert_eq!(v["usage"]["input_tokens"], INPUT_TOKENS);
        assert_eq!(v["usage"]["output_tokens"], OUTPUT_TOKENS);
    }

    #[test]
    fn sse_events_are_complete_and_carry_usage() {
        let mut input = None;
        let mut output = None;
        for event in SSE_EVENTS {
            assert!(event.ends_with("\n\n"), "{event:?}");
            let mut lines = event.trim_end().split('\n');
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            assert!(lines.next().is_none());
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["type"], name);
            if name == "message_start" {
                input = v["message"]["usage"]["input_tokens"].as_u64();
            }
            if name == "message_delta" {
                output = v["usage"]["output_tokens"].as_u64();
            }
        }
        assert_eq!(
            SSE_EVENTS[0].split('\n').next(),
            Some("event: message_start")
        );
        assert_eq!(
            SSE_EVENTS[9].split('\n').next(),
            Some("event: message_stop")
        );
        assert_eq!(input, Some(INPUT_TOKENS));
        assert_eq!(output, Some(OUTPUT_TOKENS));
    }
}
