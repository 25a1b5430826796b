//! The client error catalogue (`datapath.md` §15): every error response the proxy writes,
//! built here so both shells answer byte-for-byte the same.

use http::StatusCode;
use serde_json::json;

use crate::head::Reply;

fn forbidden(code: &str) -> Reply {
    Reply::json_value(
        StatusCode::FORBIDDEN,
        &json!({"error": "Forbidden", "code": code}),
    )
    .no_store()
}

/// E1: admin gate, peer not loopback.
pub fn local_only() -> Reply {
    forbidden("LOCAL_ONLY")
}

/// E2: admin gate, bad `Host`.
pub fn bad_host() -> Reply {
    forbidden("BAD_HOST")
}

/// E3: bad `Origin` (admin, or proxy route without keys).
pub fn bad_origin() -> Reply {
    forbidden("BAD_ORIGIN")
}

/// E4: admin token missing or wrong.
pub fn admin_unauthorized() -> Reply {
    forbidden("UNAUTHORIZED")
}

/// A state-changing admin request authorized by the dashboard's session cookie without the
/// matching `x-acp-csrf` header (`dashboard.md` §2).
pub fn csrf_missing() -> Reply {
    forbidden("CSRF")
}

/// E5: admin mutation with a non-JSON body.
pub fn admin_not_json() -> Reply {
    Reply::json_value(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &json!({"error": "Content-Type must be application/json"}),
    )
    .no_store()
}

/// E6: path outside `/v1/`, `/api/` and the fixed routes.
pub fn not_found() -> Reply {
    Reply::json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#)
}

/// E7: proxy key missing or invalid.
pub fn proxy_key_required() -> Reply {
    Reply::json_value(
        StatusCode::UNAUTHORIZED,
        &json!({"error": "Valid Authorization Bearer token or x-api-key required."}),
    )
    .no_store()
}

/// E8: request `Content-Encoding` other than `identity`.
pub fn unsupported_content_encoding() -> Reply {
    Reply::json(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        r#"{"error":"unsupported content-encoding"}"#,
    )
}

/// E9: body over the limit.
pub fn body_too_large(limit: u64) -> Reply {
    Reply::json_value(
        StatusCode::PAYLOAD_TOO_LARGE,
        &json!({"error": format!("request body exceeds {limit} bytes"), "limit": limit}),
    )
}

/// E10: global body budget exhausted.
pub fn body_budget() -> Reply {
    Reply::json_value(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": "proxy busy", "code": "BODY_BUDGET"}),
    )
    .retry_after(1)
}

/// E11: rate limited.
pub fn rate_limited(retry_after_secs: u64) -> Reply {
    Reply::json_value(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"error": "rate limit exceeded", "code": "RATE_LIMITED"}),
    )
    .no_store()
    .retry_after(retry_after_secs)
}

/// E12: unknown provider selector (the id is cut to 100 characters).
pub fn unknown_provider(id: &str) -> Reply {
    let id: String = id.chars().take(100).collect();
    Reply::json_value(
        StatusCode::BAD_REQUEST,
        &json!({"error": format!("unknown provider: {id}"), "code": "UNKNOWN_PROVIDER"}),
    )
}

/// E13: pre-log not committed.
pub fn accounting_unavailable() -> Reply {
    Reply::json_value(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": "accounting unavailable", "code": "ACCOUNTING_UNAVAILABLE"}),
    )
    .retry_after(5)
}

/// E14: provider not allowed for the managed key.
pub fn provider_not_allowed() -> Reply {
    Reply::json(
        StatusCode::FORBIDDEN,
        r#"{"error":"provider not allowed for this API key"}"#,
    )
}

/// E15: circuit breaker open.
pub fn breaker_open(provider_id: &str, retry_after_secs: u64) -> Reply {
    Reply::json_value(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": {"code": "short-circuit", "status": 503, "providerId": provider_id,
            "retryable": false, "cause": "circuit breaker open"}}),
    )
    .retry_after(retry_after_secs)
}

/// The kind of connection failure reported in E16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkErrorName {
    /// Connection refused or failed.
    Connect,
    /// Connection reset.
    Reset,
    /// TLS handshake failure.
    Tls,
    /// Name resolution failure.
    Dns,
}

impl NetworkErrorName {
    /// The `cause.name` value.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkErrorName::Connect => "ConnectError",
            NetworkErrorName::Reset => "ResetError",
            NetworkErrorName::Tls => "TlsError",
            NetworkErrorName::Dns => "DnsError",
        }
    }
}

/// E16: connection failure before the head.
pub fn network_error(
    provider_id: &str,
    retryable: bool,
    name: NetworkErrorName,
    message: &str,
) -> Reply {
    Reply::json_value(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": {"code": "network", "status": 503, "providerId": provider_id,
            "retryable": retryable, "cause": {"name": name.as_str(), "message": message}}}),
    )
}

/// Which timer fired for E17.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// The header timer (`UPSTREAM_CONNECT_TIMEOUT_MS`).
    Connect,
    /// The total or first-byte timer.
    Total,
}

impl TimeoutKind {
    /// The `timeoutKind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::Total => "total",
        }
    }
}

/// E17: header or total timeout before the head.
pub fn upstream_timeout_before_head(
    provider_id: &str,
    retryable: bool,
    kind: TimeoutKind,
    message: &str,
) -> Reply {
    Reply::json_value(
        StatusCode::GATEWAY_TIMEOUT,
        &json!({"error": {"code": "aborted-due-to-timeout", "status": 504,
            "providerId": provider_id, "retryable": retryable,
            "cause": {"timeoutKind": kind.as_str(),
                      "error": {"name": "TimeoutError", "message": message}}}}),
    )
}

/// E18: timeout after the upstream head, before the client head.
pub fn upstream_timeout_after_head() -> Reply {
    Reply::json(
        StatusCode::GATEWAY_TIMEOUT,
        r#"{"error":"Upstream timeout"}"#,
    )
}

/// E19: plain LLM body over 50 MiB.
pub fn response_too_large() -> Reply {
    Reply::json(
        StatusCode::BAD_GATEWAY,
        r#"{"error":{"type":"proxy_error","message":"upstream response too large"}}"#,
    )
}

/// E20: upstream redirect not followed.
pub fn redirect_not_followed() -> Reply {
    Reply::json(
        StatusCode::BAD_GATEWAY,
        r#"{"error":"Upstream redirect not followed"}"#,
    )
}

/// E21: upstream request could not be built.
pub fn upstream_unbuildable() -> Reply {
    Reply::json(
        StatusCode::BAD_GATEWAY,
        r#"{"error":"Upstream unavailable"}"#,
    )
}

/// E22: unexpected handler error.
pub fn internal_error() -> Reply {
    Reply::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"error":"Internal server error"}"#,
    )
}

/// E23: request body idle.
pub fn body_timeout() -> Reply {
    Reply::json(
        StatusCode::REQUEST_TIMEOUT,
        r#"{"error":"request body timeout"}"#,
    )
    .closing()
}

/// E24: framing-level rejection (431, 414, 400) with the reason phrase in lower case.
pub fn framing(status: StatusCode) -> Reply {
    let reason = status
        .canonical_reason()
        .unwrap_or("bad request")
        .to_ascii_lowercase();
    Reply::json_value(status, &json!({ "error": reason })).closing()
}

/// Direct mode (no `CLI_PROXY_API_URL`): the request's path is served by no provider, so it
/// would have been forwarded to the router. 404, no row.
pub fn no_route(path: &str) -> Reply {
    let path: String = path.chars().take(100).collect();
    Reply::json_value(
        StatusCode::NOT_FOUND,
        &json!({
            "error": format!("no provider serves {path} and CLI_PROXY_API_URL is not set"),
            "code": "NO_ROUTE",
        }),
    )
}

/// Direct mode (no `CLI_PROXY_API_URL`): the request resolved to a built-in provider the
/// providers file did not replace (for example `xai` for a `grok-` model), whose upstream is
/// the router. 502, no row.
pub fn no_upstream(provider_id: &str) -> Reply {
    Reply::json_value(
        StatusCode::BAD_GATEWAY,
        &json!({
            "error": format!(
                "provider {provider_id} has no upstream: it goes through CLI_PROXY_API_URL, which is not set"
            ),
            "code": "NO_UPSTREAM",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Reply) -> &str {
        std::str::from_utf8(&r.body).unwrap()
    }

    #[test]
    fn catalogue_bodies_match_the_spec() {
        assert_eq!(
            body(&local_only()),
            r#"{"error":"Forbidden","code":"LOCAL_ONLY"}"#
        );
        assert_eq!(local_only().headers["cache-control"], "no-store");
        assert_eq!(
            body(&body_too_large(25_000_000)),
            r#"{"error":"request body exceeds 25000000 bytes","limit":25000000}"#
        );
        assert_eq!(rate_limited(60).headers["retry-after"], "60");
        assert_eq!(
            body(&breaker_open("anthropic", 3)),
            r#"{"error":{"code":"short-circuit","status":503,"providerId":"anthropic","retryable":false,"cause":"circuit breaker open"}}"#
        );
        assert_eq!(
            body(&framing(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)),
            r#"{"error":"request header fields too large"}"#
        );
        assert_eq!(
            body(&framing(StatusCode::URI_TOO_LONG)),
            r#"{"error":"uri too long"}"#
        );
        assert!(framing(StatusCode::BAD_REQUEST).close);
        let cut = unknown_provider(&"x".repeat(300));
        assert!(body(&cut).contains(&format!("provider: {}\"", "x".repeat(100))));
    }
}
