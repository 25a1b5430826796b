//! `Core`: the long-lived decisions of the data path (`datapath.md` §2, rows 6–16) and the
//! state they need — breakers, the rate limiter, prices — creating one [`Exchange`] per
//! admitted request.
//!
//! The shell asks, in order: `route::route`; for admin routes the admin gate (`gate`, with
//! dashboard sessions added in cli); for proxied routes [`Core::credential_hash`] (it looks
//! the hash up in storage), then [`check_proxy_head`] before reading the body, then
//! [`Core::prepare`] with the body and [`Core::admit`] (together, [`Core::start`]). Only
//! `admit` needs the core itself; the rest read the configuration.
//! Every exchange hands its breaker permit back through [`Core::handle_outcome`].

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;

use crate::auth::{self, CredentialHeader};
use crate::breaker::{BreakerConfig, BreakerSet, OutcomeClass, Permit};
use crate::config::Config;
use crate::errors;
use crate::exchange::{
    Block, Exchange, ExchangeEvent, ExchangeInit, ExchangeLimits, Level, LogRecord, MetricEvent,
    PreLogRow, UpstreamRequest,
};
use crate::gate;
use crate::gemini;
use crate::head::{Reply, RequestHead, header_str};
use crate::headers::ManagedKeyHeader;
use crate::identify::{self, detect_tool};
use crate::limiter::{RateDecision, RateLimiter};
use crate::pricing::{PriceTable, Pricer};
use crate::provider::ProviderOrigin;
use crate::route;
use crate::time::{Instant, UnixMillis};
use crate::transform::{self, TransformInput, UpstreamSettings};

/// A managed proxy API key found by its hash (`datapath.md` §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedKey {
    /// `api_keys.id`.
    pub id: i64,
    /// Providers the key may use; empty means unrestricted.
    pub allowed_providers: Vec<String>,
}

/// The shell's answer to "which managed key has this credential hash".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// The request carried no credential.
    NoCredential,
    /// A credential that is no valid (unrevoked) managed key.
    Unknown,
    /// A valid managed key.
    Valid(ManagedKey),
}

/// A proxied request with its buffered body, ready for rows 11–17.
pub struct InboundRequest {
    /// The request head.
    pub head: RequestHead,
    /// The whole request body.
    pub body: Bytes,
    /// The TCP peer.
    pub peer: IpAddr,
    /// A fresh request id (UUID v7).
    pub request_id: String,
    /// The managed-key lookup result (as given to [`Core::check_proxy_head`]).
    pub key: KeyLookup,
}

/// What [`Core::start`] decided.
pub enum StartAction {
    /// Answer at once (no row, no upstream call).
    Reply(Reply),
    /// Drive this exchange.
    Exchange(Box<Exchange>),
}

/// The result of [`Core::start`]: the action, a key to touch, and events to log or count.
pub struct Start {
    /// Reply now, or drive an exchange.
    pub action: StartAction,
    /// `(api_keys.id, last_used_at)` to touch, fire-and-forget (§4.3).
    pub touch_key: Option<(i64, String)>,
    /// Logs and metrics of the admission.
    pub events: Vec<ExchangeEvent>,
}

/// A request after [`Core::prepare`], waiting for [`Core::admit`].
pub struct Prepared {
    touch_key: Option<(i64, String)>,
    secure: bool,
    tool: &'static str,
    client_id: String,
    /// The routed call, or the refusal to answer once the rate limit has passed.
    routed: Result<Box<Routed>, Box<Reply>>,
}

struct Routed {
    method: http::Method,
    path: String,
    request_id: String,
    provider_id: String,
    is_llm: bool,
    not_allowed: bool,
    stream: bool,
    /// `(usage_injected, request)`, or `None` when no upstream request could be built.
    request: Option<(bool, UpstreamRequest)>,
    upstream_events: Vec<ExchangeEvent>,
    row: Option<PreLogRow>,
    wall: UnixMillis,
}

/// Long-lived state of the data path.
pub struct Core {
    config: Arc<Config>,
    breakers: BreakerSet,
    limiter: RateLimiter,
    pricer: Arc<Pricer>,
    rng: fastrand::Rng,
    limits: ExchangeLimits,
}

impl Core {
    /// Creates the core. `seed` seeds every random choice (jitter); `table` is the price table
    /// loaded at start (possibly empty).
    pub fn new(config: Arc<Config>, table: Arc<PriceTable>, seed: u64) -> Core {
        let pricer = Pricer::new(
            table,
            config.pricing_overrides.clone(),
            config.pricing_aliases.clone(),
        );
        let breakers = BreakerSet::new(BreakerConfig {
            open_after_failures: config.breaker_open_after_failures,
            half_open_after_ms: config.breaker_half_open_after_ms,
            evict_after_ms: config.breaker_evict_after_ms,
        });
        let limits = ExchangeLimits {
            connect_timeout_ms: config.upstream_connect_timeout_ms,
            total_timeout_ms: config.upstream_timeout_ms,
            first_byte_timeout_ms: config.upstream_stream_first_byte_timeout_ms,
            max_retries: config.upstream_max_retries,
            ..ExchangeLimits::default()
        };
        Core {
            limiter: RateLimiter::new(config.rate_limit_per_client_per_min),
            config,
            breakers,
            pricer: Arc::new(pricer),
            rng: fastrand::Rng::with_seed(seed),
            limits,
        }
    }

    /// The validated configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Current prices.
    pub fn pricer(&self) -> &Arc<Pricer> {
        &self.pricer
    }

    /// Replaces the price table (after a refresh); exchanges already running keep theirs.
    pub fn set_prices(&mut self, table: Arc<PriceTable>) {
        self.pricer = Arc::new(self.pricer.with_table(table));
    }

    /// The circuit breakers (for the admin endpoints and the ready probe).
    pub fn breakers_mut(&mut self) -> &mut BreakerSet {
        &mut self.breakers
    }

    /// Overrides the per-exchange limits (tests use a small line cap).
    pub fn set_exchange_limits(&mut self, limits: ExchangeLimits) {
        self.limits = limits;
    }

    /// SHA-256 hex of the request's credential, for the managed-key lookup; `None` when the
    /// request carries none.
    pub fn credential_hash(head: &RequestHead) -> Option<String> {
        auth::extract_credential(&head.headers).map(|c| auth::sha256_hex(c.token))
    }

    /// Rows 6–9; see [`check_proxy_head`].
    #[allow(clippy::result_large_err)]
    pub fn check_proxy_head(&self, head: &RequestHead, key: &KeyLookup) -> Result<u64, Reply> {
        check_proxy_head(&self.config, head, key)
    }

    /// Rows 11–16 for a request whose body has been read: identification, rate limit,
    /// provider resolution, classification, key restriction, breaker admission and the
    /// upstream request. LLM calls always get an exchange (their refusals after the pre-log
    /// are finalized rows); other refusals are replies.
    ///
    /// The same as [`Core::prepare`] then [`Core::admit`]; a shell that shares the core
    /// between threads calls those two, the first outside its lock.
    pub fn start(&mut self, req: InboundRequest, now: Instant, wall: UnixMillis) -> Start {
        let prepared = Core::prepare(&self.config, req, wall);
        self.admit(prepared, now)
    }

    /// The part of [`Core::start`] that depends only on the request and the configuration:
    /// inspection, identification, provider resolution, the key's restriction, the upstream
    /// request and the pre-log row. No shared state is read, so it runs outside the lock that
    /// guards the core; its refusals wait in the result until [`Core::admit`] has applied the
    /// rate limit, which comes first.
    pub fn prepare(config: &Config, req: InboundRequest, wall: UnixMillis) -> Prepared {
        let head = &req.head;
        let touch_key = match &req.key {
            KeyLookup::Valid(k) => Some((k.id, wall.to_sqlite_datetime())),
            _ => None,
        };
        let secure = gate::is_secure_request(&head.headers, false, config.trust_proxy_headers);
        let mut inspection =
            identify::inspect(head, &req.body, req.peer, config.trust_proxy_headers);
        // Gemini names the model in the path and streams by method (`gemini.md` §2).
        if let Some(model) = gemini::path_model(&head.path) {
            inspection.model = Some(model);
        }
        if gemini::is_stream(&head.path) {
            inspection.stream = true;
        }
        let identity = identify::identify(&head.headers, &config.client_name_mapping);
        let routed = route_call(config, req, inspection, &identity, wall);
        Prepared {
            touch_key,
            secure,
            tool: identity.tool,
            client_id: identity.client_id,
            routed,
        }
    }

    /// The part of [`Core::start`] that reads and changes the core's state: the rate limit,
    /// then the refusals [`Core::prepare`] found, the breaker's admission and the exchange.
    /// The decisions and their order are those of `datapath.md` §2.
    pub fn admit(&mut self, prepared: Prepared, now: Instant) -> Start {
        let mut events = Vec::new();
        let Prepared {
            touch_key,
            secure,
            tool,
            client_id,
            routed,
        } = prepared;
        let reply = |mut reply: Reply, events: Vec<ExchangeEvent>| Start {
            action: StartAction::Reply({
                gate::apply_security_headers(&mut reply.headers, secure);
                reply
            }),
            touch_key: touch_key.clone(),
            events,
        };

        if let RateDecision::Limited { retry_after_secs } =
            self.limiter.check(tool, &client_id, now)
        {
            events.push(ExchangeEvent::Metric(MetricEvent::RateLimited));
            return reply(errors::rate_limited(retry_after_secs), events);
        }
        let r = match routed {
            Ok(r) => r,
            Err(refusal) => return reply(*refusal, events),
        };
        let Routed {
            method,
            path,
            request_id,
            provider_id,
            is_llm,
            not_allowed,
            stream,
            request,
            upstream_events,
            row,
            wall,
        } = *r;

        let mut block = None;
        if not_allowed {
            if !is_llm {
                return reply(errors::provider_not_allowed(), events);
            }
            block = Some(Block::ProviderNotAllowed);
        }

        let mut permit: Option<Permit> = None;
        if block.is_none() {
            match self.breakers.admit(&provider_id, now) {
                Ok(p) => permit = Some(p),
                Err(rejected) => {
                    if !is_llm {
                        events.push(ExchangeEvent::Metric(MetricEvent::BreakerRejected {
                            provider: provider_id.clone(),
                        }));
                        events.push(breaker_reject_log(&provider_id, rejected.retry_after_secs));
                        return reply(
                            errors::breaker_open(&provider_id, rejected.retry_after_secs),
                            events,
                        );
                    }
                    block = Some(Block::BreakerOpen {
                        retry_after_secs: rejected.retry_after_secs,
                    });
                }
            }
        }

        let (usage_injected, request) = match request {
            Some(r) => {
                events.extend(upstream_events);
                r
            }
            None => {
                if let Some(p) = permit.take() {
                    self.breakers.handle_outcome(p, OutcomeClass::Neutral, now);
                }
                if !is_llm {
                    return reply(errors::upstream_unbuildable(), events);
                }
                block = block.or(Some(Block::Unbuildable));
                (
                    false,
                    UpstreamRequest {
                        method,
                        url: String::new(),
                        headers: http::HeaderMap::new(),
                        body: Bytes::new(),
                    },
                )
            }
        };

        let exchange = Exchange::new(
            ExchangeInit {
                request_id,
                provider: provider_id,
                path,
                stream_requested: stream,
                request,
                usage_injected,
                row,
                block,
                permit,
                limits: self.limits.clone(),
                pricer: Arc::clone(&self.pricer),
                config: Arc::clone(&self.config),
                seed: self.rng.u64(..),
                started_wall: wall,
                secure,
            },
            now,
        );
        Start {
            action: StartAction::Exchange(Box::new(exchange)),
            touch_key,
            events,
        }
    }

    /// An exchange ended: its permit and how it counts for the breaker.
    pub fn handle_outcome(&mut self, permit: Permit, class: OutcomeClass, now: Instant) {
        self.breakers.handle_outcome(permit, class, now);
    }
}

/// Rows 6–9: cross-origin, proxy authentication, request content-encoding and the declared
/// body size. `Ok` carries the body limit for reading; a refusal carries the security
/// headers already. Reads only the configuration: no lock needed.
#[allow(clippy::result_large_err)]
pub fn check_proxy_head(
    config: &Config,
    head: &RequestHead,
    key: &KeyLookup,
) -> Result<u64, Reply> {
    let secure = gate::is_secure_request(&head.headers, false, config.trust_proxy_headers);
    refuse_proxy_head(config, head, key).map_err(|mut reply| {
        gate::apply_security_headers(&mut reply.headers, secure);
        reply
    })
}

#[allow(clippy::result_large_err)]
fn refuse_proxy_head(config: &Config, head: &RequestHead, key: &KeyLookup) -> Result<u64, Reply> {
    let required = config.proxy_require_api_key;
    gate::check_cross_origin(&head.headers, required)?;
    if required && !matches!(key, KeyLookup::Valid(_)) {
        return Err(errors::proxy_key_required());
    }
    if let Some(enc) = header_str(&head.headers, "content-encoding")
        && !enc.eq_ignore_ascii_case("identity")
    {
        return Err(errors::unsupported_content_encoding());
    }
    let limit = config.max_request_body_bytes;
    if let Some(len) = header_str(&head.headers, "content-length")
        && let Ok(len) = len.parse::<u64>()
        && len > limit
    {
        return Err(errors::body_too_large(limit));
    }
    Ok(limit)
}

/// The routing half of [`Core::prepare`]: the call as it will be made, or the refusal.
fn route_call(
    config: &Config,
    req: InboundRequest,
    inspection: identify::Inspection,
    identity: &identify::Identity,
    wall: UnixMillis,
) -> Result<Box<Routed>, Box<Reply>> {
    let head = &req.head;
    let resolved = config
        .providers
        .resolve(
            &head.path,
            inspection.model.as_deref(),
            inspection.selector.as_deref(),
        )
        .map_err(|unknown| Box::new(unknown.reply()))?;
    // Direct mode: without a router, a request only the router could serve is refused
    // before anything is logged or sent (`provider::direct`).
    if resolved.provider.upstream_base_url.is_empty() {
        return Err(Box::new(match resolved.provider.origin {
            ProviderOrigin::Synthesized => errors::no_route(&head.path),
            _ => errors::no_upstream(&resolved.provider.id),
        }));
    }
    let provider = Arc::clone(&resolved.provider);
    let provider_id = provider.id.clone();
    let is_llm = route::is_llm_call(&head.method, &head.path, inspection.model.as_deref());

    let (key_id, allowed, key_header) = match &req.key {
        KeyLookup::Valid(k) => {
            let header = auth::extract_credential(&head.headers).map(|c| match c.header {
                CredentialHeader::Authorization => ManagedKeyHeader::Authorization,
                CredentialHeader::XApiKey => ManagedKeyHeader::XApiKey,
            });
            (Some(k.id), k.allowed_providers.as_slice(), header)
        }
        _ => (None, &[][..], None),
    };
    let not_allowed = auth::check_provider_allowed(&head.path, allowed, &provider_id).is_err();

    let prepared_upstream = transform::prepare_upstream(&TransformInput {
        head,
        body: &req.body,
        provider: &provider,
        managed_key_header: key_header,
        settings: UpstreamSettings::from_config(config),
    });
    // The events of a built request, logged only if the call gets that far.
    let mut upstream_events = Vec::new();
    let request = match prepared_upstream {
        Ok(p) => {
            if p.skipped.is_some() {
                upstream_events.push(ExchangeEvent::Log(LogRecord {
                    level: Level::Warn,
                    event: "transform.body_skipped",
                    msg: transform::BodyTransformSkipped::MESSAGE,
                    fields: vec![
                        ("path", json!(head.path)),
                        ("request_id", json!(req.request_id)),
                        ("provider", json!(provider_id)),
                    ],
                }));
            }
            if p.usage_injected {
                upstream_events.push(ExchangeEvent::Log(LogRecord {
                    level: Level::Debug,
                    event: "usage.injected",
                    msg: "stream usage requested upstream",
                    fields: vec![
                        ("request_id", json!(req.request_id)),
                        ("provider", json!(provider_id)),
                    ],
                }));
            }
            Some((
                p.usage_injected,
                UpstreamRequest {
                    method: head.method.clone(),
                    url: p.url,
                    headers: p.headers,
                    body: p.body,
                },
            ))
        }
        Err(_) => None,
    };

    let row = is_llm.then(|| {
        let rule = detect_tool(&head.headers);
        let session_id = identify::session_id(&head.headers, rule);
        PreLogRow {
            request_id: req.request_id.clone(),
            provider: provider_id.clone(),
            model: inspection
                .model
                .clone()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| "unknown".to_owned()),
            tool: identity.tool.to_owned(),
            client_id: identity.client_id.clone(),
            agent: inspection.agent.clone(),
            user_agent: inspection.user_agent.clone(),
            source_ip: Some(inspection.source_ip.to_string()),
            msg_id: inspection.msg_id.clone(),
            path: head.path.clone(),
            streamed: inspection.stream,
            proxy_api_key_id: key_id,
            started_at: wall.to_iso(),
            meta_json: PreLogRow::meta(
                head.method.as_str(),
                inspection.originator.as_deref(),
                session_id.as_deref(),
            ),
        }
    });
    Ok(Box::new(Routed {
        method: head.method.clone(),
        path: head.path.clone(),
        request_id: req.request_id,
        provider_id,
        is_llm,
        not_allowed,
        stream: inspection.stream,
        request,
        upstream_events,
        row,
        wall,
    }))
}

fn breaker_reject_log(provider: &str, retry_after: u64) -> ExchangeEvent {
    ExchangeEvent::Log(LogRecord {
        level: Level::Warn,
        event: "upstream.breaker_reject",
        msg: "circuit breaker open",
        fields: vec![
            ("providerId", json!(provider)),
            ("retryAfterSec", json!(retry_after)),
        ],
    })
}
