//! Read queries behind the admin endpoints (`control.md` §6), `/ready`, the correlator and
//! quota reports. Each returns typed rows whose `Serialize` form is exactly the JSON shape of
//! the spec. All SQL is parameterised; "now" and "today" are arguments.
//!
//! Aggregated `cost_usd` values are recomputed from the integer sum of `cost_nanousd`, never
//! summed in floating point; a single stored row's `cost_usd` is returned as stored.

mod keys;
mod logs;
mod quotas;
mod usage;

pub use keys::{ApiKeyGrant, ApiKeyInfo, ApiKeyUsage};
pub use logs::{CostAuditRow, LogFilter, LogRow, Stats};
pub use quotas::{QuotaHistory, QuotaHistoryBucket, QuotaHistoryEntry, QuotaSnapshot};
pub use usage::{
    AccountSummary, CorrelationCandidate, DailyAccountUsage, DailyUsage, LocalUsage, ModelUsage,
    ProviderUsage, Trend, TrendBucket, TrendFilter, UsageDay,
};

use agent_cli_proxy_core::time::UnixMillis;

/// A time span for trend and quota-history buckets (`control.md` §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpan {
    /// Span start.
    pub start: UnixMillis,
    /// Span end (inclusive).
    pub end: UnixMillis,
}

/// Most buckets a span may produce; a longer span is clipped at its start (the admin
/// validation keeps real spans far below this).
pub const MAX_BUCKETS: u64 = 10_000;

impl TimeSpan {
    /// `hours` before `now` up to `now`.
    pub fn last_hours(now: UnixMillis, hours: u64) -> TimeSpan {
        TimeSpan {
            start: UnixMillis(now.0.saturating_sub(hours.saturating_mul(3_600_000))),
            end: now,
        }
    }

    /// `from 00:00:00Z` to `to 23:59:59Z` of two UTC days.
    pub fn days(from: UnixMillis, to: UnixMillis) -> TimeSpan {
        let day = 86_400_000;
        TimeSpan {
            start: UnixMillis(from.0 - from.0 % day),
            end: UnixMillis((to.0 - to.0 % day).saturating_add(day - 1000)),
        }
    }

    /// Bucket width in seconds: 300 s up to 5 h, 3 600 s up to 24 h, 14 400 s up to 168 h,
    /// else 86 400 s.
    pub fn bucket_width_secs(&self) -> u64 {
        let span_ms = self.end.0.saturating_sub(self.start.0);
        match span_ms {
            s if s <= 5 * 3_600_000 => 300,
            s if s <= 24 * 3_600_000 => 3_600,
            s if s <= 168 * 3_600_000 => 14_400,
            _ => 86_400,
        }
    }

    /// Start (epoch seconds) of every bucket, from the one holding the start to the one
    /// holding the end, aligned to multiples of the width.
    pub fn bucket_starts(&self) -> Vec<u64> {
        let w = self.bucket_width_secs();
        let first = self.start.0 / 1000 / w * w;
        let last = self.end.0.max(self.start.0) / 1000 / w * w;
        let n = ((last - first) / w + 1).min(MAX_BUCKETS);
        let first = last - (n - 1) * w;
        (0..n).map(|i| first + i * w).collect()
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of an epoch second.
pub fn iso_seconds(secs: u64) -> String {
    let (y, mo, d, h, mi, s, _) = UnixMillis(secs.saturating_mul(1000)).civil();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_hours_give_61_buckets_of_300_s() {
        let now = UnixMillis(1_777_888_999_000);
        let span = TimeSpan::last_hours(now, 5);
        assert_eq!(span.bucket_width_secs(), 300);
        assert_eq!(span.bucket_starts().len(), 61);
    }

    #[test]
    fn day_span_runs_midnight_to_last_second() {
        let from = UnixMillis::from_civil_date(2026, 5, 4).unwrap();
        let span = TimeSpan::days(from, from);
        assert_eq!(span.bucket_width_secs(), 3_600);
        let starts = span.bucket_starts();
        assert_eq!(starts.len(), 24);
        assert_eq!(iso_seconds(starts[0]), "2026-05-04T00:00:00Z");
        assert_eq!(iso_seconds(starts[23]), "2026-05-04T23:00:00Z");
    }
}
