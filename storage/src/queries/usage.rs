//! Usage queries (`control.md` §6.2), the correlator's candidates (§8.3) and the local usage
//! windows of quota reports (§8.5).

use rusqlite::{Row, params};
use serde::Serialize;

use agent_cli_proxy_core::admin::{Span, TrendBucket, TrendRow, trend_buckets};

use super::{bounded, iso_bound};
use crate::apply::{count, sql_int, usd};
use crate::error::StorageError;
use crate::store::Store;

/// One `daily_usage` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyUsage {
    /// UTC day.
    pub day: String,
    /// Provider.
    pub provider: String,
    /// Requested model.
    pub model: String,
    /// Requests.
    pub request_count: i64,
    /// Σ prompt tokens.
    pub prompt_tokens: i64,
    /// Σ completion tokens.
    pub completion_tokens: i64,
    /// Σ cache-creation tokens.
    pub cache_creation_tokens: i64,
    /// Σ cache-read tokens.
    pub cache_read_tokens: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Exact cost.
    pub cost_nanousd: i64,
}

/// A day's totals with its breakdown (`/admin/usage/today`, `/admin/usage/range`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageDay {
    /// UTC day.
    pub date: String,
    /// Σ requests.
    pub requests: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Σ cost in USD (from the integer sum).
    pub cost_usd: f64,
    /// Σ exact cost.
    pub cost_nanousd: i64,
    /// Rows ordered provider, model.
    pub breakdown: Vec<DailyUsage>,
}

/// [`DailyUsage`] summed over a range, without `day`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUsage {
    /// Provider.
    pub provider: String,
    /// Requested model.
    pub model: String,
    /// Requests.
    pub request_count: i64,
    /// Σ prompt tokens.
    pub prompt_tokens: i64,
    /// Σ completion tokens.
    pub completion_tokens: i64,
    /// Σ cache-creation tokens.
    pub cache_creation_tokens: i64,
    /// Σ cache-read tokens.
    pub cache_read_tokens: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Exact cost.
    pub cost_nanousd: i64,
}

/// Per-provider totals (`/admin/usage/providers`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderUsage {
    /// Provider.
    pub provider: String,
    /// Requests.
    pub request_count: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Exact cost.
    pub cost_nanousd: i64,
}

/// One `daily_account_usage` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyAccountUsage {
    /// UTC day.
    pub day: String,
    /// Provider.
    pub provider: String,
    /// Requested model.
    pub model: String,
    /// CLIProxyAPI account.
    pub cliproxy_account: String,
    /// Auth index.
    pub cliproxy_auth_index: Option<String>,
    /// Requests.
    pub request_count: i64,
    /// Σ prompt tokens.
    pub prompt_tokens: i64,
    /// Σ completion tokens.
    pub completion_tokens: i64,
    /// Σ cache-creation tokens.
    pub cache_creation_tokens: i64,
    /// Σ cache-read tokens.
    pub cache_read_tokens: i64,
    /// Σ reasoning tokens.
    pub reasoning_tokens: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Exact cost.
    pub cost_nanousd: i64,
}

/// Per-account totals (`/admin/usage/accounts/summary`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountSummary {
    /// Account.
    pub cliproxy_account: String,
    /// Auth index.
    pub cliproxy_auth_index: Option<String>,
    /// Provider.
    pub provider: String,
    /// Requests.
    pub request_count: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Exact cost.
    pub cost_nanousd: i64,
}

/// Exact-match filters of the trend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrendFilter {
    /// `provider`.
    pub provider: Option<String>,
    /// `model`.
    pub model: Option<String>,
    /// `tool`.
    pub tool: Option<String>,
}

/// `{"buckets":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Every bucket of the span, empty ones included.
    pub buckets: Vec<TrendBucket>,
}

/// A local usage window of a quota report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalUsage {
    /// Window start, ISO.
    pub since: String,
    /// Rows.
    pub requests: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Exact cost.
    pub cost_nanousd: i64,
}

/// A row the correlator may match (`control.md` §8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationCandidate {
    /// Row id.
    pub id: i64,
    /// Requested model.
    pub model: String,
    /// Response model.
    pub actual_model: Option<String>,
    /// ISO start.
    pub started_at: String,
    /// Total tokens.
    pub total_tokens: i64,
    /// Latency.
    pub latency_ms: Option<i64>,
}

const DAILY_COLUMNS: &str = "day, provider, model, COALESCE(request_count, 0),
    COALESCE(prompt_tokens, 0), COALESCE(completion_tokens, 0),
    COALESCE(cache_creation_tokens, 0), COALESCE(cache_read_tokens, 0),
    COALESCE(total_tokens, 0), COALESCE(cost_usd, 0), cost_nanousd";

impl Store {
    /// `/admin/usage/today` for the UTC day `today`.
    pub fn usage_today(&self, today: &str) -> Result<UsageDay, StorageError> {
        let breakdown = self.usage_models_day(today)?;
        Ok(UsageDay::from_breakdown(today.to_owned(), breakdown))
    }

    /// `/admin/usage/range`: one entry per day that has rows, days descending.
    pub fn usage_range(&self, from: &str, to: &str) -> Result<Vec<UsageDay>, StorageError> {
        let mut stmt = self.connection().prepare_cached(&format!(
            "SELECT {DAILY_COLUMNS} FROM daily_usage WHERE day >= ?1 AND day <= ?2
             ORDER BY day DESC, provider, model"
        ))?;
        let rows = stmt
            .query_map(params![from, to], daily_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut days: Vec<UsageDay> = Vec::new();
        let mut current: Vec<DailyUsage> = Vec::new();
        for row in rows {
            if current.first().is_some_and(|c| c.day != row.day) {
                let date = current[0].day.clone();
                days.push(UsageDay::from_breakdown(date, std::mem::take(&mut current)));
            }
            current.push(row);
        }
        if let Some(first) = current.first() {
            let date = first.day.clone();
            days.push(UsageDay::from_breakdown(date, current));
        }
        Ok(days)
    }

    /// `/admin/usage/models?day=`: the day's rows ordered provider, model.
    pub fn usage_models_day(&self, day: &str) -> Result<Vec<DailyUsage>, StorageError> {
        let mut stmt = self.connection().prepare_cached(&format!(
            "SELECT {DAILY_COLUMNS} FROM daily_usage WHERE day = ?1 ORDER BY provider, model"
        ))?;
        let rows = stmt
            .query_map([day], daily_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `/admin/usage/models?from=&to=`: summed per provider and model.
    pub fn usage_models_range(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<ModelUsage>, StorageError> {
        let mut stmt = self.connection().prepare_cached(
            "SELECT provider, model, SUM(COALESCE(request_count, 0)),
               SUM(COALESCE(prompt_tokens, 0)), SUM(COALESCE(completion_tokens, 0)),
               SUM(COALESCE(cache_creation_tokens, 0)), SUM(COALESCE(cache_read_tokens, 0)),
               SUM(COALESCE(total_tokens, 0)), SUM(cost_nanousd)
             FROM daily_usage WHERE day >= ?1 AND day <= ?2
             GROUP BY provider, model ORDER BY provider, model",
        )?;
        let rows = stmt
            .query_map(params![from, to], |r| {
                let nano: i64 = r.get(8)?;
                Ok(ModelUsage {
                    provider: r.get(0)?,
                    model: r.get(1)?,
                    request_count: r.get(2)?,
                    prompt_tokens: r.get(3)?,
                    completion_tokens: r.get(4)?,
                    cache_creation_tokens: r.get(5)?,
                    cache_read_tokens: r.get(6)?,
                    total_tokens: r.get(7)?,
                    cost_usd: usd(nano),
                    cost_nanousd: nano,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `/admin/usage/providers` over `from..=to` (a single day: `from = to`).
    pub fn usage_providers(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<ProviderUsage>, StorageError> {
        let mut stmt = self.connection().prepare_cached(
            "SELECT provider, SUM(COALESCE(request_count, 0)), SUM(COALESCE(total_tokens, 0)),
               SUM(cost_nanousd)
             FROM daily_usage WHERE day >= ?1 AND day <= ?2
             GROUP BY provider ORDER BY provider",
        )?;
        let rows = stmt
            .query_map(params![from, to], |r| {
                let nano: i64 = r.get(3)?;
                Ok(ProviderUsage {
                    provider: r.get(0)?,
                    request_count: r.get(1)?,
                    total_tokens: r.get(2)?,
                    cost_usd: usd(nano),
                    cost_nanousd: nano,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `/admin/usage/accounts?day=`: ordered account, provider, model.
    pub fn usage_accounts_day(&self, day: &str) -> Result<Vec<DailyAccountUsage>, StorageError> {
        self.usage_accounts(
            "day = ?1 AND ?1 = ?2",
            day,
            day,
            "cliproxy_account, provider, model",
        )
    }

    /// `/admin/usage/accounts/range`: ordered day descending, account, provider, model.
    pub fn usage_accounts_range(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyAccountUsage>, StorageError> {
        self.usage_accounts(
            "day >= ?1 AND day <= ?2",
            from,
            to,
            "day DESC, cliproxy_account, provider, model",
        )
    }

    fn usage_accounts(
        &self,
        filter: &str,
        a: &str,
        b: &str,
        order: &str,
    ) -> Result<Vec<DailyAccountUsage>, StorageError> {
        let mut stmt = self.connection().prepare_cached(&format!(
            "SELECT day, provider, model, cliproxy_account, cliproxy_auth_index,
               COALESCE(request_count, 0), COALESCE(prompt_tokens, 0),
               COALESCE(completion_tokens, 0), COALESCE(cache_creation_tokens, 0),
               COALESCE(cache_read_tokens, 0), COALESCE(reasoning_tokens, 0),
               COALESCE(total_tokens, 0), COALESCE(cost_usd, 0), cost_nanousd
             FROM daily_account_usage WHERE {filter} ORDER BY {order}"
        ))?;
        let rows = stmt
            .query_map(params![a, b], |r| {
                Ok(DailyAccountUsage {
                    day: r.get(0)?,
                    provider: r.get(1)?,
                    model: r.get(2)?,
                    cliproxy_account: r.get(3)?,
                    cliproxy_auth_index: r.get(4)?,
                    request_count: r.get(5)?,
                    prompt_tokens: r.get(6)?,
                    completion_tokens: r.get(7)?,
                    cache_creation_tokens: r.get(8)?,
                    cache_read_tokens: r.get(9)?,
                    reasoning_tokens: r.get(10)?,
                    total_tokens: r.get(11)?,
                    cost_usd: r.get(12)?,
                    cost_nanousd: r.get(13)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `/admin/usage/accounts/summary`: grouped by account, auth index and provider,
    /// ordered by cost descending (then by those keys, for a stable order).
    pub fn usage_accounts_summary(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<AccountSummary>, StorageError> {
        let mut stmt = self.connection().prepare_cached(
            "SELECT cliproxy_account, cliproxy_auth_index, provider,
               SUM(COALESCE(request_count, 0)), SUM(COALESCE(total_tokens, 0)),
               SUM(cost_nanousd) AS nano
             FROM daily_account_usage WHERE day >= ?1 AND day <= ?2
             GROUP BY cliproxy_account, cliproxy_auth_index, provider
             ORDER BY nano DESC, cliproxy_account, cliproxy_auth_index, provider",
        )?;
        let rows = stmt
            .query_map(params![from, to], |r| {
                let nano: i64 = r.get(5)?;
                Ok(AccountSummary {
                    cliproxy_account: r.get(0)?,
                    cliproxy_auth_index: r.get(1)?,
                    provider: r.get(2)?,
                    request_count: r.get(3)?,
                    total_tokens: r.get(4)?,
                    cost_usd: usd(nano),
                    cost_nanousd: nano,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `/admin/usage/trend`: non-pending rows by `started_at`, every bucket of the span.
    pub fn usage_trend(&self, span: &Span, filter: &TrendFilter) -> Result<Trend, StorageError> {
        let Some(span) = bounded(span) else {
            return Ok(Trend {
                buckets: Vec::new(),
            });
        };
        let width = span.width_secs;
        let mut stmt = self.connection().prepare_cached(
            "SELECT CAST(strftime('%s', started_at) AS INTEGER) / ?3 * ?3 AS bucket,
               COUNT(*), SUM(COALESCE(total_tokens, 0)), SUM(cost_nanousd)
             FROM request_logs
             WHERE lifecycle_status != 'pending' AND started_at >= ?1 AND started_at < ?2
               AND (?4 IS NULL OR provider = ?4) AND (?5 IS NULL OR model = ?5)
               AND (?6 IS NULL OR tool = ?6)
             GROUP BY bucket",
        )?;
        let rows = stmt
            .query_map(
                params![
                    iso_bound(span.first_bucket_secs()),
                    iso_bound(span.last_bucket_secs().saturating_add(width)),
                    sql_int(width),
                    filter.provider,
                    filter.model,
                    filter.tool
                ],
                |r| {
                    Ok((
                        r.get::<_, Option<i64>>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        // A row whose started_at SQLite cannot read has no bucket and is left out.
        let rows: Vec<TrendRow> = rows
            .into_iter()
            .filter_map(|(bucket, requests, tokens, nano)| {
                Some(TrendRow {
                    bucket_start_secs: bucket?,
                    requests: count(requests),
                    tokens: count(tokens),
                    cost_nanousd: nano,
                })
            })
            .collect();
        Ok(Trend {
            buckets: trend_buckets(&span, &rows),
        })
    }

    /// A quota report's local window: rows of `account` and `provider` started at or after
    /// `since` (ISO).
    pub fn local_usage(
        &self,
        account: &str,
        provider: &str,
        since: &str,
    ) -> Result<LocalUsage, StorageError> {
        let (requests, tokens, nano) = self
            .connection()
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_nanousd), 0)
                 FROM request_logs
                 WHERE provider = ?1 AND cliproxy_account = ?2 AND started_at >= ?3",
            )?
            .query_row(params![provider, account, since], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        Ok(LocalUsage {
            since: since.to_owned(),
            requests,
            total_tokens: tokens,
            cost_usd: usd(nano),
            cost_nanousd: nano,
        })
    }

    /// Correlator candidates: uncorrelated rows with status 200 started at or after `since`,
    /// newest first, at most `limit`.
    pub fn correlation_candidates(
        &self,
        since: &str,
        limit: u32,
    ) -> Result<Vec<CorrelationCandidate>, StorageError> {
        let mut stmt = self.connection().prepare_cached(
            "SELECT id, model, actual_model, started_at, COALESCE(total_tokens, 0), latency_ms
             FROM request_logs
             WHERE cliproxy_account IS NULL AND status = 200 AND started_at >= ?1
             ORDER BY started_at DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![since, limit], |r| {
                Ok(CorrelationCandidate {
                    id: r.get(0)?,
                    model: r.get(1)?,
                    actual_model: r.get(2)?,
                    started_at: r.get(3)?,
                    total_tokens: r.get(4)?,
                    latency_ms: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

fn daily_row(r: &Row<'_>) -> rusqlite::Result<DailyUsage> {
    Ok(DailyUsage {
        day: r.get(0)?,
        provider: r.get(1)?,
        model: r.get(2)?,
        request_count: r.get(3)?,
        prompt_tokens: r.get(4)?,
        completion_tokens: r.get(5)?,
        cache_creation_tokens: r.get(6)?,
        cache_read_tokens: r.get(7)?,
        total_tokens: r.get(8)?,
        cost_usd: r.get(9)?,
        cost_nanousd: r.get(10)?,
    })
}

impl UsageDay {
    /// A day's answer from its per-model buckets: the totals are their sums. Both backends
    /// build `/admin/usage/today` and `/range` with it, so they answer the same bytes.
    pub fn from_breakdown(date: String, breakdown: Vec<DailyUsage>) -> UsageDay {
        let requests = breakdown.iter().map(|b| b.request_count).sum();
        let total_tokens = breakdown.iter().map(|b| b.total_tokens).sum();
        let nano: i64 = breakdown.iter().map(|b| b.cost_nanousd).sum();
        UsageDay {
            date,
            requests,
            total_tokens,
            cost_usd: usd(nano),
            cost_nanousd: nano,
            breakdown,
        }
    }
}
