//! Upstream request headers (`datapath.md` §10) and the response header filter (§13.2).
//!
//! Headers are worked on as an ordered list of `(name, value)` pairs and turned into a
//! `HeaderMap` at the end, because removing from a `HeaderMap` may move other entries: the
//! client's order and repeated headers must survive. (A `HeaderMap` groups the values of one
//! name at that name's first position; that is the only reordering left.)
//!
//! Setting a header ("set, overwriting") replaces its first occurrence in place and drops
//! the other occurrences; a header not yet present is appended.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

use crate::provider::{AuthMode, Provider, ProviderType};
use crate::secret::Secret;

/// Which client header carried a managed proxy key that was resolved (§10 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedKeyHeader {
    /// `authorization`
    Authorization,
    /// `x-api-key`
    XApiKey,
}

/// Everything besides the client's headers that decides the upstream headers.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamHeaderParams<'a> {
    /// The resolved provider.
    pub provider: &'a Provider,
    /// The header that carried a resolved managed key, removed before forwarding.
    pub managed_key_header: Option<ManagedKeyHeader>,
    /// `CLI_PROXY_API_URL` (for `preserve` auth).
    pub cli_proxy_api_url: &'a str,
    /// `CLI_PROXY_API_KEY` (for `preserve` auth toward `CLI_PROXY_API_URL`).
    pub cli_proxy_api_key: &'a Secret,
    /// A body transform changed the body (sets `content-type: application/json`).
    pub body_changed: bool,
    /// The `content-length` to send, if the request has a body to frame.
    pub content_length: Option<u64>,
}

/// The upstream request cannot be built (outcome O19, answered E21).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UpstreamHeaderError {
    /// A value (from configuration or a token) is not a valid header value (CR, LF, NUL or
    /// another control character). The value itself is never included.
    #[error("invalid value for upstream header {name}")]
    InvalidValue {
        /// The header name.
        name: String,
    },
    /// A configured header name is not a valid field name.
    #[error("invalid upstream header name {name:?}")]
    InvalidName {
        /// The name as configured.
        name: String,
    },
}

/// Builds the upstream request headers from the client's, applying §10 steps 1–7 in order.
pub fn upstream_request_headers(
    client: &HeaderMap,
    params: &UpstreamHeaderParams<'_>,
) -> Result<HeaderMap, UpstreamHeaderError> {
    // Step 1 runs on the client's headers alone, so nothing added later can be removed by a
    // name the client listed in `Connection`.
    let named = connection_tokens(client);
    let mut list: Vec<(HeaderName, HeaderValue)> = client
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            !is_request_hop_by_hop(n) && !named.iter().any(|t| t == n)
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();

    // Step 2.
    list.retain(|(name, _)| !is_proxy_private(name.as_str()));
    set(&mut list, "accept-encoding", "identity")?;

    // Step 3.
    if let Some(header) = params.managed_key_header {
        let doomed = match header {
            ManagedKeyHeader::Authorization => "authorization",
            ManagedKeyHeader::XApiKey => "x-api-key",
        };
        remove(&mut list, doomed);
    }

    // Step 4.
    let provider = params.provider;
    for (name, value) in &provider.headers {
        let only_if_absent = name == "user-agent" || name == "anthropic-beta";
        if only_if_absent && contains(&list, name) {
            continue;
        }
        set(&mut list, name, value)?;
    }

    // Step 5.
    apply_auth(&mut list, params)?;

    // Step 6.
    if provider.kind == ProviderType::Anthropic && !contains(&list, "anthropic-version") {
        set(&mut list, "anthropic-version", "2023-06-01")?;
    }

    // Step 7.
    if params.body_changed {
        set(&mut list, "content-type", "application/json")?;
    }
    if let Some(len) = params.content_length {
        set(&mut list, "content-length", &len.to_string())?;
    }

    let mut out = HeaderMap::with_capacity(list.len());
    for (name, value) in list {
        out.append(name, value);
    }
    Ok(out)
}

/// The upstream response headers to relay (§13.2): everything in order, repeats included,
/// except `Connection` and the headers it names, `Keep-Alive`, `Transfer-Encoding`, `TE`,
/// `Trailer`, `Upgrade`, every `Proxy-*` header, and `Content-Length` when the proxy changes
/// the body.
pub fn response_headers(upstream: &HeaderMap, body_changed: bool) -> HeaderMap {
    let named = connection_tokens(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let n = name.as_str();
        let drop = matches!(
            n,
            "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade"
        ) || n.starts_with("proxy-")
            || (body_changed && n == "content-length")
            || named.iter().any(|t| t == n);
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn apply_auth(
    list: &mut Vec<(HeaderName, HeaderValue)>,
    params: &UpstreamHeaderParams<'_>,
) -> Result<(), UpstreamHeaderError> {
    let auth = &params.provider.auth;
    let token = auth.token.as_ref().map(Secret::expose);
    match (auth.mode, token) {
        (AuthMode::None, _) => {
            remove(list, "authorization");
            remove(list, "x-api-key");
        }
        (AuthMode::Preserve, _) => {
            if params.provider.upstream_base_url == params.cli_proxy_api_url {
                let value = format!("Bearer {}", params.cli_proxy_api_key.expose());
                set_sensitive(list, "authorization", &value)?;
            }
        }
        (AuthMode::Bearer, Some(token)) => {
            remove(list, "x-api-key");
            let name = auth.header.as_deref().unwrap_or("authorization");
            set_sensitive(list, name, &format!("Bearer {token}"))?;
        }
        (AuthMode::XApiKey, Some(token)) => {
            remove(list, "authorization");
            let name = auth.header.as_deref().unwrap_or("x-api-key");
            set_sensitive(list, name, token)?;
        }
        (AuthMode::Bearer | AuthMode::XApiKey, None) => {}
    }
    Ok(())
}

/// Lower-case tokens of every `Connection` header value.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn is_request_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "transfer-encoding"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

fn is_proxy_private(name: &str) -> bool {
    matches!(
        name,
        "host" | "content-length" | "x-proxy-key" | "x-provider" | "forwarded" | "x-real-ip"
    ) || name.starts_with("x-forwarded-")
        || name.starts_with("cf-")
}

fn contains(list: &[(HeaderName, HeaderValue)], name: &str) -> bool {
    list.iter().any(|(n, _)| n.as_str() == name)
}

fn remove(list: &mut Vec<(HeaderName, HeaderValue)>, name: &str) {
    list.retain(|(n, _)| n.as_str() != name);
}

fn set(
    list: &mut Vec<(HeaderName, HeaderValue)>,
    name: &str,
    value: &str,
) -> Result<(), UpstreamHeaderError> {
    let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        UpstreamHeaderError::InvalidValue {
            name: name.to_owned(),
        }
    })?;
    put(list, name, value)
}

fn set_sensitive(
    list: &mut Vec<(HeaderName, HeaderValue)>,
    name: &str,
    value: &str,
) -> Result<(), UpstreamHeaderError> {
    let mut value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        UpstreamHeaderError::InvalidValue {
            name: name.to_owned(),
        }
    })?;
    value.set_sensitive(true);
    put(list, name, value)
}

fn put(
    list: &mut Vec<(HeaderName, HeaderValue)>,
    name: &str,
    value: HeaderValue,
) -> Result<(), UpstreamHeaderError> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| UpstreamHeaderError::InvalidName {
            name: name.to_owned(),
        })?;
    let mut value = Some(value);
    list.retain_mut(|(n, v)| {
        if *n != name {
            return true;
        }
        match value.take() {
            Some(new) => {
                *v = new;
                true
            }
            None => false,
        }
    });
    if let Some(new) = value {
        list.push((name, new));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
