//! The outcome table (`datapath.md` §14.4): how every LLM call ends, as row fields, and how
//! each ending counts for the circuit breaker (§12.3).

use crate::breaker::OutcomeClass;
use crate::errors::{NetworkErrorName, TimeoutKind};

/// Every way an exchange can end (O1–O16, O19; O17/O18 are storage-side bulk finalizes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// O1: upstream status < 400 (not a redirect), body complete.
    Completed {
        /// Upstream status.
        status: u16,
    },
    /// O2: upstream status ≥ 400 with a plain body; `snippet` is the body's snippet.
    UpstreamErrorPlain {
        /// Upstream status.
        status: u16,
        /// First 300 characters of the trimmed body (empty when blank or not text).
        snippet: String,
    },
    /// O3: upstream status ≥ 400 with an SSE or NDJSON body.
    UpstreamErrorStream {
        /// Upstream status.
        status: u16,
    },
    /// O4: upstream 3xx other than 304.
    Redirect {
        /// Upstream status.
        status: u16,
    },
    /// O5: plain LLM body over 50 MiB.
    ResponseTooLarge,
    /// O6: connection failure before the head, retries exhausted.
    ConnectFailed {
        /// Kind of failure for E16.
        name: NetworkErrorName,
        /// Snippet of the E16 body.
        body_snippet: String,
    },
    /// O7: header or total timeout before the head.
    TimeoutBeforeHead {
        /// Which timer fired.
        kind: TimeoutKind,
        /// Snippet of the E17 body.
        body_snippet: String,
    },
    /// O8: total/first-byte timeout after the head, before the client head was sent.
    TimeoutAfterHead,
    /// O9: breaker open; `body_snippet` is the E15 body.
    BreakerOpen {
        /// Snippet of the E15 body.
        body_snippet: String,
    },
    /// O10: upstream read error after the client head was sent.
    StreamError {
        /// Upstream status that was relayed.
        status: u16,
        /// Error text, e.g. `upstream connection reset`.
        message: String,
    },
    /// O11: the client disconnected; `after_head` tells whether the client head was sent.
    ClientAborted {
        /// The client head had been sent.
        after_head: bool,
    },
    /// O12: the client stopped reading for the write-stall limit.
    ClientStalled,
    /// O13: shutdown aborted a live exchange.
    Shutdown,
    /// O14: provider not allowed for the managed key.
    ProviderNotAllowed,
    /// O15: internal error or panic inside the exchange.
    Internal,
    /// O19: the upstream request could not be built.
    Unbuildable,
}

/// Lifecycle state of a finalized row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// The call completed.
    Completed,
    /// The call failed.
    Error,
    /// The call was cut short (client, shutdown, boot recovery).
    Aborted,
}

impl Lifecycle {
    /// The row's `incomplete` column: 0 exactly for completed rows. The one place this rule
    /// lives; both storage backends write it from here.
    pub fn incomplete(self) -> bool {
        self != Lifecycle::Completed
    }

    /// The `lifecycle_status` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Completed => "completed",
            Lifecycle::Error => "error",
            Lifecycle::Aborted => "aborted",
        }
    }
}

/// The row fields an outcome decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowEnding {
    /// `lifecycle_status`.
    pub lifecycle: Lifecycle,
    /// `status`.
    pub status: u16,
    /// `error_code`.
    pub error_code: Option<&'static str>,
    /// `error_message`.
    pub error_message: Option<String>,
}

impl RowEnding {
    /// `incomplete` is 0 exactly for completed rows.
    pub fn incomplete(&self) -> bool {
        self.lifecycle.incomplete()
    }
}

impl Outcome {
    /// The row fields of this outcome (the table of §14.4).
    pub fn row(&self) -> RowEnding {
        use Lifecycle::*;
        let (lifecycle, status, code, message) = match self {
            Outcome::Completed { status } => (Completed, *status, None, None),
            Outcome::UpstreamErrorPlain { status, snippet } => (
                Error,
                *status,
                Some("upstream_error"),
                Some(with_snippet(format!("upstream HTTP {status}"), snippet)),
            ),
            Outcome::UpstreamErrorStream { status } => (
                Error,
                *status,
                Some("upstream_error"),
                Some(format!("upstream HTTP {status}")),
            ),
            Outcome::Redirect { status } => (
                Error,
                502,
                Some("bad_gateway"),
                Some(format!("upstream redirect {status} not followed")),
            ),
            Outcome::ResponseTooLarge => (
                Error,
                502,
                Some("response_too_large"),
                Some("upstream response body exceeded 50MB limit".to_owned()),
            ),
            Outcome::ConnectFailed { body_snippet, .. } => (
                Error,
                503,
                Some("upstream_error"),
                Some(with_snippet("upstream HTTP 503".to_owned(), body_snippet)),
            ),
            Outcome::TimeoutBeforeHead { body_snippet, .. } => (
                Error,
                504,
                Some("upstream_error"),
                Some(with_snippet("upstream HTTP 504".to_owned(), body_snippet)),
            ),
            Outcome::TimeoutAfterHead => (
                Error,
                504,
                Some("upstream_timeout"),
                Some("upstream_body_timeout".to_owned()),
            ),
            Outcome::BreakerOpen { body_snippet } => (
                Error,
                503,
                Some("upstream_error"),
                Some(with_snippet("upstream HTTP 503".to_owned(), body_snippet)),
            ),
            Outcome::StreamError { status, message } => {
                (Error, *status, Some("stream_error"), Some(message.clone()))
            }
            Outcome::ClientAborted { after_head } => (
                Aborted,
                499,
                Some("aborted"),
                Some(
                    if *after_head {
                        "client aborted stream"
                    } else {
                        "request aborted"
                    }
                    .to_owned(),
                ),
            ),
            Outcome::ClientStalled => (
                Aborted,
                499,
                Some("aborted"),
                Some("client write stalled".to_owned()),
            ),
            Outcome::Shutdown => (Aborted, 499, Some("aborted"), Some("shutdown".to_owned())),
            Outcome::ProviderNotAllowed => (
                Error,
                403,
                Some("provider_not_allowed"),
                Some("provider not allowed for this API key".to_owned()),
            ),
            Outcome::Internal => (
                Error,
                500,
                Some("internal_error"),
                Some("internal error".to_owned()),
            ),
            Outcome::Unbuildable => (
                Error,
                502,
                Some("bad_gateway"),
                Some("upstream request could not be built".to_owned()),
            ),
        };
        RowEnding {
            lifecycle,
            status,
            error_code: code,
            error_message: message,
        }
    }

    /// How this ending counts for the breaker. `short_circuit` marks a relayed 503 whose body
    /// was CLIProxyAPI's own `short-circuit` error (neutral, never a failure).
    pub fn breaker_class(&self, short_circuit: bool) -> OutcomeClass {
        match self {
            Outcome::Completed { status }
            | Outcome::UpstreamErrorPlain { status, .. }
            | Outcome::UpstreamErrorStream { status } => status_class(*status, short_circuit),
            Outcome::Redirect { .. } | Outcome::ResponseTooLarge | Outcome::Unbuildable => {
                OutcomeClass::Success
            }
            Outcome::ConnectFailed { .. }
            | Outcome::TimeoutBeforeHead { .. }
            | Outcome::TimeoutAfterHead
            | Outcome::StreamError { .. } => OutcomeClass::Failure,
            Outcome::BreakerOpen { .. }
            | Outcome::ClientAborted { .. }
            | Outcome::ClientStalled
            | Outcome::Shutdown
            | Outcome::ProviderNotAllowed
            | Outcome::Internal => OutcomeClass::Neutral,
        }
    }
}

fn status_class(status: u16, short_circuit: bool) -> OutcomeClass {
    match status {
        429 => OutcomeClass::Neutral,
        503 if short_circuit => OutcomeClass::Neutral,
        500..=599 => OutcomeClass::Failure,
        _ => OutcomeClass::Success,
    }
}

fn with_snippet(prefix: String, snippet: &str) -> String {
    if snippet.is_empty() {
        prefix
    } else {
        format!("{prefix}: {snippet}")
    }
}

/// The snippet of a body (§14.4): the first 300 characters of the trimmed body decoded as
/// UTF-8 with replacement; empty when the body is blank or not text.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() || looks_binary(trimmed) {
        return String::new();
    }
    trimmed.chars().take(300).collect()
}

// A body is "not text" when it holds control characters other than whitespace: it would
// only pollute the error message.
fn looks_binary(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_maps_to_its_row_fields() {
        let r = Outcome::UpstreamErrorPlain {
            status: 429,
            snippet: snippet(b"  {\"error\":\"slow down\"}  "),
        }
        .row();
        assert_eq!(r.lifecycle, Lifecycle::Error);
        assert_eq!(
            r.error_message.as_deref(),
            Some(r#"upstream HTTP 429: {"error":"slow down"}"#)
        );
        let r = Outcome::UpstreamErrorPlain {
            status: 500,
            snippet: snippet(b"   "),
        }
        .row();
        assert_eq!(r.error_message.as_deref(), Some("upstream HTTP 500"));
        let r = Outcome::ClientAborted { after_head: true }.row();
        assert_eq!((r.status, r.error_code), (499, Some("aborted")));
        assert_eq!(r.error_message.as_deref(), Some("client aborted stream"));
        assert!(r.incomplete());
        let r = Outcome::ClientAborted { after_head: false }.row();
        assert_eq!(r.error_message.as_deref(), Some("request aborted"));
        let r = Outcome::Redirect { status: 302 }.row();
        assert_eq!((r.status, r.error_code), (502, Some("bad_gateway")));
        assert_eq!(
            r.error_message.as_deref(),
            Some("upstream redirect 302 not followed")
        );
        assert!(!Outcome::Completed { status: 200 }.row().incomplete());
        assert_eq!(
            Outcome::TimeoutAfterHead.row().error_code,
            Some("upstream_timeout")
        );
    }

    #[test]
    fn breaker_classes_follow_the_spec() {
        assert_eq!(
            Outcome::Completed { status: 200 }.breaker_class(false),
            OutcomeClass::Success
        );
        let s503 = Outcome::UpstreamErrorPlain {
            status: 503,
            snippet: String::new(),
        };
        assert_eq!(s503.breaker_class(false), OutcomeClass::Failure);
        assert_eq!(s503.breaker_class(true), OutcomeClass::Neutral);
        let s429 = Outcome::UpstreamErrorPlain {
            status: 429,
            snippet: String::new(),
        };
        assert_eq!(s429.breaker_class(false), OutcomeClass::Neutral);
        assert_eq!(
            Outcome::ClientAborted { after_head: true }.breaker_class(false),
            OutcomeClass::Neutral
        );
        assert_eq!(
            Outcome::TimeoutAfterHead.breaker_class(false),
            OutcomeClass::Failure
        );
    }

    #[test]
    fn snippet_is_300_chars_and_skips_binary() {
        let long = "é".repeat(400);
        assert_eq!(snippet(long.as_bytes()).chars().count(), 300);
        assert_eq!(snippet(b"\x00\x01\x02binary"), "");
        assert_eq!(snippet(&[0xff, 0xfe, b'a']), "\u{fffd}\u{fffd}a");
    }
}
