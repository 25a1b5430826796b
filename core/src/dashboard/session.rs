//! Dashboard sign-in (`docs/dashboard.md` §2): the Argon2id password check, the signed
//! session cookie, its CSRF twin, sign-out and the attempt limit. No IO: the caller passes
//! the time, the random bytes and the secret.
//!
//! Cookie value: `v1.<issued-at ms>.<nonce, 16 hex>.<HMAC-SHA256 hex>`, the MAC over
//! `acp-session:v1.<issued-at>.<nonce>` with the session secret. The CSRF value is a second
//! MAC over the same fields with another label, so it is bound to the session without being
//! stored anywhere.
//!
//! Choices where the spec is silent:
//! * Sign-out revokes that session on the server (its nonce is remembered until it would have
//!   expired anyway), so a copy of the cookie stops working too, not only the browser's.
//!   At most [`MAX_REVOKED`] revocations are remembered; past that, every session issued so
//!   far is ended at once rather than forgetting one.
//! * Every attempt counts against the limit (right or wrong), and a refused attempt is not
//!   checked at all, so the limit also bounds the Argon2 work a client can cause.
//! * A cookie issued "in the future" (more than a minute ahead of now) is refused.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use crate::auth::constant_time_eq;
use crate::time::UnixMillis;

/// The cookie's name.
pub const COOKIE_NAME: &str = "acp_session";
/// The header that must echo the CSRF value on state-changing requests made with the cookie.
pub const CSRF_HEADER: &str = "x-acp-csrf";
/// Default session lifetime (`DASHBOARD_SESSION_TTL_MS`): 7 days.
pub const DEFAULT_TTL_MS: u64 = 7 * 86_400_000;
/// Sign-in attempts allowed per client address per [`ATTEMPT_WINDOW_MS`].
pub const MAX_ATTEMPTS: usize = 5;
/// The attempt window.
pub const ATTEMPT_WINDOW_MS: u64 = 60_000;
/// Most revoked sessions remembered one by one.
pub const MAX_REVOKED: usize = 10_000;
/// Most client addresses tracked by the attempt limit.
const MAX_TRACKED_PEERS: usize = 10_000;
/// Clock slack allowed for a cookie issued slightly ahead of now.
const FUTURE_SLACK_MS: u64 = 60_000;

type HmacSha256 = Hmac<Sha256>;

/// A session cookie that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Issue time.
    pub issued_at: UnixMillis,
    /// The nonce, 16 hex characters.
    pub nonce: String,
    /// The CSRF value bound to it.
    pub csrf: String,
}

/// A freshly issued session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The session.
    pub session: Session,
    /// The `set-cookie` value.
    pub set_cookie: String,
    /// When it stops being valid (epoch ms).
    pub expires_at: u64,
}

/// Sessions and attempts of one daemon.
pub struct Sessions {
    secret: Vec<u8>,
    ttl_ms: u64,
    /// Nonce → the time the session would expire anyway.
    revoked: BTreeMap<String, u64>,
    /// Sessions issued at or before this are void (see [`MAX_REVOKED`]).
    not_before: u64,
    attempts: BTreeMap<IpAddr, VecDeque<u64>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions signed with `secret`, valid for `ttl_ms`.
    pub fn new(secret: Vec<u8>, ttl_ms: u64) -> Sessions {
        Sessions {
            secret,
            ttl_ms,
            revoked: BTreeMap::new(),
            not_before: 0,
            attempts: BTreeMap::new(),
        }
    }

    /// Issues a session at `now` with the random `nonce`.
    pub fn issue(&self, now: UnixMillis, nonce: [u8; 8]) -> Issued {
        let nonce = hex::encode(nonce);
        let fields = format!("v1.{}.{}", now.0, nonce);
        let mac = self.mac("acp-session", &fields);
        let session = Session {
            issued_at: now,
            csrf: self.csrf(&fields),
            nonce,
        };
        Issued {
            session,
            set_cookie: format!(
                "{COOKIE_NAME}={fields}.{mac}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                self.ttl_ms / 1000
            ),
            expires_at: now.0.saturating_add(self.ttl_ms),
        }
    }

    /// The session of the request's cookie, if it carries one that is authentic, unexpired
    /// and not revoked.
    pub fn check(&self, headers: &HeaderMap, now: UnixMillis) -> Option<Session> {
        cookie_values(headers, COOKIE_NAME).find_map(|v| self.check_value(v, now))
    }

    fn check_value(&self, value: &str, now: UnixMillis) -> Option<Session> {
        let (fields, mac) = value.rsplit_once('.')?;
        let mut parts = fields.split('.');
        let (Some("v1"), Some(issued), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expected = self.mac("acp-session", fields);
        if !constant_time_eq(mac.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let issued: u64 = issued.parse().ok()?;
        let live = issued > self.not_before
            && issued <= now.0.saturating_add(FUTURE_SLACK_MS)
            && now.0 < issued.saturating_add(self.ttl_ms)
            && !self.revoked.contains_key(nonce);
        live.then(|| Session {
            issued_at: UnixMillis(issued),
            nonce: nonce.to_owned(),
            csrf: self.csrf(fields),
        })
    }

    /// True when `headers` carry the CSRF value of `session`.
    pub fn csrf_ok(session: &Session, headers: &HeaderMap) -> bool {
        crate::head::header_str(headers, CSRF_HEADER)
            .is_some_and(|v| constant_time_eq(v.as_bytes(), session.csrf.as_bytes()))
    }

    /// Ends `session` for good.
    pub fn revoke(&mut self, session: &Session, now: UnixMillis) {
        self.revoked.retain(|_, expires| *expires > now.0);
        if self.revoked.len() >= MAX_REVOKED {
            self.revoked.clear();
            self.not_before = now.0;
            return;
        }
        self.revoked.insert(
            session.nonce.clone(),
            session.issued_at.0.saturating_add(self.ttl_ms),
        );
    }

    /// Counts a sign-in attempt from `peer`; `Err(retry_after_secs)` when the limit is
    /// reached (the attempt is then not made).
    pub fn admit_attempt(&mut self, peer: IpAddr, now: UnixMillis) -> Result<(), u64> {
        let window_start = now.0.saturating_sub(ATTEMPT_WINDOW_MS);
        if self.attempts.len() >= MAX_TRACKED_PEERS {
            self.attempts
                .retain(|_, times| times.back().is_some_and(|t| *t > window_start));
        }
        let times = self.attempts.entry(peer).or_default();
        while times.front().is_some_and(|t| *t <= window_start) {
            times.pop_front();
        }
        if times.len() >= MAX_ATTEMPTS {
            let oldest = times.front().copied().unwrap_or(now.0);
            let wait_ms = oldest
                .saturating_add(ATTEMPT_WINDOW_MS)
                .saturating_sub(now.0);
            return Err(wait_ms.div_ceil(1000).max(1));
        }
        times.push_back(now.0);
        Ok(())
    }

    fn mac(&self, label: &str, fields: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.secret) else {
            return String::new();
        };
        mac.update(label.as_bytes());
        mac.update(b":");
        mac.update(fields.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn csrf(&self, fields: &str) -> String {
        let mut v = self.mac("acp-csrf", fields);
        v.truncate(32);
        v
    }
}

/// The `set-cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Every value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

/// True when `phc` is an Argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
pub fn is_argon2id_phc(phc: &str) -> bool {
    PasswordHash::new(phc.trim()).is_ok_and(|h| {
        h.algorithm == Algorithm::Argon2id.ident() && h.hash.is_some() && h.salt.is_some()
    })
}

/// True when `password` matches the Argon2id PHC string `phc`. Costly by design: call it off
/// the request path's threads.
pub fn verify_password(phc: &str, password: &str) -> bool {
    if !is_argon2id_phc(phc) {
        return false;
    }
    PasswordHash::new(phc.trim()).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Hashes `password` with Argon2id (the crate's default parameters, the current OWASP
/// recommendation) and the random `salt`; `None` only if the salt cannot be encoded.
pub fn hash_password(password: &str, salt: [u8; 16]) -> Option<String> {
    let salt = SaltString::encode_b64(&salt).ok()?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{COOKIE, HeaderValue};

    fn with_cookie(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {pair}")).unwrap(),
        );
        h
    }

    #[test]
    fn issued_cookie_checks_until_it_expires() {
        let s = Sessions::new(b"secret".to_vec(), 1_000_000);
        let issued = s.issue(UnixMillis(5_000), [1; 8]);
        assert!(
            issued
                .set_cookie
                .contains("HttpOnly; SameSite=Strict; Path=/")
        );
        let h = with_cookie(&issued.set_cookie);
        let got = s.check(&h, UnixMillis(6_000)).unwrap();
        assert_eq!(got, issued.session);
        assert!(s.check(&h, UnixMillis(1_005_000)).is_none());
        let other = Sessions::new(b"other".to_vec(), 1_000_000);
        assert!(other.check(&h, UnixMillis(6_000)).is_none());
    }

    #[test]
    fn tampered_cookies_fail() {
        let s = Sessions::new(b"secret".to_vec(), 1_000_000);
        let issued = s.issue(UnixMillis(5_000), [1; 8]);
        let tampered = issued.set_cookie.replacen("v1.5000", "v1.5001", 1);
        assert!(
            s.check(&with_cookie(&tampered), UnixMillis(6_000))
                .is_none()
        );
        assert!(
            s.check(&with_cookie("acp_session=v1.1.2"), UnixMillis(6_000))
                .is_none()
        );
        let future = s.issue(UnixMillis(200_000), [2; 8]);
        assert!(
            s.check(&with_cookie(&future.set_cookie), UnixMillis(100_000))
                .is_none()
        );
    }

    #[test]
    fn csrf_is_bound_to_the_session_and_revocation_ends_it() {
        let mut s = Sessions::new(b"secret".to_vec(), 1_000_000);
        let a = s.issue(UnixMillis(5_000), [1; 8]);
        let b = s.issue(UnixMillis(5_000), [2; 8]);
        assert_ne!(a.session.csrf, b.session.csrf);
        let mut h = with_cookie(&a.set_cookie);
        assert!(!Sessions::csrf_ok(&a.session, &h));
        h.insert(CSRF_HEADER, HeaderValue::from_str(&a.session.csrf).unwrap());
        assert!(Sessions::csrf_ok(&a.session, &h));
        s.revoke(&a.session, UnixMillis(6_000));
        assert!(s.check(&h, UnixMillis(7_000)).is_none());
        assert!(
            s.check(&with_cookie(&b.set_cookie), UnixMillis(7_000))
                .is_some()
        );
    }

    #[test]
    fn five_attempts_per_minute_per_peer() {
        let mut s = Sessions::new(b"k".to_vec(), 1_000);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for i in 0..5 {
            assert!(s.admit_attempt(a, UnixMillis(1_000 + i)).is_ok());
        }
        assert_eq!(s.admit_attempt(a, UnixMillis(2_000)), Err(59));
        assert!(s.admit_attempt(b, UnixMillis(2_000)).is_ok());
        assert!(s.admit_attempt(a, UnixMillis(61_001)).is_ok());
    }

    #[test]
    fn password_hash_round_trip() {
        let phc = hash_password("correct horse", [7; 16]).unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(is_argon2id_phc(&phc));
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "wrong"));
        assert!(!is_argon2id_phc(
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
        ));
        assert!(!is_argon2id_phc("plain"));
    }
}
