//! Exact decimal parsing and rendering of price texts (`accounting.md` §4.2).
//!
//! A models.dev price is "USD per million tokens". The core keeps it as an integer number of
//! picodollars per token (pUSD, 1 USD = 10^12 pUSD), so `$x/M` is `x × 10^6` pUSD/token. The
//! JSON number *text* is parsed digit by digit: going through `f64` would turn `0.3` into
//! `0.29999999999999998…` and make costs depend on binary rounding.
//!
//! Rules: up to 6 fractional digits are exact; the 7th digit decides rounding half up at the
//! 6th (later digits do not matter, so `0.00000049999` rounds to 0 and `0.0000005` to 1);
//! exponent notation (`3e-7`, `1.5E+2`) is accepted; a negative value, anything that is not a
//! number, and a value above `u64::MAX` pUSD/token are rejected. `-0` (and `-0.0`, `-0e5`) is
//! zero, not negative, so it is accepted as 0; any other leading `-` is rejected even when the
//! value would round to 0. A leading `+` is accepted (JSON never produces it).

use thiserror::Error;

/// pUSD per token in one `$1/M`.
pub const PUSD_PER_USD_PER_MILLION: u64 = 1_000_000;

/// Why a price text was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PriceTextError {
    /// The text is not a decimal number (empty, stray characters, missing digits).
    #[error("not a number")]
    NotANumber,
    /// The number is below zero.
    #[error("negative")]
    Negative,
    /// The number exceeds `u64::MAX` units after scaling.
    #[error("too large")]
    Overflow,
}

/// Parses a `$/M` price text into pUSD per token, rounding half up at the 6th fractional digit.
///
/// ```
/// use agent_cli_proxy_core::pricing::decimal::parse_usd_per_million;
/// assert_eq!(parse_usd_per_million("0.0375"), Ok(37_500));
/// assert_eq!(parse_usd_per_million("3e0"), Ok(3_000_000));
/// ```
pub fn parse_usd_per_million(text: &str) -> Result<u64, PriceTextError> {
    parse_scaled(text, 6).map(|(value, _exact)| value)
}

/// Renders pUSD per token as `$/M` text with at most 6 fractional digits and no trailing
/// zeros: the exact inverse of [`parse_usd_per_million`] (`37_500` → `0.0375`, `3_000_000` →
/// `3`).
pub fn format_usd_per_million(pusd_per_token: u64) -> String {
    let whole = pusd_per_token / PUSD_PER_USD_PER_MILLION;
    let frac = pusd_per_token % PUSD_PER_USD_PER_MILLION;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Parses a non-negative whole number text (`200000`, `2e5`, `200000.0`), rejecting any
/// fractional part. Used for tier sizes.
pub fn parse_whole(text: &str) -> Result<u64, PriceTextError> {
    match parse_scaled(text, 0)? {
        (value, true) => Ok(value),
        (_, false) => Err(PriceTextError::NotANumber),
    }
}

/// Parses a decimal text and returns `value × 10^scale` rounded half up, with `true` when no
/// non-zero digit was dropped.
fn parse_scaled(text: &str, scale: i64) -> Result<(u64, bool), PriceTextError> {
    let number = split(text.as_bytes()).ok_or(PriceTextError::NotANumber)?;
    let digits: Vec<u8> = number
        .int
        .iter()
        .chain(number.frac)
        .copied()
        .skip_while(|&d| d == b'0')
        .collect();
    if digits.is_empty() {
        return Ok((0, true));
    }
    if number.negative {
        return Err(PriceTextError::Negative);
    }
    // value = digits × 10^(exp − frac_len); scaled = digits × 10^shift.
    let frac_len = i64::try_from(number.frac.len()).unwrap_or(i64::MAX);
    let shift = number
        .exponent
        .saturating_sub(frac_len)
        .saturating_add(scale);
    if shift >= 0 {
        let mut value = accumulate(&digits)?;
        for _ in 0..shift {
            value = value.checked_mul(10).ok_or(PriceTextError::Overflow)?;
        }
        return Ok((value, true));
    }
    let dropped = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX);
    if dropped > digits.len() {
        return Ok((0, false));
    }
    let keep = digits.len() - dropped;
    let (kept, rest) = digits.split_at(keep);
    let mut value = accumulate(kept)?;
    if rest.first().is_some_and(|&d| d >= b'5') {
        value = value.checked_add(1).ok_or(PriceTextError::Overflow)?;
    }
    Ok((value, rest.iter().all(|&d| d == b'0')))
}

/// The pieces of a number text; digits are ASCII bytes.
struct Number<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exponent: i64,
}

/// Splits `[+-]digits[.digits][(e|E)[+-]digits]`; at least one mantissa digit is required.
fn split(bytes: &[u8]) -> Option<Number<'_>> {
    let (negative, rest) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int, rest) = rest.split_at(int_len);
    let (frac, rest) = match rest.first() {
        Some(b'.') => {
            let after = &rest[1..];
            let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
            after.split_at(n)
        }
        _ => (&rest[..0], rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let exponent = match rest.first() {
        None => 0,
        Some(b'e' | b'E') => parse_exponent(&rest[1..])?,
        Some(_) => return None,
    };
    Some(Number {
        negative,
        int,
        frac,
        exponent,
    })
}

/// A signed exponent, saturated far beyond any meaningful shift so huge texts cannot wrap.
fn parse_exponent(bytes: &[u8]) -> Option<i64> {
    const CAP: i64 = 1 << 40;
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        value = (value * 10 + i64::from(d - b'0')).min(CAP);
    }
    Some(if negative { -value } else { value })
}

fn accumulate(digits: &[u8]) -> Result<u64, PriceTextError> {
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(PriceTextError::Overflow)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_of_section_4_2() {
        let table = [
            ("3", 3_000_000),
            ("0.3", 300_000),
            ("3.75", 3_750_000),
            ("0.125", 125_000),
            ("22.5", 22_500_000),
            ("0.0375", 37_500),
        ];
        for (text, pusd) in table {
            assert_eq!(parse_usd_per_million(text), Ok(pusd), "{text}");
            assert_eq!(format_usd_per_million(pusd), text);
        }
    }

    #[test]
    fn six_fractional_digits_are_exact_and_the_seventh_rounds_half_up() {
        assert_eq!(parse_usd_per_million("0.000001"), Ok(1));
        assert_eq!(parse_usd_per_million("1.234567"), Ok(1_234_567));
        assert_eq!(parse_usd_per_million("0.0000004"), Ok(0));
        assert_eq!(parse_usd_per_million("0.0000005"), Ok(1));
        assert_eq!(parse_usd_per_million("0.00000049999"), Ok(0));
        assert_eq!(parse_usd_per_million("1.2345675"), Ok(1_234_568));
        assert_eq!(parse_usd_per_million("1.2345674999"), Ok(1_234_567));
        assert_eq!(parse_usd_per_million("0.9999995"), Ok(1_000_000));
    }

    #[test]
    fn exponent_notation_is_accepted() {
        assert_eq!(parse_usd_per_million("3e0"), Ok(3_000_000));
        assert_eq!(parse_usd_per_million("3.75E+1"), Ok(37_500_000));
        assert_eq!(parse_usd_per_million("375e-2"), Ok(3_750_000));
        assert_eq!(parse_usd_per_million("1e-6"), Ok(1));
        assert_eq!(parse_usd_per_million("5e-7"), Ok(1));
        assert_eq!(parse_usd_per_million("4e-7"), Ok(0));
        assert_eq!(parse_usd_per_million("1e-99999999999999999999"), Ok(0));
        assert_eq!(parse_usd_per_million("0e99999999999999999999"), Ok(0));
    }

    #[test]
    fn negative_non_numeric_and_overflow_are_rejected() {
        assert_eq!(parse_usd_per_million("-1"), Err(PriceTextError::Negative));
        assert_eq!(
            parse_usd_per_million("-0.0000001"),
            Err(PriceTextError::Negative)
        );
        assert_eq!(parse_usd_per_million("-0"), Ok(0));
        for bad in [
            "", "-", ".", "e5", "1e", "1e+", "abc", "1.2.3", "0x10", " 1", "1 ", "NaN",
        ] {
            assert_eq!(
                parse_usd_per_million(bad),
                Err(PriceTextError::NotANumber),
                "{bad:?}"
            );
        }
        // u64::MAX pUSD/token is 18446744073709.551615 $/M.
        assert_eq!(parse_usd_per_million("18446744073709.551615"), Ok(u64::MAX));
        assert_eq!(
            parse_usd_per_million("18446744073709.551616"),
            Err(PriceTextError::Overflow)
        );
        assert_eq!(
            parse_usd_per_million("18446744073709.5516145"),
            Ok(u64::MAX)
        );
        assert_eq!(
            parse_usd_per_million("18446744073709.5516155"),
            Err(PriceTextError::Overflow)
        );
        assert_eq!(
            parse_usd_per_million("1e300"),
            Err(PriceTextError::Overflow)
        );
        assert_eq!(
            parse_usd_per_million("1e99999999999999999999"),
            Err(PriceTextError::Overflow)
        );
    }

    #[test]
    fn whole_numbers_reject_fractions() {
        assert_eq!(parse_whole("200000"), Ok(200_000));
        assert_eq!(parse_whole("2e5"), Ok(200_000));
        assert_eq!(parse_whole("200000.0"), Ok(200_000));
        assert_eq!(parse_whole("2.5"), Err(PriceTextError::NotANumber));
        assert_eq!(parse_whole("-1"), Err(PriceTextError::Negative));
    }

    proptest! {
        #[test]
        fn rendering_round_trips_every_u64(v in any::<u64>()) {
            prop_assert_eq!(parse_usd_per_million(&format_usd_per_million(v)), Ok(v));
        }

        #[test]
        fn fraction_digits_beyond_six_round_half_up(whole in 0u64..1_000_000, micro in 0u64..1_000_000, tail in "[0-9]{1,12}") {
            let text = format!("{whole}.{micro:06}{tail}");
            let expected = whole * 1_000_000 + micro + u64::from(tail.as_bytes()[0] >= b'5');
            prop_assert_eq!(parse_usd_per_million(&text), Ok(expected));
        }

        #[test]
        fn exponent_shift_does_not_change_the_value(mantissa in 0u64..10_000_000_000, k in 0usize..12) {
            // mantissa × 10^-6, written with `k` extra zeros and a matching exponent.
            let moved = format!("{mantissa}{}e-{}", "0".repeat(k), 6 + k);
            prop_assert_eq!(parse_usd_per_million(&moved), Ok(mantissa));
        }

        #[test]
        fn any_text_gives_a_result_without_panic(text in ".{0,40}") {
            let _ = parse_usd_per_million(&text);
            let _ = parse_whole(&text);
        }
    }
}
