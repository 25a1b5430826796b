//! Proxy credentials (`datapath.md` §4): extraction, hashing, constant-time comparison, the
//! managed key's provider restriction, and rendering a fresh key from random bytes.
//!
//! A new key's material (shown once, hashed, prefixed) is `admin::ApiKeyMaterial`.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::errors;
use crate::head::{Reply, header_str};

/// The header that carried the proxy credential; it is removed before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CredentialHeader {
    /// `Authorization: Bearer <token>`.
    Authorization,
    /// `x-api-key: <token>`.
    XApiKey,
}

impl CredentialHeader {
    /// The lower-case header name.
    pub fn name(self) -> &'static str {
        match self {
            CredentialHeader::Authorization => "authorization",
            CredentialHeader::XApiKey => "x-api-key",
        }
    }
}

/// A credential found in a request (borrowed from its headers).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    /// The trimmed, non-empty token.
    pub token: &'a str,
    /// Where it came from.
    pub header: CredentialHeader,
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("token", &"[REDACTED]")
            .field("header", &self.header)
            .finish()
    }
}

/// Extracts the proxy credential (§4.2): a Bearer token in `Authorization` wins over
/// `x-api-key`; nothing else counts (`x-proxy-key` never does).
pub fn extract_credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    if let Some(token) = header_str(headers, "authorization").and_then(bearer_token) {
        return Some(Credential {
            token,
            header: CredentialHeader::Authorization,
        });
    }
    header_str(headers, "x-api-key").map(|token| Credential {
        token,
        header: CredentialHeader::XApiKey,
    })
}

/// The token of an `Authorization` value of the form `Bearer` (any case) + whitespace +
/// token, trimmed; `None` for other schemes or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let rest = value.get(6..)?;
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// Lower-case hex SHA-256 of the UTF-8 bytes of `value` (the stored `key_hash`).
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Compares two secrets in time independent of where they differ and of their lengths:
/// both sides are hashed first, then the digests are compared without early exit.
///
/// Every token comparison in the workspace goes through this function (RQ-S4).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let da = Sha256::digest(a);
    let db = Sha256::digest(b);
    let diff = da
        .iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // `black_box` keeps the optimiser from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// The path exempt from the provider restriction.
pub const RESTRICTION_EXEMPT_PATH: &str = "/v1/models";

/// The provider restriction of a managed key (§4.4): a non-empty `allowed_providers` that
/// does not contain the resolved provider id rejects with E14, except on `/v1/models`.
#[allow(
    clippy::result_large_err,
    reason = "rejections are rare and the caller sends the reply as is"
)]
pub fn check_provider_allowed(
    path: &str,
    allowed_providers: &[String],
    provider_id: &str,
) -> Result<(), Reply> {
    if path == RESTRICTION_EXEMPT_PATH
        || allowed_providers.is_empty()
        || allowed_providers.iter().any(|p| p == provider_id)
    {
        return Ok(());
    }
    Err(errors::provider_not_allowed())
}

/// Number of characters of a key kept as `key_prefix`.
pub const KEY_PREFIX_LEN: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn credential_extraction_table() {
        use CredentialHeader::*;
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            Option<(&'a str, CredentialHeader)>,
        );
        let cases: &[Case<'_>] = &[
            (
                &[("authorization", "Bearer k1")],
                Some(("k1", Authorization)),
            ),
            (
                &[("authorization", "  bearer   k1  ")],
                Some(("k1", Authorization)),
            ),
            (
                &[("authorization", "BEARER\tk1")],
                Some(("k1", Authorization)),
            ),
            (
                &[("authorization", "Bearer k1"), ("x-api-key", "k2")],
                Some(("k1", Authorization)),
            ),
            (
                &[("authorization", "Bearer   "), ("x-api-key", " k2 ")],
                Some(("k2", XApiKey)),
            ),
            (
                &[("authorization", "Basic abc"), ("x-api-key", "k2")],
                Some(("k2", XApiKey)),
            ),
            (&[("authorization", "Bearerk1")], None),
            (&[("x-api-key", "   ")], None),
            (&[("x-proxy-key", "k3")], None),
            (&[], None),
        ];
        for (pairs, want) in cases {
            let h = headers(pairs);
            let got = extract_credential(&h).map(|c| (c.token, c.header));
            assert_eq!(got, *want, "{pairs:?}");
        }
    }

    #[test]
    fn credential_debug_never_shows_the_token() {
        let h = headers(&[("x-api-key", "sk-canary-123")]);
        let c = extract_credential(&h).unwrap();
        assert!(!format!("{c:?}").contains("canary"));
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_decides_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn provider_restriction_table() {
        let allowed = vec!["claude".to_owned(), "codex".to_owned()];
        assert!(check_provider_allowed("/v1/messages", &allowed, "claude").is_ok());
        assert!(check_provider_allowed("/v1/messages", &[], "gemini").is_ok());
        assert!(check_provider_allowed("/v1/models", &allowed, "gemini").is_ok());
        let err = check_provider_allowed("/v1/messages", &allowed, "gemini").unwrap_err();
        assert_eq!(err.status, http::StatusCode::FORBIDDEN);
        assert_eq!(
            &err.body[..],
            br#"{"error":"provider not allowed for this API key"}"#
        );
        // Exactly `/v1/models`, not its sub-paths.
        assert!(check_provider_allowed("/v1/models/x", &allowed, "gemini").is_err());
    }
}
