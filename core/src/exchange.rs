//! The per-request state machine (`style.md` §3): one proxied request from its admission to
//! its finalized row and the last byte the client receives.
//!
//! # Driving an exchange
//!
//! The shell feeds inputs with `handle_*` and, after **every** input, drains the outputs in
//! this order until each returns `None`:
//!
//! 1. [`Exchange::poll_storage`] — writes are submitted before bytes move;
//! 2. [`Exchange::poll_upstream`] — a cancel happens before the client is told;
//! 3. [`Exchange::poll_downstream`] — bytes and heads for the client;
//! 4. [`Exchange::poll_event`] — breaker outcome, logs, metrics, `Finished`;
//!
//! then reads [`Exchange::poll_timeout`] and sleeps until that deadline or the next input.
//! Inputs carry a non-decreasing `now`; an older one is clamped. `handle_timeout` may be
//! called early, late or twice.
//!
//! # The durability promise
//!
//! For an LLM call the upstream request is released only after `handle_prelog(Ok(_))`, and
//! the end of the response (a plain body, the held terminal event of a stream, the end of
//! the body) is released only after `handle_finalized`, so a client that saw a complete
//! response always has its exact row (`control.md` §3.3, D1/D2).
//!
//! ```no_run
//! # use agent_cli_proxy_core::exchange::*;
//! # fn drive(ex: &mut Exchange) {
//! loop {
//!     while let Some(op) = ex.poll_storage() { /* submit to the writer thread */ }
//!     while let Some(op) = ex.poll_upstream() { /* send or cancel the upstream request */ }
//!     while let Some(out) = ex.poll_downstream() { /* write to the client socket */ }
//!     while let Some(ev) = ex.poll_event() {
//!         if matches!(ev, ExchangeEvent::Finished) { return; }
//!     }
//!     let _deadline = ex.poll_timeout();
//!     // wait for the first of: upstream chunk, deadline, storage reply, client gone…
//!     # return;
//! }
//! # }
//! ```

pub mod relay;
mod row;
mod timer;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::breaker::{OutcomeClass, Permit};
use crate::config::Config;
use crate::errors::{self, NetworkErrorName, TimeoutKind};
use crate::head::{Reply, ResponseHead, header_str};
use crate::outcome::{Outcome, snippet};
use crate::pricing::Pricer;
use crate::retry::{self, Failure};
use crate::route::LLM_PATHS;
use crate::time::{Instant, UnixMillis};
use crate::usage::{self, TokenColumns, UsageRecord};

pub use row::{FinalizeRow, PreLogRow};
pub use timer::ExchangeTimer;

use relay::{BodyKind, Relay, RelayConfig, RelayEvent};
use timer::Timers;

/// Largest plain LLM response body the proxy buffers (`datapath.md` §13.3): 50 MiB.
pub const MAX_PLAIN_LLM_BODY: u64 = 52_428_800;
/// Largest 503 body read to look for CLIProxyAPI's `short-circuit` code (§12.2).
pub const SHORT_CIRCUIT_PROBE_BYTES: usize = 65_536;

/// Per-exchange limits taken from the configuration.
#[derive(Debug, Clone)]
pub struct ExchangeLimits {
    /// `UPSTREAM_CONNECT_TIMEOUT_MS` (attempt start → head; 0 disables).
    pub connect_timeout_ms: u64,
    /// `UPSTREAM_TIMEOUT_MS` (attempt start → end of plain body / first stream byte).
    pub total_timeout_ms: u64,
    /// `UPSTREAM_STREAM_FIRST_BYTE_TIMEOUT_MS` (replaces total for streamed `/v1/messages`).
    pub first_byte_timeout_ms: u64,
    /// `UPSTREAM_MAX_RETRIES`.
    pub max_retries: u32,
    /// SSE/NDJSON line cap in bytes.
    pub line_cap: usize,
}

impl Default for ExchangeLimits {
    fn default() -> Self {
        ExchangeLimits {
            connect_timeout_ms: 0,
            total_timeout_ms: 0,
            first_byte_timeout_ms: 0,
            max_retries: 2,
            line_cap: 1_048_576,
        }
    }
}

/// The upstream request, framed afresh by the shell.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL (base + path + the client's query string).
    pub url: String,
    /// Headers after the rules of `datapath.md` §10 (no `content-length`: the shell frames).
    pub headers: HeaderMap,
    /// Body bytes; shared with the exchange until they can no longer be re-sent.
    pub body: Bytes,
}

/// Why an LLM call is refused after its pre-log (it still gets a finalized row).
#[derive(Debug, Clone)]
pub enum Block {
    /// O14: the managed key may not use the resolved provider.
    ProviderNotAllowed,
    /// O9: the provider's breaker is open.
    BreakerOpen {
        /// `retry-after` seconds.
        retry_after_secs: u64,
    },
    /// O19: a header value could not be built.
    Unbuildable,
}

/// Everything an exchange needs, decided by [`crate::proxy::Core::start`].
pub struct ExchangeInit {
    /// Fresh UUID v4 from the shell (never sent to the client or upstream).
    pub request_id: String,
    /// Resolved provider id (row `provider`, breaker key).
    pub provider: String,
    /// Request path (no query).
    pub path: String,
    /// The request's `stream` flag.
    pub stream_requested: bool,
    /// The prepared upstream request.
    pub request: UpstreamRequest,
    /// The proxy injected `stream_options.include_usage` (remove the usage chunk).
    pub usage_injected: bool,
    /// The pre-log row of an LLM call; `None` for non-LLM calls (no row at all).
    pub row: Option<PreLogRow>,
    /// A refusal decided at admission.
    pub block: Option<Block>,
    /// The breaker permit, when admitted.
    pub permit: Option<Permit>,
    /// Timeouts, retries, line cap.
    pub limits: ExchangeLimits,
    /// Prices at admission time.
    pub pricer: Arc<Pricer>,
    /// The configuration (provider list for `actual_provider`).
    pub config: Arc<Config>,
    /// Seed of the exchange's jitter generator.
    pub seed: u64,
    /// Wall time of the request's entry (row `started_at`).
    pub started_wall: UnixMillis,
}

/// A storage operation for the writer thread.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageOp {
    /// Insert the pending row; awaited: reply with [`Exchange::handle_prelog`].
    PreLog(Box<PreLogRow>),
    /// Update the pending row's token columns; fire-and-forget.
    CheckpointUsage {
        /// Row id.
        row_id: i64,
        /// Token columns seen so far.
        columns: TokenColumns,
    },
    /// Finalize the row; awaited: reply with [`Exchange::handle_finalized`].
    Finalize(Box<FinalizeRow>),
    /// The fallback update after a failed finalize (O16); awaited, reply with
    /// [`Exchange::handle_finalized`].
    FinalizeFallback {
        /// Row id.
        row_id: i64,
        /// `error_message` (`finalize_failed: <message>`).
        message: String,
        /// `finalized_at`, ISO-8601 UTC.
        at: String,
    },
}

/// What the shell does with the upstream connection.
#[derive(Debug, Clone)]
pub enum UpstreamOp {
    /// Start attempt `attempt` (0-based) of this request.
    Send {
        /// Attempt number.
        attempt: u32,
        /// The request.
        request: UpstreamRequest,
    },
    /// Close the current attempt's connection and stop reading it.
    Cancel,
}

/// What the shell writes to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Downstream {
    /// A complete response (errors and refusals).
    Reply(Reply),
    /// The relayed response head; `content_length` is set when the body length is known
    /// and unchanged, otherwise the shell frames the body as it goes.
    Head {
        /// Status.
        status: StatusCode,
        /// Headers after the response filter (`datapath.md` §13.2).
        headers: HeaderMap,
        /// Known body length.
        content_length: Option<u64>,
    },
    /// Body bytes.
    Body(Bytes),
    /// The body is complete.
    End,
    /// Cut the response: close the connection without the end-of-body marker.
    Abort,
}

/// Failures of the upstream connection reported by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The connection failed; `written` tells whether any request byte had been written.
    Connect {
        /// Kind of failure.
        name: NetworkErrorName,
        /// Some request bytes were written.
        written: bool,
        /// Error text (no credentials).
        message: String,
    },
    /// Reading the response failed after its head (reset, truncated chunk…).
    Read {
        /// Error text, e.g. `upstream connection reset`.
        message: String,
    },
}

/// Why the storage layer failed an awaited command (a copyable summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFailure {
    /// Error text.
    pub message: String,
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

/// A structured log record (`datapath.md` §17); the shell's logger formats it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Severity.
    pub level: Level,
    /// Event name, `component.event`.
    pub event: &'static str,
    /// Human message.
    pub msg: &'static str,
    /// Extra fields (never secrets or bodies).
    pub fields: Vec<(&'static str, Value)>,
}

/// A metric update for the shell's registry (`datapath.md` §16).
#[derive(Debug, Clone, PartialEq)]
pub enum MetricEvent {
    /// One `agent_cli_proxy_proxy_request_duration_ms` sample.
    RequestDuration {
        /// `lifecycle_status` label.
        lifecycle_status: &'static str,
        /// `provider` label.
        provider: String,
        /// `status` label.
        status: u16,
        /// `streamed` label.
        streamed: bool,
        /// Duration in ms.
        ms: u64,
    },
    /// A retry was scheduled.
    Retry {
        /// Provider label.
        provider: String,
    },
    /// The breaker rejected this exchange.
    BreakerRejected {
        /// Provider label.
        provider: String,
    },
    /// A row was finalized with `usage_incomplete = 1`.
    UsageIncomplete,
    /// An awaited storage command failed (`op` = `prelog` or `finalize`).
    StorageFailure {
        /// Operation label.
        op: &'static str,
    },
    /// The exchange started relaying a body (active streams + 1).
    StreamStarted,
    /// The exchange stopped relaying a body (active streams − 1).
    StreamEnded,
    /// A request was refused by the per-client rate limiter.
    RateLimited,
}

/// Events for the shell: breaker outcome, logs, metrics, and the end of the exchange.
#[derive(Debug)]
pub enum ExchangeEvent {
    /// Hand this to `Core::handle_outcome` (the breaker slot is released there).
    Outcome {
        /// The permit taken at admission.
        permit: Permit,
        /// How the exchange counts for the breaker.
        class: OutcomeClass,
    },
    /// A log record.
    Log(LogRecord),
    /// A metric update.
    Metric(MetricEvent),
    /// Nothing more will be emitted; the shell may drop the exchange.
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowState {
    /// Non-LLM call: no row.
    None,
    /// Pre-log sent, waiting for its commit.
    PreLogging,
    /// Row committed as pending.
    Pending(i64),
    /// Finalize (or its fallback) sent, waiting for the reply.
    Finalizing { row_id: i64, fallback: bool },
    /// Row finalized (or given up on).
    Done,
}

enum Upstream {
    /// Not started (waiting for the pre-log) or finished.
    Idle,
    /// Attempt sent, no head yet.
    AwaitHead { attempt: u32, started: Instant },
    /// Waiting for the backoff timer before attempt `attempt`.
    Backoff { attempt: u32 },
    /// A retryable 503 of an idempotent request: its body decides (short-circuit or not).
    Probe503 {
        attempt: u32,
        head: ResponseHead,
        body: BytesMut,
    },
    /// Reading an SSE/NDJSON body of an LLM call through the relay.
    Relay { relay: Box<Relay> },
    /// Reading a plain LLM body into memory.
    Buffer { body: BytesMut },
    /// Streaming a body through untouched (non-LLM calls).
    Pass,
    /// The upstream is done (ended, failed or cancelled).
    Done,
}

/// One proxied request. See the module docs for the driving contract.
pub struct Exchange {
    request_id: String,
    provider: String,
    path: String,
    method: Method,
    stream_requested: bool,
    usage_injected: bool,
    limits: ExchangeLimits,
    pricer: Arc<Pricer>,
    config: Arc<Config>,
    rng: fastrand::Rng,
    started: Instant,
    started_wall: UnixMillis,
    now: Instant,

    request: Option<UpstreamRequest>,
    block: Option<Block>,
    permit: Option<Permit>,
    prelog: Option<PreLogRow>,
    row: RowState,
    upstream: Upstream,
    attempts: u32,
    timers: Timers,

    /// The relayed response head, until the first body bytes release it (streams) or the
    /// finalize does (plain LLM bodies).
    pending_head: Option<ResponseHead>,
    head_sent: bool,
    body_kind: BodyKind,
    response_status: Option<u16>,
    short_circuit: bool,
    streaming_metric: bool,

    outcome: Option<Outcome>,
    usage: Option<UsageRecord>,
    actual_model: Option<String>,
    usage_incomplete: bool,
    checkpointed: bool,
    saw_terminal: bool,
    /// What the client gets once the row is committed.
    held: VecDeque<Downstream>,
    /// Downstream output has ended (End, Abort or a Reply); nothing more is written.
    down_done: bool,
    client_gone: bool,
    finished: bool,

    storage_out: VecDeque<StorageOp>,
    upstream_out: VecDeque<UpstreamOp>,
    down_out: VecDeque<Downstream>,
    events: VecDeque<ExchangeEvent>,
}

impl Exchange {
    /// Creates the exchange and queues its first operations (the pre-log of an LLM call,
    /// or the first upstream attempt of any other call).
    pub fn new(init: ExchangeInit, now: Instant) -> Self {
        let is_llm = init.row.is_some();
        let mut ex = Exchange {
            request_id: init.request_id,
            provider: init.provider,
            path: init.path,
            method: init.request.method.clone(),
            stream_requested: init.stream_requested,
            usage_injected: init.usage_injected,
            limits: init.limits,
            pricer: init.pricer,
            config: init.config,
            rng: fastrand::Rng::with_seed(init.seed),
            started: now,
            started_wall: init.started_wall,
            now,
            request: Some(init.request),
            block: init.block,
            permit: init.permit,
            prelog: init.row.clone(),
            row: if is_llm {
                RowState::PreLogging
            } else {
                RowState::None
            },
            upstream: Upstream::Idle,
            attempts: 0,
            timers: Timers::default(),
            pending_head: None,
            head_sent: false,
            body_kind: BodyKind::Plain,
            response_status: None,
            short_circuit: false,
            streaming_metric: false,
            outcome: None,
            usage: None,
            actual_model: None,
            usage_incomplete: false,
            checkpointed: false,
            saw_terminal: false,
            held: VecDeque::new(),
            down_done: false,
            client_gone: false,
            finished: false,
            storage_out: VecDeque::new(),
            upstream_out: VecDeque::new(),
            down_out: VecDeque::new(),
            events: VecDeque::new(),
        };
        match init.row {
            Some(row) => ex.storage_out.push_back(StorageOp::PreLog(Box::new(row))),
            None => ex.after_admission(),
        }
        ex
    }

    // ----- inputs -----

    /// The pre-log insert committed (`Ok(row id)`) or failed.
    pub fn handle_prelog(&mut self, res: Result<i64, StorageFailure>, now: Instant) {
        self.tick(now);
        if self.row != RowState::PreLogging {
            return;
        }
        match res {
            Ok(row_id) => {
                self.row = RowState::Pending(row_id);
                self.log(
                    Level::Info,
                    "lifecycle.pre_logged",
                    "request pre-logged",
                    self.prelog_fields(row_id),
                );
                if self.client_gone {
                    self.conclude(Outcome::ClientAborted { after_head: false }, Vec::new());
                } else {
                    self.after_admission();
                }
            }
            Err(failure) => {
                self.row = RowState::Done;
                self.metric(MetricEvent::StorageFailure { op: "prelog" });
                self.log(
                    Level::Error,
                    "lifecycle.prelog_failed",
                    "pre-log failed",
                    vec![
                        ("request_id", json!(self.request_id)),
                        ("path", json!(self.path)),
                        ("err", json!(failure.message)),
                    ],
                );
                self.request = None;
                self.release_permit(OutcomeClass::Neutral);
                self.send_final(Downstream::Reply(errors::accounting_unavailable()));
                self.maybe_finish();
            }
        }
    }

    /// Every request byte has been written upstream: a `POST`/`PATCH` body can no longer be
    /// re-sent, so it is dropped here (`datapath.md` §5, RQ-L5).
    pub fn handle_upstream_written(&mut self, now: Instant) {
        self.tick(now);
        if !retry::is_idempotent(&self.method) {
            self.request = None;
        }
    }

    /// The upstream response head arrived.
    pub fn handle_upstream_head(&mut self, head: ResponseHead, now: Instant) {
        self.tick(now);
        let Upstream::AwaitHead { attempt, started } = self.upstream else {
            return;
        };
        self.timers.header = None;
        let status = head.status.as_u16();
        self.log(
            Level::Info,
            "passthrough.upstream_headers",
            "upstream headers received",
            vec![
                ("request_id", json!(self.request_id)),
                ("path", json!(self.path)),
                ("provider", json!(self.provider)),
                ("status", json!(status)),
                ("latency_ms", json!(now.millis_since(started))),
            ],
        );
        if head.status.is_redirection() && status != 304 {
            self.cancel_upstream();
            self.conclude(
                Outcome::Redirect { status },
                vec![Downstream::Reply(errors::redirect_not_followed())],
            );
            return;
        }
        let failure = Failure::Status {
            status,
            short_circuit: false,
        };
        if retry::should_retry(&self.method, failure, attempt, self.limits.max_retries) {
            if status == 503 {
                self.upstream = Upstream::Probe503 {
                    attempt,
                    head,
                    body: BytesMut::new(),
                };
            } else {
                let delay = self.backoff_after(Some(&head.headers), attempt);
                self.cancel_upstream();
                self.log_attempt_error("5xx", Some(status), attempt, true, None);
                self.schedule_retry(attempt, delay);
            }
            return;
        }
        self.accept_head(head);
    }

    /// A chunk of the upstream response body.
    pub fn handle_upstream_body(&mut self, chunk: Bytes, now: Instant) {
        self.tick(now);
        match &mut self.upstream {
            Upstream::Probe503 { body, .. } => {
                let room = SHORT_CIRCUIT_PROBE_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                let overflow = chunk.slice(chunk.len().min(room)..);
                if body.len() >= SHORT_CIRCUIT_PROBE_BYTES {
                    self.decide_probe(Some(overflow), false);
                }
            }
            Upstream::Relay { .. } => self.relay_chunk(chunk),
            Upstream::Buffer { body } => {
                let len = body.len() as u64 + chunk.len() as u64;
                if len > MAX_PLAIN_LLM_BODY {
                    self.too_large(None);
                } else {
                    body.extend_from_slice(&chunk);
                }
            }
            Upstream::Pass => {
                self.timers.total = None;
                self.first_body_bytes();
                self.send(Downstream::Body(chunk));
            }
            Upstream::Idle
            | Upstream::AwaitHead { .. }
            | Upstream::Backoff { .. }
            | Upstream::Done => {}
        }
    }

    /// The upstream response body ended cleanly.
    pub fn handle_upstream_end(&mut self, now: Instant) {
        self.tick(now);
        match std::mem::replace(&mut self.upstream, Upstream::Done) {
            Upstream::Probe503 {
                attempt,
                head,
                body,
            } => {
                self.upstream = Upstream::Probe503 {
                    attempt,
                    head,
                    body,
                };
                self.decide_probe(None, true);
            }
            Upstream::Relay { mut relay } => {
                let out = relay.finish();
                self.relay_output(&mut relay, out.release);
                self.absorb_relay_usage(&relay);
                let status = self.response_status.unwrap_or(200);
                self.flush_pending_head();
                if self.outcome.is_none() {
                    self.conclude_stream(status, vec![Downstream::End]);
                } else {
                    self.send_after_commit(Downstream::End);
                }
                self.stream_ended();
            }
            Upstream::Buffer { body } => self.finish_plain(body.freeze()),
            Upstream::Pass => {
                self.first_body_bytes();
                self.send(Downstream::End);
                self.stream_ended();
                let status = self.response_status.unwrap_or(200);
                self.conclude(Outcome::Completed { status }, Vec::new());
            }
            other => self.upstream = other,
        }
        self.timers.total = None;
        self.maybe_finish();
    }

    /// The upstream attempt failed.
    pub fn handle_upstream_error(&mut self, failure: UpstreamFailure, now: Instant) {
        self.tick(now);
        match (&self.upstream, failure) {
            (
                Upstream::AwaitHead { attempt, .. },
                UpstreamFailure::Connect {
                    name,
                    written,
                    message,
                },
            ) => {
                let attempt = *attempt;
                self.timers.clear_attempt();
                self.upstream = Upstream::Idle;
                let failure = Failure::BeforeHead { written };
                let retry =
                    retry::should_retry(&self.method, failure, attempt, self.limits.max_retries);
                if retry && self.request.is_some() {
                    let delay = self.backoff_after(None, attempt);
                    self.log_attempt_error("network", None, attempt, true, None);
                    self.schedule_retry(attempt, delay);
                    return;
                }
                self.log_attempt_error("network", None, attempt, false, None);
                let retryable = retry::retryable_flag(&self.method, written);
                let reply = errors::network_error(&self.provider, retryable, name, &message);
                let body_snippet = snippet(&reply.body);
                self.conclude(
                    Outcome::ConnectFailed { name, body_snippet },
                    vec![Downstream::Reply(reply)],
                );
            }
            (Upstream::AwaitHead { attempt, .. }, UpstreamFailure::Read { message }) => {
                // A failure after the request was written but before the head: not retried.
                let attempt = *attempt;
                self.timers.clear_attempt();
                self.upstream = Upstream::Done;
                self.log_attempt_error("network", None, attempt, false, None);
                let retryable = retry::retryable_flag(&self.method, true);
                let reply = errors::network_error(
                    &self.provider,
                    retryable,
                    NetworkErrorName::Reset,
                    &message,
                );
                let body_snippet = snippet(&reply.body);
                self.conclude(
                    Outcome::ConnectFailed {
                        name: NetworkErrorName::Reset,
                        body_snippet,
                    },
                    vec![Downstream::Reply(reply)],
                );
            }
            (Upstream::Idle | Upstream::Backoff { .. } | Upstream::Done, _) => {}
            (_, failure) => {
                let message = match failure {
                    UpstreamFailure::Connect { message, .. }
                    | UpstreamFailure::Read { message } => message,
                };
                self.upstream_broke_after_head(message);
            }
        }
        self.maybe_finish();
    }

    /// The row change sent last (finalize or its fallback) committed or failed.
    pub fn handle_finalized(&mut self, res: Result<(), StorageFailure>, now: Instant) {
        self.tick(now);
        let RowState::Finalizing { row_id, fallback } = self.row else {
            return;
        };
        match res {
            Ok(()) => {
                if fallback {
                    self.log(
                        Level::Error,
                        "lifecycle.finalize_failed",
                        "finalize failed; fallback update applied",
                        vec![
                            ("request_id", json!(self.request_id)),
                            ("row_id", json!(row_id)),
                        ],
                    );
                }
                self.row = RowState::Done;
                self.release_held();
            }
            Err(failure) if !fallback => {
                self.metric(MetricEvent::StorageFailure { op: "finalize" });
                self.row = RowState::Finalizing {
                    row_id,
                    fallback: true,
                };
                self.storage_out.push_back(StorageOp::FinalizeFallback {
                    row_id,
                    message: format!("finalize_failed: {}", failure.message),
                    at: self.wall_now().to_iso(),
                });
            }
            Err(failure) => {
                self.log(
                    Level::Error,
                    "lifecycle.finalize_lost",
                    "finalize and its fallback failed; boot recovery will settle the row",
                    vec![
                        ("request_id", json!(self.request_id)),
                        ("row_id", json!(row_id)),
                        ("err", json!(failure.message)),
                    ],
                );
                self.row = RowState::Done;
                self.release_held();
            }
        }
        self.maybe_finish();
    }

    /// The client connection closed (or its read side reached EOF while a response was
    /// pending). Outcome O11, unless the exchange already ended.
    pub fn handle_client_gone(&mut self, now: Instant) {
        self.tick(now);
        if self.client_gone {
            return;
        }
        self.client_gone = true;
        self.held.clear();
        self.down_done = true;
        if self.outcome.is_none() && self.row != RowState::PreLogging {
            self.cancel_upstream();
            self.stream_ended();
            let after_head = self.head_sent;
            self.conclude(Outcome::ClientAborted { after_head }, Vec::new());
        }
        self.maybe_finish();
    }

    /// The client stopped accepting bytes for the write-stall limit (outcome O12).
    pub fn handle_client_stalled(&mut self, now: Instant) {
        self.tick(now);
        if self.outcome.is_none() && self.row != RowState::PreLogging {
            self.cancel_upstream();
            self.stream_ended();
            self.conclude(Outcome::ClientStalled, Vec::new());
        }
        self.client_gone = true;
        self.held.clear();
        self.send_final(Downstream::Abort);
        self.maybe_finish();
    }

    /// Shutdown aborts this exchange (outcome O13).
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.tick(now);
        if self.outcome.is_none() && self.row != RowState::PreLogging {
            self.cancel_upstream();
            self.stream_ended();
            self.conclude(Outcome::Shutdown, vec![Downstream::Abort]);
        }
        self.maybe_finish();
    }

    /// A deadline from [`Exchange::poll_timeout`] may have passed. Safe to call at any time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let now = self.now;
        if self.timers.backoff.is_some_and(|t| t <= now) {
            self.timers.backoff = None;
            if let Upstream::Backoff { attempt } = self.upstream {
                self.send_attempt(attempt);
            }
        }
        let header_fired = self.timers.header.is_some_and(|t| t <= now);
        let total_fired = self.timers.total.is_some_and(|t| t <= now);
        if !(header_fired || total_fired) {
            return;
        }
        self.timers.clear_attempt();
        let kind = if header_fired {
            TimeoutKind::Connect
        } else {
            TimeoutKind::Total
        };
        match self.upstream {
            Upstream::AwaitHead { attempt, .. } => {
                self.cancel_upstream();
                self.log_attempt_error("aborted-due-to-timeout", None, attempt, false, Some(kind));
                let retryable = retry::retryable_flag(&self.method, true);
                let reply = errors::upstream_timeout_before_head(
                    &self.provider,
                    retryable,
                    kind,
                    &format!("upstream {} timeout", kind.as_str()),
                );
                let body_snippet = snippet(&reply.body);
                self.conclude(
                    Outcome::TimeoutBeforeHead { kind, body_snippet },
                    vec![Downstream::Reply(reply)],
                );
            }
            Upstream::Relay { .. }
            | Upstream::Buffer { .. }
            | Upstream::Pass
            | Upstream::Probe503 { .. } => {
                self.cancel_upstream();
                self.stream_ended();
                if self.head_sent {
                    self.conclude(
                        Outcome::StreamError {
                            status: self.response_status.unwrap_or(502),
                            message: "upstream timeout".to_owned(),
                        },
                        vec![Downstream::Abort],
                    );
                } else {
                    self.pending_head = None;
                    self.conclude(
                        Outcome::TimeoutAfterHead,
                        vec![Downstream::Reply(errors::upstream_timeout_after_head())],
                    );
                }
            }
            Upstream::Idle | Upstream::Backoff { .. } | Upstream::Done => {}
        }
        self.maybe_finish();
    }

    // ----- outputs -----

    /// Next storage operation to submit.
    #[must_use]
    pub fn poll_storage(&mut self) -> Option<StorageOp> {
        self.storage_out.pop_front()
    }

    /// Next upstream operation to perform.
    #[must_use]
    pub fn poll_upstream(&mut self) -> Option<UpstreamOp> {
        self.upstream_out.pop_front()
    }

    /// Next output for the client.
    #[must_use]
    pub fn poll_downstream(&mut self) -> Option<Downstream> {
        self.down_out.pop_front()
    }

    /// Next event (breaker outcome, log, metric, `Finished`).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ExchangeEvent> {
        self.events.pop_front()
    }

    /// The next deadline and what it is for.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<(Instant, ExchangeTimer)> {
        self.timers.next()
    }

    // ----- getters -----

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// True once `Finished` has been emitted.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// True while the exchange wants upstream body chunks (the shell reads only then, and
    /// only while the client accepts bytes: the relay is pull-driven).
    pub fn wants_upstream_body(&self) -> bool {
        matches!(
            self.upstream,
            Upstream::Probe503 { .. }
                | Upstream::Relay { .. }
                | Upstream::Buffer { .. }
                | Upstream::Pass
        )
    }

    // ----- internals: admission and attempts -----

    fn after_admission(&mut self) {
        match self.block.take() {
            Some(Block::ProviderNotAllowed) => {
                self.request = None;
                self.conclude(
                    Outcome::ProviderNotAllowed,
                    vec![Downstream::Reply(errors::provider_not_allowed())],
                );
            }
            Some(Block::BreakerOpen { retry_after_secs }) => {
                self.request = None;
                self.metric(MetricEvent::BreakerRejected {
                    provider: self.provider.clone(),
                });
                self.log(
                    Level::Warn,
                    "upstream.breaker_reject",
                    "circuit breaker open",
                    vec![
                        ("providerId", json!(self.provider)),
                        ("retryAfterSec", json!(retry_after_secs)),
                    ],
                );
                let reply = errors::breaker_open(&self.provider, retry_after_secs);
                let body_snippet = snippet(&reply.body);
                self.conclude(
                    Outcome::BreakerOpen { body_snippet },
                    vec![Downstream::Reply(reply)],
                );
            }
            Some(Block::Unbuildable) => {
                self.request = None;
                self.conclude(
                    Outcome::Unbuildable,
                    vec![Downstream::Reply(errors::upstream_unbuildable())],
                );
            }
            None => self.send_attempt(0),
        }
        self.maybe_finish();
    }

    fn send_attempt(&mut self, attempt: u32) {
        let Some(request) = self.request.clone() else {
            // Cannot happen: retries only occur while the body is still kept.
            self.conclude(
                Outcome::Internal,
                vec![Downstream::Reply(errors::internal_error())],
            );
            return;
        };
        self.attempts = attempt + 1;
        let now = self.now;
        self.timers
            .arm_attempt(now, &self.limits, self.first_byte_applies());
        self.upstream = Upstream::AwaitHead {
            attempt,
            started: now,
        };
        self.upstream_out
            .push_back(UpstreamOp::Send { attempt, request });
    }

    fn first_byte_applies(&self) -> bool {
        self.path == "/v1/messages" && self.stream_requested
    }

    fn backoff_after(&mut self, headers: Option<&HeaderMap>, attempt: u32) -> u64 {
        let wall = self.wall_now();
        let retry_after = headers
            .and_then(|h| header_str(h, "retry-after"))
            .and_then(|v| retry::parse_retry_after(v, wall));
        retry::backoff_ms(attempt, retry_after, &mut self.rng)
    }

    fn schedule_retry(&mut self, attempt: u32, delay_ms: u64) {
        self.metric(MetricEvent::Retry {
            provider: self.provider.clone(),
        });
        self.upstream = Upstream::Backoff {
            attempt: attempt + 1,
        };
        self.timers.backoff = Some(self.now.plus_millis(delay_ms));
    }

    fn decide_probe(&mut self, overflow: Option<Bytes>, ended: bool) {
        let Upstream::Probe503 {
            attempt,
            head,
            body,
        } = std::mem::replace(&mut self.upstream, Upstream::Idle)
        else {
            return;
        };
        let body = body.freeze();
        if retry::is_short_circuit_body(&body) {
            self.short_circuit = true;
            self.log(
                Level::Warn,
                "upstream.passthrough_short_circuit",
                "upstream short-circuit relayed",
                vec![
                    ("providerId", json!(self.provider)),
                    ("attempt", json!(attempt)),
                ],
            );
            self.accept_head(head);
            if !body.is_empty() {
                self.handle_upstream_body(body, self.now);
            }
            if let Some(rest) = overflow.filter(|b| !b.is_empty()) {
                self.handle_upstream_body(rest, self.now);
            }
            if ended {
                self.handle_upstream_end(self.now);
            }
        } else {
            let delay = self.backoff_after(Some(&head.headers), attempt);
            self.cancel_upstream();
            self.log_attempt_error("5xx", Some(503), attempt, true, None);
            self.schedule_retry(attempt, delay);
        }
    }

    /// The head is final: choose how the body is relayed.
    fn accept_head(&mut self, head: ResponseHead) {
        // An idempotent request's body can be dropped once a head is accepted (§5).
        self.request = None;
        let status = head.status.as_u16();
        self.response_status = Some(status);
        let content_type = header_str(&head.headers, "content-type").map(str::to_owned);
        self.body_kind = BodyKind::from_content_type(content_type.as_deref());
        let is_llm = self.prelog.is_some();
        match (self.body_kind, is_llm) {
            (BodyKind::Sse | BodyKind::Ndjson, true) => {
                let remove = self.usage_injected && self.body_kind == BodyKind::Sse;
                let relay = Relay::new(
                    self.body_kind,
                    RelayConfig {
                        line_cap: self.limits.line_cap,
                        remove_usage_chunk: remove,
                    },
                );
                self.pending_head = Some(head);
                self.upstream = Upstream::Relay {
                    relay: Box::new(relay),
                };
                self.stream_started();
            }
            (BodyKind::Sse | BodyKind::Ndjson, false) => {
                self.pending_head = Some(head);
                self.upstream = Upstream::Pass;
                self.stream_started();
            }
            (BodyKind::Plain, true) => {
                let declared =
                    header_str(&head.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
                if let Some(len) = declared.filter(|l| *l > MAX_PLAIN_LLM_BODY) {
                    self.too_large(Some(len));
                    return;
                }
                self.pending_head = Some(head);
                self.upstream = Upstream::Buffer {
                    body: BytesMut::new(),
                };
            }
            (BodyKind::Plain, false) => {
                // Non-LLM plain bodies stream through at once, no size cap, no parsing.
                self.timers.total = None;
                self.pending_head = Some(head);
                self.flush_pending_head();
                self.upstream = Upstream::Pass;
            }
        }
    }

    fn too_large(&mut self, content_length: Option<u64>) {
        let mut fields = vec![("request_id", json!(self.request_id))];
        if let Some(len) = content_length {
            fields.push(("content_length", json!(len)));
        }
        fields.push(("max_bytes", json!(MAX_PLAIN_LLM_BODY)));
        self.log(
            Level::Warn,
            "passthrough.response_body_too_large",
            "upstream response body too large",
            fields,
        );
        self.pending_head = None;
        self.cancel_upstream();
        self.conclude(
            Outcome::ResponseTooLarge,
            vec![Downstream::Reply(errors::response_too_large())],
        );
    }

    fn relay_chunk(&mut self, chunk: Bytes) {
        let Upstream::Relay { mut relay } = std::mem::replace(&mut self.upstream, Upstream::Done)
        else {
            return;
        };
        if !chunk.is_empty() {
            // The first body byte ends the total/first-byte timer of a stream (§12.1).
            self.timers.total = None;
        }
        let out = relay.push(chunk);
        self.relay_output(&mut relay, out.release);
        self.absorb_relay_usage(&relay);
        if self.outcome.is_none() && relay.terminal_complete() {
            let status = self.response_status.unwrap_or(200);
            self.conclude_stream(status, Vec::new());
        }
        if matches!(self.upstream, Upstream::Done) && self.outcome_keeps_reading() {
            self.upstream = Upstream::Relay { relay };
        }
    }

    /// After the terminal event the rest of the stream is still relayed; after an abort
    /// (client gone, shutdown) the upstream was cancelled and stays done.
    fn outcome_keeps_reading(&self) -> bool {
        !self.client_gone
            && matches!(
                self.outcome,
                None | Some(Outcome::Completed { .. }) | Some(Outcome::UpstreamErrorStream { .. })
            )
    }

    fn relay_output(&mut self, relay: &mut Relay, release: Vec<Bytes>) {
        while let Some(event) = relay.poll_event() {
            match event {
                RelayEvent::LineTooLong { length } => {
                    self.usage_incomplete = true;
                    self.log(
                        Level::Warn,
                        "passthrough.sse_line_too_long",
                        "stream line over the cap forwarded unparsed",
                        vec![
                            ("request_id", json!(self.request_id)),
                            ("length", json!(length)),
                        ],
                    );
                }
                RelayEvent::EventTooLong { length } => {
                    self.usage_incomplete = true;
                    self.log(
                        Level::Warn,
                        "passthrough.sse_line_too_long",
                        "stream event over the cap forwarded unparsed",
                        vec![
                            ("request_id", json!(self.request_id)),
                            ("length", json!(length)),
                        ],
                    );
                }
                RelayEvent::FirstUsage { record } => self.checkpoint(record),
            }
        }
        let mut any = false;
        for bytes in release.into_iter().filter(|b| !b.is_empty()) {
            if !any {
                self.first_body_bytes();
                any = true;
            }
            self.send_after_commit_if_held(Downstream::Body(bytes));
        }
    }

    fn checkpoint(&mut self, record: UsageRecord) {
        let RowState::Pending(row_id) = self.row else {
            return;
        };
        if self.checkpointed {
            return;
        }
        self.checkpointed = true;
        self.storage_out.push_back(StorageOp::CheckpointUsage {
            row_id,
            columns: record.columns(),
        });
    }

    fn absorb_relay_usage(&mut self, relay: &Relay) {
        let usage = relay.usage();
        if let Some(record) = usage.record {
            self.usage = Some(record);
        }
        if let Some(model) = usage.actual_model {
            self.actual_model = Some(model.to_owned());
        }
        if usage.usage_incomplete {
            self.usage_incomplete = true;
        }
        if relay.saw_terminal() {
            self.saw_terminal = true;
        }
    }

    /// The first body bytes of a stream release the head with them (§13.2).
    fn first_body_bytes(&mut self) {
        if self.pending_head.is_some() && self.outcome.is_none() {
            self.log(
                Level::Info,
                "passthrough.stream_first_chunk",
                "first stream chunk",
                vec![
                    ("request_id", json!(self.request_id)),
                    ("path", json!(self.path)),
                    ("provider", json!(self.provider)),
                    ("latency_ms", json!(self.now.millis_since(self.started))),
                ],
            );
        }
        self.flush_pending_head();
    }

    fn flush_pending_head(&mut self) {
        let Some(head) = self.pending_head.take() else {
            return;
        };
        let body_changed = self.usage_injected && self.body_kind == BodyKind::Sse;
        let headers = crate::headers::response_headers(&head.headers, body_changed);
        let content_length = if body_changed || self.body_kind != BodyKind::Plain {
            None
        } else {
            header_str(&head.headers, "content-length").and_then(|v| v.parse().ok())
        };
        self.head_sent = true;
        self.send(Downstream::Head {
            status: head.status,
            headers,
            content_length,
        });
    }

    fn finish_plain(&mut self, body: Bytes) {
        let Some(head) = self.pending_head.take() else {
            return;
        };
        let status = head.status.as_u16();
        let content_type = header_str(&head.headers, "content-type").unwrap_or("");
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("application/json") || ct.starts_with("text/") {
            let extracted = usage::extract_plain(&body);
            self.usage = extracted.record;
            self.actual_model = extracted.actual_model;
        }
        let headers = crate::headers::response_headers(&head.headers, false);
        let release = vec![
            Downstream::Head {
                status: head.status,
                headers,
                content_length: Some(body.len() as u64),
            },
            Downstream::Body(body.clone()),
            Downstream::End,
        ];
        self.head_sent = true;
        let outcome = if status < 400 {
            Outcome::Completed { status }
        } else {
            Outcome::UpstreamErrorPlain {
                status,
                snippet: snippet(&body),
            }
        };
        self.conclude(outcome, release);
    }

    fn conclude_stream(&mut self, status: u16, then: Vec<Downstream>) {
        let outcome = if status < 400 {
            Outcome::Completed { status }
        } else {
            Outcome::UpstreamErrorStream { status }
        };
        self.conclude(outcome, then);
    }

    fn upstream_broke_after_head(&mut self, message: String) {
        if let Upstream::Relay { relay } = std::mem::replace(&mut self.upstream, Upstream::Done) {
            self.absorb_relay_usage(&relay);
        }
        self.upstream_out.push_back(UpstreamOp::Cancel);
        self.timers.clear_attempt();
        self.stream_ended();
        let status = self.response_status.unwrap_or(502);
        if self.outcome.is_some() {
            // The terminal event was already seen and the row decided: what follows is
            // outside the call's accounting. Cut the client body honestly.
            self.send_after_commit(Downstream::Abort);
            return;
        }
        self.log(
            Level::Error,
            "passthrough.upstream_error",
            "upstream read failed",
            vec![
                ("request_id", json!(self.request_id)),
                ("path", json!(self.path)),
                ("err", json!(message)),
                ("timeout_kind", Value::Null),
            ],
        );
        // The head (if still pending) goes out first so the client can tell the body was cut.
        self.flush_pending_head();
        self.conclude(
            Outcome::StreamError { status, message },
            vec![Downstream::Abort],
        );
    }

    // ----- internals: concluding -----

    /// Decides the exchange's outcome (once), queues the finalize of its row, and arranges
    /// for `then` to reach the client after the commit (at once when there is no row).
    fn conclude(&mut self, outcome: Outcome, then: Vec<Downstream>) {
        if self.outcome.is_some() {
            return;
        }
        let class = outcome.breaker_class(self.short_circuit);
        self.release_permit(class);
        match self.row {
            RowState::Pending(row_id) if self.prelog.is_some() => {
                let row = match &self.prelog {
                    Some(prelog) => self.finalize_row(row_id, prelog, &outcome),
                    None => return,
                };
                if row.usage_incomplete {
                    self.metric(MetricEvent::UsageIncomplete);
                }
                self.metric(MetricEvent::RequestDuration {
                    lifecycle_status: row.lifecycle_status,
                    provider: self.provider.clone(),
                    status: row.status,
                    streamed: row.streamed,
                    ms: row.latency_ms,
                });
                let event = if row.lifecycle_status == "aborted" {
                    "lifecycle.aborted"
                } else {
                    "lifecycle.finalized"
                };
                self.log(
                    Level::Info,
                    event,
                    "request finalized",
                    vec![
                        ("request_id", json!(self.request_id)),
                        ("row_id", json!(row_id)),
                        ("lifecycle_status", json!(row.lifecycle_status)),
                        ("status", json!(row.status)),
                        ("path", json!(self.path)),
                    ],
                );
                self.row = RowState::Finalizing {
                    row_id,
                    fallback: false,
                };
                self.storage_out
                    .push_back(StorageOp::Finalize(Box::new(row)));
                self.outcome = Some(outcome);
                for d in then {
                    self.held.push_back(d);
                }
            }
            _ => {
                self.outcome = Some(outcome);
                for d in then {
                    self.send(d);
                }
            }
        }
    }

    fn finalize_row(&self, row_id: i64, prelog: &PreLogRow, outcome: &Outcome) -> FinalizeRow {
        let ending = outcome.row();
        let seen_terminal = self.saw_terminal;
        let generation_path = LLM_PATHS.contains(&self.path.as_str());
        let no_usage_on_success = self.usage.is_none()
            && generation_path
            && (200..300).contains(&self.response_status.unwrap_or(0));
        let cut_short = matches!(
            outcome,
            Outcome::ClientAborted { .. }
                | Outcome::ClientStalled
                | Outcome::Shutdown
                | Outcome::StreamError { .. }
        ) && !seen_terminal;
        let usage_incomplete = self.usage_incomplete || no_usage_on_success || cut_short;
        row::build_finalize(row::FinalizeInputs {
            row_id,
            prelog,
            ending: &ending,
            usage: self.usage.as_ref(),
            actual_model: self.actual_model.as_deref(),
            config: &self.config,
            pricer: &self.pricer,
            streamed: matches!(self.body_kind, BodyKind::Sse | BodyKind::Ndjson),
            usage_incomplete,
            latency_ms: self.now.millis_since(self.started),
            finished_at: self.wall_now(),
            attempts: self.attempts,
            usage_injected: self.usage_injected,
        })
    }

    fn release_held(&mut self) {
        while let Some(d) = self.held.pop_front() {
            self.send(d);
        }
    }

    /// Body bytes pass at once unless the row's commit is pending, then they queue behind it.
    fn send_after_commit_if_held(&mut self, d: Downstream) {
        if matches!(self.row, RowState::Finalizing { .. }) {
            self.held.push_back(d);
        } else {
            self.send(d);
        }
    }

    fn send_after_commit(&mut self, d: Downstream) {
        self.send_after_commit_if_held(d);
    }

    fn send(&mut self, d: Downstream) {
        if self.down_done || self.client_gone {
            return;
        }
        if matches!(
            d,
            Downstream::End | Downstream::Abort | Downstream::Reply(_)
        ) {
            self.down_done = true;
        }
        self.down_out.push_back(d);
    }

    fn send_final(&mut self, d: Downstream) {
        self.send(d);
        self.down_done = true;
    }

    fn cancel_upstream(&mut self) {
        match self.upstream {
            Upstream::AwaitHead { .. }
            | Upstream::Probe503 { .. }
            | Upstream::Relay { .. }
            | Upstream::Buffer { .. }
            | Upstream::Pass => {
                self.upstream_out.push_back(UpstreamOp::Cancel);
            }
            Upstream::Idle | Upstream::Backoff { .. } | Upstream::Done => {}
        }
        self.upstream = Upstream::Done;
        self.timers.clear_attempt();
        self.timers.backoff = None;
    }

    fn release_permit(&mut self, class: OutcomeClass) {
        if let Some(permit) = self.permit.take() {
            self.events
                .push_back(ExchangeEvent::Outcome { permit, class });
        }
    }

    fn stream_started(&mut self) {
        if !self.streaming_metric {
            self.streaming_metric = true;
            self.metric(MetricEvent::StreamStarted);
        }
    }

    fn stream_ended(&mut self) {
        if self.streaming_metric {
            self.streaming_metric = false;
            self.metric(MetricEvent::StreamEnded);
        }
    }

    fn maybe_finish(&mut self) {
        if self.finished {
            return;
        }
        let row_done = matches!(self.row, RowState::None | RowState::Done);
        let upstream_done = matches!(self.upstream, Upstream::Done | Upstream::Idle)
            && !matches!(self.row, RowState::PreLogging);
        let down_done = self.down_done || self.client_gone;
        let concluded = self.outcome.is_some() || matches!(self.row, RowState::Done);
        if concluded && row_done && upstream_done && down_done && self.held.is_empty() {
            {
                self.finished = true;
                self.timers = Timers::default();
                self.events.push_back(ExchangeEvent::Finished);
            }
        }
    }

    // ----- internals: time, logs -----

    fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn wall_now(&self) -> UnixMillis {
        UnixMillis(
            self.started_wall
                .0
                .saturating_add(self.now.millis_since(self.started)),
        )
    }

    fn log(
        &mut self,
        level: Level,
        event: &'static str,
        msg: &'static str,
        fields: Vec<(&'static str, Value)>,
    ) {
        self.events.push_back(ExchangeEvent::Log(LogRecord {
            level,
            event,
            msg,
            fields,
        }));
    }

    fn metric(&mut self, m: MetricEvent) {
        self.events.push_back(ExchangeEvent::Metric(m));
    }

    fn prelog_fields(&self, row_id: i64) -> Vec<(&'static str, Value)> {
        let Some(p) = &self.prelog else {
            return Vec::new();
        };
        vec![
            ("request_id", json!(self.request_id)),
            ("row_id", json!(row_id)),
            ("provider", json!(p.provider)),
            ("model", json!(p.model)),
            ("path", json!(p.path)),
            ("tool", json!(p.tool)),
            ("client_id", json!(p.client_id)),
        ]
    }

    fn log_attempt_error(
        &mut self,
        code: &str,
        status: Option<u16>,
        attempt: u32,
        retrying: bool,
        kind: Option<TimeoutKind>,
    ) {
        let fields = vec![
            ("code", json!(code)),
            ("status", json!(status)),
            ("providerId", json!(self.provider)),
            ("retryable", json!(retrying)),
            ("timeout_kind", json!(kind.map(TimeoutKind::as_str))),
            ("attempt", json!(attempt)),
            ("max_retries", json!(self.limits.max_retries)),
            ("retrying", json!(retrying)),
        ];
        self.log(
            Level::Error,
            "upstream.error",
            "upstream attempt failed",
            fields,
        );
    }
}
