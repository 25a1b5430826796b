//! The dashboard's IO half (`docs/dashboard.md` §1–§2), shared by both shells: the session
//! secret on disk, the admin gate with sessions, the page, and the sign-in endpoints
//! `GET /admin/session`, `POST /admin/session/login`, `POST /admin/session/logout`
//! (documented in `docs/control.md` §6.9). The decisions are the core's
//! (`agent_cli_proxy_core::dashboard`); this file reads the clock, the random source and the
//! secret file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use agent_cli_proxy_core::config::Config;
use agent_cli_proxy_core::dashboard::{self, session};
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::gate::{self, AdminCredentials};
use agent_cli_proxy_core::head::{Reply, RequestHead};
use agent_cli_proxy_core::{admin, errors};
use http::header::{HeaderValue, SET_COOKIE};
use http::{Method, StatusCode};
use serde_json::json;

use super::{Daemon, Logger};

/// Name of the generated secret, next to the database.
pub const SECRET_FILE: &str = ".dashboard-session-secret";

/// The session secret: `DASHBOARD_SESSION_SECRET`, else the bytes of
/// `<dirname(DB_PATH)>/.dashboard-session-secret` (created once with mode 0600), else (an
/// in-memory database, or a file that cannot be written) fresh random bytes that last as long
/// as the process.
pub fn load_secret(config: &Config, logger: &Logger) -> Vec<u8> {
    if let Some(s) = &config.dashboard_session_secret {
        return s.expose().as_bytes().to_vec();
    }
    if config.dashboard_password_hash.is_none() || config.db_path == ":memory:" {
        return random_secret();
    }
    let path = secret_path(&config.db_path);
    match read_or_create(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            logger.event(
                Level::Warn,
                "dashboard.secret_unavailable",
                "dashboard session secret file unavailable; sessions end when the daemon stops",
                vec![
                    ("path", json!(path.display().to_string())),
                    ("err", json!(e.to_string())),
                ],
            );
            random_secret()
        }
    }
}

fn secret_path(db_path: &str) -> PathBuf {
    Path::new(db_path)
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(SECRET_FILE)
}

fn random_secret() -> Vec<u8> {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS random source: fastrand's per-process seed still differs between runs.
        fastrand::fill(&mut bytes);
    }
    hex_bytes(&bytes)
}

fn hex_bytes(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

fn read_or_create(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.trim_ascii().len() >= 32 => return Ok(bytes.trim_ascii().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let secret = random_secret();
    crate::fsutil::write_private_atomic(path, &secret)?;
    Ok(secret)
}

/// True for the sign-in endpoints, which pass only the first three gate checks.
pub fn is_session_path(path: &str) -> bool {
    matches!(
        path,
        "/admin/session" | "/admin/session/login" | "/admin/session/logout"
    )
}

impl Daemon {
    /// The admin gate of `datapath.md` §2.1 with dashboard sessions, for `/metrics` and
    /// `/admin/*`. The sign-in endpoints need only the peer, `Host` and `Origin` checks (and
    /// the content type), since they are how a browser gets a session.
    #[allow(clippy::result_large_err)]
    pub fn admin_gate(&self, head: &RequestHead, peer: IpAddr) -> Result<(), Reply> {
        let has_body = gate::declares_body(&head.headers);
        if is_session_path(&head.path) {
            gate::local_checks(head, peer, self.config.proxy_port)?;
            let gate_body = has_body && head.method == Method::POST;
            if gate_body && !is_json(head) {
                return Err(errors::admin_not_json());
            }
            return Ok(());
        }
        let sessions = self.sessions();
        let creds = AdminCredentials {
            admin_api_key: &self.config.admin_api_key,
            password_set: self.config.dashboard_password_hash.is_some(),
            sessions: &sessions,
            now: self.wall(),
        };
        gate::admin_gate_with_sessions(head, peer, has_body, self.config.proxy_port, &creds)
            .map(|_| ())
    }

    /// `/dashboard…`: the gate's first three checks, then the core's bytes.
    pub fn dashboard(&self, head: &RequestHead, peer: IpAddr) -> Reply {
        match gate::local_checks(head, peer, self.config.proxy_port) {
            Ok(()) => dashboard::serve(head),
            Err(r) => r,
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, session::Sessions> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn is_json(head: &RequestHead) -> bool {
    head.header_str("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// Answers a sign-in endpoint (blocking: Argon2 runs here), or `None` for any other path.
pub fn answer(d: &Daemon, head: &RequestHead, body: &[u8], peer: IpAddr) -> Option<Reply> {
    if !is_session_path(&head.path) {
        return None;
    }
    Some(match (&head.method, head.path.as_str()) {
        (&Method::GET, "/admin/session") => state(d, head),
        (&Method::POST, "/admin/session/login") => login(d, body, peer),
        (&Method::POST, "/admin/session/logout") => logout(d, head),
        _ => admin::not_found(),
    })
}

/// `{mode, authenticated, csrf}`: how the page should sign in, and whether it already is.
fn state(d: &Daemon, head: &RequestHead) -> Reply {
    let password = d.config.dashboard_password_hash.is_some();
    let token = !d.config.admin_api_key.is_empty();
    let mode = match (password, token) {
        (true, _) => "password",
        (false, true) => "token",
        (false, false) => "open",
    };
    let now = d.wall();
    let session = d.sessions().check(&head.headers, now);
    let token_ok = token
        && gate::admin_token(&head.headers).is_some_and(|t| {
            agent_cli_proxy_core::auth::constant_time_eq(
                t.as_bytes(),
                d.config.admin_api_key.expose().as_bytes(),
            )
        });
    let authenticated = mode == "open" || token_ok || session.is_some();
    admin::ok(&json!({
        "mode": mode,
        "authenticated": authenticated,
        "csrf": session.map(|s| s.csrf),
    }))
}

fn login(d: &Daemon, body: &[u8], peer: IpAddr) -> Reply {
    let Some(phc) = d.config.dashboard_password_hash.as_ref() else {
        return error(StatusCode::NOT_FOUND, "Password sign-in is not configured");
    };
    let now = d.wall();
    if let Err(retry) = d.sessions().admit_attempt(peer, now) {
        d.logger.event(
            Level::Warn,
            "dashboard.login_limited",
            "too many dashboard sign-in attempts",
            vec![("peer", json!(peer.to_string()))],
        );
        return error(StatusCode::TOO_MANY_REQUESTS, "Too many sign-in attempts")
            .retry_after(retry);
    }
    let password = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => match v.get("password").and_then(|p| p.as_str()) {
            Some(p) => p.to_owned(),
            None => return error(StatusCode::BAD_REQUEST, "Invalid request body"),
        },
        Err(_) => return error(StatusCode::BAD_REQUEST, "Invalid request body"),
    };
    if !session::verify_password(phc.expose(), &password) {
        d.logger.event(
            Level::Warn,
            "dashboard.login_failed",
            "dashboard sign-in with a wrong password",
            vec![("peer", json!(peer.to_string()))],
        );
        return error(StatusCode::UNAUTHORIZED, "Invalid password");
    }
    let mut nonce = [0u8; 8];
    if getrandom::fill(&mut nonce).is_err() {
        return admin::internal_error();
    }
    let issued = d.sessions().issue(now, nonce);
    d.logger.event(
        Level::Info,
        "dashboard.login",
        "dashboard session started",
        vec![("peer", json!(peer.to_string()))],
    );
    let mut reply = admin::ok(&json!({
        "ok": true,
        "csrf": issued.session.csrf,
        "expiresAt": issued.expires_at,
    }));
    set_cookie(&mut reply, &issued.set_cookie);
    reply
}

/// Clears the cookie; a valid session is revoked, but only with its CSRF header, so another
/// page cannot sign the user out.
fn logout(d: &Daemon, head: &RequestHead) -> Reply {
    let now = d.wall();
    let mut sessions = d.sessions();
    if let Some(s) = sessions.check(&head.headers, now) {
        if !session::Sessions::csrf_ok(&s, &head.headers) {
            return errors::csrf_missing();
        }
        sessions.revoke(&s, now);
    }
    drop(sessions);
    let mut reply = admin::ok(&json!({"ok": true}));
    set_cookie(&mut reply, &session::clear_cookie());
    reply
}

fn set_cookie(reply: &mut Reply, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        reply.headers.append(SET_COOKIE, v);
    }
}

fn error(status: StatusCode, message: &str) -> Reply {
    admin::json_reply(status, &json!({ "error": message }))
}
