//! What the core hands a shell besides bytes: log records, metric updates, and the events
//! of an exchange (its breaker outcome, its end). Their own module because the proxy's
//! admission, the exchange and the daemon's loops all emit them; `exchange` re-exports them.

use serde_json::Value;

use crate::breaker::{OutcomeClass, Permit};

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
    /// An awaited storage command failed (`Prelog` or `Finalize`).
    StorageFailure {
        /// Operation label.
        op: crate::metrics::StorageOp,
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
