//! `/metrics`: the registry of process-lifetime series and the Prometheus text rendering of
//! `datapath.md` §16.
//!
//! [`MetricsRegistry`] is a plain struct; the shells keep one behind a `Mutex`, feed it from
//! exchange events and loops, and call [`MetricsRegistry::render`] with the rows of
//! `daily_usage` for today and a [`Snapshot`] of the values they track themselves (active
//! streams, dropped log lines). Durations are whole milliseconds as `i64` so a clock quirk
//! in a shell (a negative difference) is clamped instead of wrapping.
//!
//! Choices where the spec is silent: the HELP texts below; duplicate `(provider, model)`
//! rows of the `_today` series are summed into one sample; `cost_usd_today` is rendered as
//! the exact decimal of `cost_nanousd / 10^9` (no binary rounding); the reply carries
//! `cache-control: no-store`.

mod family;

use std::collections::BTreeMap;
use std::fmt::Write;

use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE as CONTENT_TYPE_HEADER, HeaderValue};

use crate::head::Reply;

pub use family::{BUCKETS_MS, CounterFamily, Histogram, LabelSet, escape_into};

/// `content-type` of the `/metrics` reply.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Name of the request-duration histogram.
pub const REQUEST_DURATION: &str = "agent_cli_proxy_proxy_request_duration_ms";
/// Name of the `/ready` duration histogram.
pub const READY_DURATION: &str = "agent_cli_proxy_ready_check_duration_ms";

/// One `daily_usage` row of the current UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodayRow {
    /// Provider id (empty renders as `unknown`).
    pub provider: String,
    /// Model (empty renders as `unknown`).
    pub model: String,
    /// `request_count`.
    pub request_count: u64,
    /// `total_tokens`.
    pub total_tokens: u64,
    /// `cost_nanousd`.
    pub cost_nanousd: i64,
}

/// Values the shell tracks outside the registry, read at render time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Exchanges currently relaying a body.
    pub active_streams: u64,
    /// Log lines dropped by backpressure since start.
    pub log_dropped_lines: u64,
    /// The spool's figures (`docs/spool.md` §5).
    pub spool: SpoolSnapshot,
}

/// What `/metrics` shows of the spool and its ingestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSnapshot {
    /// Bytes held in segments.
    pub bytes: u64,
    /// Records written since start, by kind (`begin`, `usage`, `end`, `fallback`).
    pub records: [(&'static str, u64); 4],
    /// How long the oldest unapplied record has waited, ms.
    pub ingest_lag_ms: u64,
    /// Batches the database refused since start.
    pub ingest_failures: u64,
    /// Batch sizes: cumulative `(le, count)` buckets, the count and the sum.
    pub batch_buckets: Vec<(u64, u64)>,
    /// Batches applied.
    pub batch_count: u64,
    /// Records applied.
    pub batch_sum: u64,
}

impl Default for SpoolSnapshot {
    fn default() -> Self {
        SpoolSnapshot {
            bytes: 0,
            records: [("begin", 0), ("usage", 0), ("end", 0), ("fallback", 0)],
            ingest_lag_ms: 0,
            ingest_failures: 0,
            batch_buckets: Vec::new(),
            batch_count: 0,
            batch_sum: 0,
        }
    }
}

/// The `op` label of `agent_cli_proxy_storage_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StorageOp {
    /// The pre-log insert.
    Prelog,
    /// The finalize update.
    Finalize,
    /// Any other commit.
    Other,
}

impl StorageOp {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageOp::Prelog => "prelog",
            StorageOp::Finalize => "finalize",
            StorageOp::Other => "other",
        }
    }
}

/// The labels of one finalized LLM row for the request-duration histogram. The model, the
/// request id and credentials are deliberately absent (§16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLabels<'a> {
    /// `lifecycle_status` of the row.
    pub lifecycle_status: &'a str,
    /// Provider id.
    pub provider: &'a str,
    /// HTTP status of the row, `None` when no response head was received (`unknown`).
    pub status: Option<u16>,
    /// Whether the response was streamed.
    pub streamed: bool,
}

/// Process-lifetime metrics since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsRegistry {
    request_duration: Histogram,
    ready_duration: Histogram,
    rate_limited: u64,
    breaker_rejections: CounterFamily,
    upstream_retries: CounterFamily,
    usage_incomplete: u64,
    storage_failures: CounterFamily,
    panics: u64,
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records entry → finalize of one LLM row.
    pub fn observe_request(&mut self, labels: RequestLabels<'_>, ms: i64) {
        let status = labels.status.map(|s| s.to_string()).unwrap_or_default();
        self.request_duration.observe(
            &[
                ("lifecycle_status", labels.lifecycle_status),
                ("provider", labels.provider),
                ("status", &status),
                ("streamed", if labels.streamed { "true" } else { "false" }),
            ],
            ms,
        );
    }

    /// Records one uncached `/ready` run with its overall status (`pass`, `warn`, `fail`).
    pub fn observe_ready(&mut self, status: &str, ms: i64) {
        self.ready_duration.observe(&[("status", status)], ms);
    }

    /// Counts one rate-limit rejection.
    pub fn inc_rate_limited(&mut self) {
        self.rate_limited = self.rate_limited.saturating_add(1);
    }

    /// Counts one breaker rejection for `provider`.
    pub fn inc_breaker_rejection(&mut self, provider: &str) {
        self.breaker_rejections.add(&[("provider", provider)], 1);
    }

    /// Counts one upstream retry for `provider`.
    pub fn inc_upstream_retry(&mut self, provider: &str) {
        self.upstream_retries.add(&[("provider", provider)], 1);
    }

    /// Counts one row finalized with `usage_incomplete = 1`.
    pub fn inc_usage_incomplete(&mut self) {
        self.usage_incomplete = self.usage_incomplete.saturating_add(1);
    }

    /// Counts one commit that failed after retries.
    pub fn inc_storage_failure(&mut self, op: StorageOp) {
        self.storage_failures.add(&[("op", op.as_str())], 1);
    }

    /// Counts one panic caught at a task boundary.
    pub fn inc_panic(&mut self) {
        self.panics = self.panics.saturating_add(1);
    }

    /// The request-duration histogram (read access for tests and diagnostics).
    pub fn request_duration(&self) -> &Histogram {
        &self.request_duration
    }

    /// The whole exposition text, every series in the order of the §16 table.
    pub fn render(&self, today_rows: &[TodayRow], dynamic: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "agent_cli_proxy_up",
            "1 while the proxy is running",
            "gauge",
        );
        out.push_str("agent_cli_proxy_up 1\n");
        render_today(&mut out, today_rows);
        render_histogram(
            &mut out,
            REQUEST_DURATION,
            "Duration of LLM requests from entry to finalize in milliseconds",
            &self.request_duration,
        );
        render_histogram(
            &mut out,
            READY_DURATION,
            "Duration of uncached /ready runs in milliseconds",
            &self.ready_duration,
        );
        scalar(
            &mut out,
            "agent_cli_proxy_rate_limited_total",
            "Requests rejected by the rate limiter since start",
            "counter",
            self.rate_limited,
        );
        family(
            &mut out,
            "agent_cli_proxy_breaker_rejections_total",
            "Requests rejected by an open circuit breaker since start",
            &self.breaker_rejections,
        );
        family(
            &mut out,
            "agent_cli_proxy_upstream_retries_total",
            "Upstream retries since start",
            &self.upstream_retries,
        );
        scalar(
            &mut out,
            "agent_cli_proxy_usage_incomplete_total",
            "Rows finalized with usage_incomplete = 1 since start",
            "counter",
            self.usage_incomplete,
        );
        family(
            &mut out,
            "agent_cli_proxy_storage_failures_total",
            "Storage commits that failed after retries since start",
            &self.storage_failures,
        );
        scalar(
            &mut out,
            "agent_cli_proxy_active_streams",
            "Exchanges currently relaying a body",
            "gauge",
            dynamic.active_streams,
        );
        scalar(
            &mut out,
            "agent_cli_proxy_panics_total",
            "Panics caught at task boundaries since start",
            "counter",
            self.panics,
        );
        scalar(
            &mut out,
            "agent_cli_proxy_log_dropped_lines_total",
            "Log lines dropped by backpressure since start",
            "counter",
            dynamic.log_dropped_lines,
        );
        render_spool(&mut out, &dynamic.spool);
        out
    }
}

fn render_spool(out: &mut String, s: &SpoolSnapshot) {
    scalar(
        out,
        "agent_cli_proxy_spool_bytes",
        "Bytes held in spool segments",
        "gauge",
        s.bytes,
    );
    header(
        out,
        "agent_cli_proxy_spool_records_total",
        "Records appended to the spool since start",
        "counter",
    );
    for (kind, n) in s.records {
        let _ = writeln!(
            out,
            "agent_cli_proxy_spool_records_total{{kind=\"{kind}\"}} {n}"
        );
    }
    scalar(
        out,
        "agent_cli_proxy_ingest_lag_ms",
        "How long the oldest record not yet in the database has waited",
        "gauge",
        s.ingest_lag_ms,
    );
    let name = "agent_cli_proxy_ingest_batch_records";
    header(out, name, "Records per ingestion batch", "histogram");
    for (le, n) in &s.batch_buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.batch_count);
    let _ = writeln!(out, "{name}_sum {}", s.batch_sum);
    let _ = writeln!(out, "{name}_count {}", s.batch_count);
    scalar(
        out,
        "agent_cli_proxy_ingest_failures_total",
        "Ingestion batches the database refused since start",
        "counter",
        s.ingest_failures,
    );
}

/// The `/metrics` reply for a rendered body.
pub fn reply(body: String) -> Reply {
    let mut headers = http::HeaderMap::new();
    headers.insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Reply {
        status: StatusCode::OK,
        headers,
        body: body.into(),
        close: false,
    }
}

/// `cost_nanousd / 10^9` as an exact decimal: `10500000` → `0.0105`, `0` → `0`.
pub fn nanousd_decimal(nanousd: i64) -> String {
    let sign = if nanousd < 0 { "-" } else { "" };
    let abs = nanousd.unsigned_abs();
    let (whole, frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let frac = format!("{frac:09}");
    format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn scalar(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

fn family(out: &mut String, name: &str, help: &str, values: &CounterFamily) {
    header(out, name, help, "counter");
    values.render_samples(name, out);
}

fn render_histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    header(out, name, help, "histogram");
    h.render_samples(name, out);
    let max_name = format!("{name}_max");
    header(
        out,
        &max_name,
        &format!("Maximum observed {}", name.replace('_', " ")),
        "gauge",
    );
    h.render_max_samples(name, out);
}

/// Summed `(request_count, total_tokens, cost_nanousd)` of one provider and model.
type TodaySums = (u64, u64, i64);

/// Name, HELP text and value picker of one `_today` series.
type TodaySeries = (&'static str, &'static str, fn(&TodaySums) -> String);

fn render_today(out: &mut String, rows: &[TodayRow]) {
    let mut merged: BTreeMap<(String, String), TodaySums> = BTreeMap::new();
    for row in rows {
        let key = (or_unknown(&row.provider), or_unknown(&row.model));
        let e = merged.entry(key).or_default();
        e.0 = e.0.saturating_add(row.request_count);
        e.1 = e.1.saturating_add(row.total_tokens);
        e.2 = e.2.saturating_add(row.cost_nanousd);
    }
    let series: [TodaySeries; 3] = [
        (
            "agent_cli_proxy_requests_today",
            "LLM requests today (UTC) by provider and model",
            |v| v.0.to_string(),
        ),
        (
            "agent_cli_proxy_tokens_today",
            "Total tokens today (UTC) by provider and model",
            |v| v.1.to_string(),
        ),
        (
            "agent_cli_proxy_cost_usd_today",
            "Cost in USD today (UTC) by provider and model",
            |v| nanousd_decimal(v.2),
        ),
    ];
    for (name, help, value) in series {
        header(out, name, help, "counter");
        for ((provider, model), v) in &merged {
            let labels = LabelSet::new(&[("provider", provider), ("model", model)]);
            let _ = writeln!(out, "{name}{} {}", labels.braced(), value(v));
        }
    }
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() { "unknown" } else { s }.to_owned()
}

#[cfg(test)]
mod tests;
