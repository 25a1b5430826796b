//! Hyper responses from the core's replies and relayed heads (which carry the security
//! headers of `datapath.md` §3 already).

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

/// A complete response from a core reply.
pub fn response_of_reply(reply: Reply) -> hyper::Response<RespBody> {
    let mut headers = reply.headers;
    headers.insert(CONTENT_LENGTH, HeaderValue::from(reply.body.len()));
    if reply.close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    build(reply.status, headers, RespBody::full(reply.body))
}

/// A relayed response head with a streamed body.
pub fn response_head(
    status: StatusCode,
    mut headers: HeaderMap,
    content_length: Option<u64>,
    body: RespBody,
) -> hyper::Response<RespBody> {
    headers.remove(CONTENT_LENGTH);
    if let Some(len) = content_length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    build(status, headers, body)
}

fn build(status: StatusCode, headers: HeaderMap, body: RespBody) -> hyper::Response<RespBody> {
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
