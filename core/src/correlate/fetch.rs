//! Which management endpoint to call (`control.md` §8.2): the queue first, the legacy
//! snapshot as the same tick's fallback, and each marked unsupported for the process
//! lifetime after a 404.

use serde_json::json;

use super::{QUEUE_BATCH, UpstreamDetail, parse_legacy, parse_queue};
use crate::exchange::{Level, LogRecord};

/// A management endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `GET /v0/management/usage-queue?count=500` (CLIProxyAPI ≥ 6.10), destructive reads.
    Queue,
    /// `GET /v0/management/usage`, a cumulative snapshot.
    Legacy,
}

impl Endpoint {
    /// The full URL under `base` (no trailing `/`).
    pub fn url(self, base: &str) -> String {
        match self {
            Endpoint::Queue => format!("{base}/v0/management/usage-queue?count={QUEUE_BATCH}"),
            Endpoint::Legacy => format!("{base}/v0/management/usage"),
        }
    }

    /// `queue` or `legacy`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Queue => "queue",
            Endpoint::Legacy => "legacy",
        }
    }
}

/// Whether an endpoint may be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Support {
    /// Not known to be missing.
    #[default]
    Unknown,
    /// Answered 404 once; never called again by this process.
    Unsupported,
}

/// What a call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchResponse {
    /// An HTTP answer.
    Http {
        /// Status code.
        status: u16,
        /// Body bytes (never logged).
        body: Vec<u8>,
    },
    /// No answer: connection error, timeout, open breaker.
    Transport(String),
}

/// What to do after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchStep {
    /// Match these records.
    Records(Vec<UpstreamDetail>),
    /// The queue answered with this many records, now held by the correlator
    /// ([`super::Correlator::handle_fetch`]): match them.
    Held(u64),
    /// Call this endpoint (at this URL) in the same tick.
    Next(Endpoint, String),
    /// Nothing usable this tick and nothing went wrong (both endpoints unsupported).
    Nothing,
    /// Nothing usable because the last call failed: the tick fails with this message.
    Failed(String),
}

/// Support of both endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchState {
    /// The queue endpoint.
    pub queue: Support,
    /// The legacy endpoint.
    pub legacy: Support,
}

impl FetchState {
    /// The first endpoint to call in a tick, or `None` when both are unsupported.
    pub fn first(&self) -> Option<Endpoint> {
        if self.queue != Support::Unsupported {
            Some(Endpoint::Queue)
        } else if self.legacy != Support::Unsupported {
            Some(Endpoint::Legacy)
        } else {
            None
        }
    }

    /// True once both endpoints answered 404: the correlator makes no more HTTP calls.
    pub fn disabled(&self) -> bool {
        self.first().is_none()
    }

    /// Feeds one answer; `base` builds the next URL.
    pub fn handle(
        &mut self,
        endpoint: Endpoint,
        response: FetchResponse,
        base: &str,
    ) -> (FetchStep, Vec<LogRecord>) {
        match endpoint {
            Endpoint::Queue => self.handle_queue(response, base),
            Endpoint::Legacy => self.handle_legacy(response),
        }
    }

    fn handle_queue(&mut self, response: FetchResponse, base: &str) -> (FetchStep, Vec<LogRecord>) {
        let mut logs = Vec::new();
        match response {
            FetchResponse::Http { status, body } if (200..300).contains(&status) => {
                if let Some(records) = parse_queue(&body) {
                    return (FetchStep::Records(records), logs);
                }
                logs.push(log(
                    Level::Warn,
                    "correlator.queue_malformed",
                    "usage queue answer is not a JSON array, falling back to legacy usage endpoint",
                    vec![],
                ));
            }
            FetchResponse::Http { status: 404, .. } => {
                self.queue = Support::Unsupported;
                logs.push(log(
                    Level::Warn,
                    "correlator.queue_unsupported",
                    "usage queue endpoint unavailable, falling back to legacy usage endpoint",
                    vec![],
                ));
            }
            FetchResponse::Http { status, .. } => logs.push(log(
                Level::Error,
                "correlator.queue_failed",
                "usage queue fetch failed",
                vec![("status", json!(status))],
            )),
            FetchResponse::Transport(err) => logs.push(log(
                Level::Error,
                "correlator.queue_failed",
                "usage queue fetch failed",
                vec![("err", json!(err))],
            )),
        }
        if self.legacy == Support::Unsupported {
            return (
                FetchStep::Failed(
                    "usage queue fetch failed and legacy endpoint is unsupported".into(),
                ),
                logs,
            );
        }
        (
            FetchStep::Next(Endpoint::Legacy, Endpoint::Legacy.url(base)),
            logs,
        )
    }

    fn handle_legacy(&mut self, response: FetchResponse) -> (FetchStep, Vec<LogRecord>) {
        let mut logs = Vec::new();
        let step = match response {
            FetchResponse::Http { status, body } if (200..300).contains(&status) => {
                match parse_legacy(&body) {
                    Some(records) => FetchStep::Records(records),
                    None => FetchStep::Failed("usage answer is not a JSON object".into()),
                }
            }
            FetchResponse::Http { status: 404, .. } => {
                self.legacy = Support::Unsupported;
                logs.push(log(
                    Level::Warn,
                    "correlator.disabled",
                    "usage fetch endpoint unavailable, disabling correlation",
                    vec![],
                ));
                if self.queue == Support::Unsupported {
                    FetchStep::Nothing
                } else {
                    // The queue answered something other than 404 this tick: it is still
                    // tried first next time.
                    FetchStep::Failed("usage fetch failed: HTTP 404".into())
                }
            }
            FetchResponse::Http { status, .. } => {
                FetchStep::Failed(format!("usage fetch failed: HTTP {status}"))
            }
            FetchResponse::Transport(err) => {
                FetchStep::Failed(format!("usage fetch failed: {err}"))
            }
        };
        (step, logs)
    }
}

fn log(
    level: Level,
    event: &'static str,
    msg: &'static str,
    fields: Vec<(&'static str, serde_json::Value)>,
) -> LogRecord {
    LogRecord {
        level,
        event,
        msg,
        fields,
    }
}
