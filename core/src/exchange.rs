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
//! called early, late or twice. Inputs after `Finished` are ignored.
//!
//! # The durability promise
//!
//! For an LLM call the upstream request is released only after `handle_prelog(Ok(_))`, and
//! the end of the response (a plain body, the held terminal event of a stream, the end of
//! the body, an error reply) is released only after `handle_finalized`, so a client that saw
//! a complete response always has its exact row (`control.md` §3.3, D1/D2).
//!
//! # Choices where the spec is silent
//!
//! * A client disconnect, write stall or shutdown that arrives while the pre-log is in flight
//!   is remembered; when the pre-log commits the row is finalized with that outcome and no
//!   upstream request is made.
//! * Every `503` is read (up to 64 KiB) before it is relayed, retried or not, so a
//!   CLIProxyAPI short-circuit is recognised (breaker neutral) for any method and attempt.
//! * A read error after the upstream head but before the client head (a plain LLM body being
//!   buffered, or a stream with no byte yet) sends the head and then cuts the body: outcome
//!   O10, like a read error after the client head.
//! * Non-LLM plain bodies stream through at once; the total timer stops at their head.
//! * Shutdown after the row was decided (the terminal event already seen) cuts the rest of
//!   the stream after the held bytes; the row keeps its decided outcome.
//! * A write stall cuts the response at once (the client is not reading anyway); the row is
//!   O12 unless already decided.
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

mod attempt;
mod body;
mod conclude;
mod inputs;
pub mod relay;
mod row;
mod timer;

#[cfg(test)]
mod scenarios;
#[cfg(test)]
pub(crate) mod sim;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};

use crate::breaker::Permit;
use crate::config::Config;
use crate::errors::NetworkErrorName;
use crate::gate;
use crate::head::{Reply, ResponseHead};
use crate::outcome::Outcome;
use crate::pricing::Pricer;
use crate::retry;
use crate::time::{Instant, UnixMillis};
use crate::usage::{TokenColumns, UsageRecord};

pub use crate::event::{ExchangeEvent, Level, LogRecord, MetricEvent};
pub use row::{FinalizeRow, PreLogRow};
pub use timer::ExchangeTimer;

use relay::{BodyKind, Relay};
use timer::Timers;

/// Largest plain LLM response body the proxy buffers (`datapath.md` §13.3): 50 MiB.
pub const MAX_PLAIN_LLM_BODY: u64 = 52_428_800;
/// Largest 503 body read to look for CLIProxyAPI's `short-circuit` code (§12.2).
pub const SHORT_CIRCUIT_PROBE_BYTES: usize = retry::SHORT_CIRCUIT_PEEK_BYTES;

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
    /// Fresh UUID v7 from the shell (never sent to the client or upstream).
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
    /// Whether the request counts as secure (`gate::is_secure_request`): the answer's
    /// security headers (`datapath.md` §3) then include HSTS.
    pub secure: bool,
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

/// One proxied request. See the module docs for the driving contract.
pub struct Exchange {
    request_id: String,
    secure: bool,
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

    /// Kept while it may be re-sent (dropped once written for `POST`, or at the head).
    request: Option<UpstreamRequest>,
    block: Option<Block>,
    permit: Option<Permit>,
    prelog: Option<PreLogRow>,
    row: RowState,
    upstream: Upstream,
    attempts: u32,
    /// The attempt whose upstream inputs are taken (`Exchange::handle_upstream_head`, …).
    live_attempt: Option<u32>,
    attempt_started: Instant,
    head_at: Option<Instant>,
    timers: Timers,
    /// An abort (client gone, stall, shutdown) that arrived while the pre-log was in flight.
    pending_abort: Option<Outcome>,

    /// The relay of a streamed LLM body; kept after the upstream ends until its held bytes
    /// have been released.
    relay: Option<Box<Relay>>,
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
    /// Heads and bytes that reach the client once the row is committed…
    held: VecDeque<Downstream>,
    /// …then the relay's held bytes, then this last output (End, Abort or a Reply).
    held_final: Option<Downstream>,
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
            secure: init.secure,
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
            live_attempt: None,
            attempt_started: now,
            head_at: None,
            timers: Timers::default(),
            pending_abort: None,
            relay: None,
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
            held_final: None,
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
    /// A reply or head carries the security headers already, so no shell adds them.
    pub fn poll_downstream(&mut self) -> Option<Downstream> {
        let mut out = self.down_out.pop_front()?;
        match &mut out {
            Downstream::Reply(reply) => {
                gate::apply_security_headers(&mut reply.headers, self.secure)
            }
            Downstream::Head { headers, .. } => gate::apply_security_headers(headers, self.secure),
            Downstream::Body(_) | Downstream::End | Downstream::Abort => {}
        }
        Some(out)
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
            Upstream::Probe503 { .. } | Upstream::Stream | Upstream::Buffer { .. } | Upstream::Pass
        )
    }

    /// True while the exchange still holds its breaker permit (tests check it is returned).
    #[cfg(any(test, feature = "_fuzzing"))]
    pub(crate) fn holds_permit(&self) -> bool {
        self.permit.is_some()
    }
}

/// Where the row of an LLM call stands.
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
    /// Row finalized (or given up on), or the pre-log failed.
    Done,
}

/// Where the upstream side stands.
enum Upstream {
    /// Not started (waiting for the pre-log, or refused before any attempt).
    Idle,
    /// Attempt sent, no head yet.
    AwaitHead { attempt: u32 },
    /// Waiting for the backoff timer before attempt `attempt`.
    Backoff { attempt: u32 },
    /// A `503`: its first 64 KiB decide between short-circuit, retry and relay.
    Probe503 {
        attempt: u32,
        head: ResponseHead,
        body: BytesMut,
        retry: bool,
    },
    /// Reading an SSE/NDJSON body of an LLM call through [`Exchange::relay`].
    Stream,
    /// Reading a plain LLM body into memory.
    Buffer { body: BytesMut },
    /// Streaming a body through untouched (non-LLM calls).
    Pass,
    /// The upstream is done (ended, failed or cancelled).
    Done,
}
