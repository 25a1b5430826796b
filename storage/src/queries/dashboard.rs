//! The aggregates the dashboard's overview needs (`docs/dashboard.md` §3.1), served as
//! `/admin/usage/summary` and `/admin/usage/series` (`docs/control.md` §6.9), so the page never
//! sums raw rows itself.
//!
//! Both read non-pending `request_logs` rows whose UTC day (the first 10 characters of
//! `started_at`, as `daily_usage` uses) lies in the range: a pending row has no final usage or
//! cost yet, exactly as trend buckets leave it out.

use rusqlite::params;
use serde::Serialize;

use crate::apply::usd;
use crate::error::StorageError;
use crate::store::Store;

/// `/admin/usage/summary`: totals over a day range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageSummary {
    /// First day, `YYYY-MM-DD`.
    pub from: String,
    /// Last day, `YYYY-MM-DD`.
    pub to: String,
    /// Rows.
    pub requests: i64,
    /// Rows whose `status` is not 2xx (or missing).
    pub errors: i64,
    /// `errors / requests`, 0 without rows.
    pub error_rate: f64,
    /// Σ `prompt_tokens`.
    pub prompt_tokens: i64,
    /// Σ `completion_tokens`.
    pub completion_tokens: i64,
    /// Σ `cache_read_tokens`.
    pub cache_read_tokens: i64,
    /// Σ `cache_creation_tokens`.
    pub cache_creation_tokens: i64,
    /// Σ `total_tokens`.
    pub total_tokens: i64,
    /// Σ of every input token processed: `prompt_tokens` for rows counted the OpenAI way
    /// (where the prompt includes cached tokens), else `prompt_tokens + cache_read_tokens +
    /// cache_creation_tokens` (`accounting.md` §3, `meta_json.usage_convention`).
    pub input_processed_tokens: i64,
    /// `cache_read_tokens / input_processed_tokens`, 0 without input.
    pub cache_hit_ratio: f64,
    /// Σ exact cost.
    pub cost_nanousd: i64,
    /// The same in USD.
    pub cost_usd: f64,
}

impl UsageSummary {
    /// The summary of `from..=to` from its sums, with the ratios and the USD figure derived
    /// here so that both backends compute them alike.
    pub fn from_sums(from: &str, to: &str, sums: SummarySums) -> UsageSummary {
        let ratio = |num: i64, den: i64| {
            if den > 0 {
                num as f64 / den as f64
            } else {
                0.0
            }
        };
        UsageSummary {
            from: from.to_owned(),
            to: to.to_owned(),
            requests: sums.requests,
            errors: sums.errors,
            error_rate: ratio(sums.errors, sums.requests),
            prompt_tokens: sums.prompt_tokens,
            completion_tokens: sums.completion_tokens,
            cache_read_tokens: sums.cache_read_tokens,
            cache_creation_tokens: sums.cache_creation_tokens,
            total_tokens: sums.total_tokens,
            input_processed_tokens: sums.input_processed_tokens,
            cache_hit_ratio: ratio(sums.cache_read_tokens, sums.input_processed_tokens),
            cost_nanousd: sums.cost_nanousd,
            cost_usd: usd(sums.cost_nanousd),
        }
    }
}

/// The sums a [`UsageSummary`] is derived from (see its fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct SummarySums {
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_creation_tokens: i64,
    pub total_tokens: i64,
    pub input_processed_tokens: i64,
    pub cost_nanousd: i64,
}

/// The column a series is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesDimension {
    /// `tool`.
    Tool,
    /// `model` (the requested model).
    Model,
    /// `provider`.
    Provider,
    /// `client_id`.
    Client,
    /// `cliproxy_account`.
    Account,
}

impl SeriesDimension {
    /// The `request_logs` column (a fixed name, safe to place in SQL).
    pub fn column(self) -> &'static str {
        match self {
            SeriesDimension::Tool => "tool",
            SeriesDimension::Model => "model",
            SeriesDimension::Provider => "provider",
            SeriesDimension::Client => "client_id",
            SeriesDimension::Account => "cliproxy_account",
        }
    }
}

/// One key's totals and its per-day points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesKey {
    /// The dimension's value; `""` when the column is NULL or empty.
    pub key: String,
    /// Rows.
    pub request_count: i64,
    /// Σ `total_tokens`.
    pub total_tokens: i64,
    /// Σ exact cost.
    pub cost_nanousd: i64,
    /// The same in USD.
    pub cost_usd: f64,
    /// The days with rows, ascending.
    pub days: Vec<SeriesPoint>,
}

/// A key's figures on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Rows.
    pub request_count: i64,
    /// Σ `total_tokens`.
    pub total_tokens: i64,
    /// Σ exact cost.
    pub cost_nanousd: i64,
}

impl Store {
    /// Totals of the non-pending rows started on the days `from..=to`.
    pub fn usage_summary(&self, from: &str, to: &str) -> Result<UsageSummary, StorageError> {
        Ok(self.connection().query_row(
            "SELECT COUNT(*),
               COALESCE(SUM(CASE WHEN status BETWEEN 200 AND 299 THEN 0 ELSE 1 END), 0),
               COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
               COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_creation_tokens), 0),
               COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_nanousd), 0),
               COALESCE(SUM(CASE
                 WHEN (CASE WHEN json_valid(meta_json)
                       THEN json_extract(meta_json, '$.usage_convention') END) = 'openai'
                 THEN COALESCE(prompt_tokens, 0)
                 ELSE COALESCE(prompt_tokens, 0) + COALESCE(cache_read_tokens, 0)
                      + COALESCE(cache_creation_tokens, 0) END), 0)
             FROM request_logs
             WHERE lifecycle_status != 'pending' AND substr(started_at, 1, 10) BETWEEN ?1 AND ?2",
            params![from, to],
            |r| {
                Ok(UsageSummary::from_sums(
                    from,
                    to,
                    SummarySums {
                        requests: r.get(0)?,
                        errors: r.get(1)?,
                        prompt_tokens: r.get(2)?,
                        completion_tokens: r.get(3)?,
                        cache_read_tokens: r.get(4)?,
                        cache_creation_tokens: r.get(5)?,
                        total_tokens: r.get(6)?,
                        cost_nanousd: r.get(7)?,
                        input_processed_tokens: r.get(8)?,
                    },
                ))
            },
        )?)
    }

    /// Per-day figures of each value of `by` over the days `from..=to`; keys ordered by cost
    /// descending, then request count descending, then key.
    pub fn usage_series(
        &self,
        from: &str,
        to: &str,
        by: SeriesDimension,
    ) -> Result<Vec<SeriesKey>, StorageError> {
        // The column name comes from a closed enum, never from the request.
        let sql = format!(
            "SELECT COALESCE({col}, '') AS k, substr(started_at, 1, 10) AS d, COUNT(*),
               COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_nanousd), 0)
             FROM request_logs
             WHERE lifecycle_status != 'pending' AND substr(started_at, 1, 10) BETWEEN ?1 AND ?2
             GROUP BY k, d ORDER BY k, d",
            col = by.column()
        );
        let mut stmt = self.connection().prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![from, to], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    SeriesPoint {
                        day: r.get(1)?,
                        request_count: r.get(2)?,
                        total_tokens: r.get(3)?,
                        cost_nanousd: r.get(4)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SeriesKey::group(rows))
    }
}

impl SeriesKey {
    /// The keys of a series from its `(key, point)` rows ordered by key then day: totals per
    /// key, keys ordered by cost descending, then request count descending, then key (byte
    /// order). Both backends group with this.
    pub fn group(rows: impl IntoIterator<Item = (String, SeriesPoint)>) -> Vec<SeriesKey> {
        let mut keys: Vec<SeriesKey> = Vec::new();
        for (key, point) in rows {
            match keys.last_mut() {
                Some(last) if last.key == key => last.days.push(point),
                _ => keys.push(SeriesKey {
                    key,
                    request_count: 0,
                    total_tokens: 0,
                    cost_nanousd: 0,
                    cost_usd: 0.0,
                    days: vec![point],
                }),
            }
        }
        for k in &mut keys {
            k.request_count = k.days.iter().map(|p| p.request_count).sum();
            k.total_tokens = k.days.iter().map(|p| p.total_tokens).sum();
            k.cost_nanousd = k.days.iter().map(|p| p.cost_nanousd).sum();
            k.cost_usd = usd(k.cost_nanousd);
        }
        keys.sort_by(|a, b| {
            b.cost_nanousd
                .cmp(&a.cost_nanousd)
                .then(b.request_count.cmp(&a.request_count))
                .then(a.key.cmp(&b.key))
        });
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tool, model, started_at, status, lifecycle, prompt tokens, cost.
    type Row<'a> = (&'a str, &'a str, &'a str, Option<i64>, &'a str, i64, i64);

    fn store_with_rows() -> Store {
        let (store, _) = Store::open_and_migrate(&crate::DbPath::memory()).unwrap();
        let conn = store.connection();
        let rows: &[Row<'_>] = &[
            (
                "claude-code",
                "m1",
                "2026-05-01T10:00:00.000Z",
                Some(200),
                "completed",
                10,
                100,
            ),
            (
                "claude-code",
                "m2",
                "2026-05-02T10:00:00.000Z",
                Some(500),
                "error",
                5,
                0,
            ),
            (
                "codex",
                "m1",
                "2026-05-02T11:00:00.000Z",
                Some(200),
                "completed",
                7,
                300,
            ),
            (
                "codex",
                "m1",
                "2026-05-02T12:00:00.000Z",
                None,
                "pending",
                99,
                999,
            ),
            (
                "codex",
                "m1",
                "2026-05-04T12:00:00.000Z",
                Some(200),
                "completed",
                1,
                1,
            ),
        ];
        for (tool, model, at, status, life, prompt, nano) in rows {
            conn.execute(
                "INSERT INTO request_logs (provider, model, tool, path, status, lifecycle_status,
                   prompt_tokens, total_tokens, cost_nanousd, started_at)
                 VALUES ('p', ?1, ?2, '/v1/messages', ?3, ?4, ?5, ?5, ?6, ?7)",
                params![model, tool, status, life, prompt, nano, at],
            )
            .unwrap();
        }
        store
    }

    #[test]
    fn summary_leaves_out_pending_rows_and_days_outside_the_range() {
        let s = store_with_rows()
            .usage_summary("2026-05-01", "2026-05-02")
            .unwrap();
        assert_eq!(s.requests, 3);
        assert_eq!(s.errors, 1);
        assert_eq!(s.prompt_tokens, 22);
        assert_eq!(s.cost_nanousd, 400);
        assert!((s.error_rate - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn series_groups_by_key_and_day_ordered_by_cost() {
        let keys = store_with_rows()
            .usage_series("2026-05-01", "2026-05-04", SeriesDimension::Tool)
            .unwrap();
        let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(names, ["codex", "claude-code"]);
        assert_eq!(keys[0].cost_nanousd, 301);
        assert_eq!(keys[0].days.len(), 2);
        assert_eq!(keys[1].days[1].day, "2026-05-02");
    }
}
