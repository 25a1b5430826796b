//! Hyper responses from the core's replies and relayed heads, with the security headers of
//! `datapath.md` §3 applied in this one place for the tokio shell.

use agent_cli_proxy_core::gate;
use agent_cli_proxy_core::head::Reply;
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::body::RespBody;

/// What the drive loop hands the waiting service future.
pub enum Outgoing {
    /// A response (complete or streaming).
    Response(hyper::Response<RespBody>),
    /// Close the connection without a response.
    Close,
}

/// A complete response from a core reply, with the security headers of `datapath.md` §3.
pub fn response_of_reply(reply: Reply, secure: bool) -> hyper::Response<RespBody> {
    let mut headers = reply.headers;
    headers.insert(CONTENT_LENGTH, HeaderValue::from(reply.body.len()));
    if reply.close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    build(reply.status, headers, RespBody::full(reply.body), secure)
}

/// A relayed response head with a streamed body.
pub fn response_head(
    status: StatusCode,
    mut headers: HeaderMap,
    content_length: Option<u64>,
    body: RespBody,
    secure: bool,
) -> hyper::Response<RespBody> {
    headers.remove(CONTENT_LENGTH);
    if let Some(len) = content_length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    build(status, headers, body, secure)
}

fn build(
    status: StatusCode,
    mut headers: HeaderMap,
    body: RespBody,
    secure: bool,
) -> hyper::Response<RespBody> {
    gate::apply_security_headers(&mut headers, secure);
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
