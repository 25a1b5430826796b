//! Request and response heads as the core sees them, and the replies the core builds.
//!
//! Heads use the `http` crate's types (no IO in it): the tokio shell gets them from hyper
//! without conversion, the smol shell builds them from the core's own HTTP/1.1 codec.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, StatusCode};

/// A request head: method, the URL split into path and query, and the headers.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Request method.
    pub method: Method,
    /// The URL path, without the query string (never empty; `/` at least).
    pub path: String,
    /// The query string without the leading `?`, if the target had one.
    pub query: Option<String>,
    /// Request headers (names lower-case).
    pub headers: HeaderMap,
}

impl RequestHead {
    /// Splits an origin-form request target (`/v1/messages?beta=true`) into path and query.
    pub fn new(method: Method, target: &str, headers: HeaderMap) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        RequestHead {
            method,
            path: path.to_owned(),
            query,
            headers,
        }
    }

    /// The first value of `name` as trimmed UTF-8, if present, valid and non-empty.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        header_str(&self.headers, name)
    }
}

/// A response head as received from the upstream.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Upstream status.
    pub status: StatusCode,
    /// Upstream headers, in received order per name.
    pub headers: HeaderMap,
}

/// The first value of header `name` as trimmed UTF-8, if present, valid and non-empty.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    (!v.is_empty()).then_some(v)
}

/// A complete response the core decided to send (errors, admin, health). Both shells write
/// these byte-for-byte the same, adding only the security headers and framing.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers (without framing headers; the shell adds `content-length`).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Close the client connection after this reply.
    pub close: bool,
}

impl Reply {
    /// A JSON reply with `content-type: application/json`.
    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Reply {
            status,
            headers,
            body: body.into(),
            close: false,
        }
    }

    /// A JSON reply rendered from a `serde_json::Value`.
    pub fn json_value(status: StatusCode, value: &serde_json::Value) -> Self {
        Reply::json(status, value.to_string())
    }

    /// Adds `cache-control: no-store`.
    pub fn no_store(mut self) -> Self {
        self.headers
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self
    }

    /// Adds `retry-after: <secs>`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        self
    }

    /// Marks the connection to be closed after this reply.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }
}
