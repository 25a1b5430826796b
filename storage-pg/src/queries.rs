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

use agent_cli_proxy_storage::queries::{
    AccountSummary, CostAuditRow, DailyAccountUsage, DailyUsage, LogFilter, LogRow, ModelUsage,
    ProviderUsage, Stats, UsageDay,
};

use crate::error::PgError;
use crate::usd;

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
    Ok(summarize(today.to_owned(), breakdown))
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
            days.push(summarize(date, std::mem::take(&mut current)));
        }
        current.push(row);
    }
    if let Some(first) = current.first() {
        let date = first.day.clone();
        days.push(summarize(date, current));
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

fn summarize(date: String, breakdown: Vec<DailyUsage>) -> UsageDay {
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
