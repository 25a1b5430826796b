//! Routing (`datapath.md` §2 rows 1–5), LLM-call classification (§8) and loopback peers.
//!
//! Routing only looks at the method and the path (the URL path without the query string).
//! The fixed routes are method-exact: `HEAD /health` or `POST /metrics` are not the fixed
//! routes and, being outside `/v1/` and `/api/`, end as [`Route::NotFound`].

use std::net::IpAddr;

use http::Method;

use crate::gemini;

/// What the first matching row of the routing table decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// Row 1: `GET /health`, answered with no checks at all.
    Health,
    /// Row 2: `GET /ready`, the readiness report (not local-only).
    Ready,
    /// Row 3: `GET /metrics`, behind the admin gate.
    Metrics,
    /// Row 4: `/admin` or `/admin/...` with any method, behind the admin gate.
    Admin,
    /// `/dashboard` or `/dashboard/...` with any method (`dashboard.md` §1), behind the first
    /// three checks of the admin gate.
    Dashboard,
    /// Rows 6–17: a path under `/v1/`, `/api/`, `/v1beta/` or `/v1internal`, proxied with any
    /// method.
    Proxy,
    /// Row 5: anything else, `404 {"error":"not found"}` (E6).
    NotFound,
}

/// Applies rows 1–5 of the routing table to `(method, path)`.
pub fn route(method: &Method, path: &str) -> Route {
    if *method == Method::GET {
        match path {
            "/health" => return Route::Health,
            "/ready" => return Route::Ready,
            "/metrics" => return Route::Metrics,
            _ => {}
        }
    }
    if path == "/admin" || path.starts_with("/admin/") {
        return Route::Admin;
    }
    if crate::dashboard::is_dashboard_path(path) {
        return Route::Dashboard;
    }
    if path.starts_with("/v1/") || path.starts_with("/api/") || gemini::is_gemini_path(path) {
        return Route::Proxy;
    }
    Route::NotFound
}

/// Paths that are LLM calls whatever the body says (§8).
pub const LLM_PATHS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/responses",
    "/api/chat",
    "/api/generate",
];

/// Paths that are never LLM calls, even with a `model`: image generation, and token
/// counting, which generates nothing and is free (Claude Code and the SDKs call it before
/// many turns, so a row per call would be noise that never gets a cost).
pub const NON_LLM_PATHS: &[&str] = &["/v1/images/generations", "/v1/messages/count_tokens"];

/// True when a request is an LLM generation call (§8): `POST`, not one of
/// [`NON_LLM_PATHS`], and either a generation path or a body `model` that is non-empty after
/// trimming.
///
/// `model` is the top-level body `model` string as inspected (`identify::Inspection::model`).
/// Gemini paths are classified by their method alone (`gemini.md` §2): `:countTokens` carries
/// a `model` in Code Assist mode and is still free.
pub fn is_llm_call(method: &Method, path: &str, model: Option<&str>) -> bool {
    if *method != Method::POST || NON_LLM_PATHS.contains(&path) {
        return false;
    }
    if gemini::is_gemini_path(path) {
        return gemini::is_generation(path);
    }
    LLM_PATHS.contains(&path) || model.is_some_and(|m| !m.trim().is_empty())
}

/// Whether a successful response on this path must carry usage (`accounting.md` §2.6): the
/// fixed generation paths and the Gemini generation calls.
pub fn is_generation_path(path: &str) -> bool {
    LLM_PATHS.contains(&path) || gemini::is_generation(path)
}

/// The canonical form of a peer address: an IPv4-mapped IPv6 address becomes IPv4.
pub fn canonical_peer(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        IpAddr::V4(_) => ip,
    }
}

/// True for a loopback peer: after canonicalisation, in `127.0.0.0/8` or `::1`.
pub fn is_loopback_peer(ip: IpAddr) -> bool {
    match canonical_peer(ip) {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table_rows_one_to_five() {
        let cases: &[(Method, &str, Route)] = &[
            (Method::GET, "/health", Route::Health),
            (Method::GET, "/ready", Route::Ready),
            (Method::GET, "/metrics", Route::Metrics),
            (Method::POST, "/metrics", Route::NotFound),
            (Method::HEAD, "/health", Route::NotFound),
            (Method::POST, "/health", Route::NotFound),
            (Method::GET, "/admin", Route::Admin),
            (Method::DELETE, "/admin/api-keys/3", Route::Admin),
            (Method::GET, "/administrator", Route::NotFound),
            (Method::POST, "/v1/messages", Route::Proxy),
            (Method::PUT, "/api/chat", Route::Proxy),
            (Method::GET, "/v1", Route::NotFound),
            (Method::GET, "/v1beta/models", Route::Proxy),
            (
                Method::POST,
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                Route::Proxy,
            ),
            (Method::POST, "/v1internal:generateContent", Route::Proxy),
            (Method::GET, "/v1beta", Route::NotFound),
            (Method::GET, "/dashboard", Route::Dashboard),
            (Method::POST, "/dashboard/x", Route::Dashboard),
            (Method::GET, "/dashboards", Route::NotFound),
            (Method::GET, "/", Route::NotFound),
            (Method::GET, "/api", Route::NotFound),
            (Method::GET, "/health/", Route::NotFound),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, path), *want, "{method} {path}");
        }
    }

    #[test]
    fn llm_classification_table() {
        let cases: &[(Method, &str, Option<&str>, bool)] = &[
            (Method::POST, "/v1/chat/completions", None, true),
            (Method::POST, "/v1/messages", None, true),
            (Method::POST, "/v1/responses", None, true),
            (Method::POST, "/api/chat", None, true),
            (Method::POST, "/api/generate", None, true),
            (
                Method::POST,
                "/v1/embeddings",
                Some("text-embedding-3"),
                true,
            ),
            (Method::POST, "/v1/completions", Some("gpt"), true),
            (
                Method::POST,
                "/v1/messages/count_tokens",
                Some("claude"),
                false,
            ),
            (Method::POST, "/v1/messages/count_tokens", None, false),
            (Method::POST, "/v1/embeddings", Some("   "), false),
            (
                Method::POST,
                "/v1/images/generations",
                Some("dall-e"),
                false,
            ),
            (Method::GET, "/v1/models", None, false),
            (Method::GET, "/v1/chat/completions", Some("gpt"), false),
            (Method::POST, "/api/thin-log", None, false),
            (
                Method::POST,
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                None,
                true,
            ),
            (
                Method::POST,
                "/v1internal:generateContent",
                Some("gemini-2.5-pro"),
                true,
            ),
            (
                Method::POST,
                "/v1internal:countTokens",
                Some("gemini-2.5-pro"),
                false,
            ),
            (
                Method::POST,
                "/v1beta/models/gemini-2.5-pro:countTokens",
                None,
                false,
            ),
            (
                Method::GET,
                "/v1beta/models/gemini-2.5-pro:generateContent",
                None,
                false,
            ),
        ];
        for (method, path, model, want) in cases {
            assert_eq!(
                is_llm_call(method, path, *model),
                *want,
                "{method} {path} {model:?}"
            );
        }
    }

    #[test]
    fn loopback_peers_are_canonicalised() {
        let yes = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"];
        let no = ["10.0.0.1", "::ffff:10.0.0.1", "::", "0.0.0.0", "fe80::1"];
        for s in yes {
            assert!(is_loopback_peer(s.parse().unwrap()), "{s}");
        }
        for s in no {
            assert!(!is_loopback_peer(s.parse().unwrap()), "{s}");
        }
        assert_eq!(
            canonical_peer("::ffff:127.0.0.1".parse().unwrap()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
