//! Time as data: the core never reads a clock, the shells pass these values in.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the shell's monotonic clock, in microseconds since an arbitrary origin the
/// shell chose (usually process start). Arithmetic saturates, so a stale or early value can
/// never panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1000))
    }

    /// An instant `d` after the origin (saturating).
    pub fn from_duration(d: Duration) -> Self {
        Instant(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later than `self`.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// Whole milliseconds elapsed since `earlier`, zero if `earlier` is later.
    pub fn millis_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0) / 1000
    }

    /// `self + millis`, saturating.
    pub const fn plus_millis(self, millis: u64) -> Self {
        Instant(self.0.saturating_add(millis.saturating_mul(1000)))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(micros))
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, used only for row timestamps and
/// day boundaries (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// ISO-8601 UTC with milliseconds and `Z`, e.g. `2026-05-04T10:00:00.000Z`.
    pub fn to_iso(self) -> String {
        match self.iso_bytes() {
            Some(b) => b.iter().map(|&c| char::from(c)).collect(),
            None => {
                let (y, mo, d, h, mi, s, ms) = self.civil();
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
            }
        }
    }

    /// [`UnixMillis::to_iso`] as bytes on the stack, for years up to 9999 (every time this
    /// proxy meets): written digit by digit, since `format!`'s padding machinery made the
    /// timestamps a visible part of every call's row and log lines.
    pub fn iso_bytes(self) -> Option<[u8; 24]> {
        let (y, mo, d, h, mi, s, ms) = self.civil();
        let year = u32::try_from(y).ok().filter(|y| *y <= 9999)?;
        let mut out = *b"0000-00-00T00:00:00.000Z";
        for (at, value, width) in [
            (0, year, 4),
            (5, mo, 2),
            (8, d, 2),
            (11, h, 2),
            (14, mi, 2),
            (17, s, 2),
            (20, ms, 3),
        ] {
            let mut v = value;
            for i in (0..width).rev() {
                if let Some(slot) = out.get_mut(at + i) {
                    *slot = b'0' + (v % 10) as u8;
                }
                v /= 10;
            }
        }
        Some(out)
    }

    /// SQLite's `datetime('now')` form, `YYYY-MM-DD HH:MM:SS` (UTC).
    pub fn to_sqlite_datetime(self) -> String {
        let (y, mo, d, h, mi, s, _) = self.civil();
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }

    /// The UTC day, `YYYY-MM-DD`.
    pub fn to_day(self) -> String {
        let (y, mo, d, ..) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}")
    }

    /// Year, month, day, hour, minute, second, millisecond in UTC.
    pub fn civil(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, mo, d) = civil_from_days(days);
        (
            y,
            mo,
            d,
            (rem / 3600) as u32,
            ((rem % 3600) / 60) as u32,
            (rem % 60) as u32,
            ms as u32,
        )
    }

    /// Milliseconds since the epoch at 00:00:00 UTC of the given civil date, if it is a real
    /// date on or after 1970-01-01.
    pub fn from_civil_date(year: i64, month: u32, day: u32) -> Option<UnixMillis> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let days = days_from_civil(year, month, day);
        if days < 0 {
            return None;
        }
        Some(UnixMillis((days as u64).saturating_mul(86_400_000)))
    }
}

/// Days in `month` of `year` (proleptic Gregorian).
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

// Howard Hinnant's days-from-civil algorithms (public-domain arithmetic).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The digit-by-digit timestamp is `format!`'s, for any instant up to year 9999.
        #[test]
        fn iso_bytes_equal_the_formatted_text(ms in 0u64..253_402_300_800_000) {
            let t = UnixMillis(ms);
            let (y, mo, d, h, mi, s, milli) = t.civil();
            let formatted = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z");
            proptest::prop_assert_eq!(t.to_iso(), formatted);
        }
    }

    #[test]
    fn years_past_9999_still_format() {
        let t = UnixMillis(253_402_300_800_000);
        assert_eq!(t.iso_bytes(), None);
        assert_eq!(t.to_iso(), "10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn iso_and_day_render_utc() {
        let t = UnixMillis(1_777_888_800_123); // 2026-05-04T10:00:00.123Z
        assert_eq!(t.to_iso(), "2026-05-04T10:00:00.123Z");
        assert_eq!(t.to_day(), "2026-05-04");
        assert_eq!(t.to_sqlite_datetime(), "2026-05-04 10:00:00");
    }

    #[test]
    fn civil_round_trip_and_validation() {
        let t = UnixMillis::from_civil_date(2024, 2, 29).unwrap();
        assert_eq!(t.to_day(), "2024-02-29");
        assert!(UnixMillis::from_civil_date(2023, 2, 29).is_none());
        assert!(UnixMillis::from_civil_date(2023, 13, 1).is_none());
        assert_eq!(UnixMillis(0).to_iso(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let a = Instant::from_millis(5);
        let b = Instant::from_millis(7);
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert_eq!(b.millis_since(a), 2);
        assert_eq!(
            Instant::from_micros(u64::MAX) + Duration::from_secs(1),
            Instant::from_micros(u64::MAX)
        );
    }
}
