//! The sans-IO HTTP/1.1 codec used by the smol shell, as a server and as an upstream client.
//!
//! Push-style over caller-owned buffers, in the manner of httparse: the shell appends the
//! bytes it read to a `BytesMut`, calls `decode`, and gets at most one event back; bytes
//! are consumed from the front of the buffer as events are produced (body chunks are split
//! off without copying). Not having enough bytes is `Ok(None)`, never an error. There is no
//! IO and no clock here: the decoders say what they are waiting for ([`Waiting`]) and the
//! shell runs the matching timer (`datapath.md` §1).
//!
//! * Server side: [`RequestDecoder`] yields [`RequestEvent::Head`], any number of
//!   [`RequestEvent::Body`] chunks and [`RequestEvent::End`] per request. Pipelined requests
//!   are decoded one after another, and the next head is released only after the shell
//!   reports the current response written ([`RequestDecoder::handle_response_done`]), so
//!   responses go out in request order by construction.
//! * Response encoding: [`encode_response_head`], [`encode_body`], [`encode_end`],
//!   [`encode_chunk`], [`encode_reply`] and [`RequestInfo::start_response`], which picks the
//!   framing (content-length, chunked, or close-delimited for HTTP/1.0 clients).
//! * Client side: [`encode_request`] (always framed afresh with `content-length`) and
//!   [`ResponseDecoder`] for upstream responses (content-length, chunked, close-delimited
//!   until the caller signals EOF; 1xx skipped, 101 refused; HEAD/204/304 without a body),
//!   which also says whether the connection can be reused.
//!
//! Framing rules (RFC 9112, `reliability.md` RQ-H1–RQ-H3). Every rejection is a
//! [`FramingError`] whose [`FramingError::reply`] is the E24 response, and the connection
//! closes after it:
//!
//! | Input | Result |
//! |---|---|
//! | more than 100 header fields | 431 |
//! | header block over 65 536 bytes | 431 |
//! | request target over 65 534 bytes | 414 |
//! | `Transfer-Encoding` and `Content-Length` | chunked wins; connection closes after the response |
//! | differing duplicate `Content-Length`, invalid `Content-Length` | 400 |
//! | `Transfer-Encoding` other than exactly `chunked`, or on HTTP/1.0 | 400 |
//! | obs-fold, CR/LF/NUL in a header value, space before the colon | 400 |
//! | request line httparse rejects | 400 |
//! | chunk size not hex, over 64 bits, bare LF in a chunk line, missing CRLF after data | 400 |
//! | `Transfer-Encoding` or `Content-Length` in the trailer | 400 |
//!
//! Choices where the spec is silent:
//! * The "header block" is everything after the request line up to and including the empty
//!   line that ends the head; the request line has its own limit (the target's 65 534
//!   bytes, a 32-byte method, a 16-byte version part).
//! * `Transfer-Encoding: gzip, chunked` is refused like `chunked, gzip`: the proxy cannot
//!   decode the inner coding and frames every upstream request afresh, so forwarding it
//!   would silently change the body. RFC 9112 suggests 501; E24 only knows 400.
//! * Upstream responses get the same `Transfer-Encoding` rule: a coding other than
//!   `chunked` is [`FramingError::UnsupportedTransferEncoding`] rather than a
//!   close-delimited body, since the relay would pass coded bytes on as identity.
//! * `Expect: 100-continue` is reported ([`RequestInfo::expects_continue`]); whether to
//!   send [`CONTINUE`] is the caller's choice (not before a 413 decision, RQ-L2).
//! * Leading empty lines before a request line are skipped (RFC 9112 §2.2).
//! * Chunk extensions are skipped but limited to 4 096 bytes per chunk line; trailers are
//!   consumed, checked and dropped, and count against the header block limit.
//! * Heads are parsed once the end-of-head marker has been seen; before that, only the
//!   cheap length checks run. This keeps a head that trickles in byte by byte linear in
//!   cost (the httparse docs warn against re-parsing a growing buffer).
//!
//! A blocking server loop, to show the order of calls (the smol shell does the same with
//! its own timers; `answer` stands for the exchange):
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use agent_cli_proxy_core::http1::{encode_reply, Limits, RequestDecoder, RequestEvent};
//! # fn answer(_: &agent_cli_proxy_core::head::RequestHead, _: &[u8]) -> agent_cli_proxy_core::head::Reply { agent_cli_proxy_core::errors::not_found() }
//!
//! fn serve(mut conn: impl Read + Write) -> std::io::Result<()> {
//!     let mut decoder = RequestDecoder::new(Limits::default());
//!     let mut buf = bytes::BytesMut::new();
//!     let (mut head, mut body) = (None, Vec::new());
//!     loop {
//!         match decoder.decode(&mut buf) {
//!             Ok(Some(RequestEvent::Head(h, _framing))) => head = Some(h),
//!             Ok(Some(RequestEvent::Body(chunk))) => body.extend_from_slice(&chunk),
//!             Ok(Some(RequestEvent::End)) => {
//!                 let Some(h) = head.take() else { return Ok(()) };
//!                 let reply = answer(&h, &body);
//!                 let out = encode_reply(&reply, decoder.current());
//!                 conn.write_all(&out.bytes)?;
//!                 decoder.handle_response_done(out.close);
//!                 body.clear();
//!             }
//!             Ok(None) => {
//!                 if decoder.waiting() == agent_cli_proxy_core::http1::Waiting::Closed {
//!                     return Ok(());
//!                 }
//!                 // Arm the timer `decoder.waiting()` names, then read.
//!                 let mut chunk = [0u8; 16 * 1024];
//!                 match conn.read(&mut chunk)? {
//!                     0 => decoder.handle_eof(),
//!                     n => buf.extend_from_slice(&chunk[..n]),
//!                 }
//!             }
//!             Err(e) => {
//!                 conn.write_all(&encode_reply(&e.reply(), None).bytes)?;
//!                 return Ok(());
//!             }
//!         }
//!     }
//! }
//! ```

mod body;
mod chunked;
mod client;
mod encode;
mod fields;
mod scan;
mod server;
mod target;

#[cfg(test)]
mod tests;

use http::StatusCode;

use crate::head::Reply;

pub use chunked::{LAST_CHUNK, encode_chunk};
pub use client::{ResponseDecoder, ResponseEvent, encode_request};
pub use encode::{
    CONTINUE, EncodedReply, ResponseStart, encode_body, encode_end, encode_reply,
    encode_response_head,
};
pub use server::{RequestDecoder, RequestEvent, RequestInfo};
pub use target::{
    ResponseReader, Target, failure_text, framing_failure, redirect_target, reset_text,
};

/// Header count limit (`datapath.md` §1).
pub const MAX_HEADERS: usize = 100;
/// Header block size limit in bytes (`datapath.md` §1).
pub const MAX_HEADER_BLOCK: usize = 65_536;
/// Request target length limit in bytes (`datapath.md` §1).
pub const MAX_TARGET: usize = 65_534;

/// The codec's size limits. The defaults are the values of `datapath.md` §1; tests may
/// shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most header fields in one head.
    pub max_headers: usize,
    /// Most bytes in a header block (and in a trailer section).
    pub max_header_block: usize,
    /// Longest request target.
    pub max_target: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: MAX_HEADERS,
            max_header_block: MAX_HEADER_BLOCK,
            max_target: MAX_TARGET,
        }
    }
}

/// How a message body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all (no framing header on a request; HEAD, 1xx, 204, 304 responses).
    None,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    CloseDelimited,
}

/// The HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// What a decoder needs next, so the shell can run the matching timer (`datapath.md` §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Between requests with no byte of the next head buffered: the keep-alive idle timer.
    Idle,
    /// Part of a head is buffered: the header read timeout runs from the moment this state
    /// was first reported for the current head until it changes.
    Head,
    /// Inside a body: the body idle timer.
    Body,
    /// The request is complete; the shell owes its response
    /// ([`RequestDecoder::handle_response_done`]). Bytes read meanwhile stay buffered.
    Response,
    /// Nothing more will be decoded on this connection.
    Closed,
}

/// A framing-level failure. On the server side every variant answers with
/// [`FramingError::reply`] (E24) and the connection closes; on the client side it is a
/// broken upstream response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// More header fields than the limit.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// The header block (or trailer section) is longer than the limit.
    #[error("header block of at least {len} bytes exceeds {limit}")]
    HeaderBlockTooLarge {
        /// Bytes seen so far.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The request target is longer than the limit.
    #[error("request target of at least {len} bytes exceeds {limit}")]
    TargetTooLong {
        /// Bytes seen so far.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The start line is longer than any valid one (a method over 32 bytes, a version part
    /// over 16 bytes, a status line over 65 534 bytes).
    #[error("start line too long")]
    StartLineTooLong,
    /// httparse rejected the head.
    #[error("malformed head: {0}")]
    Head(httparse::Error),
    /// A method, header name or header value the `http` crate refuses.
    #[error("invalid {0} in head")]
    InvalidToken(&'static str),
    /// A header value holds CR, LF or NUL.
    #[error("header value of {name} holds CR, LF or NUL")]
    ForbiddenByteInValue {
        /// The header name.
        name: String,
    },
    /// A `Content-Length` that is not a plain decimal `u64`.
    #[error("invalid content-length")]
    InvalidContentLength,
    /// `Content-Length` values that differ.
    #[error("conflicting content-length values {first} and {second}")]
    ConflictingContentLength {
        /// The first value.
        first: u64,
        /// A later, different value.
        second: u64,
    },
    /// A `Transfer-Encoding` other than exactly `chunked`, or one on HTTP/1.0.
    #[error("unsupported transfer-encoding")]
    UnsupportedTransferEncoding,
    /// A broken chunked body.
    #[error("bad chunked body: {0}")]
    Chunk(ChunkError),
    /// The peer closed before the message was complete.
    #[error("connection closed mid-message")]
    UnexpectedEof,
    /// The upstream answered `101 Switching Protocols`, which the proxy never asks for.
    #[error("upstream switched protocols")]
    SwitchingProtocols,
    /// A request target the client encoder refuses (empty, or holding SP, CR, LF or NUL).
    #[error("request target cannot be sent")]
    InvalidTarget,
}

/// What is wrong with a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// The chunk-size line has no hex digit or a byte that does not belong there.
    BadSize,
    /// The chunk size does not fit in 64 bits.
    SizeOverflow,
    /// A line ends in LF without CR, or CR is not followed by LF.
    BareLineEnding,
    /// Chunk extensions longer than the 4 096-byte allowance.
    ExtensionTooLong,
    /// The chunk data is not followed by CRLF.
    MissingDataCrlf,
    /// A malformed trailer field (obs-fold, bad name, forbidden byte).
    BadTrailer,
    /// `Transfer-Encoding` or `Content-Length` in the trailer.
    ForbiddenTrailer,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ChunkError::BadSize => "bad chunk size",
            ChunkError::SizeOverflow => "chunk size overflows 64 bits",
            ChunkError::BareLineEnding => "bare line ending",
            ChunkError::ExtensionTooLong => "chunk extension too long",
            ChunkError::MissingDataCrlf => "missing CRLF after chunk data",
            ChunkError::BadTrailer => "malformed trailer",
            ChunkError::ForbiddenTrailer => "framing field in trailer",
        };
        f.write_str(text)
    }
}

impl FramingError {
    /// The status a server answers with: 431 for the header limits, 414 for the target
    /// limit, 400 for everything else.
    pub fn status(&self) -> StatusCode {
        match self {
            FramingError::TooManyHeaders { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            FramingError::HeaderBlockTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            FramingError::TargetTooLong { .. } => StatusCode::URI_TOO_LONG,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The E24 reply for this error (closing the connection).
    pub fn reply(&self) -> Reply {
        crate::errors::framing(self.status())
    }
}
