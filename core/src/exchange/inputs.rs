//! The `handle_*` inputs of [`Exchange`]: each one clamps `now`, ignores input after
//! `Finished`, and leaves its outputs queued for the drain.

use bytes::Bytes;
use serde_json::json;

use super::{
    Downstream, Exchange, Level, MetricEvent, RowState, StorageFailure, StorageOp, Upstream,
    UpstreamFailure,
};
use crate::breaker::OutcomeClass;
use crate::errors::{self, NetworkErrorName, TimeoutKind};
use crate::head::ResponseHead;
use crate::outcome::{Outcome, snippet};
use crate::retry::{self, Failure};
use crate::time::Instant;

impl Exchange {
    /// The pre-log insert committed (`Ok(row id)`) or failed.
    pub fn handle_prelog(&mut self, res: Result<i64, StorageFailure>, now: Instant) {
        if !self.enter(now) || self.row != RowState::PreLogging {
            return;
        }
        match res {
            Ok(row_id) => {
                self.row = RowState::Pending(row_id);
                let fields = self.prelog_fields();
                self.log(
                    Level::Info,
                    "lifecycle.pre_logged",
                    "request pre-logged",
                    fields,
                );
                match self.pending_abort.take() {
                    Some(outcome) => {
                        self.request = None;
                        let then = if self.client_gone {
                            Vec::new()
                        } else {
                            vec![Downstream::Abort]
                        };
                        self.conclude(outcome, then);
                    }
                    None => self.after_admission(),
                }
            }
            Err(failure) => {
                self.row = RowState::Done;
                self.metric(MetricEvent::StorageFailure {
                    op: crate::metrics::StorageOp::Prelog,
                });
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
                self.emit(Downstream::Reply(errors::accounting_unavailable()));
                self.down_done = true;
            }
        }
        self.maybe_finish();
    }

    /// Every request byte has been written upstream: a `POST`/`PATCH` body can no longer be
    /// re-sent, so it is dropped here (`datapath.md` §5, RQ-L5).
    pub fn handle_upstream_written(&mut self, attempt: u32, now: Instant) {
        if !self.is_live(attempt) || !self.enter(now) {
            return;
        }
        if !retry::is_idempotent(&self.method) {
            self.request = None;
        }
    }

    /// The upstream response head arrived.
    pub fn handle_upstream_head(&mut self, attempt: u32, head: ResponseHead, now: Instant) {
        if !self.is_live(attempt) || !self.enter(now) {
            return;
        }
        let Upstream::AwaitHead { attempt } = self.upstream else {
            return;
        };
        self.timers.header = None;
        self.head_at = Some(self.now);
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
                (
                    "latency_ms",
                    json!(self.now.millis_since(self.attempt_started)),
                ),
            ],
        );
        if head.status.is_redirection() && status != 304 {
            self.cancel_upstream();
            self.conclude(
                Outcome::Redirect { status },
                vec![Downstream::Reply(errors::redirect_not_followed())],
            );
            self.maybe_finish();
            return;
        }
        let failure = Failure::Status {
            status,
            short_circuit: false,
        };
        let retry = self.request.is_some()
            && retry::should_retry(&self.method, failure, attempt, self.limits.max_retries);
        if status == 503 {
            self.upstream = Upstream::Probe503 {
                attempt,
                head,
                body: bytes::BytesMut::new(),
                retry,
            };
        } else if retry {
            let delay = self.backoff_after(Some(&head.headers), attempt);
            self.cancel_upstream();
            self.log_attempt_error("5xx", Some(status), attempt, true, None);
            self.schedule_retry(attempt, delay);
        } else {
            self.accept_head(head);
        }
        self.maybe_finish();
    }

    /// A chunk of the upstream response body.
    pub fn handle_upstream_body(&mut self, attempt: u32, chunk: Bytes, now: Instant) {
        if !self.is_live(attempt) || !self.enter(now) {
            return;
        }
        self.on_body(chunk);
        self.maybe_finish();
    }

    /// The upstream response body ended cleanly.
    pub fn handle_upstream_end(&mut self, attempt: u32, now: Instant) {
        if !self.is_live(attempt) || !self.enter(now) {
            return;
        }
        self.live_attempt = None;
        self.on_end();
        self.maybe_finish();
    }

    /// The upstream attempt failed.
    pub fn handle_upstream_error(&mut self, attempt: u32, failure: UpstreamFailure, now: Instant) {
        if !self.is_live(attempt) || !self.enter(now) {
            return;
        }
        self.live_attempt = None;
        match (&self.upstream, failure) {
            (
                Upstream::AwaitHead { attempt },
                UpstreamFailure::Connect {
                    name,
                    written,
                    message,
                },
            ) => {
                let attempt = *attempt;
                self.before_head_failure(attempt, name, written, &message);
            }
            (Upstream::AwaitHead { attempt }, UpstreamFailure::Read { message }) => {
                // The request was written: a failure before the head is not retried.
                let attempt = *attempt;
                self.before_head_failure(attempt, NetworkErrorName::Reset, true, &message);
            }
            (Upstream::Idle | Upstream::Backoff { .. } | Upstream::Done, _) => {}
            (
                Upstream::Probe503 { .. }
                | Upstream::Stream
                | Upstream::Buffer { .. }
                | Upstream::Pass,
                failure,
            ) => {
                let message = match failure {
                    UpstreamFailure::Connect { message, .. }
                    | UpstreamFailure::Read { message } => message,
                };
                self.on_read_error(message);
            }
        }
        self.maybe_finish();
    }

    /// The row change sent last (finalize or its fallback) committed or failed.
    pub fn handle_finalized(&mut self, res: Result<(), StorageFailure>, now: Instant) {
        if !self.enter(now) {
            return;
        }
        let RowState::Finalizing { row_id, fallback } = self.row else {
            return;
        };
        match res {
            Ok(()) => {
                self.row = RowState::Done;
                self.release_held();
            }
            Err(failure) if !fallback => {
                self.metric(MetricEvent::StorageFailure {
                    op: crate::metrics::StorageOp::Finalize,
                });
                self.log(
                    Level::Error,
                    "lifecycle.finalize_failed",
                    "finalize failed; applying the fallback update",
                    vec![
                        ("request_id", json!(self.request_id)),
                        ("err", json!(failure.message)),
                    ],
                );
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
                        ("err", json!(failure.message)),
                    ],
                );
                self.row = RowState::Done;
                self.release_held();
            }
        }
        self.maybe_finish();
    }

    /// What a shell saw of its client while flushing, in one call: a stall (O12) wins over a
    /// close (O11), as the response is cut either way and the stall is the more specific
    /// outcome. True when something was fed, so the shell drains again before it waits.
    pub fn handle_client_after_flush(&mut self, stalled: bool, gone: bool, now: Instant) -> bool {
        if stalled {
            self.handle_client_stalled(now);
        } else if gone {
            self.handle_client_gone(now);
        }
        stalled || gone
    }

    /// The client connection closed (or its read side reached EOF while a response was
    /// pending). Outcome O11, unless the exchange already ended.
    pub fn handle_client_gone(&mut self, now: Instant) {
        if !self.enter(now) || self.client_gone {
            return;
        }
        self.client_gone = true;
        self.drop_client_output();
        self.abort(Outcome::ClientAborted {
            after_head: self.head_sent,
        });
        self.maybe_finish();
    }

    /// The client stopped accepting bytes for the write-stall limit (outcome O12): the
    /// response is cut at once.
    pub fn handle_client_stalled(&mut self, now: Instant) {
        if !self.enter(now) || self.client_gone {
            return;
        }
        self.emit(Downstream::Abort);
        self.client_gone = true;
        self.drop_client_output();
        self.abort(Outcome::ClientStalled);
        self.maybe_finish();
    }

    /// Shutdown aborts this exchange (outcome O13).
    pub fn handle_shutdown(&mut self, now: Instant) {
        if !self.enter(now) {
            return;
        }
        let prelogging = self.row == RowState::PreLogging;
        self.abort(Outcome::Shutdown);
        // Before the pre-log commit the cut waits for the row (see `handle_prelog`).
        if !prelogging && !self.down_done {
            self.defer_or_emit(Downstream::Abort);
        }
        self.maybe_finish();
    }

    /// A deadline from [`Exchange::poll_timeout`] may have passed. Safe to call at any time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.enter(now) {
            return;
        }
        let now = self.now;
        if self.timers.backoff.is_some_and(|t| t <= now) {
            self.timers.backoff = None;
            if let Upstream::Backoff { attempt } = self.upstream {
                self.send_attempt(attempt);
            }
        }
        let header_fired = self.timers.header.is_some_and(|t| t <= now);
        let total_fired = self.timers.total.is_some_and(|t| t <= now);
        if header_fired || total_fired {
            let kind = if header_fired {
                TimeoutKind::Connect
            } else {
                TimeoutKind::Total
            };
            self.timers.clear_attempt();
            self.on_upstream_timeout(kind);
        }
        self.maybe_finish();
    }

    // ----- helpers of the inputs -----

    /// Clamps `now`; false once the exchange has finished (the input is ignored).
    /// Whether an upstream input of `attempt` (the number of the `UpstreamOp::Send` that
    /// started it) is for the attempt in flight. An input of an attempt that was cancelled,
    /// superseded or has ended is ignored: a shell that let one through would otherwise feed
    /// the old response's bytes into the new attempt's relay.
    fn is_live(&self, attempt: u32) -> bool {
        self.live_attempt == Some(attempt)
    }

    fn enter(&mut self, now: Instant) -> bool {
        if now > self.now {
            self.now = now;
        }
        !self.finished
    }

    /// A connect or read failure before the response head: retry, or answer E16 (O6).
    fn before_head_failure(
        &mut self,
        attempt: u32,
        name: NetworkErrorName,
        written: bool,
        message: &str,
    ) {
        self.timers.clear_attempt();
        self.upstream = Upstream::Idle;
        let failure = Failure::BeforeHead { written };
        let retry = self.request.is_some()
            && retry::should_retry(&self.method, failure, attempt, self.limits.max_retries);
        self.log_attempt_error("network", None, attempt, retry, None);
        if retry {
            let delay = self.backoff_after(None, attempt);
            self.schedule_retry(attempt, delay);
            return;
        }
        self.upstream = Upstream::Done;
        let retryable = retry::retryable_flag(&self.method, written);
        let reply = errors::network_error(&self.provider, retryable, name, message);
        let body_snippet = snippet(&reply.body);
        self.conclude(
            Outcome::ConnectFailed { name, body_snippet },
            vec![Downstream::Reply(reply)],
        );
    }

    fn on_upstream_timeout(&mut self, kind: TimeoutKind) {
        match self.upstream {
            Upstream::AwaitHead { attempt } => {
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
            Upstream::Stream
            | Upstream::Buffer { .. }
            | Upstream::Pass
            | Upstream::Probe503 { .. } => {
                self.cancel_upstream();
                self.stream_ended();
                self.absorb_relay_usage();
                self.log(
                    Level::Error,
                    "passthrough.upstream_error",
                    "upstream timed out after its head",
                    vec![
                        ("request_id", json!(self.request_id)),
                        ("path", json!(self.path)),
                        ("err", json!("upstream timeout")),
                        ("timeout_kind", json!(kind.as_str())),
                    ],
                );
                if self.head_sent {
                    let status = self.response_status.unwrap_or(502);
                    self.conclude(
                        Outcome::StreamError {
                            status,
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
    }

    /// Client gone, write stall or shutdown: before the pre-log commit the abort waits for
    /// it; afterwards an undecided exchange is concluded with `outcome`, and an exchange
    /// still reading after its row was decided stops reading.
    fn abort(&mut self, outcome: Outcome) {
        if self.row == RowState::PreLogging {
            self.pending_abort.get_or_insert(outcome);
            return;
        }
        let was_reading = !matches!(self.upstream, Upstream::Idle | Upstream::Done);
        self.cancel_upstream();
        self.stream_ended();
        if self.outcome.is_none() {
            self.absorb_relay_usage();
            self.request = None;
            self.conclude(outcome, Vec::new());
        } else if was_reading {
            // The row is decided; the rest of the stream is outside its accounting.
            self.request = None;
        }
    }

    /// The client will read nothing more: drop what was waiting for it.
    fn drop_client_output(&mut self) {
        self.held.clear();
        self.held_final = None;
        self.pending_head = None;
        self.down_done = true;
    }
}
