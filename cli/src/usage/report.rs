//! Aggregation and rendering of usage reports (`control.md` §11.8): pure functions over the
//! queried rows, so the arithmetic is tested without a database.
//!
//! Choices where the spec is silent:
//! * Inside a period, lines are ordered by cost (highest first), then key; session lines by
//!   last activity. Periods run oldest first.
//! * A line whose rows include a `pending` cost shows `*` after its cost; the footnote gives
//!   the number of such rows. Calls that recorded no token (they failed before the upstream
//!   sent usage) are never pending: their cost is 0 at any price; a second footnote counts
//!   them so the request count still adds up.
//! * No key is ever cut: the key column holds 16 characters, enough for every tool name of
//!   the rule table (`datapath.md` §6.2); a longer key (a `client_id`, a model, a session id)
//!   gets a line of its own and its numbers go on the next line, so the table stays within 80
//!   columns and names stay whole.
//! * A session's `tool` is the tool of its first row.

use std::collections::BTreeMap;

use agent_cli_proxy_core::cost::nanousd_to_usd;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::query::UsageRow;
use crate::args::{GroupBy, Report};

/// Sums over a set of rows. Costs are sums of exact integer nanodollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    pub requests: u64,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total: u64,
    pub cost_nanousd: u64,
    pub pending_cost_rows: u64,
    pub no_usage_rows: u64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.requests = self.requests.saturating_add(o.requests);
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.cache_write = self.cache_write.saturating_add(o.cache_write);
        self.total = self.total.saturating_add(o.total);
        self.cost_nanousd = self.cost_nanousd.saturating_add(o.cost_nanousd);
        self.pending_cost_rows = self.pending_cost_rows.saturating_add(o.pending_cost_rows);
        self.no_usage_rows = self.no_usage_rows.saturating_add(o.no_usage_rows);
    }

    fn json(&self) -> serde_json::Map<String, Value> {
        let v = json!({
            "requests": self.requests,
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
            "total_tokens": self.total,
            "cost_nanousd": self.cost_nanousd,
            "cost_usd": nanousd_to_usd(self.cost_nanousd),
            "pending_cost_rows": self.pending_cost_rows,
            "no_usage_rows": self.no_usage_rows,
        });
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }
}

/// One report line: a (period, key) group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub period: String,
    pub key: String,
    pub sums: Sums,
    /// Session reports: first and last `started_at`, and the tool.
    pub session: Option<SessionInfo>,
}

/// The extra fields of a session line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionInfo {
    pub first_seen: String,
    pub last_seen: String,
    pub tool: String,
}

/// Groups rows into lines. `is_anthropic` gives the convention of a row without
/// `meta_json.usage_convention`, from its provider.
pub(crate) fn aggregate(
    rows: &[UsageRow],
    report: Report,
    by: GroupBy,
    tz: &TimeZone,
    is_anthropic: &dyn Fn(&str) -> bool,
) -> Vec<Line> {
    let mut groups: BTreeMap<(String, String), Line> = BTreeMap::new();
    let mut sessions: BTreeMap<String, Line> = BTreeMap::new();
    for row in rows {
        let meta: Option<Value> = row
            .meta_json
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok());
        let meta_str = |k: &str| {
            meta.as_ref()
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let anthropic = match meta_str("usage_convention").as_deref() {
            Some("anthropic") => true,
            Some("openai") => false,
            _ => is_anthropic(&row.provider),
        };
        let sums = row_sums(row, anthropic);
        let day = local_date(&row.started_at, tz);
        if report == Report::Session {
            let key = meta_str("session_id").unwrap_or_else(|| row.client_id.clone());
            let line = sessions.entry(key.clone()).or_insert_with(|| Line {
                period: String::new(),
                key,
                sums: Sums::default(),
                session: Some(SessionInfo {
                    first_seen: row.started_at.clone(),
                    last_seen: row.started_at.clone(),
                    tool: row.tool.clone(),
                }),
            });
            line.sums.add(&sums);
            line.period = day.map(|d| d.to_string()).unwrap_or_default();
            if let Some(s) = &mut line.session {
                s.last_seen.clone_from(&row.started_at);
            }
            continue;
        }
        let period = match day {
            Some(d) => period_label(d, report),
            None => row.started_at.chars().take(10).collect(),
        };
        let key = match by {
            GroupBy::Tool => row.tool.clone(),
            GroupBy::Client => row.client_id.clone(),
            GroupBy::Model => row.model.clone(),
            GroupBy::Provider => row.provider.clone(),
        };
        groups
            .entry((period.clone(), key.clone()))
            .or_insert_with(|| Line {
                period,
                key,
                sums: Sums::default(),
                session: None,
            })
            .sums
            .add(&sums);
    }
    let mut lines: Vec<Line> = if report == Report::Session {
        let mut v: Vec<Line> = sessions.into_values().collect();
        v.sort_by(|a, b| {
            let last = |l: &Line| l.session.as_ref().map(|s| s.last_seen.clone());
            last(a).cmp(&last(b)).then_with(|| a.key.cmp(&b.key))
        });
        v
    } else {
        groups.into_values().collect()
    };
    if report != Report::Session {
        lines.sort_by(|a, b| {
            a.period
                .cmp(&b.period)
                .then_with(|| b.sums.cost_nanousd.cmp(&a.sums.cost_nanousd))
                .then_with(|| a.key.cmp(&b.key))
        });
    }
    lines
}

/// The sums of every line.
pub(crate) fn totals(lines: &[Line]) -> Sums {
    let mut t = Sums::default();
    for l in lines {
        t.add(&l.sums);
    }
    t
}

fn row_sums(row: &UsageRow, anthropic: bool) -> Sums {
    // The OpenAI prompt already includes cache reads; the Anthropic one does not.
    let input = if anthropic {
        row.prompt_tokens
            .saturating_add(row.cache_read_tokens)
            .saturating_add(row.cache_creation_tokens)
    } else {
        row.prompt_tokens.saturating_add(row.cache_creation_tokens)
    };
    Sums {
        requests: 1,
        input,
        output: row.completion_tokens,
        cache_read: row.cache_read_tokens,
        cache_write: row.cache_creation_tokens,
        total: row.total_tokens,
        cost_nanousd: row.cost_nanousd,
        pending_cost_rows: u64::from(row.cost_pending),
        no_usage_rows: u64::from(row.no_usage),
    }
}

/// The row's date in `tz`; `None` when `started_at` is not an RFC 3339 timestamp.
pub(crate) fn local_date(started_at: &str, tz: &TimeZone) -> Option<jiff::civil::Date> {
    let ts: jiff::Timestamp = started_at.parse().ok()?;
    Some(ts.to_zoned(tz.clone()).date())
}

/// `YYYY-MM-DD`, `YYYY-Www` or `YYYY-MM`.
pub(crate) fn period_label(d: jiff::civil::Date, report: Report) -> String {
    match report {
        Report::Daily | Report::Session => d.to_string(),
        Report::Weekly => {
            let w = d.iso_week_date();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        Report::Monthly => format!("{:04}-{:02}", d.year(), d.month()),
    }
}

/// The JSON document of §11.8.
pub(crate) fn to_json(
    report: Report,
    by: GroupBy,
    timezone: &str,
    since: Option<String>,
    until: Option<String>,
    lines: &[Line],
) -> Value {
    let rows: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut m = serde_json::Map::new();
            m.insert("period".into(), json!(l.period));
            m.insert("key".into(), json!(l.key));
            m.extend(l.sums.json());
            if let Some(s) = &l.session {
                m.insert("first_seen".into(), json!(s.first_seen));
                m.insert("last_seen".into(), json!(s.last_seen));
                m.insert("tool".into(), json!(s.tool));
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "report": report_name(report),
        "by": if report == Report::Session { "session" } else { by_name(by) },
        "timezone": timezone,
        "since": since,
        "until": until,
        "rows": rows,
        "totals": Value::Object(totals(lines).json()),
    })
}

pub(crate) fn report_name(r: Report) -> &'static str {
    match r {
        Report::Daily => "daily",
        Report::Weekly => "weekly",
        Report::Monthly => "monthly",
        Report::Session => "session",
    }
}

fn by_name(b: GroupBy) -> &'static str {
    match b {
        GroupBy::Tool => "tool",
        GroupBy::Client => "client",
        GroupBy::Model => "model",
        GroupBy::Provider => "provider",
    }
}

/// Column widths; with one space between columns the table is exactly 80 wide. Counts are
/// at most 5 characters ([`compact`]) and the token titles 6, which leaves 16 for the key.
const WIDTHS: [usize; 9] = [10, 16, 5, 6, 6, 6, 6, 6, 11];

/// The terminal table: header, lines, a total per period with more than one key, a grand
/// total, and the pending-cost footnote.
pub(crate) fn to_table(report: Report, by: GroupBy, lines: &[Line]) -> String {
    let key_title = match (report, by) {
        (Report::Session, _) => "Session",
        (_, GroupBy::Tool) => "Tool",
        (_, GroupBy::Client) => "Client",
        (_, GroupBy::Model) => "Model",
        (_, GroupBy::Provider) => "Provider",
    };
    let period_title = if report == Report::Session {
        "Last day"
    } else {
        "Period"
    };
    let mut out = String::new();
    push_row(
        &mut out,
        [
            period_title,
            key_title,
            "Reqs",
            "Input",
            "Output",
            "CacheR",
            "CacheW",
            "Total",
            "Cost",
        ]
        .map(str::to_owned),
    );
    out.push_str(&"-".repeat(80));
    out.push('\n');
    let mut i = 0;
    while i < lines.len() {
        let period = &lines[i].period;
        let end = lines[i..]
            .iter()
            .position(|l| &l.period != period)
            .map_or(lines.len(), |n| i + n);
        let group = &lines[i..end];
        for (n, l) in group.iter().enumerate() {
            let shown_period = if n == 0 { period.as_str() } else { "" };
            push_row(&mut out, cells(shown_period, &l.key, &l.sums));
        }
        if group.len() > 1 {
            push_row(&mut out, cells("", "(total)", &totals(group)));
        }
        i = end;
    }
    out.push_str(&"-".repeat(80));
    out.push('\n');
    let t = totals(lines);
    push_row(&mut out, cells("TOTAL", "", &t));
    if t.pending_cost_rows > 0 {
        out.push_str(&format!(
            "* {} row(s) with cost pending: tokens counted, cost not yet; run backfill-costs\n",
            t.pending_cost_rows
        ));
    }
    if t.no_usage_rows > 0 {
        out.push_str(&format!(
            "  {} call(s) without usage (failed before the upstream answered): cost 0, nothing to backfill\n",
            t.no_usage_rows
        ));
    }
    out
}

fn cells(period: &str, key: &str, s: &Sums) -> [String; 9] {
    let mut cost = format_usd(s.cost_nanousd);
    if s.pending_cost_rows > 0 {
        cost.push('*');
    }
    [
        period.to_owned(),
        key.to_owned(),
        compact(s.requests),
        compact(s.input),
        compact(s.output),
        compact(s.cache_read),
        compact(s.cache_write),
        compact(s.total),
        cost,
    ]
}

fn push_row(out: &mut String, mut cells: [String; 9]) {
    if cells[1].chars().count() > WIDTHS[1] {
        let period = std::mem::take(&mut cells[0]);
        let key = std::mem::take(&mut cells[1]);
        let width = WIDTHS[0];
        out.push_str(format!("{period:<width$} {key}").trim_end());
        out.push('\n');
    }
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(WIDTHS).enumerate() {
        if i > 0 {
            line.push(' ');
        }
        if i < 2 {
            line.push_str(&format!("{cell:<width$}"));
        } else {
            line.push_str(&format!("{cell:>width$}"));
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `950`, `12.3k`, `4.56M`, `1.20B`: three significant digits above 999; `T`, `P` and `E`
/// follow `B` so that even `u64::MAX` fits the 7-character column.
pub(crate) fn compact(n: u64) -> String {
    if n < 1_000 {
        return n.to_string();
    }
    let units: [(u128, &str); 6] = [
        (1_000, "k"),
        (1_000_000, "M"),
        (1_000_000_000, "B"),
        (1_000_000_000_000, "T"),
        (1_000_000_000_000_000, "P"),
        (1_000_000_000_000_000_000, "E"),
    ];
    let n = u128::from(n);
    for (i, (unit, suffix)) in units.iter().enumerate() {
        let last = i == units.len() - 1;
        let decimals: u32 = if n >= 100 * unit {
            0
        } else if n >= 10 * unit {
            1
        } else {
            2
        };
        let scale = 10u128.pow(decimals);
        let scaled = (n * scale + unit / 2) / unit;
        if scaled >= 1_000 * scale && !last {
            continue;
        }
        let whole = scaled / scale;
        let frac = scaled % scale;
        return if decimals == 0 {
            format!("{whole}{suffix}")
        } else {
            format!("{whole}.{frac:0width$}{suffix}", width = decimals as usize)
        };
    }
    n.to_string()
}

/// Nanodollars as `$D.dddd`, rounded half up, in integers.
pub(crate) fn format_usd(nanousd: u64) -> String {
    let units = (u128::from(nanousd) + 50_000) / 100_000;
    format!("${}.{:04}", units / 10_000, units % 10_000)
}

#[cfg(test)]
mod tests;
