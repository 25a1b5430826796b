//! Where an upstream request goes, for the shells' own HTTP/1.1 clients: the parts of the URL
//! a connection needs, the request head (with `Host` first), relative redirects, and the
//! failure classes a broken response maps to.
//!
//! Failure classes follow hyper's client, which the control-plane calls of the tokio build
//! still use: anything after the connection is up is `Read`, with resets and truncations
//! reported as `upstream connection reset`.

use bytes::{Bytes, BytesMut};
use http::header::{HOST, HeaderValue};
use http::{HeaderMap, Method, Uri};

use super::client::{ResponseDecoder, ResponseEvent, encode_request};
use super::{FramingError, Waiting};
use crate::exchange::UpstreamFailure;

/// The parts of an upstream URL a client connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https`.
    pub tls: bool,
    /// Host for DNS and SNI (IPv6 without brackets).
    pub host: String,
    /// Port, the scheme's default when the URL has none.
    pub port: u16,
    /// `Host` header value.
    pub authority: String,
    /// Origin-form request target.
    pub path: String,
    /// Pool key: scheme, host and port.
    pub key: String,
}

impl Target {
    /// Splits an absolute `http` or `https` URL.
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(format!("unsupported scheme {other}")),
            None => return Err("missing scheme".to_owned()),
        };
        let Some(authority) = uri.authority() else {
            return Err("missing host".to_owned());
        };
        let raw_host = authority.host();
        let host = raw_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let hostport = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, h)| h)
            .to_owned();
        let path = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
            .to_owned();
        Ok(Target {
            tls,
            key: format!("{}://{raw_host}:{port}", if tls { "https" } else { "http" }),
            host,
            port,
            authority: hostport,
            path,
        })
    }

    /// The request head for this target: `Host` first (the core removes the client's), the
    /// given headers after it, framed with `content-length: body_len`.
    pub fn request_head(
        &self,
        method: &Method,
        headers: &HeaderMap,
        body_len: u64,
    ) -> Result<Bytes, String> {
        let headers = self.with_host(headers)?;
        encode_request(method, &self.path, &headers, body_len).map_err(|e| e.to_string())
    }

    fn with_host(&self, headers: &HeaderMap) -> Result<HeaderMap, String> {
        let mut out = HeaderMap::with_capacity(headers.len() + 1);
        let host = HeaderValue::from_str(&self.authority).map_err(|e| e.to_string())?;
        out.insert(HOST, host);
        for (name, value) in headers {
            if name != HOST {
                out.append(name.clone(), value.clone());
            }
        }
        Ok(out)
    }
}

/// One upstream response being read: the decoder and the bytes read but not yet decoded.
/// The shell reads the socket and reports what it got ([`ResponseReader::received`],
/// [`ResponseReader::received_eof`]); events and failures come out as the core expects them.
#[derive(Debug)]
pub struct ResponseReader {
    decoder: ResponseDecoder,
    // Starts empty and grows to what one read brings, so an idle stream holds no buffer.
    buf: BytesMut,
}

impl ResponseReader {
    /// Reads the response to a `method` request.
    pub fn new(method: &Method) -> ResponseReader {
        ResponseReader {
            decoder: ResponseDecoder::new(method),
            buf: BytesMut::new(),
        }
    }

    /// The next event from what was received; `Ok(None)` means read more.
    pub fn next_event(&mut self) -> Result<Option<ResponseEvent>, UpstreamFailure> {
        match self.decoder.decode(&mut self.buf) {
            Ok(Some(ev)) => Ok(Some(ev)),
            Ok(None) if self.decoder.waiting() == Waiting::Closed => Err(UpstreamFailure::Read {
                message: "upstream response already complete".to_owned(),
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(framing_failure(&e)),
        }
    }

    /// Bytes read from the connection.
    pub fn received(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The connection reached EOF.
    pub fn received_eof(&mut self) {
        self.decoder.handle_eof();
    }

    /// True when the response ended cleanly and the connection can carry another request.
    pub fn is_reusable(&self) -> bool {
        self.decoder.is_reusable(&self.buf)
    }
}

/// The URL a redirect's `Location` points to: absolute as given, or relative to `base`'s
/// scheme and authority.
pub fn redirect_target(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base
        .get(scheme_end..)
        .and_then(|rest| rest.find('/'))
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    format!("{}{}", base.get(..authority_end).unwrap_or(base), location)
}

/// The failure an unparseable or truncated upstream response is.
pub fn framing_failure(e: &FramingError) -> UpstreamFailure {
    let message = match e {
        FramingError::UnexpectedEof => "upstream connection reset".to_owned(),
        other => format!("invalid upstream response: {other}"),
    };
    UpstreamFailure::Read { message }
}

/// The message of a socket error once the connection is up: resets, broken pipes and
/// truncations all read `upstream connection reset`.
pub fn reset_text(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("reset")
        || lower.contains("connection closed")
        || lower.contains("broken pipe")
        || lower.contains("incomplete")
        || lower.contains("unexpected eof")
    {
        "upstream connection reset".to_owned()
    } else {
        message.to_owned()
    }
}

/// The message carried by a failure.
pub fn failure_text(f: UpstreamFailure) -> String {
    match f {
        UpstreamFailure::Connect { message, .. } | UpstreamFailure::Read { message } => message,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn target_splits_url_into_dns_host_port_host_header_and_origin_form() {
        let t = Target::parse("https://api.example.com/v1/messages?beta=true").unwrap();
        assert!(t.tls);
        assert_eq!(t.host, "api.example.com");
        assert_eq!(t.port, 443);
        assert_eq!(t.authority, "api.example.com");
        assert_eq!(t.path, "/v1/messages?beta=true");
        assert_eq!(t.key, "https://api.example.com:443");
        let t = Target::parse("http://[::1]:8317").unwrap();
        assert!(!t.tls);
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, 8317);
        assert_eq!(t.authority, "[::1]:8317");
        assert_eq!(t.path, "/");
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("/relative").is_err());
    }

    #[test]
    fn host_header_goes_first_and_replaces_any_given_one() {
        let t = Target::parse("http://127.0.0.1:9/x").unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert(HOST, HeaderValue::from_static("evil"));
        let head = t.request_head(&Method::POST, &h, 2).unwrap();
        let text = std::str::from_utf8(&head).unwrap().to_ascii_lowercase();
        assert!(text.starts_with("post /x http/1.1\r\nhost: 127.0.0.1:9\r\nx-a: 1\r\n"));
        assert!(!text.contains("evil"));
        assert!(text.contains("content-length: 2\r\n"));
    }

    #[test]
    fn relative_redirects_keep_scheme_and_authority() {
        assert_eq!(redirect_target("https://a.b/x/y", "/z"), "https://a.b/z");
        assert_eq!(redirect_target("http://a.b", "/z"), "http://a.b/z");
        assert_eq!(
            redirect_target("http://a.b/x", "https://c.d/"),
            "https://c.d/"
        );
    }

    #[test]
    fn reader_yields_head_body_end_then_reports_reuse() {
        let mut r = ResponseReader::new(&Method::GET);
        assert!(r.next_event().unwrap().is_none());
        r.received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\no");
        assert!(matches!(r.next_event(), Ok(Some(ResponseEvent::Head(..)))));
        assert!(matches!(r.next_event(), Ok(Some(ResponseEvent::Body(b))) if &b[..] == b"o"));
        assert!(r.next_event().unwrap().is_none());
        r.received(b"k");
        assert!(matches!(r.next_event(), Ok(Some(ResponseEvent::Body(b))) if &b[..] == b"k"));
        assert!(matches!(r.next_event(), Ok(Some(ResponseEvent::End))));
        assert!(r.is_reusable());
        assert!(
            r.next_event().is_err(),
            "nothing follows a finished response"
        );
    }

    #[test]
    fn reader_turns_eof_inside_a_body_into_a_reset() {
        let mut r = ResponseReader::new(&Method::POST);
        r.received(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab");
        assert!(matches!(r.next_event(), Ok(Some(ResponseEvent::Head(..)))));
        assert!(matches!(r.next_event(), Ok(Some(ResponseEvent::Body(_)))));
        r.received_eof();
        match r.next_event() {
            Err(UpstreamFailure::Read { message }) => {
                assert_eq!(message, "upstream connection reset");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!r.is_reusable());
    }

    #[test]
    fn socket_errors_after_connect_read_as_resets() {
        assert_eq!(
            reset_text("Connection reset by peer (os error 104)"),
            "upstream connection reset"
        );
        assert_eq!(
            reset_text("Broken pipe (os error 32)"),
            "upstream connection reset"
        );
        assert_eq!(reset_text("timed out"), "timed out");
        assert_eq!(
            failure_text(framing_failure(&FramingError::UnexpectedEof)),
            "upstream connection reset"
        );
    }
}
