//! Fuzz body of the `http1` module's target, and the transcript helpers its oracles (and
//! the module's tests) compare.
//!
//! Input layout: byte 0 holds flags (bits 0–2: number of split points, bit 3: the client
//! request was HEAD, bit 4: the client closes after its bytes), then one byte per split
//! point (a fraction of the payload length), then the payload. The payload is fed as
//! request bytes to the server decoder (default and small limits) and as response bytes to
//! the client decoder, whole and split; the transcripts must agree and obey the rules.

use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method};

use crate::http1::{
    BodyFraming, FramingError, Limits, RequestDecoder, RequestEvent, ResponseDecoder,
    ResponseEvent, Version, encode_request,
};

/// Limits small enough for a fuzzer to reach.
pub const SMALL_LIMITS: Limits = Limits {
    max_headers: 4,
    max_header_block: 128,
    max_target: 32,
};

/// Fuzz body of `http1_codec`.
pub fn http1_codec(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let n_cuts = usize::from(flags & 0x07).min(rest.len());
    let (cut_bytes, payload) = rest.split_at(n_cuts);
    let cuts: Vec<usize> = cut_bytes
        .iter()
        .map(|&b| usize::from(b) * payload.len() / 256)
        .collect();
    let eof = flags & 0x10 != 0;
    for limits in [Limits::default(), SMALL_LIMITS] {
        let whole = decode_server(payload, &[], eof, limits);
        let split = decode_server(payload, &cuts, eof, limits);
        assert_eq!(whole, split, "server: split input decoded differently");
        check_server_rules(&whole, &limits);
        check_reencoding(&whole, limits);
    }
    let method = if flags & 0x08 != 0 {
        Method::HEAD
    } else {
        Method::GET
    };
    let whole = decode_client(payload, &[], &method);
    let split = decode_client(payload, &cuts, &method);
    assert_eq!(whole, split, "client: split input decoded differently");
    check_client_rules(&whole);
}

/// Header fields as owned `(name, value)` pairs, in map order.
pub type Fields = Vec<(String, Vec<u8>)>;

/// One request as the server decoder delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRequest {
    /// Position on the connection.
    pub seq: u64,
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Query.
    pub query: Option<String>,
    /// Version.
    pub version: Version,
    /// Header fields in map order.
    pub headers: Fields,
    /// Body framing.
    pub framing: BodyFraming,
    /// Keep-alive after the response.
    pub keep_alive: bool,
    /// The whole body received.
    pub body: Vec<u8>,
    /// `End` was seen.
    pub complete: bool,
}

/// Everything a server decoder produced from one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTranscript {
    /// Requests in the order decoded.
    pub requests: Vec<DecodedRequest>,
    /// The error that ended decoding, with lengths zeroed (they depend on the split).
    pub error: Option<FramingError>,
}

/// Decodes `input` as requests, cut at `cuts` (positions, any order), answering each
/// request as soon as it is complete; `eof` closes the client side after the last byte.
pub fn decode_server(input: &[u8], cuts: &[usize], eof: bool, limits: Limits) -> ServerTranscript {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = ServerTranscript {
        requests: Vec::new(),
        error: None,
    };
    let steps = pieces(input, cuts).into_iter().map(Some);
    for step in steps.chain(eof.then_some(None)) {
        match step {
            Some(piece) => buf.extend_from_slice(piece),
            None => decoder.handle_eof(),
        }
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(RequestEvent::Head(head, framing))) => {
                    let Some(info) = decoder.current() else {
                        panic!("a head without request info");
                    };
                    out.requests.push(DecodedRequest {
                        seq: info.seq,
                        method: head.method.clone(),
                        path: head.path.clone(),
                        query: head.query.clone(),
                        version: info.version,
                        headers: fields(&head.headers),
                        framing,
                        keep_alive: info.keep_alive,
                        body: Vec::new(),
                        complete: false,
                    });
                }
                Ok(Some(RequestEvent::Body(data))) => {
                    if let Some(r) = out.requests.last_mut() {
                        r.body.extend_from_slice(&data);
                    }
                }
                Ok(Some(RequestEvent::End)) => {
                    if let Some(r) = out.requests.last_mut() {
                        r.complete = true;
                    }
                    decoder.handle_response_done(false);
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(normalise(e));
                    return out;
                }
            }
        }
    }
    out
}

/// Everything a client decoder produced from one response input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTranscript {
    /// Status and header fields of the final head.
    pub head: Option<(u16, Fields)>,
    /// Its framing.
    pub framing: Option<BodyFraming>,
    /// The whole body received.
    pub body: Vec<u8>,
    /// `End` was seen.
    pub complete: bool,
    /// The connection could carry another request.
    pub reusable: bool,
    /// The error that ended decoding, with lengths zeroed.
    pub error: Option<FramingError>,
}

/// Decodes `input` as the response to a `method` request, cut at `cuts`, with EOF after
/// the last byte.
pub fn decode_client(input: &[u8], cuts: &[usize], method: &Method) -> ClientTranscript {
    decode_client_with(input, cuts, method, true)
}

/// Same as [`decode_client`], with EOF signalled only when `eof`.
pub fn decode_client_with(
    input: &[u8],
    cuts: &[usize],
    method: &Method,
    eof: bool,
) -> ClientTranscript {
    let mut decoder = ResponseDecoder::new(method);
    let mut buf = BytesMut::new();
    let mut out = ClientTranscript {
        head: None,
        framing: None,
        body: Vec::new(),
        complete: false,
        reusable: false,
        error: None,
    };
    let feed = |decoder: &mut ResponseDecoder, buf: &mut BytesMut, out: &mut ClientTranscript| {
        loop {
            match decoder.decode(buf) {
                Ok(Some(ResponseEvent::Head(head, framing))) => {
                    out.head = Some((head.status.as_u16(), fields(&head.headers)));
                    out.framing = Some(framing);
                }
                Ok(Some(ResponseEvent::Body(data))) => out.body.extend_from_slice(&data),
                Ok(Some(ResponseEvent::End)) => out.complete = true,
                Ok(None) => return true,
                Err(e) => {
                    out.error = Some(normalise(e));
                    return false;
                }
            }
        }
    };
    for piece in pieces(input, cuts) {
        buf.extend_from_slice(piece);
        if !feed(&mut decoder, &mut buf, &mut out) {
            return out;
        }
    }
    // Asked when a shell would ask: with every byte read, before any EOF.
    out.reusable = decoder.is_reusable(&buf);
    if eof {
        decoder.handle_eof();
        feed(&mut decoder, &mut buf, &mut out);
    }
    out
}

/// The pieces of `input` between the sorted, clamped `cuts` (always at least one piece).
pub fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    points.sort_unstable();
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for p in points {
        out.push(&input[start..p]);
        start = p;
    }
    out.push(&input[start..]);
    out
}

/// Header fields in map order, as owned pairs.
pub fn fields(headers: &HeaderMap) -> Fields {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn normalise(e: FramingError) -> FramingError {
    match e {
        FramingError::HeaderBlockTooLarge { limit, .. } => {
            FramingError::HeaderBlockTooLarge { len: 0, limit }
        }
        FramingError::TargetTooLong { limit, .. } => FramingError::TargetTooLong { len: 0, limit },
        other => other,
    }
}

/// The oracles of `reliability.md` §6 on an accepted transcript: limits held, nothing the
/// framing rules reject was accepted, requests complete and in order.
fn check_server_rules(t: &ServerTranscript, limits: &Limits) {
    for (i, r) in t.requests.iter().enumerate() {
        assert_eq!(r.seq, i as u64, "requests out of order");
        if i + 1 < t.requests.len() {
            assert!(r.complete, "a later request started before this one ended");
            assert!(r.keep_alive, "a request after a closing one was decoded");
        }
        assert!(r.headers.len() <= limits.max_headers, "header count limit");
        let target = r.path.len() + r.query.as_ref().map_or(0, |q| q.len() + 1);
        // An empty path (target `?q`) comes out as `/`, one byte longer.
        let slack = usize::from(r.path == "/");
        assert!(target <= limits.max_target + slack, "target limit");
        for (name, value) in &r.headers {
            assert!(
                !value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                "forbidden byte in {name}"
            );
        }
        let values = |n: &str| -> Vec<&[u8]> {
            r.headers
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_slice())
                .collect()
        };
        let te = values("transfer-encoding");
        let cl = values("content-length");
        if te.is_empty() {
            assert_ne!(r.framing, BodyFraming::Chunked, "chunked without TE");
        } else {
            assert_eq!(r.version, Version::Http11, "TE accepted on HTTP/1.0");
            let codings: Vec<&[u8]> = te
                .iter()
                .flat_map(|v| v.split(|&b| b == b','))
                .map(<[u8]>::trim_ascii)
                .filter(|c| !c.is_empty())
                .collect();
            assert!(
                matches!(codings.as_slice(), [only] if only.eq_ignore_ascii_case(b"chunked")),
                "TE other than chunked accepted"
            );
            assert_eq!(r.framing, BodyFraming::Chunked);
            if !cl.is_empty() {
                assert!(!r.keep_alive, "CL + TE must close the connection");
            }
        }
        let mut lengths = cl.iter().flat_map(|v| v.split(|&b| b == b',')).map(|e| {
            std::str::from_utf8(e.trim_ascii())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        });
        if let Some(first) = lengths.next() {
            let first = first.unwrap_or_else(|| panic!("invalid content-length accepted"));
            assert!(
                lengths.all(|n| n == Some(first)),
                "differing content-length accepted"
            );
            if te.is_empty() {
                assert_eq!(r.framing, BodyFraming::Length(first));
            }
        }
        if let (BodyFraming::Length(n), true) = (r.framing, r.complete) {
            assert_eq!(
                r.body.len() as u64,
                n,
                "body length differs from content-length"
            );
        }
    }
}

/// Each complete request, framed afresh by the client encoder, decodes to the same request.
fn check_reencoding(t: &ServerTranscript, limits: Limits) {
    for r in t.requests.iter().filter(|r| r.complete) {
        let target = match &r.query {
            Some(q) => format!("{}?{q}", r.path),
            None => r.path.clone(),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &r.headers {
            let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) else {
                panic!("decoded header does not convert back");
            };
            headers.append(n, v);
        }
        let Ok(head) = encode_request(&r.method, &target, &headers, r.body.len() as u64) else {
            panic!("decoded target refused by the encoder: {target:?}");
        };
        let mut wire = head.to_vec();
        wire.extend_from_slice(&r.body);
        let again = decode_server(
            &wire,
            &[],
            false,
            Limits {
                // The fresh content-length adds one field and a few bytes.
                max_headers: limits.max_headers + 1,
                max_header_block: limits.max_header_block + 64,
                max_target: limits.max_target + 1,
            },
        );
        let [back] = again.requests.as_slice() else {
            panic!("re-encoded request did not decode to one request: {again:?}");
        };
        assert!(back.complete && again.error.is_none());
        assert_eq!(
            (&back.method, &back.path, &back.query, &back.body),
            (&r.method, &r.path, &r.query, &r.body)
        );
        let strip = |h: &[(String, Vec<u8>)]| -> Fields {
            h.iter()
                .filter(|(n, _)| n != CONTENT_LENGTH.as_str() && n != TRANSFER_ENCODING.as_str())
                .cloned()
                .collect()
        };
        assert_eq!(strip(&back.headers), strip(&r.headers));
    }
}

fn check_client_rules(t: &ClientTranscript) {
    let Some((status, _)) = &t.head else {
        assert!(!t.complete && t.body.is_empty());
        return;
    };
    assert!(*status >= 200, "an informational head was delivered");
    if let (Some(BodyFraming::Length(n)), true) = (t.framing, t.complete) {
        assert_eq!(
            t.body.len() as u64,
            n,
            "body length differs from content-length"
        );
    }
    if t.framing == Some(BodyFraming::None) {
        assert!(t.body.is_empty(), "a bodiless response delivered a body");
    }
    if t.reusable {
        assert!(t.complete && t.framing != Some(BodyFraming::CloseDelimited));
    }
}
