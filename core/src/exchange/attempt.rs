//! Upstream attempts: admission refusals, sending, retries with backoff, the `503` probe and
//! the choice of how an accepted head's body is relayed (`datapath.md` §12, §13.1).

use bytes::Bytes;
use http::HeaderMap;
use serde_json::json;

use super::relay::{BodyKind, Relay, RelayConfig};
use super::{
    Block, Downstream, Exchange, Level, MAX_PLAIN_LLM_BODY, MetricEvent, SHORT_CIRCUIT_PROBE_BYTES,
    Upstream, UpstreamOp,
};
use crate::errors;
use crate::head::{ResponseHead, header_str};
use crate::outcome::{Outcome, snippet};
use crate::retry;

impl Exchange {
    /// The row (if any) is committed: refuse as decided at admission, or send attempt 0.
    pub(super) fn after_admission(&mut self) {
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

    pub(super) fn send_attempt(&mut self, attempt: u32) {
        let Some(request) = self.request.clone() else {
            // Retries are only scheduled while the body is kept; never send an empty one.
            self.upstream = Upstream::Done;
            self.conclude(
                Outcome::Internal,
                vec![Downstream::Reply(errors::internal_error())],
            );
            return;
        };
        self.attempts = attempt.saturating_add(1);
        self.attempt_started = self.now;
        self.timers
            .arm_attempt(self.now, &self.limits, self.first_byte_applies());
        self.upstream = Upstream::AwaitHead { attempt };
        self.live_attempt = Some(attempt);
        self.upstream_out
            .push_back(UpstreamOp::Send { attempt, request });
    }

    pub(super) fn backoff_after(&mut self, headers: Option<&HeaderMap>, attempt: u32) -> u64 {
        let wall = self.wall_now();
        let retry_after = headers
            .and_then(|h| header_str(h, "retry-after"))
            .and_then(|v| retry::parse_retry_after(v, wall));
        retry::backoff_ms(attempt, retry_after, &mut self.rng)
    }

    pub(super) fn schedule_retry(&mut self, attempt: u32, delay_ms: u64) {
        self.metric(MetricEvent::Retry {
            provider: self.provider.clone(),
        });
        self.upstream = Upstream::Backoff {
            attempt: attempt.saturating_add(1),
        };
        self.timers.backoff = Some(self.now.plus_millis(delay_ms));
    }

    /// Feeds a chunk of a `503` body; once 64 KiB are in, decides.
    pub(super) fn probe_chunk(&mut self, chunk: Bytes) {
        let Upstream::Probe503 { body, .. } = &mut self.upstream else {
            return;
        };
        let room = SHORT_CIRCUIT_PROBE_BYTES.saturating_sub(body.len());
        let split = chunk.len().min(room);
        body.extend_from_slice(chunk.get(..split).unwrap_or_default());
        if body.len() >= SHORT_CIRCUIT_PROBE_BYTES {
            self.decide_probe(chunk.slice(split..), false);
        }
    }

    /// A `503` body was read (64 KiB or to its end): a short-circuit is relayed as is and is
    /// breaker-neutral; any other retryable `503` is retried; the rest is relayed.
    pub(super) fn decide_probe(&mut self, overflow: Bytes, ended: bool) {
        let Upstream::Probe503 {
            attempt,
            head,
            body,
            retry,
        } = std::mem::replace(&mut self.upstream, Upstream::Idle)
        else {
            return;
        };
        let body = body.freeze();
        let short_circuit = retry::is_short_circuit_body(&body);
        if short_circuit {
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
        }
        if retry && !short_circuit {
            let delay = self.backoff_after(Some(&head.headers), attempt);
            if !ended {
                self.cancel_attempt();
            }
            self.timers.clear_attempt();
            self.log_attempt_error("5xx", Some(503), attempt, true, None);
            self.schedule_retry(attempt, delay);
            return;
        }
        // Not retried: the head is final; replay what was read through the chosen relay.
        self.upstream = Upstream::Done;
        self.accept_head(head);
        if matches!(self.upstream, Upstream::Done) {
            return;
        }
        self.on_body(body);
        self.on_body(overflow);
        if ended {
            self.on_end();
        }
    }

    /// The head is final: choose how the body is relayed.
    pub(super) fn accept_head(&mut self, head: ResponseHead) {
        // An idempotent request's body can be dropped once a head is accepted (§5).
        self.request = None;
        let status = head.status.as_u16();
        self.response_status = Some(status);
        self.body_kind = BodyKind::for_response(
            &self.path,
            status,
            header_str(&head.headers, "content-type"),
        );
        let is_llm = self.prelog.is_some();
        match (self.body_kind, is_llm) {
            (BodyKind::Sse | BodyKind::Ndjson | BodyKind::JsonArray, true) => {
                let remove = self.usage_injected && self.body_kind == BodyKind::Sse;
                self.relay = Some(Box::new(Relay::new(
                    self.body_kind,
                    RelayConfig {
                        line_cap: self.limits.line_cap,
                        remove_usage_chunk: remove,
                    },
                )));
                self.pending_head = Some(head);
                self.upstream = Upstream::Stream;
                self.stream_started();
            }
            (BodyKind::Sse | BodyKind::Ndjson | BodyKind::JsonArray, false) => {
                self.pending_head = Some(head);
                self.upstream = Upstream::Pass;
                self.stream_started();
            }
            (BodyKind::Plain, true) => {
                let declared =
                    header_str(&head.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
                if let Some(len) = declared.filter(|l| *l > MAX_PLAIN_LLM_BODY) {
                    self.upstream = Upstream::Buffer {
                        body: bytes::BytesMut::new(),
                    };
                    self.too_large(Some(len));
                    return;
                }
                self.pending_head = Some(head);
                self.upstream = Upstream::Buffer {
                    body: bytes::BytesMut::new(),
                };
            }
            (BodyKind::Plain, false) => {
                self.timers.total = None;
                self.pending_head = Some(head);
                self.flush_pending_head();
                self.upstream = Upstream::Pass;
            }
        }
    }

    /// O5: the plain LLM body is (or would be) over 50 MiB.
    pub(super) fn too_large(&mut self, content_length: Option<u64>) {
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

    fn first_byte_applies(&self) -> bool {
        self.path == "/v1/messages" && self.stream_requested
    }
}
