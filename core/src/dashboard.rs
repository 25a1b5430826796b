//! The local dashboard (`docs/dashboard.md`): which bytes `/dashboard…` answers with, and the
//! headers that go with them. The page and its assets are compiled in (see `build.rs`), so
//! both shells serve exactly the same bytes and write nothing of their own.
//!
//! URLs:
//! * `GET /dashboard` → `308` to `/dashboard/` (the query string is kept, so a linked range
//!   such as `?range=30d` survives).
//! * `GET /dashboard/` → the page, `cache-control: no-cache`.
//! * `GET /dashboard/assets/<build id>/<path>` → an asset, `cache-control: public,
//!   max-age=31536000, immutable`; the build id is a hash of all assets, so a new build never
//!   reuses a URL.
//! * Anything else under `/dashboard/`, or another method: `404 {"error":"not found"}`.
//!
//! Choices where the spec is silent:
//! * The page and its assets pass the first three checks of the admin gate (peer, `Host`,
//!   `Origin`) but need no admin token or session: a browser navigation cannot carry a token
//!   header, and they hold no data. Every figure comes from `/admin/*`, which does need them.
//! * gzip only (no brotli): a maintained pure-Rust gzip encoder runs in `build.rs`, and the
//!   page's assets shrink to a fraction with it. The gzip twin is sent when the client's
//!   `Accept-Encoding` allows `gzip` (or `*`) with a non-zero weight.

pub mod session;

use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, LOCATION, VARY};
use http::{HeaderMap, Method, StatusCode};

use crate::head::{Reply, RequestHead};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path below the asset directory, `/`-separated.
    pub path: &'static str,
    /// `content-type` value.
    pub content_type: &'static str,
    /// The file as written.
    pub raw: &'static [u8],
    /// Its gzip encoding, made at build time.
    pub gzip: &'static [u8],
}

mod embedded {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));
}

pub use embedded::{ASSETS, BUILD_ID, PAGE};

/// The policy every dashboard reply carries: only this origin, no inline script or style, no
/// `eval`, no framing. `blob:` in `connect-src` lets the page read back the export file it
/// made itself (a blob URL is never another origin's content).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self' blob:; font-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// `cache-control` of the hashed assets.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The prefix of every dashboard path.
pub const ROOT: &str = "/dashboard";

/// True for `/dashboard` and every path below `/dashboard/`.
pub fn is_dashboard_path(path: &str) -> bool {
    path == ROOT || path.starts_with("/dashboard/")
}

/// The URL path of an asset of this build.
pub fn asset_url(path: &str) -> String {
    format!("{ROOT}/assets/{BUILD_ID}/{path}")
}

/// The reply to a dashboard request that passed the gate.
pub fn serve(head: &RequestHead) -> Reply {
    if head.method != Method::GET {
        return not_found();
    }
    let gzip_ok = accepts_gzip(&head.headers);
    match head.path.as_str() {
        ROOT => redirect(head.query.as_deref()),
        "/dashboard/" => asset_reply(&PAGE, "no-cache", gzip_ok),
        path => {
            let prefix = format!("{ROOT}/assets/{BUILD_ID}/");
            match path
                .strip_prefix(&prefix)
                .and_then(|rel| ASSETS.iter().find(|a| a.path == rel))
            {
                Some(asset) => asset_reply(asset, IMMUTABLE, gzip_ok),
                None => not_found(),
            }
        }
    }
}

fn redirect(query: Option<&str>) -> Reply {
    let location = match query {
        Some(q) => format!("{ROOT}/?{q}"),
        None => format!("{ROOT}/"),
    };
    let mut reply = Reply::json(StatusCode::PERMANENT_REDIRECT, Vec::new());
    reply.headers.remove(CONTENT_TYPE);
    if let Ok(v) = HeaderValue::from_str(&location) {
        reply.headers.insert(LOCATION, v);
    }
    reply
        .headers
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_csp(reply)
}

fn asset_reply(asset: &Asset, cache: &'static str, gzip_ok: bool) -> Reply {
    // The twin is only worth sending when it is smaller (tiny files can grow).
    let use_gzip = gzip_ok && asset.gzip.len() < asset.raw.len();
    let body: &'static [u8] = if use_gzip { asset.gzip } else { asset.raw };
    let mut reply = Reply::json(StatusCode::OK, bytes::Bytes::from_static(body));
    reply
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    reply
        .headers
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    reply
        .headers
        .insert(VARY, HeaderValue::from_static("accept-encoding"));
    if use_gzip {
        reply
            .headers
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    with_csp(reply)
}

fn not_found() -> Reply {
    with_csp(crate::errors::not_found().no_store())
}

fn with_csp(mut reply: Reply) -> Reply {
    reply.headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    reply
}

/// True when `Accept-Encoding` allows gzip: a `gzip` or `*` coding whose `q` is not zero
/// (an explicit `gzip;q=0` wins over `*`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(http::header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                return !q_zero;
            }
            if coding == "*" {
                star = !q_zero;
            }
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: &str, accept: Option<&str>) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_str(a).unwrap(),
            );
        }
        serve(&RequestHead::new(Method::GET, target, headers))
    }

    fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
        r.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    #[test]
    fn root_redirects_with_its_query() {
        let r = get("/dashboard?range=30d", None);
        assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&r, "location"), "/dashboard/?range=30d");
        assert_eq!(header(&r, "content-security-policy"), CSP);
    }

    #[test]
    fn page_is_no_cache_and_names_this_builds_assets() {
        let r = get("/dashboard/", None);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(header(&r, "cache-control"), "no-cache");
        assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
        let html = std::str::from_utf8(&r.body).unwrap();
        assert!(html.contains(&asset_url("app.js")), "{html}");
        assert!(!html.contains("__ASSETS__"));
        assert!(!html.contains("<script>") && !html.contains("style="));
    }

    #[test]
    fn every_asset_is_immutable_with_csp_and_gzip_on_request() {
        assert!(ASSETS.iter().any(|a| a.path.starts_with("vendor/uplot-")));
        for a in ASSETS {
            let plain = get(&asset_url(a.path), None);
            assert_eq!(plain.status, StatusCode::OK, "{}", a.path);
            assert_eq!(header(&plain, "cache-control"), IMMUTABLE);
            assert_eq!(header(&plain, "content-security-policy"), CSP);
            assert_eq!(header(&plain, "content-type"), a.content_type);
            assert_eq!(&plain.body[..], a.raw);
            assert!(plain.headers.get("content-encoding").is_none());
            let gz = get(&asset_url(a.path), Some("gzip, deflate, br"));
            if a.gzip.len() < a.raw.len() {
                assert_eq!(header(&gz, "content-encoding"), "gzip", "{}", a.path);
                assert_eq!(&gz.body[..], a.gzip);
            }
        }
    }

    #[test]
    fn unknown_paths_old_builds_and_other_methods_are_404() {
        for target in [
            "/dashboard/nope",
            "/dashboard/assets/000000000000/app.js",
            "/dashboard/assets/",
        ] {
            assert_eq!(get(target, None).status, StatusCode::NOT_FOUND, "{target}");
        }
        let post = serve(&RequestHead::new(
            Method::POST,
            "/dashboard/",
            HeaderMap::new(),
        ));
        assert_eq!(post.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn accept_encoding_weights() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).unwrap(),
            );
            accepts_gzip(&m)
        };
        assert!(h("gzip"));
        assert!(h("br, gzip;q=0.5"));
        assert!(h("*"));
        assert!(!h("gzip;q=0"));
        assert!(!h("*, gzip;q=0"));
        assert!(!h("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
