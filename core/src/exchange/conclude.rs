//! Ending an exchange: the outcome (once), the finalize of its row, the outputs held until
//! the commit, the breaker permit, `Finished`, and the log and metric helpers.

use serde_json::{Value, json};

use super::{
    Downstream, Exchange, ExchangeEvent, FinalizeRow, Level, LogRecord, MetricEvent, PreLogRow,
    RowState, StorageOp, Upstream, UpstreamOp, row,
};
use crate::breaker::OutcomeClass;
use crate::errors::TimeoutKind;
use crate::outcome::{Lifecycle, Outcome};
use crate::route::is_generation_path;
use crate::time::UnixMillis;

impl Exchange {
    /// Decides the exchange's outcome (once), returns the breaker permit, queues the
    /// finalize of its row, and arranges for `then` to reach the client after the commit
    /// (at once when there is no row).
    pub(super) fn conclude(&mut self, outcome: Outcome, then: Vec<Downstream>) {
        if self.outcome.is_some() {
            return;
        }
        let class = outcome.breaker_class(self.short_circuit);
        self.release_permit(class);
        let row = match (self.row, &self.prelog) {
            (RowState::Pending(row_id), Some(prelog)) => {
                Some(self.finalize_row(row_id, prelog, &outcome))
            }
            _ => None,
        };
        self.outcome = Some(outcome);
        let Some(row) = row else {
            for d in then {
                self.emit_any(d);
            }
            return;
        };
        self.report_finalize(&row);
        self.row = RowState::Finalizing {
            row_id: row.row_id,
            fallback: false,
        };
        self.storage_out
            .push_back(StorageOp::Finalize(Box::new(row)));
        for d in then {
            self.defer(d);
        }
    }

    /// The commit is in (or given up on): heads and bytes held for it, then the relay's held
    /// bytes, then the last output.
    pub(super) fn release_held(&mut self) {
        while let Some(d) = self.held.pop_front() {
            self.emit_any(d);
        }
        if let Some(relay) = self.relay.as_mut() {
            let bytes = relay.release_held();
            for b in bytes {
                self.emit_body(b);
            }
        }
        if let Some(last) = self.held_final.take() {
            self.emit_any(last);
        }
    }

    /// Holds `d` until the commit: the first End, Abort or Reply is the last output.
    pub(super) fn defer(&mut self, d: Downstream) {
        if is_last(&d) {
            self.held_final.get_or_insert(d);
        } else if self.held_final.is_none() {
            self.held.push_back(d);
        }
    }

    /// Sends `d` now, or after the commit when one is pending.
    pub(super) fn defer_or_emit(&mut self, d: Downstream) {
        if matches!(self.row, RowState::Finalizing { .. }) {
            self.defer(d);
        } else {
            self.emit_any(d);
        }
    }

    /// Queues `d` for the client unless its output has ended.
    pub(super) fn emit(&mut self, d: Downstream) {
        if self.down_done || self.client_gone {
            return;
        }
        if is_last(&d) {
            self.down_done = true;
        }
        self.down_out.push_back(d);
    }

    /// Asks the shell to drop the attempt in flight; its later inputs are ignored.
    pub(super) fn cancel_attempt(&mut self) {
        self.live_attempt = None;
        self.upstream_out.push_back(UpstreamOp::Cancel);
    }

    pub(super) fn cancel_upstream(&mut self) {
        match self.upstream {
            Upstream::AwaitHead { .. }
            | Upstream::Probe503 { .. }
            | Upstream::Stream
            | Upstream::Buffer { .. }
            | Upstream::Pass => self.cancel_attempt(),
            Upstream::Idle | Upstream::Backoff { .. } | Upstream::Done => {}
        }
        self.upstream = Upstream::Done;
        self.timers.clear_attempt();
        self.timers.backoff = None;
    }

    pub(super) fn release_permit(&mut self, class: OutcomeClass) {
        if let Some(permit) = self.permit.take() {
            self.events
                .push_back(ExchangeEvent::Outcome { permit, class });
        }
    }

    pub(super) fn stream_started(&mut self) {
        if !self.streaming_metric {
            self.streaming_metric = true;
            self.metric(MetricEvent::StreamStarted);
        }
    }

    pub(super) fn stream_ended(&mut self) {
        if self.streaming_metric {
            self.streaming_metric = false;
            self.metric(MetricEvent::StreamEnded);
        }
    }

    /// Emits `Finished` once nothing more can happen: the row settled, the upstream idle,
    /// the client's output ended and nothing held.
    pub(super) fn maybe_finish(&mut self) {
        if self.finished {
            return;
        }
        let row_settled = matches!(self.row, RowState::None | RowState::Done);
        let upstream_settled = matches!(self.upstream, Upstream::Done | Upstream::Idle);
        let concluded = self.outcome.is_some() || self.row == RowState::Done;
        let nothing_held = self.held.is_empty() && self.held_final.is_none();
        if concluded && row_settled && upstream_settled && self.down_done && nothing_held {
            // Every path returns the permit in `conclude`; this only guards the invariant.
            self.release_permit(OutcomeClass::Neutral);
            self.stream_ended();
            self.finished = true;
            self.timers = super::Timers::default();
            self.relay = None;
            self.request = None;
            self.events.push_back(ExchangeEvent::Finished);
        }
    }

    pub(super) fn wall_now(&self) -> UnixMillis {
        UnixMillis(
            self.started_wall
                .0
                .saturating_add(self.now.millis_since(self.started)),
        )
    }

    pub(super) fn log(
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

    pub(super) fn metric(&mut self, m: MetricEvent) {
        self.events.push_back(ExchangeEvent::Metric(m));
    }

    pub(super) fn prelog_fields(&self) -> Vec<(&'static str, Value)> {
        let Some(p) = &self.prelog else {
            return Vec::new();
        };
        vec![
            ("request_id", json!(self.request_id)),
            ("provider", json!(p.provider)),
            ("model", json!(p.model)),
            ("path", json!(p.path)),
            ("tool", json!(p.tool)),
            ("client_id", json!(p.client_id)),
        ]
    }

    pub(super) fn log_attempt_error(
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

    /// Any output: body bytes release the pending head first.
    fn emit_any(&mut self, d: Downstream) {
        match d {
            Downstream::Body(bytes) => self.emit_body(bytes),
            Downstream::End => self.emit_end(),
            other => self.emit(other),
        }
    }

    fn finalize_row(&self, row_id: i64, prelog: &PreLogRow, outcome: &Outcome) -> FinalizeRow {
        let ending = outcome.row();
        let generation_path = is_generation_path(&self.path);
        let no_usage_on_success = self.usage.is_none()
            && generation_path
            && (200..300).contains(&self.response_status.unwrap_or(0));
        let cut_short = matches!(
            outcome,
            Outcome::ClientAborted { .. }
                | Outcome::ClientStalled
                | Outcome::Shutdown
                | Outcome::StreamError { .. }
        ) && !self.saw_terminal;
        let usage_incomplete = self.usage_incomplete || no_usage_on_success || cut_short;
        row::build_finalize(row::FinalizeInputs {
            row_id,
            prelog,
            ending: &ending,
            usage: self.usage.as_ref(),
            actual_model: self.actual_model.as_deref(),
            config: &self.config,
            pricer: &self.pricer,
            streamed: self.body_kind.is_stream(),
            usage_incomplete,
            latency_ms: self.now.millis_since(self.started),
            finished_at: self.wall_now(),
            attempts: self.attempts,
            usage_injected: self.usage_injected,
        })
    }

    /// The metrics and the log event of a finalize (§14.3, §16).
    fn report_finalize(&mut self, row: &FinalizeRow) {
        if row.usage_incomplete {
            self.metric(MetricEvent::UsageIncomplete);
        }
        self.metric(MetricEvent::RequestDuration {
            lifecycle_status: row.lifecycle_status.as_str(),
            provider: self.provider.clone(),
            status: row.status,
            streamed: row.streamed,
            ms: row.latency_ms,
        });
        let event = if row.lifecycle_status == Lifecycle::Aborted {
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
                ("lifecycle_status", json!(row.lifecycle_status.as_str())),
                ("status", json!(row.status)),
                ("path", json!(self.path)),
                // Token counts are not secrets (`control.md` §10.3): operators grep for them.
                ("prompt_tokens", json!(row.columns.prompt_tokens)),
                ("completion_tokens", json!(row.columns.completion_tokens)),
                ("total_tokens", json!(row.columns.total_tokens)),
                ("cost_nanousd", json!(row.cost_nanousd)),
            ],
        );
    }
}

fn is_last(d: &Downstream) -> bool {
    matches!(
        d,
        Downstream::End | Downstream::Abort | Downstream::Reply(_)
    )
}
