//! Dates, date ranges and time-bucketed spans of the admin API (`control.md` §6.1, §6.2, §6.4).
//!
//! Dates are validated once here and handed on as `YYYY-MM-DD` strings together with their
//! UTC midnight, so the shell binds strings to SQL and never re-parses them. A span is the
//! time window of a trend or quota-history query together with its bucket width; the bucket
//! skeleton is generated from it so storage only returns the non-empty buckets.

use serde::Serialize;

use super::AdminError;
use crate::time::UnixMillis;

/// Longest accepted date range, in days, both ends included.
pub const MAX_RANGE_DAYS: u64 = 366;

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;

/// A validated inclusive range of UTC days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRange {
    /// First day, `YYYY-MM-DD`.
    pub from: String,
    /// Last day, `YYYY-MM-DD` (on or after `from`).
    pub to: String,
    from_ms: UnixMillis,
    to_ms: UnixMillis,
}

impl DateRange {
    /// Validates `from` and `to` in the order of §6.1: `from` format, `to` format, order,
    /// length.
    pub fn new(from: &str, to: &str) -> Result<DateRange, AdminError> {
        let from_ms = parse_day(from).ok_or(AdminError::InvalidDate { param: "from" })?;
        let to_ms = parse_day(to).ok_or(AdminError::InvalidDate { param: "to" })?;
        if from_ms > to_ms {
            return Err(AdminError::FromAfterTo);
        }
        let days = (to_ms.0 - from_ms.0) / DAY_MS + 1;
        if days > MAX_RANGE_DAYS {
            return Err(AdminError::RangeTooLong { days });
        }
        Ok(DateRange {
            from: from.to_owned(),
            to: to.to_owned(),
            from_ms,
            to_ms,
        })
    }

    /// Number of days in the range, both ends included (1..=366).
    pub fn days(&self) -> u64 {
        (self.to_ms.0 - self.from_ms.0) / DAY_MS + 1
    }

    /// `from 00:00:00.000Z`.
    pub fn start(&self) -> UnixMillis {
        self.from_ms
    }

    /// `to 23:59:59.000Z`, the end the trend rule of §6.2 uses.
    pub fn end(&self) -> UnixMillis {
        UnixMillis(self.to_ms.0 + DAY_MS - 1000)
    }
}

/// Either one day or a date range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayOrRange {
    /// One UTC day, `YYYY-MM-DD`.
    Day(String),
    /// An inclusive range of days.
    Range(DateRange),
}

/// Parses a strict `YYYY-MM-DD` real date (1970 or later) to its UTC midnight.
pub fn parse_day(s: &str) -> Option<UnixMillis> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    UnixMillis::from_civil_date(i64::from(year), month, day)
}

/// The time window of a trend or quota-history query and its bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start of the window (inclusive).
    pub start: UnixMillis,
    /// End of the window (inclusive).
    pub end: UnixMillis,
    /// Bucket width in seconds: 300, 3 600, 14 400 or 86 400.
    pub width_secs: u64,
}

impl Span {
    /// The last `span_ms` milliseconds up to `now` (`hours` parameter).
    pub fn ending_at(now: UnixMillis, span_ms: u64) -> Span {
        Span::new(UnixMillis(now.0.saturating_sub(span_ms)), now)
    }

    /// `from 00:00:00Z` to `to 23:59:59Z` (`from`+`to` parameters).
    pub fn of_range(range: &DateRange) -> Span {
        Span::new(range.start(), range.end())
    }

    fn new(start: UnixMillis, end: UnixMillis) -> Span {
        Span {
            start,
            end,
            width_secs: bucket_width_secs(end.0.saturating_sub(start.0)),
        }
    }

    /// Start of the bucket holding `start`, in seconds since the epoch.
    pub fn first_bucket_secs(&self) -> u64 {
        align(self.start.0 / 1000, self.width_secs)
    }

    /// Start of the bucket holding `end`, in seconds since the epoch.
    pub fn last_bucket_secs(&self) -> u64 {
        align(self.end.0 / 1000, self.width_secs)
    }

    /// Number of buckets from the first to the last, inclusive.
    pub fn bucket_count(&self) -> u64 {
        (self.last_bucket_secs() - self.first_bucket_secs()) / self.width_secs + 1
    }

    /// Every bucket start in order, empty buckets included.
    pub fn bucket_starts(&self) -> impl Iterator<Item = u64> + use<> {
        let (first, width) = (self.first_bucket_secs(), self.width_secs);
        (0..self.bucket_count()).map(move |i| first + i * width)
    }

    /// The bucket start holding `secs`, if it lies inside the skeleton.
    pub fn bucket_of(&self, secs: i64) -> Option<u64> {
        let secs = u64::try_from(secs).ok()?;
        let start = align(secs, self.width_secs);
        (self.first_bucket_secs()..=self.last_bucket_secs())
            .contains(&start)
            .then_some(start)
    }
}

/// Bucket width for a span of `span_ms`: 300 s up to 5 h, 3 600 s up to 24 h, 14 400 s up to
/// 168 h, else 86 400 s.
pub fn bucket_width_secs(span_ms: u64) -> u64 {
    match span_ms {
        s if s <= 5 * HOUR_MS => 300,
        s if s <= 24 * HOUR_MS => 3_600,
        s if s <= 168 * HOUR_MS => 14_400,
        _ => 86_400,
    }
}

/// A bucket start as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn bucket_timestamp(secs: u64) -> String {
    let (y, mo, d, h, mi, s, _) = UnixMillis(secs.saturating_mul(1000)).civil();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// One non-empty trend bucket as storage returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendRow {
    /// Any second inside the bucket (usually its start), seconds since the epoch.
    pub bucket_start_secs: i64,
    /// Rows in the bucket.
    pub requests: u64,
    /// Sum of `total_tokens`.
    pub tokens: u64,
    /// Sum of `cost_nanousd`.
    pub cost_nanousd: i64,
}

/// One rendered trend bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendBucket {
    /// Bucket start, `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: String,
    /// Rows in the bucket.
    pub requests: u64,
    /// Sum of `total_tokens`.
    pub tokens: u64,
    /// `cost_nanousd / 10^9`, derived for display.
    pub cost_usd: f64,
    /// Exact cost in nano-dollars.
    pub cost_nanousd: i64,
}

/// The full bucket list of a trend span: every bucket of the skeleton, with the rows slotted
/// in. Rows are aligned down to their bucket and summed (saturating), so storage may return
/// any timestamp inside a bucket; rows outside the span are dropped.
pub fn trend_buckets(span: &Span, rows: &[TrendRow]) -> Vec<TrendBucket> {
    let mut sums = std::collections::BTreeMap::<u64, (u64, u64, i64)>::new();
    for row in rows {
        let Some(start) = span.bucket_of(row.bucket_start_secs) else {
            continue;
        };
        let e = sums.entry(start).or_default();
        e.0 = e.0.saturating_add(row.requests);
        e.1 = e.1.saturating_add(row.tokens);
        e.2 = e.2.saturating_add(row.cost_nanousd);
    }
    span.bucket_starts()
        .map(|start| {
            let (requests, tokens, cost_nanousd) = sums.get(&start).copied().unwrap_or_default();
            TrendBucket {
                timestamp: bucket_timestamp(start),
                requests,
                tokens,
                cost_usd: nanousd_to_usd(cost_nanousd),
                cost_nanousd,
            }
        })
        .collect()
}

/// One rendered quota-history bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryBucket<T> {
    /// Bucket start, `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: String,
    /// The snapshots slotted into this bucket (`[]` when empty).
    pub snapshots: Vec<T>,
}

/// The full bucket list of a quota-history span, each snapshot slotted into the bucket
/// holding its second (in input order); snapshots outside the span are dropped. Picking the
/// latest snapshot per key inside a bucket is the query's job.
pub fn history_buckets<T: Clone>(span: &Span, rows: &[(i64, T)]) -> Vec<HistoryBucket<T>> {
    let mut slots = std::collections::BTreeMap::<u64, Vec<T>>::new();
    for (secs, snapshot) in rows {
        if let Some(start) = span.bucket_of(*secs) {
            slots.entry(start).or_default().push(snapshot.clone());
        }
    }
    span.bucket_starts()
        .map(|start| HistoryBucket {
            timestamp: bucket_timestamp(start),
            snapshots: slots.remove(&start).unwrap_or_default(),
        })
        .collect()
}

/// `cost_nanousd / 10^9` as the display-only `cost_usd` (`accounting.md` §6).
pub fn nanousd_to_usd(nanousd: i64) -> f64 {
    nanousd as f64 / 1e9
}

fn align(secs: u64, width: u64) -> u64 {
    secs - secs % width.max(1)
}
