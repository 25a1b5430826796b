//! Retry policy and backoff (`datapath.md` §12.2).
//!
//! Choices where the spec is silent:
//! * A header or total timeout before the head is a [`Failure::BeforeHead`] like any other
//!   transport failure: retried only when no request byte was written.
//! * Methods outside the two columns of the table (`TRACE`, `CONNECT`, extension methods) are
//!   treated like `POST`: only a failure before any byte was written is retried.
//! * `Retry-After` accepts delta-seconds (digits only) and the three HTTP-date forms of
//!   RFC 9110 (IMF-fixdate, RFC 850 with a two-digit year read as 1970–2069, asctime); a date
//!   in the past means no wait.

use http::Method;

use crate::time::UnixMillis;

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// A transport failure or timeout before the response head (refused, DNS, TLS, reset).
    BeforeHead {
        /// Whether any request byte had been written.
        written: bool,
    },
    /// A response head arrived with this status.
    Status {
        /// The status code.
        status: u16,
        /// The body is CLIProxyAPI's short-circuit 503 ([`is_short_circuit_body`]).
        short_circuit: bool,
    },
    /// A failure after the response head.
    AfterHead,
}

/// Statuses an idempotent request is retried on.
pub const RETRY_STATUSES: [u16; 4] = [502, 503, 504, 529];
/// `UPSTREAM_MAX_RETRIES` default.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// First backoff step in ms.
pub const BASE_BACKOFF_MS: u64 = 200;
/// Upper bound of the backoff base (and of `Retry-After`) in ms.
pub const MAX_BACKOFF_MS: u64 = 5_000;
/// Jitter is uniform in `[0, JITTER_MS)` ms.
pub const JITTER_MS: u64 = 100;
/// How much of a 503 body is read to detect the short-circuit.
pub const SHORT_CIRCUIT_PEEK_BYTES: usize = 65_536;

/// `GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE`: the right-hand column of the table.
pub fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// The retry table alone: whether this failure of this method may be retried.
pub fn is_retryable(method: &Method, failure: Failure) -> bool {
    match failure {
        Failure::BeforeHead { written } => !written,
        Failure::Status {
            status,
            short_circuit,
        } => {
            is_idempotent(method)
                && RETRY_STATUSES.contains(&status)
                && !(status == 503 && short_circuit)
        }
        Failure::AfterHead => false,
    }
}

/// Whether to retry after `retries_done` retries with `UPSTREAM_MAX_RETRIES` = `max_retries`.
pub fn should_retry(
    method: &Method,
    failure: Failure,
    retries_done: u32,
    max_retries: u32,
) -> bool {
    retries_done < max_retries && is_retryable(method, failure)
}

/// The `retryable` field of E16 and E17: the method is idempotent or no byte was written.
pub fn retryable_flag(method: &Method, written: bool) -> bool {
    is_idempotent(method) || !written
}

/// The delay in ms before retry `retry` (0-based): `min(200 · 2^n, 5000)`, or
/// `min(retry_after_ms, 5000)` when the failed response had a parseable `Retry-After`, plus a
/// jitter in `[0, 100)` from the core's seeded generator.
pub fn backoff_ms(retry: u32, retry_after_ms: Option<u64>, rng: &mut fastrand::Rng) -> u64 {
    let base = match retry_after_ms {
        Some(ms) => ms.min(MAX_BACKOFF_MS),
        None => 1u64
            .checked_shl(retry)
            .and_then(|f| BASE_BACKOFF_MS.checked_mul(f))
            .map_or(MAX_BACKOFF_MS, |d| d.min(MAX_BACKOFF_MS)),
    };
    base + rng.u64(0..JITTER_MS)
}

/// Parses a `Retry-After` value into ms from `wall_now`: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, wall_now: UnixMillis) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only, so a parse failure is an overflow: treat it as "very long".
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(secs.saturating_mul(1000));
    }
    let at = parse_http_date(value)?;
    Some(at.0.saturating_sub(wall_now.0))
}

/// Parses an HTTP date (IMF-fixdate, RFC 850 or asctime) to epoch ms.
pub fn parse_http_date(value: &str) -> Option<UnixMillis> {
    let spaced = value.replace(',', " ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let (day, month, year, time) = match tokens.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, day, month, year, time, "GMT"] => (*day, *month, parse_num(year, 4)?, *time),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, date, time, "GMT"] => {
            let mut parts = date.split('-');
            let (Some(day), Some(month), Some(yy), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            let yy = parse_num(yy, 2)?;
            (
                day,
                month,
                if yy < 70 { 2000 + yy } else { 1900 + yy },
                *time,
            )
        }
        // Sun Nov  6 08:49:37 1994
        [_, month, day, time, year] => (*day, *month, parse_num(year, 4)?, *time),
        _ => return None,
    };
    let day = u32::try_from(parse_num_range(day, 1, 2)?).ok()?;
    let month = month_number(month)?;
    let midnight = UnixMillis::from_civil_date(i64::try_from(year).ok()?, month, day)?;
    let mut hms = time.split(':');
    let (Some(h), Some(m), Some(s), None) = (hms.next(), hms.next(), hms.next(), hms.next()) else {
        return None;
    };
    let (h, m, s) = (parse_num(h, 2)?, parse_num(m, 2)?, parse_num(s, 2)?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(UnixMillis(midnight.0 + (h * 3_600 + m * 60 + s) * 1_000))
}

/// True when a (≤ 65 536-byte) 503 body is JSON with `error.code == "short-circuit"`.
pub fn is_short_circuit_body(body: &[u8]) -> bool {
    if body.len() > SHORT_CIRCUIT_PEEK_BYTES {
        return false;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    value
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(|c| c.as_str())
        == Some("short-circuit")
}

fn parse_num(s: &str, digits: usize) -> Option<u64> {
    parse_num_range(s, digits, digits)
}

fn parse_num_range(s: &str, min: usize, max: usize) -> Option<u64> {
    if !(min..=max).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_number(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let index = MONTHS.iter().position(|m| *m == s)?;
    u32::try_from(index + 1).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NON_IDEMPOTENT: [Method; 2] = [Method::POST, Method::PATCH];

    fn idempotent() -> [Method; 5] {
        [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ]
    }

    fn status(status: u16) -> Failure {
        Failure::Status {
            status,
            short_circuit: false,
        }
    }

    /// CI-5: the table of §12.2, one row per situation, one column per method class.
    #[test]
    fn retry_table_for_every_method_failure_and_written_flag() {
        let sc503 = Failure::Status {
            status: 503,
            short_circuit: true,
        };
        // (situation, POST/PATCH column, GET/HEAD/OPTIONS/PUT/DELETE column)
        let table: &[(Failure, bool, bool)] = &[
            (Failure::BeforeHead { written: false }, true, true),
            (Failure::BeforeHead { written: true }, false, false),
            (status(502), false, true),
            (status(503), false, true),
            (status(504), false, true),
            (status(529), false, true),
            (sc503, false, false),
            // A short-circuit flag on another status changes nothing.
            (
                Failure::Status {
                    status: 502,
                    short_circuit: true,
                },
                false,
                true,
            ),
            (status(500), false, false),
            (status(501), false, false),
            (status(429), false, false),
            (status(404), false, false),
            (status(200), false, false),
            (status(304), false, false),
            (Failure::AfterHead, false, false),
        ];
        for (failure, post_col, get_col) in table {
            for m in &NON_IDEMPOTENT {
                assert_eq!(is_retryable(m, *failure), *post_col, "{m} {failure:?}");
            }
            for m in &idempotent() {
                assert_eq!(is_retryable(m, *failure), *get_col, "{m} {failure:?}");
            }
            let trace = Method::TRACE;
            let ext = Method::from_bytes(b"PURGE").unwrap();
            for m in [&trace, &ext] {
                assert_eq!(is_retryable(m, *failure), *post_col, "{m} {failure:?}");
            }
        }
    }

    #[test]
    fn at_most_max_retries() {
        let f = Failure::BeforeHead { written: false };
        assert!(should_retry(&Method::POST, f, 0, 2));
        assert!(should_retry(&Method::POST, f, 1, 2));
        assert!(!should_retry(&Method::POST, f, 2, 2));
        assert!(!should_retry(&Method::GET, status(503), 0, 0));
        assert!(!should_retry(&Method::POST, status(503), 0, 2));
    }

    #[test]
    fn retryable_flag_of_error_bodies() {
        assert!(retryable_flag(&Method::GET, true));
        assert!(retryable_flag(&Method::POST, false));
        assert!(!retryable_flag(&Method::POST, true));
        assert!(!retryable_flag(&Method::PATCH, true));
    }

    #[test]
    fn backoff_bounds_with_fixed_seed() {
        let mut rng = fastrand::Rng::with_seed(42);
        let bases = [200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000];
        for _ in 0..200 {
            for (n, base) in bases.iter().enumerate() {
                let d = backoff_ms(n as u32, None, &mut rng);
                assert!((*base..base + 100).contains(&d), "n={n} d={d}");
            }
            for n in [31, 32, 63, 64, 100, u32::MAX] {
                let d = backoff_ms(n, None, &mut rng);
                assert!((5_000..5_100).contains(&d), "n={n} d={d}");
            }
            for (ra, base) in [
                (0, 0),
                (1_000, 1_000),
                (5_000, 5_000),
                (120_000, 5_000),
                (u64::MAX, 5_000),
            ] {
                let d = backoff_ms(0, Some(ra), &mut rng);
                assert!((base..base + 100).contains(&d), "ra={ra} d={d}");
            }
        }
        // The jitter spans its range and the sequence is a function of the seed.
        let jitters: Vec<u64> = (0..1000)
            .map(|_| backoff_ms(0, Some(0), &mut rng))
            .collect();
        assert!(jitters.iter().min().unwrap() < &5 && jitters.iter().max().unwrap() > &94);
        let mut a = fastrand::Rng::with_seed(7);
        let mut b = fastrand::Rng::with_seed(7);
        for n in 0..10 {
            assert_eq!(backoff_ms(n, None, &mut a), backoff_ms(n, None, &mut b));
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let date_s = 784_111_777u64; // Sun, 06 Nov 1994 08:49:37 GMT
        let now = UnixMillis((date_s - 3) * 1000 + 250);
        let cases: &[(&str, Option<u64>)] = &[
            ("120", Some(120_000)),
            (" 0 ", Some(0)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(2_750)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(2_750)),
            ("Sun Nov  6 08:49:37 1994", Some(2_750)),
            ("Sun, 06 Nov 1994 08:49:30 GMT", Some(0)),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 31 Feb 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 24:00:00 GMT", None),
            ("Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("1.5", None),
            ("-1", None),
            ("", None),
            ("soon", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), *want, "{value:?}");
        }
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UnixMillis(date_s * 1000))
        );
    }

    #[test]
    fn short_circuit_body_detection() {
        let cases: &[(&[u8], bool)] = &[
            (br#"{"error":{"code":"short-circuit","status":503}}"#, true),
            (br#" {"error":{"code":"short-circuit"}} "#, true),
            (br#"{"error":{"code":"network"}}"#, false),
            (br#"{"error":"short-circuit"}"#, false),
            (br#"{"code":"short-circuit"}"#, false),
            (br#"{"error":{"code":"short-circuit""#, false),
            (b"short-circuit", false),
            (b"", false),
        ];
        for (body, want) in cases {
            assert_eq!(
                is_short_circuit_body(body),
                *want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let mut big = br#"{"error":{"code":"short-circuit"},"pad":""#.to_vec();
        big.resize(SHORT_CIRCUIT_PEEK_BYTES + 10, b'a');
        big.extend_from_slice(b"\"}");
        assert!(!is_short_circuit_body(&big));
    }
}
