//! Latency recording (HdrHistogram, microseconds) and the one-line figure report of
//! `reliability.md` §1: printed always, gating only beyond 10 × the target.

use std::fmt::Display;
use std::time::Duration;

use hdrhistogram::Histogram;

/// How far beyond its target a CI-tier figure may go before the test fails.
pub const GATE_FACTOR: f64 = 10.0;

/// A latency histogram in microseconds, from 1 µs to 1 hour at 3 significant digits.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        // Constant bounds that satisfy `new_with_bounds` (low ≥ 1, high ≥ 2 × low, sigfig ≤ 5),
        // so the error arm is unreachable whatever the test records.
        let hist = match Histogram::new_with_bounds(1, 3_600_000_000, 3) {
            Ok(hist) => hist,
            Err(err) => panic!("histogram bounds rejected: {err}"),
        };
        Latency { hist }
    }

    /// Records one duration (values beyond the range are clamped to it).
    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(micros.max(1));
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0.0–1.0); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.hist.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.hist.value_at_quantile(q))
    }

    /// Median.
    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    /// 99th percentile.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// Largest value recorded.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.hist.max())
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Both histograms share the same bounds, so adding cannot fail; a failure would
        // only lose values, never panic.
        let _ = self.hist.add(&other.hist);
    }
}

/// Prints `FIGURE <test_id> <shell> measured=<value> target=<target> within_10x=<bool>` and
/// returns whether `value ≤ 10 × target` (the CI gate of `reliability.md` §1; the target
/// itself is judged in the soak tier).
pub fn print_figure(test_id: &str, shell: impl Display, value: f64, target: f64) -> bool {
    let within = value <= target * GATE_FACTOR;
    println!("FIGURE {test_id} {shell} measured={value} target={target} within_10x={within}");
    within
}

/// [`print_figure`] for durations, printed in milliseconds.
pub fn print_duration_figure(
    test_id: &str,
    shell: impl Display,
    value: Duration,
    target: Duration,
) -> bool {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let within = value.as_secs_f64() <= target.as_secs_f64() * GATE_FACTOR;
    println!(
        "FIGURE {test_id} {shell} measured={:.3}ms target={:.3}ms within_10x={within}",
        ms(value),
        ms(target)
    );
    within
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_recorded_values() {
        let mut latency = Latency::new();
        for ms in 1..=100u64 {
            latency.record(Duration::from_millis(ms));
        }
        assert_eq!(latency.count(), 100);
        let p50 = latency.p50().as_millis();
        let p99 = latency.p99().as_millis();
        assert!((49..=51).contains(&p50), "p50 {p50}");
        assert!((98..=100).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn figure_gates_at_ten_times_the_target() {
        assert!(print_figure("T-1", "tokio", 10.0, 1.0));
        assert!(!print_figure("T-1", "tokio", 10.5, 1.0));
        assert!(!print_duration_figure(
            "T-2",
            "smol",
            Duration::from_millis(51),
            Duration::from_millis(5)
        ));
    }
}
