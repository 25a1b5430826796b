//! The CLIProxyAPI correlator (`control.md` §8.2–§8.4): which management endpoint to call,
//! how its answer becomes upstream usage records, and which record belongs to which local
//! row. Pure: the shell reads the candidate rows, performs the HTTP calls, applies the
//! assignments through the writer, and passes `now` in.
//!
//! One tick, as the shell drives it:
//!
//! 1. read the candidates ([`CANDIDATE_LIMIT`] uncorrelated rows, newest first, started
//!    within the lookback); none → end the tick with no HTTP call;
//! 0. call [`Correlator::begin_tick`]: it forgets what aged past the lookback and returns
//!    the pairings an earlier tick could not confirm; write each again (the write is
//!    idempotent, §8.4) and [`Correlator::confirm`] each one the writer answered;
//! 1. read the candidates ([`CANDIDATE_LIMIT`] uncorrelated rows, newest first, started
//!    within the lookback); none → end the tick with no HTTP call;
//! 2. ask [`Correlator::next_fetch`] for a URL (none once both endpoints are unsupported),
//!    perform it, feed the answer to [`Correlator::handle_fetch`], and repeat while it says
//!    [`FetchStep::Next`]; queue records are held by the correlator from that moment on
//!    ([`carry`]);
//! 3. give the records to [`Correlator::match_tick`], apply every [`Assignment`] with one
//!    writer command each, [`Correlator::confirm`] each one the writer answered, and feed the
//!    result to [`Correlator::handle_applied`], which returns the `correlated logs` and
//!    `correlator.low_match_rate` records to log.
//!
//! A management call may take up to [`management_timeout_ms`]; the shell runs one tick at a
//! time, so a slow answer delays the next tick instead of being cut off.
//!
//! Choices where the spec is silent:
//!
//! * A record is remembered as applied when it is assigned, not when the writer confirms: a
//!   record whose write failed is never offered to another row, so no upstream record is
//!   ever attributed twice even if a reply is lost after the commit. Its pairing is written
//!   again by the next ticks until the writer confirms it ([`carry`]).
//! * Records with `failed: true` are never matched: a failed attempt on one account followed
//!   by a retry on another would otherwise attribute the row to the wrong account.
//! * Records with an empty `source` are never matched: they carry no account, and the row
//!   would stay uncorrelated (`cliproxy_account IS NULL`) and be matched again later, so
//!   its `cliproxy_auth_index` could change.
//! * A record whose `tokens.total_tokens` is 0 uses `input_tokens + output_tokens` as its
//!   total.
//! * The low-match warning needs five samples with a non-zero total ("sustained").
//! * `api_key` is read by the spec only for grouping; this implementation does not group and
//!   never keeps the value.
//! * The score is computed in tenths (`10·|Δt| + 1000·|Δtotal| + |Δlatency|`), so it is an
//!   exact integer with the spec's ordering.

pub mod carry;
mod fetch;
mod matcher;
mod parse;
#[cfg(test)]
mod tests;

use serde_json::json;

use crate::exchange::{Level, LogRecord};
use crate::time::{Instant, UnixMillis};

pub use carry::{Carry, Expired, Unapplied};
pub use fetch::{Endpoint, FetchResponse, FetchState, FetchStep, Support};
pub use matcher::{AppliedMemory, Assignment, DetailKey, MatchOutcome, match_candidates};
pub use parse::{parse_legacy, parse_queue, parse_timestamp};

/// Rows read per tick at most.
pub const CANDIDATE_LIMIT: u32 = 200;
/// Records kept per tick at most (the last ones in fetch order).
pub const MAX_DETAILS: usize = 10_000;
/// Items asked from the queue per call.
pub const QUEUE_BATCH: u32 = 500;
/// Least time limit of one management call, in milliseconds.
pub const MANAGEMENT_TIMEOUT_MS: u64 = 60_000;
/// Breaker id of management calls.
pub const BREAKER_ID: &str = "cliproxy-management";
/// Samples in the low-match window.
pub const LOW_MATCH_WINDOW: usize = 5;
/// Match rate under which the warning fires.
pub const LOW_MATCH_THRESHOLD: f64 = 0.5;
/// Least time between two low-match warnings.
pub const LOW_MATCH_QUIET_MS: u64 = 3_600_000;

/// The time limit of one management call: [`MANAGEMENT_TIMEOUT_MS`], or
/// `UPSTREAM_TIMEOUT_MS` when that is set (non-zero) and longer. Never derived from the loop
/// interval: the queue pops its records when it answers, so an answer cut off by a short
/// limit is lost for good, and a busy router may well take longer than a short interval.
pub fn management_timeout_ms(upstream_timeout_ms: u64) -> u64 {
    upstream_timeout_ms.max(MANAGEMENT_TIMEOUT_MS)
}

/// The correlator's settings (`CLIPROXY_CORRELATION_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchConfig {
    /// `CLIPROXY_CORRELATION_WINDOW_MS`: largest |detail time − started_at|.
    pub window_ms: u64,
    /// `CLIPROXY_CORRELATION_LOOKBACK_MS`: oldest candidate and record, and how long an
    /// applied record is remembered.
    pub lookback_ms: u64,
}

/// A local row the correlator may match (uncorrelated, status 200, within the lookback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Row id.
    pub id: i64,
    /// Requested model.
    pub model: String,
    /// Response model.
    pub actual_model: Option<String>,
    /// `started_at`, ISO-8601.
    pub started_at: String,
    /// `total_tokens` (0 when unknown).
    pub total_tokens: i64,
    /// `latency_ms`, when set.
    pub latency_ms: Option<i64>,
}

/// Token counts of an upstream record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct DetailTokens {
    /// `input_tokens`.
    pub input_tokens: i64,
    /// `output_tokens`.
    pub output_tokens: i64,
    /// `reasoning_tokens`.
    pub reasoning_tokens: i64,
    /// `cached_tokens`.
    pub cached_tokens: i64,
    /// `total_tokens`.
    pub total_tokens: i64,
}

impl DetailTokens {
    /// The total used for matching: `total_tokens`, or input + output when it is 0.
    pub fn effective_total(&self) -> i64 {
        if self.total_tokens != 0 {
            self.total_tokens
        } else {
            self.input_tokens.saturating_add(self.output_tokens)
        }
    }
}

/// One upstream usage record (a queue item or a legacy detail), fields as §8.2 reads them:
/// strings trimmed (a non-string is `""`), numbers finite (else 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamDetail {
    /// `timestamp` as sent (trimmed).
    pub timestamp: String,
    /// `latency_ms`.
    pub latency_ms: i64,
    /// `source`: the account, written to `cliproxy_account` and `cliproxy_source`.
    pub source: String,
    /// `auth_index`.
    pub auth_index: String,
    /// `provider`.
    pub provider: String,
    /// `model` (for a legacy detail, its model key).
    pub model: String,
    /// `alias`.
    pub alias: String,
    /// `endpoint`.
    pub endpoint: String,
    /// `failed` was literally `true`.
    pub failed: bool,
    /// `tokens.*`.
    pub tokens: DetailTokens,
}

/// The state kept across ticks: endpoint support, the applied-record memory, the records
/// held until applied, and the low-match window.
#[derive(Debug, Clone)]
pub struct Correlator {
    config: MatchConfig,
    base_url: String,
    fetch: FetchState,
    applied: AppliedMemory,
    carry: Carry,
    samples: LowMatchWindow,
}

impl Correlator {
    /// A correlator for the management API at `base_url` (`CLI_PROXY_API_URL`, no trailing
    /// `/`).
    pub fn new(base_url: &str, config: MatchConfig) -> Correlator {
        Correlator {
            config,
            base_url: base_url.trim_end_matches('/').to_owned(),
            fetch: FetchState::default(),
            applied: AppliedMemory::default(),
            carry: Carry::default(),
            samples: LowMatchWindow::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> MatchConfig {
        self.config
    }

    /// The endpoint support as known so far.
    pub fn fetch_state(&self) -> &FetchState {
        &self.fetch
    }

    /// `started_at >= since` of the candidate query: `now − lookback`, ISO.
    pub fn candidates_since(&self, now: UnixMillis) -> String {
        UnixMillis(now.0.saturating_sub(self.config.lookback_ms)).to_iso()
    }

    /// The first call of a tick: the queue unless unsupported, else the legacy endpoint
    /// unless unsupported, else none.
    pub fn next_fetch(&self) -> Option<(Endpoint, String)> {
        let ep = self.fetch.first()?;
        Some((ep, ep.url(&self.base_url)))
    }

    /// Feeds the answer of a call to `endpoint`. Returns the next step and the records to
    /// log (the 404 warnings, `usage queue fetch failed`).
    ///
    /// The queue's records are taken into the correlator's keeping at once (they exist
    /// nowhere else any more) and the step is [`FetchStep::Held`]; the legacy snapshot's
    /// records come back in [`FetchStep::Records`] (the router keeps them).
    pub fn handle_fetch(
        &mut self,
        endpoint: Endpoint,
        response: FetchResponse,
    ) -> (FetchStep, Vec<LogRecord>) {
        let (step, mut logs) = self.fetch.handle(endpoint, response, &self.base_url);
        match (endpoint, step) {
            (Endpoint::Queue, FetchStep::Records(records)) => {
                let count = records.len() as u64;
                let let_go = self.carry.keep(records);
                if let_go > 0 {
                    logs.push(LogRecord {
                        level: Level::Warn,
                        event: "correlator.records_let_go",
                        msg: "too many unmatched usage records held, oldest let go",
                        fields: vec![("count", json!(let_go)), ("held", json!(MAX_DETAILS))],
                    });
                }
                (FetchStep::Held(count), logs)
            }
            (_, step) => (step, logs),
        }
    }

    /// The start of a tick at `now`: forgets held records older than the lookback and
    /// pairings no write confirmed within it (a warning says how many: those records are
    /// lost), and returns the pairings to write again, oldest first.
    pub fn begin_tick(&mut self, now: UnixMillis) -> (Vec<Assignment>, Vec<LogRecord>) {
        let oldest = UnixMillis(now.0.saturating_sub(self.config.lookback_ms));
        let expired = self.carry.expire(now, oldest);
        let mut logs = Vec::new();
        if expired.unmatched > 0 {
            logs.push(LogRecord {
                level: Level::Debug,
                event: "correlator.records_expired",
                msg: "usage records no row matched within the lookback were forgotten",
                fields: vec![("count", json!(expired.unmatched))],
            });
        }
        if expired.unconfirmed > 0 {
            logs.push(LogRecord {
                level: Level::Warn,
                event: "correlator.unapplied_expired",
                msg: "correlations the database did not take within the lookback were given up",
                fields: vec![("count", json!(expired.unconfirmed))],
            });
        }
        (self.carry.unconfirmed(), logs)
    }

    /// Matches `candidates` (newest first) against the held queue records followed by
    /// `details` (fetch order) at `now`, skipping records applied in an earlier tick, and
    /// remembers every assigned record for the lookback period. Held records no row took
    /// stay held; `details` (the legacy snapshot, which the router keeps) are not held, and
    /// one equal to a held record is left out so a record cannot be in the pool twice.
    /// Every assignment stays unconfirmed until [`Correlator::confirm`]; a candidate with an
    /// unconfirmed pairing is not matched again.
    pub fn match_tick(
        &mut self,
        candidates: &[Candidate],
        details: Vec<UpstreamDetail>,
        now: UnixMillis,
    ) -> MatchOutcome {
        self.applied.expire(now);
        let mut pool = self.carry.take_unassigned();
        let held = pool.len();
        if held > 0 && !details.is_empty() {
            let keys: std::collections::BTreeSet<DetailKey> =
                pool.iter().map(DetailKey::of).collect();
            pool.extend(
                details
                    .into_iter()
                    .filter(|d| !keys.contains(&DetailKey::of(d))),
            );
        } else {
            pool.extend(details);
        }
        // A row whose pairing is still unconfirmed already has its record: offering it
        // another one could leave the first with no row once the retry finds the row taken.
        let waiting = self.carry.rows_waiting();
        let open: Vec<Candidate>;
        let candidates = if waiting.is_empty() {
            candidates
        } else {
            open = candidates
                .iter()
                .filter(|c| !waiting.contains(&c.id))
                .cloned()
                .collect();
            &open
        };
        let (outcome, unused) =
            matcher::match_records(candidates, pool, now, self.config, &self.applied);
        self.carry.restore_unassigned(
            unused
                .into_iter()
                .filter(|(index, _)| *index < held)
                .map(|(_, d)| d)
                .collect(),
        );
        let until = UnixMillis(now.0.saturating_add(self.config.lookback_ms));
        for a in &outcome.assignments {
            self.applied.remember(a.key.clone(), until);
            self.carry.track(a.clone(), until);
        }
        outcome
    }

    /// The writer answered the write of `assignment` (whether or not the row changed): its
    /// record is applied and is not written again.
    pub fn confirm(&mut self, assignment: &Assignment) -> bool {
        self.carry.confirm(assignment.row_id, &assignment.key)
    }

    /// Records held and not applied.
    pub fn unapplied(&self) -> Unapplied {
        self.carry.unapplied()
    }

    /// The record to log when the correlator stops while holding records, so none vanishes
    /// silently: counts only, never a record's content.
    pub fn shutdown_log(&self) -> Option<LogRecord> {
        let left = self.unapplied();
        (left.total() > 0).then(|| LogRecord {
            level: Level::Warn,
            event: "correlator.unapplied_at_shutdown",
            msg: "correlator stopped holding usage records it could not apply",
            fields: vec![
                ("unmatched", json!(left.unmatched)),
                ("unconfirmed", json!(left.unconfirmed)),
            ],
        })
    }

    /// Records the tick's sample (`matched` rows written out of `total` candidates) and
    /// returns what to log: info `correlated logs` when something matched, warn
    /// `correlator.low_match_rate` when the window says so.
    pub fn handle_applied(&mut self, matched: u64, total: u64, now: Instant) -> Vec<LogRecord> {
        let mut out = Vec::new();
        if matched > 0 {
            out.push(LogRecord {
                level: Level::Info,
                event: "correlator.correlated",
                msg: "correlated logs",
                fields: vec![("matched", json!(matched)), ("total", json!(total))],
            });
        }
        if let Some(w) = self.samples.record(matched, total, now) {
            out.push(w.log_record());
        }
        out
    }

    /// Records remembered as applied.
    pub fn remembered(&self) -> usize {
        self.applied.len()
    }
}

/// The last samples with a non-zero total and the time of the last warning.
#[derive(Debug, Clone, Default)]
pub struct LowMatchWindow {
    samples: std::collections::VecDeque<(u64, u64)>,
    last_warning: Option<Instant>,
}

/// A `correlator.low_match_rate` warning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowMatchWarning {
    /// Σ matched over the window.
    pub matched: u64,
    /// Σ total over the window.
    pub total: u64,
    /// matched / total.
    pub match_rate: f64,
}

impl LowMatchWarning {
    /// The log record of the spec.
    pub fn log_record(&self) -> LogRecord {
        LogRecord {
            level: Level::Warn,
            event: "correlator.low_match_rate",
            msg: "correlator match rate is low",
            fields: vec![
                ("matched", json!(self.matched)),
                ("total", json!(self.total)),
                ("match_rate", json!(self.match_rate)),
                ("window_ticks", json!(LOW_MATCH_WINDOW)),
                ("threshold", json!(LOW_MATCH_THRESHOLD)),
                (
                    "hint",
                    json!("check host clock sync and CLIPROXY_CORRELATION_WINDOW_MS"),
                ),
            ],
        }
    }
}

impl LowMatchWindow {
    /// Adds one sample (ignored when `total` is 0) and returns a warning when the last
    /// [`LOW_MATCH_WINDOW`] samples match under [`LOW_MATCH_THRESHOLD`] and no warning was
    /// given in the last [`LOW_MATCH_QUIET_MS`].
    pub fn record(&mut self, matched: u64, total: u64, now: Instant) -> Option<LowMatchWarning> {
        if total == 0 {
            return None;
        }
        self.samples.push_back((matched.min(total), total));
        while self.samples.len() > LOW_MATCH_WINDOW {
            self.samples.pop_front();
        }
        if self.samples.len() < LOW_MATCH_WINDOW {
            return None;
        }
        let matched: u64 = self.samples.iter().map(|s| s.0).sum();
        let total: u64 = self.samples.iter().map(|s| s.1).sum();
        // matched / total < 0.5 without floating point.
        if matched.saturating_mul(2) >= total {
            return None;
        }
        if let Some(at) = self.last_warning
            && now.millis_since(at) < LOW_MATCH_QUIET_MS
        {
            return None;
        }
        self.last_warning = Some(now);
        Some(LowMatchWarning {
            matched,
            total,
            match_rate: matched as f64 / total as f64,
        })
    }
}
