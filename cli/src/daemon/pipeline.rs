//! The request pipeline both shells run (`datapath.md` §2): route → admin gate → health →
//! metrics/admin/dashboard → proxy, decided once from the request head. A shell asks
//! [`Daemon::plan`] what to do with a request and carries it out with its own IO; it never
//! matches on a route itself, so a route added to the core is wired here and nowhere else.
//!
//! Also shared: the proxy's entry checks ([`Daemon::check_proxy_head`]) and the accounting of
//! a request body against its limit and the global budget ([`BodyIntake`]).
//!
//! Every reply a shell sends already carries the security headers of `datapath.md` §3: the
//! plan's replies, the handlers', `/ready`'s and the body intake's here, the proxy's refusals
//! and the exchange's output in the core. For what only the shell observes (a body it could
//! not read, a task that panicked) it asks the request's [`Respond`] for the reply.
//!
//! The refusals here are whole replies, sent at once: `Result<_, Reply>` stays unboxed, as in
//! the core's `check_proxy_head`.
#![allow(clippy::result_large_err)]

use std::net::IpAddr;
use std::sync::Arc;

use agent_cli_proxy_core::errors;
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::gate;
use agent_cli_proxy_core::head::{Reply, RequestHead};
use agent_cli_proxy_core::limits::MAX_ADMIN_BODY;
use agent_cli_proxy_core::proxy::{Core, InboundRequest, KeyLookup, StartAction};
use agent_cli_proxy_core::route::Route;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::json;

use super::Daemon;

/// Largest body read and dropped for routes that take none (health, readiness, metrics,
/// unknown paths); a longer one is not read further and the reply closes the connection.
pub const MAX_IGNORED_BODY: u64 = 1_048_576;

/// What a shell does with one request.
pub enum Plan {
    /// Drop the body (up to [`MAX_IGNORED_BODY`]), then send this reply.
    Reply(Reply),
    /// Drop the body, then answer with [`Ready::answer`].
    Ready(Ready),
    /// Read the body as [`Handler::body`] says, then answer with [`Handler::answer`] on a
    /// thread where blocking is allowed (it may query SQLite).
    Handler(Handler),
    /// A proxied call: continue with [`Daemon::check_proxy_head`].
    Proxy(RequestHead),
}

/// How a [`Handler`] wants the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyUse {
    /// Read and drop it (up to [`MAX_IGNORED_BODY`]).
    Ignore,
    /// Read all of it, at most this many bytes; over that, answer [`Handler::too_large`].
    Read(u64),
}

/// The replies to one request that the shell decides to send: whether they carry HSTS.
#[derive(Debug, Clone, Copy)]
pub struct Respond {
    secure: bool,
}

/// Why the shell could not read a request body to its end.
pub enum BodyFailure {
    /// More than the limit.
    TooLarge,
    /// No body byte within the body idle time.
    Timeout,
    /// The body's framing is broken (or the client closed mid-body): the codec's reply.
    Framing(Reply),
}

impl Respond {
    /// For a connection that sent no usable head (a framing error before one): not secure.
    pub const NO_REQUEST: Respond = Respond { secure: false };

    /// The reply to a body that could not be read under `limit`.
    pub fn body_failure(self, failure: BodyFailure, limit: u64) -> Reply {
        self.finish(match failure {
            BodyFailure::TooLarge => errors::body_too_large(limit).closing(),
            BodyFailure::Timeout => errors::body_timeout(),
            BodyFailure::Framing(reply) => reply,
        })
    }

    /// The codec's reply to a framing error.
    pub fn framing_error(self, reply: Reply) -> Reply {
        self.finish(reply)
    }

    /// The reply when the task handling the request panicked before answering (O15).
    pub fn internal_error(self) -> Reply {
        self.finish(errors::internal_error())
    }

    fn finish(self, mut reply: Reply) -> Reply {
        gate::apply_security_headers(&mut reply.headers, self.secure);
        reply
    }
}

/// `GET /ready`, once its body is dropped.
pub struct Ready(Respond);

impl Ready {
    /// The answer, from the shared runner with the shell's IO.
    pub async fn answer(
        self,
        state: &super::ready::ReadyState,
        daemon: &Daemon,
        io: &impl super::ready::ReadyIo,
    ) -> Reply {
        self.0.finish(state.handle(daemon, io).await)
    }
}

/// A request answered from the daemon's state after its body is read.
pub struct Handler {
    head: RequestHead,
    respond: Respond,
    /// The client's address: the dashboard's sign-in counts attempts per peer.
    peer: IpAddr,
    kind: Kind,
    /// What to do with the body before [`Handler::answer`].
    pub body: BodyUse,
}

enum Kind {
    Metrics,
    Admin,
}

impl Handler {
    /// The answer; may block (SQLite readers, a spool flush).
    pub fn answer(self, daemon: &Daemon, body: &[u8]) -> Reply {
        self.respond.finish(match self.kind {
            Kind::Metrics => daemon.render_metrics(),
            Kind::Admin => super::admin::answer(daemon, &self.head, body, self.peer),
        })
    }

    /// The reply when [`Handler::answer`] could not run to its end (its task panicked).
    pub fn failed(&self) -> Reply {
        self.respond.finish(match self.kind {
            Kind::Metrics => errors::internal_error(),
            Kind::Admin => agent_cli_proxy_core::admin::internal_error(),
        })
    }

    /// The reply to a body over its [`BodyUse::Read`] limit. It closes the connection: the
    /// rest of the body is never read, so no further request can be framed on it.
    pub fn too_large(&self) -> Reply {
        let limit = match self.body {
            BodyUse::Read(limit) => limit,
            BodyUse::Ignore => MAX_IGNORED_BODY,
        };
        self.respond.finish(errors::body_too_large(limit).closing())
    }
}

impl Daemon {
    /// Decides what to do with a request from its head: the route, the admin gate, and
    /// whether its answers carry the HTTPS-only security header.
    pub fn plan(&self, head: RequestHead, peer: IpAddr) -> (Plan, Respond) {
        let secure = gate::is_secure_request(&head.headers, false, self.config.trust_proxy_headers);
        let respond = Respond { secure };
        let route = agent_cli_proxy_core::route::route(&head.method, &head.path);
        let plan = match route {
            Route::Health => Plan::Reply(Reply::json(StatusCode::OK, r#"{"status":"ok"}"#)),
            Route::Ready => Plan::Ready(Ready(respond)),
            Route::NotFound => Plan::Reply(errors::not_found()),
            Route::Proxy => Plan::Proxy(head),
            // Embedded bytes behind the gate's local checks: nothing blocks, so no handler.
            Route::Dashboard => Plan::Reply(self.dashboard(&head, peer)),
            // The sign-in endpoints under /admin/session are admin routes: the gate lets them
            // through on its local checks alone, and `admin::answer` hands them to `session`.
            Route::Metrics | Route::Admin => {
                let gate = self.admin_gate(&head, peer);
                match gate {
                    Err(reply) => Plan::Reply(reply),
                    Ok(()) if route == Route::Metrics => Plan::Handler(Handler {
                        head,
                        respond,
                        peer,
                        kind: Kind::Metrics,
                        body: BodyUse::Ignore,
                    }),
                    Ok(()) => Plan::Handler(Handler {
                        head,
                        respond,
                        peer,
                        kind: Kind::Admin,
                        body: BodyUse::Read(MAX_ADMIN_BODY),
                    }),
                }
            }
        };
        let plan = match plan {
            Plan::Reply(reply) => Plan::Reply(respond.finish(reply)),
            other => other,
        };
        (plan, respond)
    }

    /// The proxy's checks on a head (`datapath.md` §4–§5) once its credential is looked up
    /// with `Core::credential_hash` and [`Daemon::lookup_key`]: the body limit, or the
    /// reply that refuses the request (a 401 is logged as `proxy.auth.rejected`).
    pub fn check_proxy_head(&self, head: &RequestHead, key: &KeyLookup) -> Result<u64, Reply> {
        let checked = agent_cli_proxy_core::proxy::check_proxy_head(&self.config, head, key);
        if let Err(reply) = &checked
            && reply.status == StatusCode::UNAUTHORIZED
        {
            self.logger.event(
                Level::Warn,
                "proxy.auth.rejected",
                "proxy authentication rejected",
                vec![("path", json!(head.path))],
            );
        }
        checked
    }

    /// Starts a proxied call whose body is read (`docs/style.md` §3): the core's start, its
    /// events logged and counted, the managed key's `last_used_at` touched. The result is a
    /// reply to send, or the exchange to drive.
    pub fn start_exchange(
        &self,
        head: RequestHead,
        body: Bytes,
        peer: IpAddr,
        key: KeyLookup,
    ) -> StartAction {
        // Time-ordered (UUID v7, ordered within the process): each row's `request_id` lands
        // at the right edge of its index instead of a random page, which made that one index
        // a third of the cost of ingesting a row (`docs/datapath.md` §6.1).
        let request_id = uuid::Uuid::now_v7().to_string();
        let inbound = InboundRequest {
            head,
            body,
            peer,
            request_id,
            key,
        };
        // Parsing, identification and the upstream request need only the configuration:
        // they run before the core's lock is taken, which then covers only the shared
        // decisions (rate limit, breaker, the exchange's seed).
        let prepared = Core::prepare(&self.config, inbound, self.wall());
        let start = self.core().admit(prepared, self.now());
        for ev in start.events {
            self.handle_event(ev);
        }
        if let Some((id, at)) = start.touch_key {
            self.touch_key(id, at);
        }
        start.action
    }
}

/// A request body being read: its bytes, checked against the per-request limit, and its
/// charge against the global body budget (`datapath.md` §5), released when the intake — or
/// the [`BudgetCharge`] taken from it — is dropped.
pub struct BodyIntake {
    respond: Respond,
    buf: BytesMut,
    limit: u64,
    declared: Option<u64>,
    charge: BudgetCharge,
}

impl BodyIntake {
    /// Starts reading a body of `declared` bytes (its `content-length`, if any) under
    /// `limit`. A declared length is charged at once; otherwise each chunk is.
    pub fn start(
        daemon: &Arc<impl AsRef<Daemon> + Send + Sync + 'static>,
        respond: Respond,
        declared: Option<u64>,
        limit: u64,
    ) -> Result<BodyIntake, Reply> {
        let mut charge = BudgetCharge::new(daemon);
        if let Some(len) = declared {
            charge
                .add(len)
                .map_err(|()| respond.finish(errors::body_budget().closing()))?;
        }
        Ok(BodyIntake {
            respond,
            buf: BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize),
            limit,
            declared,
            charge,
        })
    }

    /// Adds one chunk; the reply (413 or 503, closing) when it breaks a limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        let total = self.buf.len() as u64 + chunk.len() as u64;
        if total > self.limit {
            return Err(self.respond.body_failure(BodyFailure::TooLarge, self.limit));
        }
        if self.declared.is_none() {
            let respond = self.respond;
            self.charge
                .add(chunk.len() as u64)
                .map_err(|()| respond.finish(errors::body_budget().closing()))?;
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body and the budget charge that must live as long as the exchange.
    pub fn finish(self) -> (Bytes, BudgetCharge) {
        (self.buf.freeze(), self.charge)
    }
}

/// Bytes charged against the global body budget, released on drop.
pub struct BudgetCharge {
    daemon: Arc<dyn AsRef<Daemon> + Send + Sync>,
    bytes: u64,
}

impl BudgetCharge {
    fn new(daemon: &Arc<impl AsRef<Daemon> + Send + Sync + 'static>) -> BudgetCharge {
        BudgetCharge {
            daemon: Arc::clone(daemon) as Arc<dyn AsRef<Daemon> + Send + Sync>,
            bytes: 0,
        }
    }

    fn add(&mut self, bytes: u64) -> Result<(), ()> {
        if !(*self.daemon).as_ref().charge_body(bytes) {
            return Err(());
        }
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for BudgetCharge {
    fn drop(&mut self) {
        (*self.daemon).as_ref().release_body(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_observed_failures_get_finished_replies() {
        let secure = Respond { secure: true };
        let too_large = secure.body_failure(BodyFailure::TooLarge, 10);
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(too_large.close, "the rest of the body is never read");
        assert!(too_large.headers.contains_key("strict-transport-security"));
        let timeout = Respond::NO_REQUEST.body_failure(BodyFailure::Timeout, 10);
        assert_eq!(timeout.status, StatusCode::REQUEST_TIMEOUT);
        assert!(timeout.headers.contains_key("x-frame-options"));
        assert!(!timeout.headers.contains_key("strict-transport-security"));
        let internal = Respond::NO_REQUEST.internal_error();
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(internal.headers.contains_key("x-content-type-options"));
    }
}
