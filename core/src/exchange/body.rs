//! The response body: the relay of streamed LLM bodies (release, hold, usage), plain LLM
//! bodies read whole, pass-through bodies, and the relayed head (`datapath.md` §13).

use bytes::Bytes;
use serde_json::{Value, json};

use super::relay::{BodyKind, Relay, RelayEvent};
use super::{Downstream, Exchange, Level, MAX_PLAIN_LLM_BODY, RowState, StorageOp, Upstream};
use crate::head::header_str;
use crate::outcome::{Outcome, snippet};
use crate::usage::{self, UsageRecord};

impl Exchange {
    /// One body chunk, whatever state the upstream is in.
    pub(super) fn on_body(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        match &mut self.upstream {
            Upstream::Probe503 { .. } => self.probe_chunk(chunk),
            Upstream::Stream => {
                // The first body byte ends the total/first-byte timer of a stream (§12.1).
                self.timers.total = None;
                self.relay_chunk(chunk);
            }
            Upstream::Buffer { body } => {
                let len = (body.len() as u64).saturating_add(chunk.len() as u64);
                if len > MAX_PLAIN_LLM_BODY {
                    self.too_large(None);
                } else {
                    body.extend_from_slice(&chunk);
                }
            }
            Upstream::Pass => {
                self.timers.total = None;
                self.emit_body(chunk);
            }
            Upstream::Idle
            | Upstream::AwaitHead { .. }
            | Upstream::Backoff { .. }
            | Upstream::Done => {}
        }
    }

    /// The body ended cleanly.
    pub(super) fn on_end(&mut self) {
        match std::mem::replace(&mut self.upstream, Upstream::Done) {
            Upstream::Probe503 {
                attempt,
                head,
                body,
                retry,
            } => {
                self.upstream = Upstream::Probe503 {
                    attempt,
                    head,
                    body,
                    retry,
                };
                self.decide_probe(Bytes::new(), true);
                return;
            }
            Upstream::Stream => {
                self.with_relay(Relay::finish);
                self.absorb_relay_usage();
                self.stream_ended();
                if self.outcome.is_none() {
                    let status = self.response_status.unwrap_or(200);
                    self.conclude_stream(status, vec![Downstream::End]);
                } else {
                    self.defer_or_emit(Downstream::End);
                }
            }
            Upstream::Buffer { body } => self.finish_plain(body.freeze()),
            Upstream::Pass => {
                self.stream_ended();
                self.emit_end();
                let status = self.response_status.unwrap_or(200);
                self.conclude(Outcome::Completed { status }, Vec::new());
            }
            other => self.upstream = other,
        }
        self.timers.clear_attempt();
    }

    /// Reading the body failed after the upstream head (O10): finalize with the usage seen,
    /// then cut the client body (the head goes out first so the cut is visible).
    pub(super) fn on_read_error(&mut self, message: String) {
        if matches!(self.upstream, Upstream::Probe503 { .. }) {
            // A retryable 503 whose body broke is retried like any other; otherwise its head
            // is accepted and the bytes read so far are relayed before the cut.
            self.decide_probe(Bytes::new(), false);
            if !self.wants_upstream_body() {
                return;
            }
        }
        self.absorb_relay_usage();
        self.cancel_upstream();
        self.stream_ended();
        if self.outcome.is_some() {
            // The row was decided at the terminal event: what follows is outside its
            // accounting. Cut the client body honestly.
            self.defer_or_emit(Downstream::Abort);
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
        self.flush_pending_head();
        let status = self.response_status.unwrap_or(502);
        self.conclude(
            Outcome::StreamError { status, message },
            vec![Downstream::Abort],
        );
    }

    /// Folds the relay's accounting into the exchange (usage, model, skipped lines, terminal).
    pub(super) fn absorb_relay_usage(&mut self) {
        let Some(relay) = &self.relay else {
            return;
        };
        let usage = relay.usage();
        if let Some(record) = usage.record {
            self.usage = Some(record);
        }
        if let Some(model) = usage.actual_model {
            self.actual_model = Some(model.to_owned());
        }
        self.usage_incomplete |= usage.usage_incomplete;
        self.saw_terminal |= relay.saw_terminal();
    }

    /// Body bytes for the client: the pending head goes first (§13.2).
    pub(super) fn emit_body(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if self.pending_head.is_some() && !self.down_done && !self.client_gone {
            let since_head = self.head_at.map_or(0, |t| self.now.millis_since(t));
            self.log(
                Level::Info,
                "passthrough.stream_first_chunk",
                "first stream chunk",
                vec![
                    ("request_id", json!(self.request_id)),
                    ("path", json!(self.path)),
                    ("provider", json!(self.provider)),
                    ("latency_ms", json!(since_head)),
                    (
                        "upstream_latency_ms",
                        json!(self.now.millis_since(self.attempt_started)),
                    ),
                ],
            );
        }
        self.flush_pending_head();
        self.emit(Downstream::Body(bytes));
    }

    /// The end of the body: an empty stream's head goes with it (§13.2).
    pub(super) fn emit_end(&mut self) {
        self.flush_pending_head();
        self.emit(Downstream::End);
    }

    pub(super) fn flush_pending_head(&mut self) {
        if self.down_done || self.client_gone {
            return;
        }
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
        self.emit(Downstream::Head {
            status: head.status,
            headers,
            content_length,
        });
    }

    /// Runs `f` on the relay and acts on what it released and reported.
    pub(super) fn with_relay(&mut self, f: impl FnOnce(&mut Relay) -> super::relay::RelayOutput) {
        let Some(mut relay) = self.relay.take() else {
            return;
        };
        let out = f(&mut relay);
        let mut events = Vec::new();
        while let Some(event) = relay.poll_event() {
            events.push(event);
        }
        self.relay = Some(relay);
        for event in events {
            self.relay_event(event);
        }
        for bytes in out.release {
            if matches!(self.row, RowState::Finalizing { .. }) {
                self.defer(Downstream::Body(bytes));
            } else {
                self.emit_body(bytes);
            }
        }
    }

    fn relay_chunk(&mut self, chunk: Bytes) {
        self.with_relay(|r| r.push(chunk));
        self.absorb_relay_usage();
        let terminal = self.relay.as_ref().is_some_and(|r| r.terminal_complete());
        if self.outcome.is_none() && terminal {
            let status = self.response_status.unwrap_or(200);
            self.conclude_stream(status, Vec::new());
        }
    }

    fn relay_event(&mut self, event: RelayEvent) {
        match event {
            RelayEvent::LineTooLong { length } => {
                self.usage_incomplete = true;
                self.log_line_too_long("stream line over the cap forwarded unparsed", length);
            }
            RelayEvent::EventTooLong { length } => {
                self.usage_incomplete = true;
                self.log_line_too_long("stream event over the cap forwarded unparsed", length);
            }
            RelayEvent::FirstUsage { record } => self.checkpoint(record),
        }
    }

    fn log_line_too_long(&mut self, msg: &'static str, length: u64) {
        self.log(
            Level::Warn,
            "passthrough.sse_line_too_long",
            msg,
            vec![
                ("request_id", json!(self.request_id)),
                ("length", json!(length)),
            ],
        );
    }

    /// The usage checkpoint of §14.2, once, while the row is pending.
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

    /// A plain LLM body is complete: extract usage, finalize, and send it after the commit
    /// with `content-length` = its length (§13.3).
    fn finish_plain(&mut self, body: Bytes) {
        let Some(head) = self.pending_head.take() else {
            return;
        };
        let status = head.status.as_u16();
        let content_type = header_str(&head.headers, "content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") || content_type.starts_with("text/") {
            let extracted = usage::extract_plain(&body);
            self.usage = extracted.record;
            self.actual_model = extracted.actual_model;
        }
        if status == 503 && crate::retry::is_short_circuit_body(&body) {
            self.short_circuit = true;
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
}
