//! Matching rows to records (`control.md` §8.3): model, time window, lowest score, first
//! minimum on ties, each record used once, records applied in earlier ticks skipped.

use std::collections::BTreeMap;

use super::{Candidate, MAX_DETAILS, MatchConfig, UpstreamDetail, parse_timestamp};
use crate::time::UnixMillis;

/// Most records remembered as applied; past it the ones expiring first are forgotten.
pub const MAX_REMEMBERED: usize = 100_000;

/// What identifies an upstream record across ticks: timestamp, source, auth index, model
/// and total tokens.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DetailKey {
    /// `timestamp` as sent.
    pub timestamp: String,
    /// `source`.
    pub source: String,
    /// `auth_index`.
    pub auth_index: String,
    /// `model`.
    pub model: String,
    /// `tokens.total_tokens`.
    pub total_tokens: i64,
}

impl DetailKey {
    /// The key of a record.
    pub fn of(d: &UpstreamDetail) -> DetailKey {
        DetailKey {
            timestamp: d.timestamp.clone(),
            source: d.source.clone(),
            auth_index: d.auth_index.clone(),
            model: d.model.clone(),
            total_tokens: d.tokens.total_tokens,
        }
    }
}

/// Records applied in earlier ticks, each until its expiry (assignment time + lookback).
#[derive(Debug, Clone, Default)]
pub struct AppliedMemory {
    until: BTreeMap<DetailKey, UnixMillis>,
}

impl AppliedMemory {
    /// True when `key` was applied and has not expired.
    pub fn contains(&self, key: &DetailKey) -> bool {
        self.until.contains_key(key)
    }

    /// Remembers `key` until `until`.
    pub fn remember(&mut self, key: DetailKey, until: UnixMillis) {
        self.until.insert(key, until);
        if self.until.len() > MAX_REMEMBERED {
            let mut expiries: Vec<UnixMillis> = self.until.values().copied().collect();
            expiries.sort_unstable();
            let cut = expiries[self.until.len() - MAX_REMEMBERED];
            self.until.retain(|_, u| *u >= cut);
        }
    }

    /// Forgets entries whose time has passed.
    pub fn expire(&mut self, now: UnixMillis) {
        self.until.retain(|_, u| *u > now);
    }

    /// Entries remembered.
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

/// One row ↔ record pairing to apply (`control.md` §8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The row.
    pub row_id: i64,
    /// `detail.source` (`None` when empty, so `COALESCE` keeps the column).
    pub source: Option<String>,
    /// `detail.auth_index` (`None` when empty).
    pub auth_index: Option<String>,
    /// The record's identity, remembered as applied.
    pub key: DetailKey,
    /// The winning score in tenths.
    pub score_tenths: u128,
}

/// The result of one matching pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatchOutcome {
    /// Pairings, in candidate order.
    pub assignments: Vec<Assignment>,
    /// Candidates considered.
    pub total: u64,
    /// Candidates left without a record.
    pub unmatched_rows: u64,
    /// Usable records left without a row.
    pub unused_records: u64,
    /// Records skipped because an earlier tick applied them.
    pub skipped_applied: u64,
    /// Records dropped before matching: unparseable or older than the lookback, failed,
    /// without a `source`, or beyond the [`MAX_DETAILS`] cap.
    pub dropped: u64,
}

/// Matches `candidates` (newest first) against `details` (fetch order); see the module docs.
pub fn match_candidates(
    candidates: &[Candidate],
    details: Vec<UpstreamDetail>,
    now: UnixMillis,
    config: MatchConfig,
    applied: &AppliedMemory,
) -> MatchOutcome {
    match_records(candidates, details, now, config, applied).0
}

/// [`match_candidates`], also returning the usable records no row took, each with its
/// index in `details`, so the caller can keep the ones it must not lose.
pub(super) fn match_records(
    candidates: &[Candidate],
    details: Vec<UpstreamDetail>,
    now: UnixMillis,
    config: MatchConfig,
    applied: &AppliedMemory,
) -> (MatchOutcome, Vec<(usize, UpstreamDetail)>) {
    let mut out = MatchOutcome {
        total: candidates.len() as u64,
        ..MatchOutcome::default()
    };
    let oldest = now.0.saturating_sub(config.lookback_ms);
    let mut pool: Vec<Option<(i64, UpstreamDetail)>> = Vec::new();
    let mut origin: Vec<usize> = Vec::new();
    let fetched = details.len();
    for (index, d) in details.into_iter().enumerate() {
        match parse_timestamp(&d.timestamp) {
            Some(t) if t.0 >= oldest => {
                pool.push(Some((ms(t), d)));
                origin.push(index);
            }
            _ => out.dropped += 1,
        }
    }
    if pool.len() > MAX_DETAILS {
        let extra = pool.len() - MAX_DETAILS;
        pool.drain(..extra);
        origin.drain(..extra);
        out.dropped += extra as u64;
    }
    for slot in &mut pool {
        let Some((_, d)) = slot else { continue };
        if d.failed || d.source.is_empty() {
            out.dropped += 1;
            *slot = None;
        } else if applied.contains(&DetailKey::of(d)) {
            out.skipped_applied += 1;
            *slot = None;
        }
    }
    debug_assert!(fetched as u64 >= out.dropped + out.skipped_applied);
    let window = i64::try_from(config.window_ms).unwrap_or(i64::MAX);
    for c in candidates {
        let Some(started) = parse_timestamp(&c.started_at) else {
            out.unmatched_rows += 1;
            continue;
        };
        let started = ms(started);
        let mut best: Option<(u128, usize)> = None;
        for (i, slot) in pool.iter().enumerate() {
            let Some((at, d)) = slot else { continue };
            if !model_matches(c, d) {
                continue;
            }
            let dt = at.abs_diff(started);
            if dt > window.unsigned_abs() {
                continue;
            }
            let s = score(c, d, dt);
            if best.is_none_or(|(b, _)| s < b) {
                best = Some((s, i));
            }
        }
        let Some((score_tenths, i)) = best else {
            out.unmatched_rows += 1;
            continue;
        };
        let Some((_, d)) = pool[i].take() else {
            out.unmatched_rows += 1;
            continue;
        };
        out.assignments.push(Assignment {
            row_id: c.id,
            source: non_empty(&d.source),
            auth_index: non_empty(&d.auth_index),
            key: DetailKey::of(&d),
            score_tenths,
        });
    }
    let unused: Vec<(usize, UpstreamDetail)> = origin
        .into_iter()
        .zip(pool)
        .filter_map(|(index, slot)| slot.map(|(_, d)| (index, d)))
        .collect();
    out.unused_records = unused.len() as u64;
    (out, unused)
}

fn ms(t: UnixMillis) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// Any non-empty of the record's `model` and `alias` equals the row's `model` or
/// `actual_model`.
fn model_matches(c: &Candidate, d: &UpstreamDetail) -> bool {
    [d.model.as_str(), d.alias.as_str()]
        .into_iter()
        .filter(|m| !m.is_empty())
        .any(|m| m == c.model || c.actual_model.as_deref() == Some(m))
}

/// `|Δt| + (row total > 0 ? |Δtotal|·100 : 0) + (row latency set ? |Δlatency|·0.1 : 0)`, in
/// tenths.
fn score(c: &Candidate, d: &UpstreamDetail, dt: u64) -> u128 {
    let mut s = u128::from(dt) * 10;
    if c.total_tokens > 0 {
        s += u128::from(c.total_tokens.abs_diff(d.tokens.effective_total())) * 1000;
    }
    if let Some(lat) = c.latency_ms {
        s += u128::from(lat.abs_diff(d.latency_ms));
    }
    s
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
