//! Read queries behind the admin endpoints (`control.md` §6), `/ready`, the correlator and
//! quota reports. Each returns typed rows whose `Serialize` form is exactly the JSON shape of
//! the spec. All SQL is parameterised; "now" and "today" are arguments.
//!
//! Trend and quota-history spans are the core's [`Span`] (`agent_cli_proxy_core::admin`), and
//! their buckets the core's rendered [`TrendBucket`] and [`HistoryBucket`]: the skeleton of empty buckets comes from the
//! same code the admin router uses.
//!
//! Aggregated `cost_usd` values are recomputed from the integer sum of `cost_nanousd`, never
//! summed in floating point; a single stored row's `cost_usd` is returned as stored.

mod dashboard;
mod keys;
mod logs;
mod quotas;
mod reads;
mod usage;

pub use dashboard::{SeriesDimension, SeriesKey, SeriesPoint, SummarySums, UsageSummary};
pub use keys::{ApiKeyGrant, ApiKeyInfo, ApiKeyUsage};
pub use logs::{CostAuditRow, LogFilter, LogRow, Stats};
pub use quotas::{QuotaHistory, QuotaHistoryEntry, QuotaSnapshot};
pub use reads::Queries;
pub use usage::{
    AccountSummary, CorrelationCandidate, DailyAccountUsage, DailyUsage, LocalUsage, ModelUsage,
    ProviderUsage, Trend, TrendFilter, UsageDay,
};

pub use agent_cli_proxy_core::admin::{HistoryBucket, Span, TrendBucket};

use agent_cli_proxy_core::time::UnixMillis;

/// Most buckets a span may produce; a longer span is clipped at its start (the admin
/// validation keeps real spans far below this: 366 days of 1-day buckets).
pub const MAX_BUCKETS: u64 = 10_000;

/// The span a bucketed query works on. The core builds spans whose width follows the rule of
/// `control.md` §6.2; one built by hand with a zero width or an end before its start gives no
/// bucket at all (`None`), and one with more than [`MAX_BUCKETS`] buckets loses its oldest.
pub fn bounded(span: &Span) -> Option<Span> {
    let width = span.width_secs;
    if width == 0 || span.end < span.start {
        return None;
    }
    let first = span.first_bucket_secs();
    let last = span.last_bucket_secs();
    if (last - first) / width < MAX_BUCKETS {
        return Some(*span);
    }
    let clipped = last - (MAX_BUCKETS - 1) * width;
    Some(Span {
        start: UnixMillis(clipped.saturating_mul(1000)),
        ..*span
    })
}

/// An epoch second as the ISO text stored in `started_at` and `timestamp`
/// (`YYYY-MM-DDTHH:MM:SS.000Z`), so that string comparison orders it correctly against them
/// (a bound without milliseconds would sort after every row of its own second).
pub fn iso_bound(secs: u64) -> String {
    UnixMillis(secs.saturating_mul(1000)).to_iso()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_cli_proxy_core::admin::{DateRange, bucket_timestamp};

    #[test]
    fn five_hours_give_61_buckets_of_300_s() {
        let now = UnixMillis(1_777_888_999_000);
        let span = bounded(&Span::ending_at(now, 5 * 3_600_000)).unwrap();
        assert_eq!(span.width_secs, 300);
        assert_eq!(span.bucket_count(), 61);
    }

    #[test]
    fn day_span_runs_midnight_to_last_second() {
        let span = bounded(&Span::of_range(
            &DateRange::new("2026-05-04", "2026-05-04").unwrap(),
        ))
        .unwrap();
        assert_eq!(span.width_secs, 3_600);
        let starts: Vec<u64> = span.bucket_starts().collect();
        assert_eq!(starts.len(), 24);
        assert_eq!(bucket_timestamp(starts[0]), "2026-05-04T00:00:00Z");
        assert_eq!(bucket_timestamp(starts[23]), "2026-05-04T23:00:00Z");
        assert_eq!(iso_bound(starts[0]), "2026-05-04T00:00:00.000Z");
    }

    #[test]
    fn malformed_spans_give_no_buckets_and_long_ones_are_clipped_at_the_start() {
        let now = UnixMillis(1_777_888_999_000);
        let mut zero = Span::ending_at(now, 3_600_000);
        zero.width_secs = 0;
        assert_eq!(bounded(&zero), None);
        let backwards = Span {
            start: now,
            end: UnixMillis(now.0 - 1),
            width_secs: 300,
        };
        assert_eq!(bounded(&backwards), None);
        let huge = Span {
            start: UnixMillis(0),
            end: now,
            width_secs: 300,
        };
        let clipped = bounded(&huge).unwrap();
        assert_eq!(clipped.bucket_count(), MAX_BUCKETS);
        assert_eq!(clipped.last_bucket_secs(), huge.last_bucket_secs());
    }
}
