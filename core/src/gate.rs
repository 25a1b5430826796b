//! The admin gate (`datapath.md` §2.1), the cross-origin check of proxy routes (§2.2), the
//! "secure request" rule and the security headers of every response (§3).
//!
//! Choices where the spec is silent:
//! * A missing `Host`, or more than one `Host` value, fails the `Host` check. The port after a
//!   loopback name must be written exactly as `PROXY_PORT` is (no leading zeros).
//! * `Origin` is checked on every value when the header is repeated; a value that is not
//!   visible ASCII, empty, `null`, or carries a path fails. The scheme is matched
//!   case-insensitively; the port, when present, is 1–5 digits and at most 65535.
//! * A blank `x-admin-token` counts as absent, so the `Authorization` Bearer token is used.
//! * Whether an admin mutation "carries a body" is the caller's knowledge (it may have read
//!   the body already); [`declares_body`] gives the answer from the head alone.
//! * For the secure-request rule, the first forwarded header that is present decides:
//!   `x-forwarded-proto: http` is not overridden by a later `forwarded: proto=https`.
//! * On a request that is not secure, an upstream `Strict-Transport-Security` is removed, so
//!   HSTS only ever appears on secure requests.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};

use crate::auth::{bearer_token, constant_time_eq};
use crate::dashboard::session::{Session, Sessions};
use crate::errors;
use crate::head::{Reply, RequestHead, header_str};
use crate::route::is_loopback_peer;
use crate::secret::Secret;
use crate::time::UnixMillis;

/// Runs the admin gate checks in order (peer, `Host`, `Origin`, admin token, content type)
/// and returns the reply of the first that fails.
///
/// `has_body` tells whether the request carries a body (see [`declares_body`]); only then is
/// the `Content-Type` of `POST`/`PATCH`/`DELETE` checked. An empty `admin_api_key` authorizes
/// every request that passed the first three checks.
#[allow(
    clippy::result_large_err,
    reason = "rejections are rare and the caller sends the reply as is"
)]
pub fn admin_gate(
    head: &RequestHead,
    peer: IpAddr,
    has_body: bool,
    proxy_port: u16,
    admin_api_key: &Secret,
) -> Result<(), Reply> {
    local_checks(head, peer, proxy_port)?;
    if !admin_api_key.is_empty() {
        let token = admin_token(&head.headers).unwrap_or("");
        if !constant_time_eq(token.as_bytes(), admin_api_key.expose().as_bytes()) {
            return Err(errors::admin_unauthorized());
        }
    }
    let mutation = head.method == Method::POST
        || head.method == Method::PATCH
        || head.method == Method::DELETE;
    if mutation && has_body && !is_json_content_type(&head.headers) {
        return Err(errors::admin_not_json());
    }
    Ok(())
}

/// The first three checks of the admin gate (peer, `Host`, `Origin`): all the dashboard's page
/// and assets need (`dashboard.md` §1), and the part that applies before sign-in.
#[allow(
    clippy::result_large_err,
    reason = "rejections are rare and the caller sends the reply as is"
)]
pub fn local_checks(head: &RequestHead, peer: IpAddr, proxy_port: u16) -> Result<(), Reply> {
    if !is_loopback_peer(peer) {
        return Err(errors::local_only());
    }
    if !host_is_loopback(&head.headers, proxy_port) {
        return Err(errors::bad_host());
    }
    if !origin_is_loopback_or_absent(&head.headers) {
        return Err(errors::bad_origin());
    }
    Ok(())
}

/// How a request passed [`admin_gate_with_sessions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAuth {
    /// Neither `ADMIN_API_KEY` nor `DASHBOARD_PASSWORD_HASH` is set.
    Open,
    /// The admin token matched.
    Token,
    /// A valid dashboard session cookie (with the CSRF header on state-changing requests).
    Session(Session),
}

/// What the admin gate checks credentials against.
pub struct AdminCredentials<'a> {
    /// `ADMIN_API_KEY` (empty: none).
    pub admin_api_key: &'a Secret,
    /// `DASHBOARD_PASSWORD_HASH` is set.
    pub password_set: bool,
    /// The daemon's sessions.
    pub sessions: &'a Sessions,
    /// Wall time, for session expiry.
    pub now: UnixMillis,
}

/// The admin gate of `datapath.md` §2.1 with the dashboard's sessions (`dashboard.md` §2):
/// peer, `Host`, `Origin`; then, when an admin key or a password hash is set, the admin token
/// or a session cookie, and for a cookie on `POST`/`PATCH`/`DELETE` the CSRF header; then the
/// content type. Without an admin key or a password hash every loopback caller is admitted,
/// as before. With only a password hash set, scripts cannot use the admin API without signing
/// in: that is the point of setting it (they use `ADMIN_API_KEY`).
#[allow(
    clippy::result_large_err,
    reason = "rejections are rare and the caller sends the reply as is"
)]
pub fn admin_gate_with_sessions(
    head: &RequestHead,
    peer: IpAddr,
    has_body: bool,
    proxy_port: u16,
    creds: &AdminCredentials<'_>,
) -> Result<AdminAuth, Reply> {
    local_checks(head, peer, proxy_port)?;
    let mutation = head.method == Method::POST
        || head.method == Method::PATCH
        || head.method == Method::DELETE;
    let auth = if creds.admin_api_key.is_empty() && !creds.password_set {
        AdminAuth::Open
    } else if !creds.admin_api_key.is_empty()
        && admin_token(&head.headers).is_some_and(|t| {
            constant_time_eq(t.as_bytes(), creds.admin_api_key.expose().as_bytes())
        })
    {
        AdminAuth::Token
    } else if let Some(session) = creds.sessions.check(&head.headers, creds.now) {
        if mutation && !Sessions::csrf_ok(&session, &head.headers) {
            return Err(errors::csrf_missing());
        }
        AdminAuth::Session(session)
    } else {
        return Err(errors::admin_unauthorized());
    };
    if mutation && has_body && !is_json_content_type(&head.headers) {
        return Err(errors::admin_not_json());
    }
    Ok(auth)
}

/// True when the head announces a body: a `Content-Length` other than 0, or any
/// `Transfer-Encoding`.
pub fn declares_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .any(|v| v.to_str().map_or(true, |s| s.trim() != "0"))
}

/// The admin token: trimmed `x-admin-token` (wins), else the `Authorization` Bearer token.
pub fn admin_token(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, "x-admin-token")
        .or_else(|| header_str(headers, "authorization").and_then(bearer_token))
}

/// The cross-origin check of proxy routes (§2.2): without required keys, an `Origin` that is
/// not a loopback origin is rejected with E3. With keys required, `Origin` is not checked.
#[allow(
    clippy::result_large_err,
    reason = "rejections are rare and the caller sends the reply as is"
)]
pub fn check_cross_origin(headers: &HeaderMap, require_api_key: bool) -> Result<(), Reply> {
    if require_api_key || origin_is_loopback_or_absent(headers) {
        Ok(())
    } else {
        Err(errors::bad_origin())
    }
}

/// A loopback name: `localhost`, `127.0.0.1` or `[::1]`, ASCII case-insensitive.
pub fn is_loopback_name(host: &str) -> bool {
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|n| host.eq_ignore_ascii_case(n))
}

/// A loopback origin: `http://` or `https://` + loopback name + optional `:<port>`.
pub fn is_loopback_origin(origin: &str) -> bool {
    let lower_scheme = |p: &str| {
        origin
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    let rest = if lower_scheme("http://") {
        &origin[7..]
    } else if lower_scheme("https://") {
        &origin[8..]
    } else {
        return false;
    };
    let (host, port) = split_host_port(rest);
    is_loopback_name(host) && port.is_none_or(is_port)
}

/// Whether the request counts as secure (§3): the listener is TLS, or, only when forwarded
/// headers are trusted, the first present of `x-forwarded-proto` (first value), `forwarded`
/// (first element's `proto`) or `cf-visitor` (JSON `scheme`) says `https`.
pub fn is_secure_request(headers: &HeaderMap, tls: bool, trust_proxy_headers: bool) -> bool {
    if tls {
        return true;
    }
    if !trust_proxy_headers {
        return false;
    }
    if let Some(xfp) = header_str(headers, "x-forwarded-proto") {
        let first = xfp.split(',').next().unwrap_or("").trim();
        return first.eq_ignore_ascii_case("https");
    }
    if let Some(fwd) = header_str(headers, "forwarded") {
        return forwarded_proto_is_https(fwd);
    }
    if let Some(visitor) = header_str(headers, "cf-visitor") {
        return cf_visitor_is_https(visitor);
    }
    false
}

/// The security headers every response carries (§3), without HSTS.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("x-permitted-cross-domain-policies", "none"),
];

/// The HSTS value set on secure requests.
pub const HSTS_VALUE: &str = "max-age=31536000; includeSubDomains";

/// Sets the security headers on a response, overwriting any value of the same name; HSTS is
/// set on a secure request and removed otherwise.
pub fn apply_security_headers(headers: &mut HeaderMap, secure: bool) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if secure {
        headers.insert(
            http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS_VALUE),
        );
    } else {
        headers.remove(http::header::STRICT_TRANSPORT_SECURITY);
    }
}

fn host_is_loopback(headers: &HeaderMap, proxy_port: u16) -> bool {
    let mut values = headers.get_all(http::header::HOST).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(host) = value.to_str() else {
        return false;
    };
    let (name, port) = split_host_port(host.trim());
    is_loopback_name(name) && port.is_none_or(|p| p == proxy_port.to_string())
}

fn origin_is_loopback_or_absent(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ORIGIN)
        .iter()
        .all(|v| v.to_str().is_ok_and(|s| is_loopback_origin(s.trim())))
}

/// Splits `host[:port]` or `[v6][:port]`; the port is `Some` whenever a `:` follows the host.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if s.starts_with('[') {
        return match s.find(']') {
            Some(end) => {
                let (host, rest) = s.split_at(end + 1);
                match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if rest.is_empty() => (host, None),
                    // Anything else after `]` makes the whole value a non-name.
                    None => (s, None),
                }
            }
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    }
}

fn is_port(p: &str) -> bool {
    (1..=5).contains(&p.len())
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u32>().is_ok_and(|n| n <= 65_535)
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    header_str(headers, "content-type").is_some_and(|ct| {
        let media = ct.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("application/json")
    })
}

fn forwarded_proto_is_https(value: &str) -> bool {
    let first = value.split(',').next().unwrap_or("");
    first.split(';').any(|pair| {
        let Some((name, val)) = pair.split_once('=') else {
            return false;
        };
        let val = val.trim();
        let val = val
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(val);
        name.trim().eq_ignore_ascii_case("proto") && val.eq_ignore_ascii_case("https")
    })
}

fn cf_visitor_is_https(value: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Visitor<'a> {
        #[serde(borrow, default)]
        scheme: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Visitor<'_>>(value)
        .ok()
        .and_then(|v| v.scheme)
        .is_some_and(|s| s == "https")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    const PORT: u16 = 3100;

    fn head(method: Method, pairs: &[(&'static str, &str)]) -> RequestHead {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        RequestHead::new(method, "/admin/stats", h)
    }

    fn code(r: Result<(), Reply>) -> Option<String> {
        let reply = r.err()?;
        assert_eq!(
            reply.headers.get("cache-control").unwrap(),
            "no-store",
            "every gate rejection is no-store"
        );
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        Some(match v.get("code") {
            Some(c) => c.as_str().unwrap().to_owned(),
            None => format!("{}", reply.status.as_u16()),
        })
    }

    fn lo() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn admin_gate_checks_in_order() {
        let key = Secret::new("admin-key");
        let no_key = Secret::default();
        let remote: IpAddr = "192.168.1.5".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let ok_host = [("host", "localhost:3100")];
        type Case<'a> = (
            IpAddr,
            Method,
            &'a [(&'static str, &'a str)],
            bool,
            bool,
            Option<&'a str>,
        );
        let cases: &[Case<'_>] = &[
            // Peer first, even with every forwarded header and a valid token.
            (
                remote,
                Method::GET,
                &[
                    ("host", "localhost"),
                    ("x-forwarded-for", "127.0.0.1"),
                    ("forwarded", "for=127.0.0.1"),
                    ("x-real-ip", "127.0.0.1"),
                    ("x-admin-token", "admin-key"),
                ],
                true,
                false,
                Some("LOCAL_ONLY"),
            ),
            (mapped, Method::GET, &ok_host, false, false, None),
            (
                lo(),
                Method::GET,
                &[("host", "evil.example")],
                false,
                false,
                Some("BAD_HOST"),
            ),
            (lo(), Method::GET, &[], false, false, Some("BAD_HOST")),
            (
                lo(),
                Method::GET,
                &[("host", "localhost:8080")],
                false,
                false,
                Some("BAD_HOST"),
            ),
            (
                lo(),
                Method::GET,
                &[("host", "LOCALHOST")],
                false,
                false,
                None,
            ),
            (
                lo(),
                Method::GET,
                &[("host", "127.0.0.1:3100")],
                false,
                false,
                None,
            ),
            (
                lo(),
                Method::GET,
                &[("host", "[::1]:3100")],
                false,
                false,
                None,
            ),
            (lo(), Method::GET, &[("host", "[::1]")], false, false, None),
            (
                lo(),
                Method::GET,
                &[("host", "[::1]x")],
                false,
                false,
                Some("BAD_HOST"),
            ),
            (
                lo(),
                Method::GET,
                &[("host", "localhost:")],
                false,
                false,
                Some("BAD_HOST"),
            ),
            // Host is checked before Origin.
            (
                lo(),
                Method::GET,
                &[("host", "evil"), ("origin", "null")],
                false,
                false,
                Some("BAD_HOST"),
            ),
            (
                lo(),
                Method::GET,
                &[("host", "localhost"), ("origin", "null")],
                false,
                false,
                Some("BAD_ORIGIN"),
            ),
            (
                lo(),
                Method::GET,
                &[("host", "localhost"), ("origin", "http://evil.example")],
                false,
                false,
                Some("BAD_ORIGIN"),
            ),
            (
                lo(),
                Method::GET,
                &[("host", "localhost"), ("origin", "http://localhost:5173")],
                false,
                false,
                None,
            ),
            // Origin before the token.
            (
                lo(),
                Method::GET,
                &[("host", "localhost"), ("origin", "ftp://localhost")],
                true,
                false,
                Some("BAD_ORIGIN"),
            ),
            (
                lo(),
                Method::GET,
                &ok_host,
                true,
                false,
                Some("UNAUTHORIZED"),
            ),
            (
                lo(),
                Method::GET,
                &[("host", "localhost"), ("x-admin-token", "wrong")],
                true,
                false,
                Some("UNAUTHORIZED"),
            ),
            (
                lo(),
                Method::GET,
                &[("host", "localhost"), ("x-admin-token", " admin-key ")],
                true,
                false,
                None,
            ),
            (
                lo(),
                Method::GET,
                &[("host", "localhost"), ("authorization", "bearer admin-key")],
                true,
                false,
                None,
            ),
            // x-admin-token wins over Authorization.
            (
                lo(),
                Method::GET,
                &[
                    ("host", "localhost"),
                    ("x-admin-token", "wrong"),
                    ("authorization", "Bearer admin-key"),
                ],
                true,
                false,
                Some("UNAUTHORIZED"),
            ),
            (
                lo(),
                Method::GET,
                &[
                    ("host", "localhost"),
                    ("x-admin-token", "admin-key"),
                    ("authorization", "Bearer wrong"),
                ],
                true,
                false,
                None,
            ),
            // Token before content type.
            (
                lo(),
                Method::POST,
                &[("host", "localhost"), ("content-type", "text/plain")],
                true,
                true,
                Some("UNAUTHORIZED"),
            ),
            (
                lo(),
                Method::POST,
                &[("host", "localhost"), ("content-type", "text/plain")],
                false,
                true,
                Some("415"),
            ),
            (
                lo(),
                Method::PATCH,
                &[("host", "localhost")],
                false,
                true,
                Some("415"),
            ),
            (
                lo(),
                Method::DELETE,
                &[("host", "localhost"), ("content-type", "text/plain")],
                false,
                false,
                None,
            ),
            (
                lo(),
                Method::POST,
                &[
                    ("host", "localhost"),
                    ("content-type", "Application/JSON; charset=utf-8"),
                ],
                false,
                true,
                None,
            ),
            (
                lo(),
                Method::PUT,
                &[("host", "localhost"), ("content-type", "text/plain")],
                false,
                true,
                None,
            ),
        ];
        for (peer, method, pairs, with_key, has_body, want) in cases {
            let k = if *with_key { &key } else { &no_key };
            let got = code(admin_gate(
                &head(method.clone(), pairs),
                *peer,
                *has_body,
                PORT,
                k,
            ));
            assert_eq!(
                got.as_deref(),
                *want,
                "{peer} {method} {pairs:?} key={with_key}"
            );
        }
    }

    #[test]
    fn declares_body_from_head() {
        let mut h = HeaderMap::new();
        assert!(!declares_body(&h));
        h.insert("content-length", HeaderValue::from_static("0"));
        assert!(!declares_body(&h));
        h.insert("content-length", HeaderValue::from_static("12"));
        assert!(declares_body(&h));
        let mut h = HeaderMap::new();
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        assert!(declares_body(&h));
    }

    #[test]
    fn cross_origin_only_without_keys() {
        let mut h = HeaderMap::new();
        assert!(check_cross_origin(&h, false).is_ok());
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        let reply = check_cross_origin(&h, false).unwrap_err();
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(
            &reply.body[..],
            br#"{"error":"Forbidden","code":"BAD_ORIGIN"}"#
        );
        assert!(check_cross_origin(&h, true).is_ok());
        h.insert("origin", HeaderValue::from_static("http://localhost:5173"));
        assert!(check_cross_origin(&h, false).is_ok());
    }

    #[test]
    fn loopback_origin_table() {
        let yes = [
            "http://localhost",
            "https://localhost:443",
            "http://127.0.0.1:5173",
            "http://[::1]:8080",
            "HTTP://LocalHost",
            "https://[::1]",
        ];
        let no = [
            "null",
            "",
            "http://localhost.evil.com",
            "http://evil.example",
            "http://localhost/",
            "http://localhost:",
            "http://localhost:99999",
            "http://localhost:12a",
            "ws://localhost",
            "http://127.0.0.2",
            "http://[::1]x",
            "localhost",
        ];
        for o in yes {
            assert!(is_loopback_origin(o), "{o}");
        }
        for o in no {
            assert!(!is_loopback_origin(o), "{o}");
        }
    }

    #[test]
    fn secure_request_table() {
        type Case<'a> = (&'a [(&'static str, &'a str)], bool, bool, bool);
        let cases: &[Case<'_>] = &[
            (&[], true, false, true),
            (&[], false, true, false),
            (&[("x-forwarded-proto", "https")], false, false, false),
            (&[("x-forwarded-proto", "https, http")], false, true, true),
            (&[("x-forwarded-proto", "http, https")], false, true, false),
            (&[("x-forwarded-proto", "HTTPS")], false, true, true),
            (
                &[("forwarded", "for=1.2.3.4;proto=https, proto=http")],
                false,
                true,
                true,
            ),
            (&[("forwarded", "proto=\"https\"")], false, true, true),
            (
                &[("forwarded", "for=1.2.3.4, proto=https")],
                false,
                true,
                false,
            ),
            (&[("forwarded", "proto=https")], false, false, false),
            (
                &[("cf-visitor", r#"{"scheme":"https"}"#)],
                false,
                true,
                true,
            ),
            (
                &[("cf-visitor", r#"{"scheme":"http"}"#)],
                false,
                true,
                false,
            ),
            (&[("cf-visitor", "garbage")], false, true, false),
            (
                &[("cf-visitor", r#"{"scheme":"https"}"#)],
                false,
                false,
                false,
            ),
            (
                &[("x-forwarded-proto", "http"), ("forwarded", "proto=https")],
                false,
                true,
                false,
            ),
        ];
        for (pairs, tls, trust, want) in cases {
            let h = head(Method::GET, pairs).headers;
            assert_eq!(
                is_secure_request(&h, *tls, *trust),
                *want,
                "{pairs:?} tls={tls} trust={trust}"
            );
        }
    }

    #[test]
    fn security_headers_overwrite_and_hsts_only_when_secure() {
        let mut h = HeaderMap::new();
        h.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
        h.insert(
            "strict-transport-security",
            HeaderValue::from_static("max-age=1"),
        );
        h.insert("content-type", HeaderValue::from_static("application/json"));
        apply_security_headers(&mut h, false);
        assert_eq!(h.get_all("x-frame-options").iter().count(), 1);
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(
            h.get("referrer-policy").unwrap(),
            "strict-origin-when-cross-origin"
        );
        assert_eq!(
            h.get("permissions-policy").unwrap(),
            "camera=(), microphone=(), geolocation=()"
        );
        assert_eq!(h.get("cross-origin-opener-policy").unwrap(), "same-origin");
        assert_eq!(h.get("x-permitted-cross-domain-policies").unwrap(), "none");
        assert!(h.get("strict-transport-security").is_none());
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        apply_security_headers(&mut h, true);
        assert_eq!(
            h.get("strict-transport-security").unwrap(),
            "max-age=31536000; includeSubDomains"
        );
    }
}
