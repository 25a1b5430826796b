//! Response encoding for the server side.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode};

use super::chunked::{LAST_CHUNK, encode_chunk};
use super::server::RequestInfo;
use super::{BodyFraming, Version};
use crate::head::Reply;

/// The interim response that releases a client waiting on `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The head of a response as the shell should write it, from
/// [`RequestInfo::start_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseStart {
    /// The encoded head.
    pub head: Bytes,
    /// How to frame the body with [`encode_body`] and [`encode_end`]: [`BodyFraming::None`]
    /// when no body may follow (HEAD, 1xx, 204, 304).
    pub framing: BodyFraming,
    /// Close the connection once the response is written.
    pub close: bool,
}

/// A complete reply on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedReply {
    /// Head and body.
    pub bytes: Bytes,
    /// Close the connection once written.
    pub close: bool,
}

/// Encodes a response head: status line (always `HTTP/1.1`), the headers of `headers`
/// except `Content-Length` and `Transfer-Encoding` (the framing owns them), then the
/// framing header. A close-delimited body also gets `connection: close`, replacing any
/// `Connection` in `headers`.
pub fn encode_response_head(
    status: StatusCode,
    headers: &HeaderMap,
    framing: BodyFraming,
) -> Bytes {
    let connection = match framing {
        BodyFraming::CloseDelimited => ConnectionField::Close,
        _ => ConnectionField::AsGiven,
    };
    write_head(status, headers, framing, connection)
}

/// Frames a body chunk for the wire: as is for a length or close-delimited body, as a chunk
/// for a chunked one, nothing for [`BodyFraming::None`].
pub fn encode_body(framing: BodyFraming, chunk: Bytes) -> Bytes {
    match framing {
        BodyFraming::Length(_) | BodyFraming::CloseDelimited => chunk,
        BodyFraming::Chunked => encode_chunk(&chunk),
        BodyFraming::None => Bytes::new(),
    }
}

/// What ends a body: the last chunk for a chunked one, nothing otherwise.
pub fn encode_end(framing: BodyFraming) -> Bytes {
    match framing {
        BodyFraming::Chunked => Bytes::from_static(LAST_CHUNK),
        _ => Bytes::new(),
    }
}

/// Encodes a core-built [`Reply`] completely. With the request it answers, HEAD gets no
/// body and keep-alive follows the request; without one (the head could not be decoded),
/// the connection closes.
pub fn encode_reply(reply: &Reply, request: Option<&RequestInfo>) -> EncodedReply {
    let length = reply.body.len() as u64;
    let start = match request {
        Some(info) => info.start_response(reply.status, &reply.headers, Some(length), reply.close),
        None => ResponseStart {
            head: write_head(
                reply.status,
                &reply.headers,
                BodyFraming::Length(length),
                ConnectionField::Close,
            ),
            framing: BodyFraming::Length(length),
            close: true,
        },
    };
    let mut bytes = BytesMut::from(start.head.as_ref());
    if start.framing != BodyFraming::None {
        bytes.put_slice(&reply.body);
    }
    EncodedReply {
        bytes: bytes.freeze(),
        close: start.close,
    }
}

impl RequestInfo {
    /// Chooses the framing of the response to this request and encodes its head.
    ///
    /// With a known `content_length` the body is length-framed; otherwise HTTP/1.1 clients
    /// get chunked framing and HTTP/1.0 clients a close-delimited body. 1xx, 204 and 304
    /// carry no framing header and no body; a HEAD response keeps the framing header but
    /// carries no body. `connection: close` is written whenever the connection closes after
    /// this response (`close`, a request that did not allow keep-alive, a close-delimited
    /// body), and `connection: keep-alive` for an HTTP/1.0 client that keeps it open.
    pub fn start_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        content_length: Option<u64>,
        close: bool,
    ) -> ResponseStart {
        let bodiless_status = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let wire = match (bodiless_status, content_length, self.version) {
            (true, _, _) => BodyFraming::None,
            (false, Some(n), _) => BodyFraming::Length(n),
            (false, None, Version::Http11) => BodyFraming::Chunked,
            (false, None, Version::Http10) => BodyFraming::CloseDelimited,
        };
        let close = close || !self.keep_alive || wire == BodyFraming::CloseDelimited;
        let connection = match (close, self.version) {
            (true, _) => ConnectionField::Close,
            (false, Version::Http10) => ConnectionField::KeepAlive,
            (false, Version::Http11) => ConnectionField::AsGiven,
        };
        let head = write_head(status, headers, wire, connection);
        let framing = if self.method == Method::HEAD {
            BodyFraming::None
        } else {
            wire
        };
        ResponseStart {
            head,
            framing,
            close,
        }
    }
}

/// What to write for `Connection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionField {
    /// Whatever `headers` holds.
    AsGiven,
    /// `connection: close`, replacing any given value.
    Close,
    /// `connection: keep-alive`, replacing any given value.
    KeepAlive,
}

fn write_head(
    status: StatusCode,
    headers: &HeaderMap,
    framing: BodyFraming,
    connection: ConnectionField,
) -> Bytes {
    let mut out = BytesMut::with_capacity(128 + headers.len() * 48);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in headers {
        let skip = name == CONTENT_LENGTH
            || name == TRANSFER_ENCODING
            || (name == CONNECTION && connection != ConnectionField::AsGiven);
        if skip {
            continue;
        }
        put_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    match framing {
        BodyFraming::Length(n) => put_field(&mut out, b"content-length", n.to_string().as_bytes()),
        BodyFraming::Chunked => put_field(&mut out, b"transfer-encoding", b"chunked"),
        BodyFraming::None | BodyFraming::CloseDelimited => {}
    }
    match connection {
        ConnectionField::AsGiven => {}
        ConnectionField::Close => put_field(&mut out, b"connection", b"close"),
        ConnectionField::KeepAlive => put_field(&mut out, b"connection", b"keep-alive"),
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}
