//! The client side: requests to the upstream out, responses in.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode};

use super::body::{BodyEvent, BodyReader};
use super::chunked::ChunkedDecoder;
use super::fields::{FramingFields, connection_tokens, framing_fields, to_header_map};
use super::scan::HeadScan;
use super::{BodyFraming, FramingError, Limits, Version, Waiting};
use crate::head::ResponseHead;

/// Encodes an upstream request head. The request is always framed afresh: any
/// `Content-Length` or `Transfer-Encoding` in `headers` is dropped and
/// `content-length: <body_len>` is written, except for a zero-length body on a method that
/// does not expect one (GET, HEAD, DELETE, OPTIONS, TRACE, CONNECT), where RFC 9110 asks for
/// no `Content-Length`. Headers go out in map order; hop-by-hop filtering is the `headers`
/// module's business. A target that is empty or holds SP, a control byte or DEL is refused
/// ([`FramingError::InvalidTarget`]), since it would split the request line.
pub fn encode_request(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body_len: u64,
) -> Result<Bytes, FramingError> {
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(FramingError::InvalidTarget);
    }
    let mut out = BytesMut::with_capacity(64 + target.len() + headers.len() * 32);
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    let bodiless = matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
            | Method::CONNECT
    );
    if body_len > 0 || !bodiless {
        out.put_slice(format!("content-length: {body_len}\r\n").as_bytes());
    }
    out.put_slice(b"\r\n");
    Ok(out.freeze())
}

/// One step of an upstream response, in order: `Head`, any number of `Body`, `End`.
#[derive(Debug, Clone)]
pub enum ResponseEvent {
    /// The final (non-1xx) head and how its body is framed.
    Head(ResponseHead, BodyFraming),
    /// Body bytes (chunked framing removed).
    Body(Bytes),
    /// The response is complete.
    End,
}

/// Decodes one upstream response (create one per request sent).
///
/// Informational 1xx heads are consumed silently, except `101`, which is an error: the
/// proxy never asks to switch protocols. Responses to HEAD and 204/304 responses have no
/// body whatever their headers say. A response without `Content-Length` or
/// `Transfer-Encoding` runs until EOF, which the caller signals with
/// [`ResponseDecoder::handle_eof`]; EOF anywhere else is [`FramingError::UnexpectedEof`].
#[derive(Debug)]
pub struct ResponseDecoder {
    limits: Limits,
    head_request: bool,
    phase: Phase,
    eof: bool,
    close: bool,
    body_received: u64,
}

#[derive(Debug)]
enum Phase {
    Head(HeadScan),
    Body(BodyReader),
    Done,
    Failed,
}

impl ResponseDecoder {
    /// A decoder for the response to a request with `method`.
    pub fn new(method: &Method) -> Self {
        ResponseDecoder::with_limits(method, Limits::default())
    }

    /// Same, with explicit limits.
    pub fn with_limits(method: &Method, limits: Limits) -> Self {
        ResponseDecoder {
            limits,
            head_request: *method == Method::HEAD,
            phase: Phase::Head(HeadScan::default()),
            eof: false,
            close: false,
            body_received: 0,
        }
    }

    /// What the decoder waits for: `Head`/`Idle` before the head, `Body` inside the body,
    /// `Closed` once the response is complete or broken.
    pub fn waiting(&self) -> Waiting {
        match &self.phase {
            Phase::Head(scan) if scan.started() => Waiting::Head,
            Phase::Head(_) => Waiting::Idle,
            Phase::Body(_) => Waiting::Body,
            Phase::Done | Phase::Failed => Waiting::Closed,
        }
    }

    /// Body bytes delivered so far.
    pub fn body_received(&self) -> u64 {
        self.body_received
    }

    /// The upstream closed the connection (or its sending side).
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// True when the response is complete and the connection may carry another request:
    /// delimited body, no `Connection: close`, HTTP/1.1 or 1.0 with keep-alive, no
    /// `Content-Length` beside `Transfer-Encoding`, no EOF, and no stray bytes after the
    /// response in `buf` (the caller's buffer; bytes the upstream sent unasked mean the
    /// framing went wrong somewhere).
    pub fn is_reusable(&self, buf: &[u8]) -> bool {
        matches!(self.phase, Phase::Done) && !self.close && !self.eof && buf.is_empty()
    }

    /// Consumes bytes from the front of `buf` and returns the next event, or `Ok(None)`
    /// when more bytes are needed (or the response is complete).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseEvent>, FramingError> {
        let result = self.step(buf);
        if result.is_err() {
            self.phase = Phase::Failed;
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseEvent>, FramingError> {
        loop {
            match &mut self.phase {
                Phase::Head(scan) => {
                    let Some(bounds) = scan.scan(buf) else {
                        self.check_partial_head(buf.len())?;
                        return if self.eof {
                            Err(FramingError::UnexpectedEof)
                        } else {
                            Ok(None)
                        };
                    };
                    let line_end = bounds.line_end;
                    let head_end = bounds.head_end;
                    self.check_block(head_end - line_end)?;
                    let parsed = self.parse_head(buf.get(..head_end).unwrap_or_default())?;
                    buf.advance(head_end);
                    let Some((head, framing)) = parsed else {
                        // An informational response: the final one follows.
                        self.phase = Phase::Head(HeadScan::default());
                        continue;
                    };
                    self.phase = Phase::Body(match framing {
                        BodyFraming::None => BodyReader::Length(0),
                        BodyFraming::Length(n) => BodyReader::Length(n),
                        BodyFraming::Chunked => {
                            BodyReader::Chunked(ChunkedDecoder::new(self.limits.max_header_block))
                        }
                        BodyFraming::CloseDelimited => BodyReader::UntilEof,
                    });
                    return Ok(Some(ResponseEvent::Head(head, framing)));
                }
                Phase::Body(reader) => {
                    return match reader.decode(buf, self.eof)? {
                        Some(BodyEvent::Data(data)) => {
                            self.body_received =
                                self.body_received.saturating_add(data.len() as u64);
                            Ok(Some(ResponseEvent::Body(data)))
                        }
                        Some(BodyEvent::End) => {
                            self.phase = Phase::Done;
                            Ok(Some(ResponseEvent::End))
                        }
                        None => Ok(None),
                    };
                }
                Phase::Done | Phase::Failed => return Ok(None),
            }
        }
    }

    fn check_partial_head(&self, buffered: usize) -> Result<(), FramingError> {
        let Phase::Head(scan) = &self.phase else {
            return Ok(());
        };
        match scan.line_end() {
            Some(line_end) => self.check_block(buffered - line_end),
            None if buffered > self.limits.max_target => Err(FramingError::StartLineTooLong),
            None => Ok(()),
        }
    }

    fn check_block(&self, block: usize) -> Result<(), FramingError> {
        if block > self.limits.max_header_block {
            return Err(FramingError::HeaderBlockTooLarge {
                len: block,
                limit: self.limits.max_header_block,
            });
        }
        Ok(())
    }

    /// The final head with its framing, or `None` for an informational one.
    fn parse_head(
        &mut self,
        head: &[u8],
    ) -> Result<Option<(ResponseHead, BodyFraming)>, FramingError> {
        let mut fields = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut res = httparse::Response::new(&mut fields);
        match res.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            Ok(_) => return Err(FramingError::Head(httparse::Error::NewLine)),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(FramingError::TooManyHeaders {
                    limit: self.limits.max_headers,
                });
            }
            Err(e) => return Err(FramingError::Head(e)),
        }
        let version = match res.version {
            Some(0) => Version::Http10,
            Some(1) => Version::Http11,
            _ => return Err(FramingError::Head(httparse::Error::Version)),
        };
        let status = StatusCode::from_u16(res.code.unwrap_or(0))
            .map_err(|_| FramingError::Head(httparse::Error::Status))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(FramingError::SwitchingProtocols);
        }
        let headers = to_header_map(res.headers)?;
        if status.is_informational() {
            return Ok(None);
        }
        let framing = if self.head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            let (close, keep_alive) = connection_tokens(&headers);
            self.close = close || (version == Version::Http10 && !keep_alive);
            BodyFraming::None
        } else {
            let FramingFields {
                content_length,
                chunked,
                close,
            } = framing_fields(&headers, version)?;
            let framing = match (chunked, content_length) {
                (true, _) => BodyFraming::Chunked,
                (false, Some(n)) => BodyFraming::Length(n),
                (false, None) => BodyFraming::CloseDelimited,
            };
            self.close = close || framing == BodyFraming::CloseDelimited;
            framing
        };
        Ok(Some((ResponseHead { status, headers }, framing)))
    }
}
