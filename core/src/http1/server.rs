//! The server side: requests in, one event at a time, pipelined requests one after another.

use bytes::{Buf, Bytes, BytesMut};
use http::header::EXPECT;
use http::{HeaderMap, Method};

use super::body::{BodyEvent, BodyReader};
use super::chunked::ChunkedDecoder;
use super::fields::{FramingFields, framing_fields, to_header_map};
use super::scan::{HeadBounds, HeadScan};
use super::{BodyFraming, FramingError, Limits, Version, Waiting};
use crate::head::RequestHead;

/// Longest method accepted (no registered method comes close).
const MAX_METHOD: usize = 32;
/// Longest version part of a request line, `HTTP/1.1\r` with room to spare.
const MAX_VERSION_PART: usize = 16;

/// One step of a request, in order: `Head`, any number of `Body`, `End`.
#[derive(Debug, Clone)]
pub enum RequestEvent {
    /// The head and how its body is framed ([`BodyFraming::None`] when it has none).
    Head(RequestHead, BodyFraming),
    /// Body bytes (chunked framing removed).
    Body(Bytes),
    /// The request is complete.
    End,
}

/// What the shell needs to know about the request being answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// Position of this request on its connection, from 0; responses go out in this order.
    pub seq: u64,
    /// Request version.
    pub version: Version,
    /// Request method (a HEAD response carries no body).
    pub method: Method,
    /// Body framing of the request.
    pub framing: BodyFraming,
    /// The connection may serve another request after this one's response (false for
    /// `Connection: close`, HTTP/1.0 without keep-alive, and `Content-Length` together with
    /// `Transfer-Encoding`).
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` on HTTP/1.1 and waits for [`super::CONTINUE`]
    /// (or a final response) before sending the body.
    pub expects_continue: bool,
}

/// Decodes the requests of one client connection.
///
/// Call [`RequestDecoder::decode`] after every read until it returns `Ok(None)`. After
/// [`RequestEvent::End`] it returns `Ok(None)` until the shell reports the response written
/// with [`RequestDecoder::handle_response_done`]; only then is the next pipelined request
/// decoded, so responses keep request order. After an error, write
/// [`FramingError::reply`] and close: the decoder produces nothing more.
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    phase: Phase,
    next_seq: u64,
    current: Option<RequestInfo>,
    body_received: u64,
    eof: bool,
}

#[derive(Debug)]
enum Phase {
    Head(HeadScan),
    Body(BodyReader),
    Response,
    Closed,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(Limits::default())
    }
}

impl RequestDecoder {
    /// A decoder for a new connection.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            phase: Phase::Head(HeadScan::default()),
            next_seq: 0,
            current: None,
            body_received: 0,
            eof: false,
        }
    }

    /// What the decoder waits for, as of the last call.
    pub fn waiting(&self) -> Waiting {
        match &self.phase {
            Phase::Head(scan) if scan.started() => Waiting::Head,
            Phase::Head(_) => Waiting::Idle,
            Phase::Body(_) => Waiting::Body,
            Phase::Response => Waiting::Response,
            Phase::Closed => Waiting::Closed,
        }
    }

    /// The request whose head was decoded and whose response is not done yet.
    pub fn current(&self) -> Option<&RequestInfo> {
        self.current.as_ref()
    }

    /// Body bytes of the current request delivered so far (for the caller's body limit).
    pub fn body_received(&self) -> u64 {
        self.body_received
    }

    /// Consumes bytes from the front of `buf` and returns the next event, or `Ok(None)`
    /// when more bytes (or the response) are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RequestEvent>, FramingError> {
        let result = self.step(buf);
        if result.is_err() {
            self.phase = Phase::Closed;
        }
        result
    }

    /// The client closed its sending side. A head or body left incomplete then decodes to
    /// [`FramingError::UnexpectedEof`]; an idle connection simply closes.
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// The response to the current request was written completely. With `close` (or when
    /// the request did not allow keep-alive, or its body was not read to the end) the
    /// connection is done; otherwise the next request is decoded.
    pub fn handle_response_done(&mut self, close: bool) {
        let keep = !close
            && matches!(self.phase, Phase::Response)
            && self.current.as_ref().is_some_and(|c| c.keep_alive);
        self.current = None;
        self.body_received = 0;
        self.phase = if keep {
            Phase::Head(HeadScan::default())
        } else {
            Phase::Closed
        };
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<RequestEvent>, FramingError> {
        match &mut self.phase {
            Phase::Head(scan) => {
                let ready = scan.started() || skip_empty_lines(buf);
                if !ready || buf.is_empty() {
                    if self.eof {
                        self.phase = Phase::Closed;
                    }
                    return Ok(None);
                }
                let Some(bounds) = scan.scan(buf) else {
                    check_partial_head(scan, buf.len(), &self.limits)?;
                    return if self.eof {
                        Err(FramingError::UnexpectedEof)
                    } else {
                        Ok(None)
                    };
                };
                check_request_line(scan, &self.limits)?;
                let (head, info) = self.parse_head(buf, bounds)?;
                buf.advance(bounds.head_end);
                let framing = info.framing;
                self.phase = Phase::Body(match framing {
                    BodyFraming::Chunked => {
                        BodyReader::Chunked(ChunkedDecoder::new(self.limits.max_header_block))
                    }
                    BodyFraming::Length(n) => BodyReader::Length(n),
                    BodyFraming::None | BodyFraming::CloseDelimited => BodyReader::Length(0),
                });
                self.next_seq += 1;
                self.current = Some(info);
                self.body_received = 0;
                Ok(Some(RequestEvent::Head(head, framing)))
            }
            Phase::Body(reader) => match reader.decode(buf, self.eof)? {
                Some(BodyEvent::Data(data)) => {
                    self.body_received = self.body_received.saturating_add(data.len() as u64);
                    Ok(Some(RequestEvent::Body(data)))
                }
                Some(BodyEvent::End) => {
                    self.phase = Phase::Response;
                    Ok(Some(RequestEvent::End))
                }
                None => Ok(None),
            },
            Phase::Response | Phase::Closed => Ok(None),
        }
    }

    fn parse_head(
        &self,
        buf: &[u8],
        bounds: HeadBounds,
    ) -> Result<(RequestHead, RequestInfo), FramingError> {
        let block = bounds.head_end - bounds.line_end;
        if block > self.limits.max_header_block {
            return Err(FramingError::HeaderBlockTooLarge {
                len: block,
                limit: self.limits.max_header_block,
            });
        }
        let mut fields = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut req = httparse::Request::new(&mut fields);
        let head = buf.get(..bounds.head_end).unwrap_or_default();
        match req.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == bounds.head_end => {}
            Ok(_) => return Err(FramingError::Head(httparse::Error::NewLine)),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(FramingError::TooManyHeaders {
                    limit: self.limits.max_headers,
                });
            }
            Err(e) => return Err(FramingError::Head(e)),
        }
        let version = match req.version {
            Some(0) => Version::Http10,
            Some(1) => Version::Http11,
            _ => return Err(FramingError::Head(httparse::Error::Version)),
        };
        let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
            .map_err(|_| FramingError::InvalidToken("method"))?;
        let target = req.path.unwrap_or_default();
        if target.len() > self.limits.max_target {
            return Err(FramingError::TargetTooLong {
                len: target.len(),
                limit: self.limits.max_target,
            });
        }
        let headers = to_header_map(req.headers)?;
        let FramingFields {
            content_length,
            chunked,
            close,
        } = framing_fields(&headers, version)?;
        let framing = match (chunked, content_length) {
            (true, _) => BodyFraming::Chunked,
            (false, Some(n)) => BodyFraming::Length(n),
            (false, None) => BodyFraming::None,
        };
        let info = RequestInfo {
            seq: self.next_seq,
            version,
            method: method.clone(),
            framing,
            keep_alive: !close,
            expects_continue: version == Version::Http11 && expects_continue(&headers),
        };
        Ok((RequestHead::new(method, target, headers), info))
    }
}

/// Drops empty lines before a request line; false when only a lone CR is left (its LF may
/// still come).
fn skip_empty_lines(buf: &mut BytesMut) -> bool {
    loop {
        match buf.as_ref() {
            [b'\r', b'\n', ..] => buf.advance(2),
            [b'\n', ..] => buf.advance(1),
            [b'\r'] => return false,
            _ => return true,
        }
    }
}

/// The limits that can be decided before the head is complete, so an endless head is
/// refused as soon as it is too long rather than buffered.
fn check_partial_head(
    scan: &HeadScan,
    buffered: usize,
    limits: &Limits,
) -> Result<(), FramingError> {
    match scan.line_end() {
        Some(line_end) => {
            // The line first, so the error does not depend on how the bytes were split.
            check_request_line(scan, limits)?;
            let block = buffered - line_end;
            if block > limits.max_header_block {
                return Err(FramingError::HeaderBlockTooLarge {
                    len: block,
                    limit: limits.max_header_block,
                });
            }
            Ok(())
        }
        None => check_line_so_far(scan, scan.examined(), limits),
    }
}

/// The request line is complete; its target must fit.
fn check_request_line(scan: &HeadScan, limits: &Limits) -> Result<(), FramingError> {
    let end = scan.line_end().unwrap_or(0);
    check_line_so_far(scan, end.saturating_sub(1), limits)
}

/// Checks the pieces of a request line of which `len` bytes are known.
fn check_line_so_far(scan: &HeadScan, len: usize, limits: &Limits) -> Result<(), FramingError> {
    match (scan.sp1(), scan.sp2()) {
        (None, _) if len > MAX_METHOD => Err(FramingError::StartLineTooLong),
        (None, _) => Ok(()),
        (Some(sp1), _) if sp1 > MAX_METHOD => Err(FramingError::StartLineTooLong),
        (Some(sp1), None) => {
            let target = len.saturating_sub(sp1 + 1);
            if target > limits.max_target {
                return Err(FramingError::TargetTooLong {
                    len: target,
                    limit: limits.max_target,
                });
            }
            Ok(())
        }
        (Some(sp1), Some(sp2)) => {
            let target = sp2 - sp1 - 1;
            if target > limits.max_target {
                return Err(FramingError::TargetTooLong {
                    len: target,
                    limit: limits.max_target,
                });
            }
            if len.saturating_sub(sp2 + 1) > MAX_VERSION_PART {
                return Err(FramingError::StartLineTooLong);
            }
            Ok(())
        }
    }
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}
