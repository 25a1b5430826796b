//! Writes of the background loops: correlation apply (`control.md` §8.4) and quota snapshot
//! rows (§8.5). The matching and parsing live in the core.

use rusqlite::{Connection, params};

use crate::error::StorageError;
use crate::op::{Correlation, QuotaSnapshotRow};

/// Sets the account columns only on an uncorrelated row; when exactly that row changed and
/// the account is non-empty, adds the row to its `daily_account_usage` bucket. A non-null
/// auth index replaces the bucket's; a null one keeps it.
pub(super) fn correlate(conn: &Connection, c: &Correlation) -> Result<bool, StorageError> {
    let changed = conn
        .prepare_cached(
            "UPDATE request_logs SET cliproxy_account = COALESCE(?2, cliproxy_account),
               cliproxy_auth_index = COALESCE(?3, cliproxy_auth_index),
               cliproxy_source = COALESCE(?2, cliproxy_source), correlated_at = ?4
             WHERE id = ?1 AND cliproxy_account IS NULL",
        )?
        .execute(params![c.id, c.source, c.auth_index, c.now])?;
    if changed != 1 {
        return Ok(false);
    }
    if c.source.as_deref().is_some_and(|s| !s.is_empty()) {
        conn.prepare_cached(
            "INSERT INTO daily_account_usage (day, provider, model, cliproxy_account,
               cliproxy_auth_index, request_count, prompt_tokens, completion_tokens,
               cache_creation_tokens, cache_read_tokens, reasoning_tokens, total_tokens,
               cost_usd, cost_nanousd)
             SELECT substr(started_at, 1, 10), provider, model, cliproxy_account,
               cliproxy_auth_index, 1, COALESCE(prompt_tokens, 0),
               COALESCE(completion_tokens, 0), COALESCE(cache_creation_tokens, 0),
               COALESCE(cache_read_tokens, 0), COALESCE(reasoning_tokens, 0),
               COALESCE(total_tokens, 0), cost_nanousd / 1e9, cost_nanousd
             FROM request_logs WHERE id = ?1
             ON CONFLICT (day, provider, model, cliproxy_account) DO UPDATE SET
               cliproxy_auth_index = COALESCE(excluded.cliproxy_auth_index, cliproxy_auth_index),
               request_count = COALESCE(request_count, 0) + 1,
               prompt_tokens = COALESCE(prompt_tokens, 0) + excluded.prompt_tokens,
               completion_tokens = COALESCE(completion_tokens, 0) + excluded.completion_tokens,
               cache_creation_tokens = COALESCE(cache_creation_tokens, 0)
                 + excluded.cache_creation_tokens,
               cache_read_tokens = COALESCE(cache_read_tokens, 0) + excluded.cache_read_tokens,
               reasoning_tokens = COALESCE(reasoning_tokens, 0) + excluded.reasoning_tokens,
               total_tokens = COALESCE(total_tokens, 0) + excluded.total_tokens,
               cost_nanousd = cost_nanousd + excluded.cost_nanousd,
               cost_usd = (cost_nanousd + excluded.cost_nanousd) / 1e9",
        )?
        .execute([c.id])?;
    }
    Ok(true)
}

pub(super) fn insert_quota(
    conn: &Connection,
    rows: &[QuotaSnapshotRow],
) -> Result<u64, StorageError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO quota_snapshots (timestamp, provider, account, quota_type, model,
           used_pct, remaining, remaining_raw, resets_at, raw_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for r in rows {
        stmt.execute(params![
            r.timestamp,
            r.provider,
            r.account,
            r.quota_type,
            r.model,
            r.used_pct,
            r.remaining,
            r.remaining_raw,
            r.resets_at,
            r.raw_json
        ])?;
    }
    Ok(rows.len() as u64)
}

pub(super) fn prune_quota(conn: &Connection, before: &str) -> Result<u64, StorageError> {
    let n = conn
        .prepare_cached("DELETE FROM quota_snapshots WHERE timestamp < ?1")?
        .execute([before])?;
    Ok(n as u64)
}
