//! Labelled series families and the text-format pieces they share: label strings, escaping,
//! histogram buckets.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Histogram bucket upper bounds in milliseconds; `+Inf` follows implicitly.
pub const BUCKETS_MS: [u64; 10] = [25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000];

/// A label set rendered once: keys sorted, values escaped, empty values as `unknown`. It is
/// also the sort key of its series, so families iterate in the documented order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelSet(String);

impl LabelSet {
    /// Renders `labels` (keys are static identifiers; order given does not matter).
    pub fn new(labels: &[(&str, &str)]) -> LabelSet {
        let mut sorted: Vec<&(&str, &str)> = labels.iter().collect();
        sorted.sort_by_key(|(k, _)| *k);
        let mut s = String::new();
        for (i, (k, v)) in sorted.into_iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(k);
            s.push_str("=\"");
            escape_into(&mut s, if v.is_empty() { "unknown" } else { v });
            s.push('"');
        }
        LabelSet(s)
    }

    /// `k="v",...` without braces (empty for no labels).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `{k="v",...}`, or nothing for an empty set.
    pub fn braced(&self) -> String {
        if self.0.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", self.0)
        }
    }

    /// `{le="<le>",k="v",...}`: `le` first, then the sorted keys.
    pub fn with_le(&self, le: &str) -> String {
        if self.0.is_empty() {
            format!("{{le=\"{le}\"}}")
        } else {
            format!("{{le=\"{le}\",{}}}", self.0)
        }
    }
}

/// Escapes a label value: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Counters (or gauges) keyed by label set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterFamily {
    series: BTreeMap<LabelSet, u64>,
}

impl CounterFamily {
    /// Adds `n` to the series of `labels` (saturating).
    pub fn add(&mut self, labels: &[(&str, &str)], n: u64) {
        let v = self.series.entry(LabelSet::new(labels)).or_default();
        *v = v.saturating_add(n);
    }

    /// The value of one series, 0 when it has no samples.
    pub fn get(&self, labels: &[(&str, &str)]) -> u64 {
        self.series
            .get(&LabelSet::new(labels))
            .copied()
            .unwrap_or(0)
    }

    /// Writes one sample line per series, sorted by label string.
    pub fn render_samples(&self, name: &str, out: &mut String) {
        for (labels, v) in &self.series {
            let _ = writeln!(out, "{name}{} {v}", labels.braced());
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct HistogramSeries {
    /// Non-cumulative counts per bound of [`BUCKETS_MS`]; `+Inf` is `count`.
    buckets: [u64; BUCKETS_MS.len()],
    count: u64,
    sum: u64,
    max: u64,
}

/// A millisecond histogram keyed by label set, with the running maximum per series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    series: BTreeMap<LabelSet, HistogramSeries>,
}

impl Histogram {
    /// Records one duration; negative values count as 0.
    pub fn observe(&mut self, labels: &[(&str, &str)], ms: i64) {
        let ms = u64::try_from(ms).unwrap_or(0);
        let s = self.series.entry(LabelSet::new(labels)).or_default();
        if let Some(i) = BUCKETS_MS.iter().position(|&le| ms <= le)
            && let Some(b) = s.buckets.get_mut(i)
        {
            *b = b.saturating_add(1);
        }
        s.count = s.count.saturating_add(1);
        s.sum = s.sum.saturating_add(ms);
        s.max = s.max.max(ms);
    }

    /// Number of observations of one series.
    pub fn count(&self, labels: &[(&str, &str)]) -> u64 {
        self.series
            .get(&LabelSet::new(labels))
            .map_or(0, |s| s.count)
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of every series (after the caller's
    /// HELP/TYPE lines), series sorted by label string, buckets ascending.
    pub fn render_samples(&self, name: &str, out: &mut String) {
        for (labels, s) in &self.series {
            let mut cumulative = 0u64;
            for (le, n) in BUCKETS_MS.iter().zip(s.buckets) {
                cumulative = cumulative.saturating_add(n);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {cumulative}",
                    labels.with_le(&le.to_string())
                );
            }
            let _ = writeln!(out, "{name}_bucket{} {}", labels.with_le("+Inf"), s.count);
            let braced = labels.braced();
            let _ = writeln!(out, "{name}_sum{braced} {}", s.sum);
            let _ = writeln!(out, "{name}_count{braced} {}", s.count);
        }
    }

    /// Writes the `<name>_max` gauge samples.
    pub fn render_max_samples(&self, name: &str, out: &mut String) {
        for (labels, s) in &self.series {
            let _ = writeln!(out, "{name}_max{} {}", labels.braced(), s.max);
        }
    }
}
