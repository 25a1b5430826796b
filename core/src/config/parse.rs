//! Typed readers for environment variables, recording issues instead of stopping.
//!
//! Numbers are read the way the original's `Number(...)` did for decimal text: surrounding
//! whitespace is ignored and `1e3` or `5.0` are accepted where an integer is required. A
//! *positive* duration with a fraction is rounded up to whole milliseconds, so it stays > 0.

use std::collections::BTreeMap;

use super::ConfigIssue;

const POSITIVE: &str = "must be a positive finite number";
const NON_NEGATIVE: &str = "must be a non-negative integer";
const BOOLEAN: &str = "must be a boolean (true/false, yes/no, or 1/0)";

pub(super) struct Reader<'a> {
    env: &'a BTreeMap<String, String>,
    pub(super) issues: Vec<ConfigIssue>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(env: &'a BTreeMap<String, String>) -> Self {
        Reader {
            env,
            issues: Vec::new(),
        }
    }

    pub(super) fn issue(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(ConfigIssue::new(path, message));
    }

    /// The variable as set (possibly empty).
    pub(super) fn raw(&self, name: &str) -> Option<&'a str> {
        self.env.get(name).map(String::as_str)
    }

    /// The trimmed variable, `None` when unset or blank.
    pub(super) fn text(&self, name: &str) -> Option<&'a str> {
        self.raw(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A *positive* number of milliseconds.
    pub(super) fn positive_ms(&mut self, name: &str, default: u64) -> u64 {
        self.number(name, default, POSITIVE, |n| {
            (n > 0.0).then(|| n.ceil() as u64) // `as` saturates for huge values
        })
    }

    /// A *non-negative integer*.
    pub(super) fn non_negative(&mut self, name: &str, default: u64) -> u64 {
        self.number(name, default, NON_NEGATIVE, |n| {
            (n >= 0.0 && n.fract() == 0.0).then_some(n as u64)
        })
    }

    /// An *integer A..B*.
    pub(super) fn int_range(&mut self, name: &str, default: u64, lo: u64, hi: u64) -> u64 {
        let message = format!("must be an integer from {lo} to {hi}");
        self.number(name, default, &message, |n| {
            (n.fract() == 0.0 && n >= lo as f64 && n <= hi as f64).then_some(n as u64)
        })
    }

    /// A *boolean*; unset or blank takes the default.
    pub(super) fn boolean(&mut self, name: &str, default: bool) -> bool {
        let Some(v) = self.text(name) else {
            return default;
        };
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            _ => {
                self.issue(name, BOOLEAN);
                default
            }
        }
    }

    fn number(
        &mut self,
        name: &str,
        default: u64,
        message: &str,
        accept: impl Fn(f64) -> Option<u64>,
    ) -> u64 {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        let parsed = parse_decimal(raw)
            .filter(|n| n.is_finite())
            .and_then(accept);
        match parsed {
            Some(v) => v,
            None => {
                self.issue(name, message);
                default
            }
        }
    }
}

/// Decimal text only: Rust's float syntax, minus the words (`inf`, `nan`) it also accepts.
fn parse_decimal(raw: &str) -> Option<f64> {
    let t = raw.trim();
    if t.is_empty()
        || t.bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
    {
        return None;
    }
    t.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T>(value: Option<&str>, f: impl FnOnce(&mut Reader<'_>) -> T) -> (T, Vec<String>) {
        let env: BTreeMap<String, String> = value
            .map(|v| ("V".to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        let mut r = Reader::new(&env);
        let out = f(&mut r);
        (out, r.issues.iter().map(|i| i.to_string()).collect())
    }

    #[test]
    fn positive() {
        let ok = |v: &str, want: u64| {
            assert_eq!(
                read(Some(v), |r| r.positive_ms("V", 7)),
                (want, vec![]),
                "{v}"
            );
        };
        ok("1", 1);
        ok(" 1500 ", 1500);
        ok("0.2", 1);
        ok("1e3", 1000);
        assert_eq!(read(None, |r| r.positive_ms("V", 7)).0, 7);
        for bad in [
            "", " ", "0", "-5", "abc", "inf", "NaN", "1e999", "0x10", "5ms",
        ] {
            let (v, issues) = read(Some(bad), |r| r.positive_ms("V", 7));
            assert_eq!(v, 7);
            assert_eq!(
                issues,
                vec!["V must be a positive finite number"],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn non_negative_and_ranges() {
        assert_eq!(read(Some("0"), |r| r.non_negative("V", 9)), (0, vec![]));
        assert_eq!(read(Some("5.0"), |r| r.non_negative("V", 9)), (5, vec![]));
        for bad in ["", "-1", "1.5", "x"] {
            assert_eq!(
                read(Some(bad), |r| r.non_negative("V", 9)),
                (9, vec!["V must be a non-negative integer".to_owned()]),
                "{bad:?}"
            );
        }
        assert_eq!(
            read(Some("65535"), |r| r.int_range("V", 3, 1, 65535)),
            (65535, vec![])
        );
        for bad in ["0", "65536", "1.5", "", "port"] {
            assert_eq!(
                read(Some(bad), |r| r.int_range("V", 3, 1, 65535)),
                (3, vec!["V must be an integer from 1 to 65535".to_owned()]),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn booleans() {
        for (v, want) in [
            ("1", true),
            ("TRUE", true),
            (" yes ", true),
            ("0", false),
            ("False", false),
            ("NO", false),
        ] {
            assert_eq!(
                read(Some(v), |r| r.boolean("V", !want)),
                (want, vec![]),
                "{v}"
            );
        }
        assert_eq!(read(Some(""), |r| r.boolean("V", true)), (true, vec![]));
        assert_eq!(read(None, |r| r.boolean("V", false)), (false, vec![]));
        assert_eq!(
            read(Some("on"), |r| r.boolean("V", false)),
            (
                false,
                vec!["V must be a boolean (true/false, yes/no, or 1/0)".to_owned()]
            )
        );
    }
}
