//! Read queries with the SQLite backend's result types (`storage::queries`), so the admin
//! layer serializes the same bytes whichever backend answered. So far: `/admin/usage/today`,
//! `/admin/usage/range`, `/admin/usage/models` (day and range), `/admin/usage/providers`,
//! `/admin/usage/accounts` (day, range, summary), `/admin/stats`, `/admin/logs`,
//! `/admin/logs/:id` and its cost audit.
//!
//! Differences from the SQLite SQL are PostgreSQL's, not the answer's: `SUM` of a BIGINT is
//! NUMERIC there and is cast back; an absent filter is a typed NULL parameter; a nullable
//! column sorted ascending says `NULLS FIRST`, where SQLite puts NULL.

use postgres::{Client, Row};

use std::collections::BTreeMap;

use agent_cli_proxy_core::admin::{Span, TrendRow, trend_buckets};
use agent_cli_proxy_storage::queries::{
    AccountSummary, CorrelationCandidate, CostAuditRow, DailyAccountUsage, DailyUsage, LocalUsage,
    LogFilter, LogRow, ModelUsage, ProviderUsage, QuotaHistory, QuotaSnapshot, Stats, Trend,
    TrendFilter, UsageDay, bounded, iso_bound,
};

use crate::error::PgError;
use crate::{sql_int, usd};

const DAILY_COLUMNS: &str = "day, provider, model, COALESCE(request_count, 0),
    COALESCE(prompt_tokens, 0), COALESCE(completion_tokens, 0),
    COALESCE(cache_creation_tokens, 0), COALESCE(cache_read_tokens, 0),
    COALESCE(total_tokens, 0), COALESCE(cost_usd, 0), cost_nanousd";

const LOG_COLUMNS: &str = "id, request_id, provider, model, actual_model, actual_provider,
    proxy_api_key_id, tool, client_id, agent, source, msg_id, path, streamed, status,
    prompt_tokens, completion_tokens, cache_creation_tokens, cache_read_tokens,
    reasoning_tokens, total_tokens, cost_usd, cost_status, lifecycle_status, incomplete,
    error_code, error_message, latency_ms, started_at, finished_at, finalized_at, meta_json,
    user_agent, source_ip, cliproxy_account, cliproxy_auth_index, cliproxy_source,
    correlated_at, cache_write_1h_tokens, usage_incomplete, cost_nanousd";

/// `/admin/usage/today` for the UTC day `today`: rows ordered provider, model (byte order:
/// the columns are `COLLATE "C"`).
pub fn usage_today(client: &mut Client, today: &str) -> Result<UsageDay, PgError> {
    let breakdown = usage_models_day(client, today)?;
    Ok(UsageDay::from_breakdown(today.to_owned(), breakdown))
}

/// `/admin/usage/models?day=`: the day's rows ordered provider, model.
pub fn usage_models_day(client: &mut Client, day: &str) -> Result<Vec<DailyUsage>, PgError> {
    let rows = client.query(
        &format!("SELECT {DAILY_COLUMNS} FROM daily_usage WHERE day = $1 ORDER BY provider, model"),
        &[&day],
    )?;
    rows.iter().map(daily_row).collect()
}

/// `/admin/usage/range`: one entry per day that has rows, days descending.
pub fn usage_range(client: &mut Client, from: &str, to: &str) -> Result<Vec<UsageDay>, PgError> {
    let rows = client.query(
        &format!(
            "SELECT {DAILY_COLUMNS} FROM daily_usage WHERE day >= $1 AND day <= $2
             ORDER BY day DESC, provider, model"
        ),
        &[&from, &to],
    )?;
    let mut days: Vec<UsageDay> = Vec::new();
    let mut current: Vec<DailyUsage> = Vec::new();
    for row in rows.iter().map(daily_row) {
        let row = row?;
        if let Some(first) = current.first()
            && first.day != row.day
        {
            let date = first.day.clone();
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

/// `/admin/usage/models?from=&to=`: summed per provider and model.
pub fn usage_models_range(
    client: &mut Client,
    from: &str,
    to: &str,
) -> Result<Vec<ModelUsage>, PgError> {
    let rows = client.query(
        "SELECT provider, model, SUM(COALESCE(request_count, 0))::bigint,
           SUM(COALESCE(prompt_tokens, 0))::bigint, SUM(COALESCE(completion_tokens, 0))::bigint,
           SUM(COALESCE(cache_creation_tokens, 0))::bigint,
           SUM(COALESCE(cache_read_tokens, 0))::bigint, SUM(COALESCE(total_tokens, 0))::bigint,
           SUM(cost_nanousd)::bigint
         FROM daily_usage WHERE day >= $1 AND day <= $2
         GROUP BY provider, model ORDER BY provider, model",
        &[&from, &to],
    )?;
    rows.iter()
        .map(|r| {
            let nano: i64 = r.try_get(8)?;
            Ok(ModelUsage {
                provider: r.try_get(0)?,
                model: r.try_get(1)?,
                request_count: r.try_get(2)?,
                prompt_tokens: r.try_get(3)?,
                completion_tokens: r.try_get(4)?,
                cache_creation_tokens: r.try_get(5)?,
                cache_read_tokens: r.try_get(6)?,
                total_tokens: r.try_get(7)?,
                cost_usd: usd(nano),
                cost_nanousd: nano,
            })
        })
        .collect()
}

/// `/admin/usage/providers` over `from..=to` (a single day: `from = to`).
pub fn usage_providers(
    client: &mut Client,
    from: &str,
    to: &str,
) -> Result<Vec<ProviderUsage>, PgError> {
    let rows = client.query(
        "SELECT provider, SUM(COALESCE(request_count, 0))::bigint,
           SUM(COALESCE(total_tokens, 0))::bigint, SUM(cost_nanousd)::bigint
         FROM daily_usage WHERE day >= $1 AND day <= $2
         GROUP BY provider ORDER BY provider",
        &[&from, &to],
    )?;
    rows.iter()
        .map(|r| {
            let nano: i64 = r.try_get(3)?;
            Ok(ProviderUsage {
                provider: r.try_get(0)?,
                request_count: r.try_get(1)?,
                total_tokens: r.try_get(2)?,
                cost_usd: usd(nano),
                cost_nanousd: nano,
            })
        })
        .collect()
}

/// `/admin/usage/accounts?day=`: ordered account, provider, model.
pub fn usage_accounts_day(
    client: &mut Client,
    day: &str,
) -> Result<Vec<DailyAccountUsage>, PgError> {
    usage_accounts(
        client,
        "day = $1 AND $1 = $2",
        day,
        day,
        "cliproxy_account, provider, model",
    )
}

/// `/admin/usage/accounts/range`: ordered day descending, account, provider, model.
pub fn usage_accounts_range(
    client: &mut Client,
    from: &str,
    to: &str,
) -> Result<Vec<DailyAccountUsage>, PgError> {
    usage_accounts(
        client,
        "day >= $1 AND day <= $2",
        from,
        to,
        "day DESC, cliproxy_account, provider, model",
    )
}

fn usage_accounts(
    client: &mut Client,
    filter: &str,
    a: &str,
    b: &str,
    order: &str,
) -> Result<Vec<DailyAccountUsage>, PgError> {
    let rows = client.query(
        &format!(
            "SELECT day, provider, model, cliproxy_account, cliproxy_auth_index,
               COALESCE(request_count, 0), COALESCE(prompt_tokens, 0),
               COALESCE(completion_tokens, 0), COALESCE(cache_creation_tokens, 0),
               COALESCE(cache_read_tokens, 0), COALESCE(reasoning_tokens, 0),
               COALESCE(total_tokens, 0), COALESCE(cost_usd, 0), cost_nanousd
             FROM daily_account_usage WHERE {filter} ORDER BY {order}"
        ),
        &[&a, &b],
    )?;
    rows.iter()
        .map(|r| {
            Ok(DailyAccountUsage {
                day: r.try_get(0)?,
                provider: r.try_get(1)?,
                model: r.try_get(2)?,
                cliproxy_account: r.try_get(3)?,
                cliproxy_auth_index: r.try_get(4)?,
                request_count: r.try_get(5)?,
                prompt_tokens: r.try_get(6)?,
                completion_tokens: r.try_get(7)?,
                cache_creation_tokens: r.try_get(8)?,
                cache_read_tokens: r.try_get(9)?,
                reasoning_tokens: r.try_get(10)?,
                total_tokens: r.try_get(11)?,
                cost_usd: r.try_get(12)?,
                cost_nanousd: r.try_get(13)?,
            })
        })
        .collect()
}

/// `/admin/usage/accounts/summary`: grouped by account, auth index and provider, ordered
/// by cost descending (then by those keys, for a stable order).
pub fn usage_accounts_summary(
    client: &mut Client,
    from: &str,
    to: &str,
) -> Result<Vec<AccountSummary>, PgError> {
    let rows = client.query(
        "SELECT cliproxy_account, cliproxy_auth_index, provider,
           SUM(COALESCE(request_count, 0))::bigint, SUM(COALESCE(total_tokens, 0))::bigint,
           SUM(cost_nanousd)::bigint AS nano
         FROM daily_account_usage WHERE day >= $1 AND day <= $2
         GROUP BY cliproxy_account, cliproxy_auth_index, provider
         ORDER BY nano DESC, cliproxy_account, cliproxy_auth_index NULLS FIRST, provider",
        &[&from, &to],
    )?;
    rows.iter()
        .map(|r| {
            let nano: i64 = r.try_get(5)?;
            Ok(AccountSummary {
                cliproxy_account: r.try_get(0)?,
                cliproxy_auth_index: r.try_get(1)?,
                provider: r.try_get(2)?,
                request_count: r.try_get(3)?,
                total_tokens: r.try_get(4)?,
                cost_usd: usd(nano),
                cost_nanousd: nano,
            })
        })
        .collect()
}

/// `/admin/usage/trend`: non-pending rows by `started_at`, every bucket of the span.
pub fn usage_trend(
    client: &mut Client,
    span: &Span,
    filter: &TrendFilter,
) -> Result<Trend, PgError> {
    let Some(span) = bounded(span) else {
        return Ok(Trend {
            buckets: Vec::new(),
        });
    };
    let width = span.width_secs;
    let rows = client.query(
        "SELECT acp_epoch(started_at) / $3 * $3 AS bucket, COUNT(*),
           SUM(COALESCE(total_tokens, 0))::bigint, SUM(cost_nanousd)::bigint
         FROM request_logs
         WHERE lifecycle_status != 'pending' AND started_at >= $1 AND started_at < $2
           AND ($4::text IS NULL OR provider = $4) AND ($5::text IS NULL OR model = $5)
           AND ($6::text IS NULL OR tool = $6)
         GROUP BY bucket",
        &[
            &iso_bound(span.first_bucket_secs()),
            &iso_bound(span.last_bucket_secs().saturating_add(width)),
            &sql_int(width),
            &filter.provider,
            &filter.model,
            &filter.tool,
        ],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        // A row whose started_at cannot be read has no bucket and is left out, as in SQLite.
        let Some(bucket) = r.try_get::<_, Option<i64>>(0)? else {
            continue;
        };
        out.push(TrendRow {
            bucket_start_secs: bucket,
            requests: u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
            tokens: u64::try_from(r.try_get::<_, i64>(2)?).unwrap_or(0),
            cost_nanousd: r.try_get(3)?,
        });
    }
    Ok(Trend {
        buckets: trend_buckets(&span, &out),
    })
}

/// A quota report's local window: rows of `account` and `provider` started at or after
/// `since` (ISO).
pub fn local_usage(
    client: &mut Client,
    account: &str,
    provider: &str,
    since: &str,
) -> Result<LocalUsage, PgError> {
    let r = client.query_one(
        "SELECT COUNT(*), COALESCE(SUM(total_tokens), 0)::bigint,
           COALESCE(SUM(cost_nanousd), 0)::bigint
         FROM request_logs WHERE provider = $1 AND cliproxy_account = $2 AND started_at >= $3",
        &[&provider, &account, &since],
    )?;
    let nano: i64 = r.try_get(2)?;
    Ok(LocalUsage {
        since: since.to_owned(),
        requests: r.try_get(0)?,
        total_tokens: r.try_get(1)?,
        cost_usd: usd(nano),
        cost_nanousd: nano,
    })
}

/// Correlator candidates: uncorrelated rows with status 200 started at or after `since`,
/// newest first, at most `limit`.
pub fn correlation_candidates(
    client: &mut Client,
    since: &str,
    limit: u32,
) -> Result<Vec<CorrelationCandidate>, PgError> {
    client
        .query(
            "SELECT id, model, actual_model, started_at, COALESCE(total_tokens, 0), latency_ms
             FROM request_logs
             WHERE cliproxy_account IS NULL AND status = 200 AND started_at >= $1
             ORDER BY started_at DESC, id DESC LIMIT $2",
            &[&since, &i64::from(limit)],
        )?
        .iter()
        .map(|r| {
            Ok(CorrelationCandidate {
                id: r.try_get(0)?,
                model: r.try_get(1)?,
                actual_model: r.try_get(2)?,
                started_at: r.try_get(3)?,
                total_tokens: r.try_get(4)?,
                latency_ms: r.try_get(5)?,
            })
        })
        .collect()
}

type QuotaKey = (String, String, String, Option<String>);

const SNAPSHOT_COLUMNS: &str = "id, timestamp, provider, account, quota_type, model,
    used_pct, remaining, remaining_raw, resets_at, raw_json";

/// `/admin/quotas`: the latest snapshot per provider, account, window and model since
/// `since`, in that key's order.
pub fn quotas_latest(client: &mut Client, since: &str) -> Result<Vec<QuotaSnapshot>, PgError> {
    let rows = client.query(
        &format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM quota_snapshots WHERE timestamp >= $1
             ORDER BY timestamp, id"
        ),
        &[&since],
    )?;
    let mut latest: BTreeMap<QuotaKey, QuotaSnapshot> = BTreeMap::new();
    for r in &rows {
        let s = snapshot(r)?;
        let key = (
            s.provider.clone(),
            s.account.clone(),
            s.quota_type.clone(),
            s.model.clone(),
        );
        latest.insert(key, s);
    }
    Ok(latest.into_values().collect())
}

/// `/admin/quotas/history`: per bucket of the span, the latest snapshot of each key.
pub fn quota_history(
    client: &mut Client,
    span: &Span,
    provider: Option<&str>,
    account: Option<&str>,
) -> Result<QuotaHistory, PgError> {
    let Some(span) = bounded(span) else {
        return Ok(QuotaHistory {
            buckets: Vec::new(),
        });
    };
    let width = span.width_secs;
    let rows = client.query(
        &format!(
            "SELECT {SNAPSHOT_COLUMNS}, acp_epoch(timestamp) / $3 * $3
             FROM quota_snapshots
             WHERE timestamp >= $1 AND timestamp < $2
               AND ($4::text IS NULL OR provider = $4) AND ($5::text IS NULL OR account = $5)
             ORDER BY timestamp, id"
        ),
        &[
            &iso_bound(span.first_bucket_secs()),
            &iso_bound(span.last_bucket_secs().saturating_add(width)),
            &sql_int(width),
            &provider,
            &account,
        ],
    )?;
    let mut slotted = Vec::with_capacity(rows.len());
    for r in &rows {
        // A timestamp `acp_epoch` cannot read has no bucket and is left out, as on SQLite.
        if let Some(bucket) = r.try_get::<_, Option<i64>>(11)? {
            slotted.push((bucket, snapshot(r)?));
        }
    }
    Ok(QuotaHistory::from_snapshots(&span, slotted))
}

fn snapshot(r: &Row) -> Result<QuotaSnapshot, PgError> {
    Ok(QuotaSnapshot {
        id: r.try_get(0)?,
        timestamp: r.try_get(1)?,
        provider: r.try_get(2)?,
        account: r.try_get(3)?,
        quota_type: r.try_get(4)?,
        model: r.try_get(5)?,
        used_pct: r.try_get(6)?,
        remaining: r.try_get(7)?,
        remaining_raw: r.try_get(8)?,
        resets_at: r.try_get(9)?,
        raw_json: r.try_get(10)?,
    })
}

/// `/admin/stats` over all rows; an empty table gives zeros and nulls.
pub fn stats(client: &mut Client) -> Result<Stats, PgError> {
    let r = client.query_one(
        "SELECT COUNT(*), COALESCE(SUM(total_tokens), 0)::bigint,
           COALESCE(SUM(cost_nanousd), 0)::bigint, MIN(started_at), MAX(started_at)
         FROM request_logs",
        &[],
    )?;
    let nano: i64 = r.try_get(2)?;
    Ok(Stats {
        total_requests: r.try_get(0)?,
        total_tokens: r.try_get(1)?,
        total_cost_usd: usd(nano),
        total_cost_nanousd: nano,
        first_request_at: r.try_get(3)?,
        last_request_at: r.try_get(4)?,
    })
}

/// `/admin/logs`: ordered `started_at` descending, then `id` descending.
pub fn logs(
    client: &mut Client,
    f: &LogFilter,
    limit: u32,
    offset: u32,
) -> Result<Vec<LogRow>, PgError> {
    let rows = client.query(
        &format!(
            "SELECT {LOG_COLUMNS} FROM request_logs
             WHERE ($1::text IS NULL OR tool = $1) AND ($2::text IS NULL OR client_id = $2)
               AND ($3::text IS NULL OR model = $3) AND ($4::text IS NULL OR provider = $4)
               AND ($5::bigint IS NULL OR status >= $5)
               AND ($6::bigint IS NULL OR status <= $6)
               AND ($7::text IS NULL OR lifecycle_status = $7)
             ORDER BY started_at DESC, id DESC LIMIT $8 OFFSET $9"
        ),
        &[
            &f.tool,
            &f.client_id,
            &f.model,
            &f.provider,
            &f.status_min,
            &f.status_max,
            &f.lifecycle_status,
            &i64::from(limit),
            &i64::from(offset),
        ],
    )?;
    rows.iter().map(log_row).collect()
}

/// `/admin/logs/:id`.
pub fn log_by_id(client: &mut Client, id: i64) -> Result<Option<LogRow>, PgError> {
    client
        .query_opt(
            &format!("SELECT {LOG_COLUMNS} FROM request_logs WHERE id = $1"),
            &[&id],
        )?
        .as_ref()
        .map(log_row)
        .transpose()
}

/// `/admin/logs/:id/cost-audit`, oldest first; `None` when the log does not exist.
pub fn cost_audit(client: &mut Client, log_id: i64) -> Result<Option<Vec<CostAuditRow>>, PgError> {
    if client
        .query_opt("SELECT 1 FROM request_logs WHERE id = $1", &[&log_id])?
        .is_none()
    {
        return Ok(None);
    }
    let rows = client.query(
        "SELECT id, request_log_id, model, provider, source, base_cost_usd, cost_nanousd,
           calc_at FROM cost_audit WHERE request_log_id = $1 ORDER BY id",
        &[&log_id],
    )?;
    rows.iter()
        .map(|r| {
            Ok(CostAuditRow {
                id: r.try_get(0)?,
                request_log_id: r.try_get(1)?,
                model: r.try_get(2)?,
                provider: r.try_get(3)?,
                source: r.try_get(4)?,
                base_cost_usd: r.try_get(5)?,
                cost_nanousd: r.try_get(6)?,
                calc_at: r.try_get(7)?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()
        .map(Some)
}

fn daily_row(r: &Row) -> Result<DailyUsage, PgError> {
    Ok(DailyUsage {
        day: r.try_get(0)?,
        provider: r.try_get(1)?,
        model: r.try_get(2)?,
        request_count: r.try_get(3)?,
        prompt_tokens: r.try_get(4)?,
        completion_tokens: r.try_get(5)?,
        cache_creation_tokens: r.try_get(6)?,
        cache_read_tokens: r.try_get(7)?,
        total_tokens: r.try_get(8)?,
        cost_usd: r.try_get(9)?,
        cost_nanousd: r.try_get(10)?,
    })
}

fn log_row(r: &Row) -> Result<LogRow, PgError> {
    Ok(LogRow {
        id: r.try_get(0)?,
        request_id: r.try_get(1)?,
        provider: r.try_get(2)?,
        model: r.try_get(3)?,
        actual_model: r.try_get(4)?,
        actual_provider: r.try_get(5)?,
        proxy_api_key_id: r.try_get(6)?,
        tool: r.try_get(7)?,
        client_id: r.try_get(8)?,
        agent: r.try_get(9)?,
        source: r.try_get(10)?,
        msg_id: r.try_get(11)?,
        path: r.try_get(12)?,
        streamed: r.try_get(13)?,
        status: r.try_get(14)?,
        prompt_tokens: r.try_get(15)?,
        completion_tokens: r.try_get(16)?,
        cache_creation_tokens: r.try_get(17)?,
        cache_read_tokens: r.try_get(18)?,
        reasoning_tokens: r.try_get(19)?,
        total_tokens: r.try_get(20)?,
        cost_usd: r.try_get(21)?,
        cost_status: r.try_get(22)?,
        lifecycle_status: r.try_get(23)?,
        incomplete: r.try_get(24)?,
        error_code: r.try_get(25)?,
        error_message: r.try_get(26)?,
        latency_ms: r.try_get(27)?,
        started_at: r.try_get(28)?,
        finished_at: r.try_get(29)?,
        finalized_at: r.try_get(30)?,
        meta_json: r.try_get(31)?,
        user_agent: r.try_get(32)?,
        source_ip: r.try_get(33)?,
        cliproxy_account: r.try_get(34)?,
        cliproxy_auth_index: r.try_get(35)?,
        cliproxy_source: r.try_get(36)?,
        correlated_at: r.try_get(37)?,
        cache_write_1h_tokens: r.try_get(38)?,
        usage_incomplete: r.try_get(39)?,
        cost_nanousd: r.try_get(40)?,
    })
}
