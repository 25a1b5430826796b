//! The dashboard's aggregates (`/admin/usage/summary`, `/admin/usage/series`) on PostgreSQL:
//! the SQLite backend's queries (`storage::queries`, module `dashboard`) with the same rows
//! counted and the same types; the ratios, the USD figures and the grouping of a series are
//! the storage crate's ([`UsageSummary::from_sums`], [`SeriesKey::group`]).
//!
//! Differences are PostgreSQL's: `SUM` casts back to BIGINT, and SQLite's
//! `json_valid`/`json_extract` of `meta_json.usage_convention` is `acp_usage_convention`
//! (migration `007_usage_convention.sql`, NULL for text that is not JSON, as SQLite).

use postgres::Client;

use agent_cli_proxy_storage::queries::{
    SeriesDimension, SeriesKey, SeriesPoint, SummarySums, UsageSummary,
};

use crate::error::PgError;

/// Totals of the non-pending rows started on the days `from..=to`.
pub fn usage_summary(client: &mut Client, from: &str, to: &str) -> Result<UsageSummary, PgError> {
    let r = client.query_one(
        "SELECT COUNT(*),
           COALESCE(SUM(CASE WHEN status BETWEEN 200 AND 299 THEN 0 ELSE 1 END), 0)::bigint,
           COALESCE(SUM(prompt_tokens), 0)::bigint, COALESCE(SUM(completion_tokens), 0)::bigint,
           COALESCE(SUM(cache_read_tokens), 0)::bigint,
           COALESCE(SUM(cache_creation_tokens), 0)::bigint,
           COALESCE(SUM(total_tokens), 0)::bigint, COALESCE(SUM(cost_nanousd), 0)::bigint,
           COALESCE(SUM(CASE
             WHEN acp_usage_convention(meta_json) = 'openai' THEN COALESCE(prompt_tokens, 0)
             ELSE COALESCE(prompt_tokens, 0) + COALESCE(cache_read_tokens, 0)
                  + COALESCE(cache_creation_tokens, 0) END), 0)::bigint
         FROM request_logs
         WHERE lifecycle_status != 'pending' AND substr(started_at, 1, 10) BETWEEN $1 AND $2",
        &[&from, &to],
    )?;
    Ok(UsageSummary::from_sums(
        from,
        to,
        SummarySums {
            requests: r.try_get(0)?,
            errors: r.try_get(1)?,
            prompt_tokens: r.try_get(2)?,
            completion_tokens: r.try_get(3)?,
            cache_read_tokens: r.try_get(4)?,
            cache_creation_tokens: r.try_get(5)?,
            total_tokens: r.try_get(6)?,
            cost_nanousd: r.try_get(7)?,
            input_processed_tokens: r.try_get(8)?,
        },
    ))
}

/// Per-day figures of each value of `by` over the days `from..=to`, keys ordered as
/// [`SeriesKey::group`] says.
pub fn usage_series(
    client: &mut Client,
    from: &str,
    to: &str,
    by: SeriesDimension,
) -> Result<Vec<SeriesKey>, PgError> {
    // The column name comes from a closed enum, never from the request. The key and the day
    // are `COLLATE "C"` columns, so `ORDER BY` is SQLite's byte order.
    let sql = format!(
        "SELECT COALESCE({col}, '') AS k, substr(started_at, 1, 10) AS d, COUNT(*),
           COALESCE(SUM(total_tokens), 0)::bigint, COALESCE(SUM(cost_nanousd), 0)::bigint
         FROM request_logs
         WHERE lifecycle_status != 'pending' AND substr(started_at, 1, 10) BETWEEN $1 AND $2
         GROUP BY k, d ORDER BY k, d",
        col = by.column()
    );
    let rows = client
        .query(&sql, &[&from, &to])?
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<_, String>(0)?,
                SeriesPoint {
                    day: r.try_get(1)?,
                    request_count: r.try_get(2)?,
                    total_tokens: r.try_get(3)?,
                    cost_nanousd: r.try_get(4)?,
                },
            ))
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    Ok(SeriesKey::group(rows))
}
