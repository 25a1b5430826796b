//! Tests of the HTTP/1.1 codec: the framing table (RQ-H1–RQ-H3, RQ-L6), encoding, and
//! properties (split invariance, encode/decode identity, pipelining).

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;

use super::*;
use crate::fuzzing::http1::{
    ClientTranscript, ServerTranscript, decode_client, decode_client_with, decode_server, fields,
    http1_codec, pieces,
};

fn server(input: &[u8]) -> ServerTranscript {
    decode_server(input, &[], false, Limits::default())
}

fn client(input: &[u8], method: &Method) -> ClientTranscript {
    decode_client(input, &[], method)
}

/// Asserts the one-message input is refused with `status` and never completes.
fn assert_rejected(input: &[u8], status: StatusCode) {
    let t = server(input);
    let err = t
        .error
        .clone()
        .unwrap_or_else(|| panic!("accepted: {:?}", String::from_utf8_lossy(input)));
    assert_eq!(
        err.status(),
        status,
        "{err:?} for {:?}",
        String::from_utf8_lossy(input)
    );
    // The input is one message: its head may have gone out (a body error comes later),
    // but it never completes, so it is never forwarded.
    assert!(
        !t.requests.iter().any(|r| r.complete),
        "a rejected request completed: {t:?}"
    );
    assert!(err.reply().close);
}

fn get_with_headers(headers: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nhost: x\r\n{headers}\r\n").into_bytes()
}

#[test]
fn simple_get_is_one_complete_request_without_body() {
    let t = server(b"GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(t.error, None);
    let [r] = t.requests.as_slice() else {
        panic!("{t:?}")
    };
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/v1/models"));
    assert_eq!(r.query.as_deref(), Some("x=1"));
    assert_eq!(r.framing, BodyFraming::None);
    assert!(r.complete && r.keep_alive && r.body.is_empty());
}

#[test]
fn content_length_body_is_delivered() {
    let t = server(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    let [r] = t.requests.as_slice() else {
        panic!("{t:?}")
    };
    assert_eq!(r.framing, BodyFraming::Length(5));
    assert_eq!(r.body, b"hello");
    assert!(r.complete);
}

#[test]
fn chunked_body_drops_extensions_and_trailers() {
    let t = server(
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=val\r\nhello\r\n6 \r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
    );
    assert_eq!(t.error, None);
    let [r] = t.requests.as_slice() else {
        panic!("{t:?}")
    };
    assert_eq!(r.framing, BodyFraming::Chunked);
    assert_eq!(r.body, b"hello world");
    assert!(r.complete && r.keep_alive);
}

#[test]
fn cl_plus_te_uses_chunked_and_closes_after_the_response() {
    // RQ-H1: the trailing bytes look like a smuggled request; they must not be decoded.
    let t = server(
        b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    );
    assert_eq!(t.error, None);
    let [r] = t.requests.as_slice() else {
        panic!("{t:?}")
    };
    assert_eq!(r.framing, BodyFraming::Chunked);
    assert_eq!(r.body, b"abc");
    assert!(!r.keep_alive);
}

#[test]
fn keep_alive_rules_follow_version_and_connection() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
    ];
    for (input, keep) in cases {
        let t = server(input);
        assert_eq!(
            t.requests[0].keep_alive,
            *keep,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn framing_rejections_answer_400() {
    let chunked = |body: &str| {
        format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}").into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "differing duplicate CL",
            get_with_headers("content-length: 5\r\ncontent-length: 6\r\n"),
        ),
        (
            "differing CL list",
            get_with_headers("content-length: 5, 6\r\n"),
        ),
        (
            "CL not a number",
            get_with_headers("content-length: abc\r\n"),
        ),
        ("CL negative", get_with_headers("content-length: -1\r\n")),
        ("CL with plus", get_with_headers("content-length: +5\r\n")),
        (
            "CL overflow",
            get_with_headers("content-length: 99999999999999999999999\r\n"),
        ),
        ("TE gzip", get_with_headers("transfer-encoding: gzip\r\n")),
        (
            "TE chunked, gzip",
            get_with_headers("transfer-encoding: chunked, gzip\r\n"),
        ),
        (
            "TE gzip, chunked",
            get_with_headers("transfer-encoding: gzip, chunked\r\n"),
        ),
        (
            "TE twice",
            get_with_headers("transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n"),
        ),
        (
            "TE on HTTP/1.0",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        ),
        ("obs-fold", get_with_headers("x-a: one\r\n two\r\n")),
        ("NUL in value", get_with_headers("x-a: a\0b\r\n")),
        ("CR in value", get_with_headers("x-a: a\rb\r\n")),
        ("space before colon", get_with_headers("x-a : b\r\n")),
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\n\r\n".to_vec()),
        (
            "overlong method",
            format!("{} / HTTP/1.1\r\n\r\n", "A".repeat(40)).into_bytes(),
        ),
        ("bare LF in chunk size", chunked("5\nhello\r\n0\r\n\r\n")),
        (
            "bare LF in chunk extension",
            chunked("5;a=b\nhello\r\n0\r\n\r\n"),
        ),
        ("chunk size over 64 bits", chunked("10000000000000000\r\n")),
        (
            "huge chunk size hex",
            chunked(&format!("{}\r\n", "f".repeat(40))),
        ),
        ("bad chunk hex", chunked("zz\r\n")),
        ("missing CRLF after data", chunked("5\r\nhelloXX0\r\n\r\n")),
        (
            "TE in trailer",
            chunked("0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ),
        ("CL in trailer", chunked("0\r\ncontent-length: 5\r\n\r\n")),
        ("obs-fold in trailer", chunked("0\r\nx: a\r\n b\r\n\r\n")),
        ("bare LF ending trailer", chunked("0\r\n\n")),
    ];
    for (name, input) in cases {
        let t = server(&input);
        let err = t
            .error
            .clone()
            .unwrap_or_else(|| panic!("{name}: accepted {t:?}"));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{name}: {err:?}");
        assert_rejected(&input, StatusCode::BAD_REQUEST);
    }
}

#[test]
fn identical_duplicate_content_length_is_accepted() {
    let t = server(b"POST / HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nhi");
    assert_eq!(t.error, None);
    assert_eq!(t.requests[0].body, b"hi");
}

#[test]
fn header_count_limit_is_100() {
    let fields = |n: usize| (0..n).map(|i| format!("x-h{i}: v\r\n")).collect::<String>();
    let ok = format!("GET / HTTP/1.1\r\n{}\r\n", fields(100));
    assert_eq!(server(ok.as_bytes()).error, None);
    let over = format!("GET / HTTP/1.1\r\n{}\r\n", fields(101));
    assert_rejected(over.as_bytes(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

/// A head whose header block (fields plus the final CRLF) is exactly `block` bytes.
fn head_with_block(block: usize) -> Vec<u8> {
    // "x-pad: " + value + "\r\n" + "\r\n"
    let value = "a".repeat(block - 7 - 2 - 2);
    format!("GET / HTTP/1.1\r\nx-pad: {value}\r\n\r\n").into_bytes()
}

#[test]
fn header_block_limit_is_65536_bytes() {
    assert_eq!(server(&head_with_block(65_536)).error, None);
    assert_rejected(
        &head_with_block(65_537),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    );
    // Refused before the head ends: an endless head is not buffered.
    let endless = &head_with_block(70_000)[..66_000];
    assert_rejected(endless, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn target_limit_is_65534_bytes() {
    let target = |n: usize| format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(n - 1)).into_bytes();
    let t = server(&target(65_534));
    assert_eq!(t.error, None);
    assert_eq!(t.requests[0].path.len(), 65_534);
    assert_rejected(&target(65_535), StatusCode::URI_TOO_LONG);
    assert_rejected(&target(70 * 1024), StatusCode::URI_TOO_LONG);
    // Refused while the request line is still arriving.
    assert_rejected(&target(70 * 1024)[..66_000], StatusCode::URI_TOO_LONG);
}

#[test]
fn pipelined_requests_come_out_in_order() {
    let one = |i: usize| format!("POST /r{i} HTTP/1.1\r\ncontent-length: 2\r\n\r\n{i:02}");
    for n in [2, 10] {
        let input: String = (0..n).map(one).collect();
        let t = server(input.as_bytes());
        assert_eq!(t.error, None);
        assert_eq!(t.requests.len(), n);
        for (i, r) in t.requests.iter().enumerate() {
            assert_eq!((r.seq, r.path.clone()), (i as u64, format!("/r{i}")));
            assert_eq!(r.body, format!("{i:02}").as_bytes());
            assert!(r.complete);
        }
    }
}

#[test]
fn pipelined_request_after_a_malformed_one_is_not_executed() {
    let input = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nx-a : b\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    let t = server(input);
    assert_eq!(t.requests.len(), 1);
    assert_eq!(t.requests[0].path, "/1");
    assert_eq!(t.error.map(|e| e.status()), Some(StatusCode::BAD_REQUEST));
}

#[test]
fn next_request_waits_for_the_response() {
    let mut d = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"[..]);
    assert_eq!(d.waiting(), Waiting::Idle);
    assert!(matches!(
        d.decode(&mut buf),
        Ok(Some(RequestEvent::Head(..)))
    ));
    assert!(matches!(d.decode(&mut buf), Ok(Some(RequestEvent::End))));
    assert!(matches!(d.decode(&mut buf), Ok(None)));
    assert_eq!(d.waiting(), Waiting::Response);
    d.handle_response_done(false);
    let Ok(Some(RequestEvent::Head(head, _))) = d.decode(&mut buf) else {
        panic!()
    };
    assert_eq!(head.path, "/2");
    assert_eq!(d.current().map(|c| c.seq), Some(1));
    assert!(matches!(d.decode(&mut buf), Ok(Some(RequestEvent::End))));
    d.handle_response_done(true);
    assert_eq!(d.waiting(), Waiting::Closed);
}

#[test]
fn waiting_reports_head_and_body_progress() {
    let mut d = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"\r\n"[..]);
    assert!(matches!(d.decode(&mut buf), Ok(None)));
    assert_eq!(
        d.waiting(),
        Waiting::Idle,
        "empty lines before a request are idle time"
    );
    buf.extend_from_slice(b"POST / HTTP/1.1\r\ncontent-le");
    assert!(matches!(d.decode(&mut buf), Ok(None)));
    assert_eq!(d.waiting(), Waiting::Head);
    buf.extend_from_slice(b"ngth: 4\r\n\r\nab");
    assert!(matches!(
        d.decode(&mut buf),
        Ok(Some(RequestEvent::Head(..)))
    ));
    assert!(matches!(d.decode(&mut buf), Ok(Some(RequestEvent::Body(b))) if b == "ab"));
    assert!(matches!(d.decode(&mut buf), Ok(None)));
    assert_eq!((d.waiting(), d.body_received()), (Waiting::Body, 2));
    d.handle_eof();
    assert_eq!(d.decode(&mut buf).err(), Some(FramingError::UnexpectedEof));
    assert_eq!(d.waiting(), Waiting::Closed);
}

#[test]
fn expect_continue_is_reported() {
    let mut d = RequestDecoder::default();
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nExpect: 100-continue\r\ncontent-length: 1\r\n\r\n"[..],
    );
    assert!(matches!(
        d.decode(&mut buf),
        Ok(Some(RequestEvent::Head(..)))
    ));
    assert!(d.current().is_some_and(|c| c.expects_continue));
}

fn info(version: Version, method: Method, keep_alive: bool) -> RequestInfo {
    RequestInfo {
        seq: 0,
        version,
        method,
        framing: BodyFraming::None,
        keep_alive,
        expects_continue: false,
    }
}

#[test]
fn response_head_encoding_is_exact() {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    h.insert("content-length", HeaderValue::from_static("999"));
    let head = encode_response_head(StatusCode::OK, &h, BodyFraming::Length(5));
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n"
    );
    let head = encode_response_head(StatusCode::OK, &HeaderMap::new(), BodyFraming::Chunked);
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let head = encode_response_head(
        StatusCode::OK,
        &HeaderMap::new(),
        BodyFraming::CloseDelimited,
    );
    assert_eq!(head, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
}

#[test]
fn start_response_chooses_framing_per_client() {
    let h = HeaderMap::new();
    let s =
        info(Version::Http11, Method::GET, true).start_response(StatusCode::OK, &h, None, false);
    assert_eq!((s.framing, s.close), (BodyFraming::Chunked, false));
    let s =
        info(Version::Http10, Method::GET, true).start_response(StatusCode::OK, &h, None, false);
    assert_eq!((s.framing, s.close), (BodyFraming::CloseDelimited, true));
    assert!(s.head.ends_with(b"connection: close\r\n\r\n"));
    let s =
        info(Version::Http10, Method::GET, true).start_response(StatusCode::OK, &h, Some(3), false);
    assert_eq!((s.framing, s.close), (BodyFraming::Length(3), false));
    assert!(s.head.ends_with(b"connection: keep-alive\r\n\r\n"));
    let s = info(Version::Http11, Method::HEAD, true).start_response(
        StatusCode::OK,
        &h,
        Some(3),
        false,
    );
    assert_eq!(s.framing, BodyFraming::None);
    assert!(s.head.ends_with(b"content-length: 3\r\n\r\n"));
    let s = info(Version::Http11, Method::GET, false).start_response(
        StatusCode::NO_CONTENT,
        &h,
        None,
        false,
    );
    assert_eq!(s.framing, BodyFraming::None);
    assert_eq!(
        s.head,
        "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
    );
    assert!(s.close);
}

#[test]
fn framing_error_reply_is_written_completely_and_closes() {
    let reply = FramingError::TargetTooLong { len: 1, limit: 0 }.reply();
    let out = encode_reply(&reply, None);
    assert!(out.close);
    let text = String::from_utf8(out.bytes.to_vec()).unwrap();
    assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{text}");
    assert!(text.contains("content-type: application/json\r\n"));
    assert!(text.contains("connection: close\r\n"));
    assert!(
        text.ends_with("\r\n\r\n{\"error\":\"uri too long\"}"),
        "{text}"
    );
    let len = r#"{"error":"uri too long"}"#.len();
    assert!(text.contains(&format!("content-length: {len}\r\n")));
}

#[test]
fn reply_to_head_request_has_no_body() {
    let reply = crate::errors::not_found();
    let out = encode_reply(&reply, Some(&info(Version::Http11, Method::HEAD, true)));
    assert!(!out.close);
    assert!(out.bytes.ends_with(b"\r\n\r\n"));
    assert!(!out.bytes.ends_with(&reply.body));
}

#[test]
fn body_encoding_per_framing() {
    let data = Bytes::from_static(b"hello");
    assert_eq!(
        encode_body(BodyFraming::Chunked, data.clone()),
        "5\r\nhello\r\n"
    );
    assert_eq!(encode_body(BodyFraming::Length(5), data.clone()), "hello");
    assert_eq!(encode_body(BodyFraming::None, data), "");
    assert_eq!(encode_body(BodyFraming::Chunked, Bytes::new()), "");
    assert_eq!(encode_end(BodyFraming::Chunked), "0\r\n\r\n");
    assert_eq!(encode_end(BodyFraming::Length(5)), "");
    assert_eq!(encode_chunk(&[7; 300])[..5], *b"12c\r\n");
}

#[test]
fn request_encoding_frames_afresh() {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("up"));
    h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    h.insert("content-length", HeaderValue::from_static("1"));
    let out = encode_request(&Method::POST, "/v1/x?y=1", &h, 12).unwrap();
    assert_eq!(
        out,
        "POST /v1/x?y=1 HTTP/1.1\r\nhost: up\r\ncontent-length: 12\r\n\r\n"
    );
    let out = encode_request(&Method::GET, "/", &HeaderMap::new(), 0).unwrap();
    assert_eq!(out, "GET / HTTP/1.1\r\n\r\n");
    let out = encode_request(&Method::POST, "/", &HeaderMap::new(), 0).unwrap();
    assert_eq!(out, "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    for bad in ["", "/a b", "/a\r\nx: y", "/\0"] {
        assert_eq!(
            encode_request(&Method::GET, bad, &HeaderMap::new(), 0),
            Err(FramingError::InvalidTarget)
        );
    }
}

#[test]
fn client_decodes_each_framing() {
    let t = client(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc",
        &Method::GET,
    );
    assert_eq!(
        (t.body.as_slice(), t.complete, t.reusable),
        (&b"abc"[..], true, true)
    );
    let t = client(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        &Method::GET,
    );
    assert_eq!(
        (t.body.as_slice(), t.complete, t.reusable),
        (&b"abc"[..], true, true)
    );
    let t = client(b"HTTP/1.1 200 OK\r\n\r\nuntil eof", &Method::GET);
    assert_eq!(t.framing, Some(BodyFraming::CloseDelimited));
    assert_eq!(
        (t.body.as_slice(), t.complete, t.reusable),
        (&b"until eof"[..], true, false)
    );
    let open = decode_client_with(b"HTTP/1.1 200 OK\r\n\r\nmore", &[], &Method::GET, false);
    assert!(!open.complete, "close-delimited body ends only at EOF");
}

#[test]
fn client_skips_informational_and_refuses_101() {
    let t = client(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: x\r\n\r\n\
          HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
        &Method::POST,
    );
    assert_eq!(t.head.as_ref().map(|h| h.0), Some(201));
    assert!(t.complete && t.reusable);
    let t = client(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
        &Method::GET,
    );
    assert_eq!(t.error, Some(FramingError::SwitchingProtocols));
    assert!(t.head.is_none());
}

#[test]
fn client_bodiless_responses() {
    for (input, method) in [
        (
            &b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"[..],
            Method::HEAD,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", Method::GET),
        (
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n",
            Method::GET,
        ),
    ] {
        let t = decode_client_with(input, &[], &method, false);
        assert_eq!(t.framing, Some(BodyFraming::None));
        assert!(t.complete && t.reusable, "{t:?}");
    }
}

#[test]
fn client_reuse_rules() {
    let cases: &[(&[u8], bool)] = &[
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true),
        (
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nstray", false),
    ];
    for (input, reusable) in cases {
        let t = decode_client_with(input, &[], &Method::GET, false);
        assert!(t.complete, "{t:?}");
        assert_eq!(
            t.reusable,
            *reusable,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn client_errors() {
    let truncated = client(
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
        &Method::GET,
    );
    assert_eq!(truncated.error, Some(FramingError::UnexpectedEof));
    let empty = client(b"", &Method::GET);
    assert_eq!(empty.error, Some(FramingError::UnexpectedEof));
    let gzip = client(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        &Method::GET,
    );
    assert_eq!(gzip.error, Some(FramingError::UnsupportedTransferEncoding));
    let fields: String = (0..101).map(|i| format!("x-{i}: v\r\n")).collect();
    let many = client(
        format!("HTTP/1.1 200 OK\r\n{fields}\r\n").as_bytes(),
        &Method::GET,
    );
    assert_eq!(
        many.error,
        Some(FramingError::TooManyHeaders { limit: 100 })
    );
    let conflict = client(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        &Method::GET,
    );
    assert_eq!(
        conflict.error,
        Some(FramingError::ConflictingContentLength {
            first: 1,
            second: 2
        })
    );
}

// ---- properties ----

#[derive(Debug, Clone)]
struct ReqSpec {
    method: Method,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunks: Option<Vec<usize>>,
}

fn header_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("x-[a-z]{1,6}", "[!-~]([ -~]{0,16}[!-~])?"), 0..5)
}

fn req_strategy() -> impl Strategy<Value = ReqSpec> {
    let method = prop_oneof![Just(Method::GET), Just(Method::POST), Just(Method::PUT)];
    (
        method,
        "/[a-z0-9/]{0,12}(\\?[a-z=&]{0,8})?",
        header_strategy(),
        proptest::collection::vec(any::<u8>(), 0..120),
        proptest::option::of(proptest::collection::vec(1usize..40, 1..6)),
    )
        .prop_map(|(method, target, headers, body, chunks)| ReqSpec {
            method,
            target,
            headers,
            body,
            chunks,
        })
}

fn chunked_wire(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.extend_from_slice(&encode_chunk(&rest[..n]));
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(LAST_CHUNK);
    out
}

fn req_wire(r: &ReqSpec) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", r.method, r.target).into_bytes();
    for (n, v) in &r.headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    match &r.chunks {
        Some(sizes) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            out.extend_from_slice(&chunked_wire(&r.body, sizes));
        }
        None => {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", r.body.len()).as_bytes());
            out.extend_from_slice(&r.body);
        }
    }
    out
}

fn cuts_strategy() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..4000, 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn server_split_invariance_and_pipelining(
        reqs in proptest::collection::vec(req_strategy(), 1..5),
        cuts in cuts_strategy(),
    ) {
        let wire: Vec<u8> = reqs.iter().flat_map(req_wire).collect();
        let whole = server(&wire);
        prop_assert_eq!(&whole.error, &None);
        prop_assert_eq!(whole.requests.len(), reqs.len());
        for (i, (got, want)) in whole.requests.iter().zip(&reqs).enumerate() {
            prop_assert_eq!(got.seq, i as u64);
            prop_assert!(got.complete);
            prop_assert_eq!(&got.method, &want.method);
            prop_assert_eq!(&got.body, &want.body);
            let framing = if want.chunks.is_some() {
                BodyFraming::Chunked
            } else {
                BodyFraming::Length(want.body.len() as u64)
            };
            prop_assert_eq!(got.framing, framing);
            let mut map = HeaderMap::new();
            for (n, v) in &want.headers {
                map.append(
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            let got_fields: Vec<_> = got.headers.iter()
                .filter(|(n, _)| n.starts_with("x-")).cloned().collect();
            prop_assert_eq!(got_fields, fields(&map));
        }
        let split = decode_server(&wire, &cuts, false, Limits::default());
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn client_split_invariance(
        status in 200u16..600,
        headers in header_strategy(),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        framing in 0u8..3,
        sizes in proptest::collection::vec(1usize..50, 1..5),
        interim in any::<bool>(),
        cuts in cuts_strategy(),
    ) {
        prop_assume!(status != 204 && status != 304);
        let status = StatusCode::from_u16(status).unwrap();
        let mut map = HeaderMap::new();
        for (n, v) in &headers {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let framing = match framing {
            0 => BodyFraming::Length(body.len() as u64),
            1 => BodyFraming::Chunked,
            _ => BodyFraming::CloseDelimited,
        };
        let mut wire = Vec::new();
        if interim {
            wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        wire.extend_from_slice(&encode_response_head(status, &map, framing));
        match framing {
            BodyFraming::Chunked => wire.extend_from_slice(&chunked_wire(&body, &sizes)),
            _ => wire.extend_from_slice(&body),
        }
        let whole = client(&wire, &Method::GET);
        prop_assert_eq!(&whole.error, &None);
        prop_assert!(whole.complete);
        prop_assert_eq!(&whole.body, &body);
        prop_assert_eq!(whole.framing, Some(framing));
        prop_assert_eq!(whole.reusable, framing != BodyFraming::CloseDelimited);
        let (got_status, got_fields) = whole.head.clone().unwrap();
        prop_assert_eq!(got_status, status.as_u16());
        let got_fields: Vec<_> =
            got_fields.into_iter().filter(|(n, _)| n.starts_with("x-")).collect();
        prop_assert_eq!(got_fields, fields(&map));
        let split = decode_client(&wire, &cuts, &Method::GET);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn encoded_request_decodes_to_itself(r in req_strategy()) {
        let mut map = HeaderMap::new();
        for (n, v) in &r.headers {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut wire = encode_request(&r.method, &r.target, &map, r.body.len() as u64)
            .unwrap()
            .to_vec();
        wire.extend_from_slice(&r.body);
        let t = server(&wire);
        let [got] = t.requests.as_slice() else { panic!("{t:?}") };
        let want = crate::head::RequestHead::new(r.method.clone(), &r.target, map.clone());
        prop_assert_eq!(&got.path, &want.path);
        prop_assert_eq!(&got.query, &want.query);
        prop_assert_eq!(&got.body, &r.body);
        let got_fields: Vec<_> =
            got.headers.iter().filter(|(n, _)| n.starts_with("x-")).cloned().collect();
        prop_assert_eq!(got_fields, fields(&map));
    }

    #[test]
    fn chunked_encoding_round_trips(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in cuts_strategy(),
    ) {
        let mut wire = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for c in &chunks {
            wire.extend_from_slice(&encode_body(BodyFraming::Chunked, Bytes::from(c.clone())));
        }
        wire.extend_from_slice(&encode_end(BodyFraming::Chunked));
        let t = decode_server(&wire, &cuts, false, Limits::default());
        prop_assert_eq!(&t.error, &None);
        prop_assert!(t.requests[0].complete);
        prop_assert_eq!(&t.requests[0].body, &chunks.concat());
    }

    #[test]
    fn fuzz_body_holds_on_arbitrary_and_mutated_input(
        reqs in proptest::collection::vec(req_strategy(), 1..3),
        flags in any::<u8>(),
        cut_bytes in proptest::collection::vec(any::<u8>(), 7),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let mut payload: Vec<u8> = reqs.iter().flat_map(req_wire).collect();
        for (at, byte) in flips {
            let len = payload.len();
            payload[at % len] = byte;
        }
        let mut data = vec![flags];
        data.extend_from_slice(&cut_bytes[..usize::from(flags & 7)]);
        data.extend_from_slice(&payload);
        http1_codec(&data);
    }

    #[test]
    fn pieces_cover_the_input(input in proptest::collection::vec(any::<u8>(), 0..50),
                              cuts in proptest::collection::vec(0usize..60, 0..6)) {
        prop_assert_eq!(pieces(&input, &cuts).concat(), input);
    }
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
fn committed_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/http1_codec");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        http1_codec(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 12, "seed corpus missing ({n} files)");
}
