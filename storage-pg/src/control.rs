//! Control-plane commands (`control.md` §3.2) on PostgreSQL: the storage crate's [`Op`]
//! and [`Reply`], applied with the same rules as the SQLite writer, so the daemon can route
//! its awaited commands to either backend. Managed keys, correlations and quota snapshots
//! live in the shared database, so a key created through one replica works on all of them.
//!
//! Not here: the data-path commands (`PreLog`, `CheckpointUsage`, `Finalize`,
//! `FinalizeFallback`: with a spool they arrive as records, [`crate::ingest`]); they answer
//! [`PgError::Unsupported`].

use postgres::Client;

use agent_cli_proxy_storage::op::{
    Correlation, CreatedApiKey, ListUpdate, NewApiKey, Op, QuotaSnapshotRow, Reply,
};
use agent_cli_proxy_storage::queries::{ApiKeyGrant, ApiKeyInfo, ApiKeyUsage};
use agent_cli_proxy_storage::{hash_key, normalize_list, parse_list};

use crate::error::PgError;
use crate::recovery;
use crate::usd;

/// Applies `op` for `replica` (boot recovery and shutdown finalize touch only its rows).
pub fn execute(client: &mut Client, replica: &str, op: &Op) -> Result<Reply, PgError> {
    match op {
        Op::TouchApiKey { id, at } => {
            client.execute(
                "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
                &[id, at],
            )?;
            Ok(Reply::Done)
        }
        Op::Correlate(c) => correlate(client, c).map(Reply::Changed),
        Op::InsertQuotaSnapshots(rows) => insert_quota(client, rows).map(Reply::Count),
        Op::PruneQuotaSnapshots { before } => {
            let n = client.execute(
                "DELETE FROM quota_snapshots WHERE timestamp < $1",
                &[before],
            )?;
            Ok(Reply::Count(n))
        }
        Op::CreateApiKey(key) => create_key(client, key).map(Reply::ApiKeyCreated),
        Op::UpdateApiKey {
            id,
            allowed_accounts,
            allowed_providers,
        } => update_key(client, *id, allowed_accounts, allowed_providers).map(Reply::Changed),
        Op::RevokeApiKey { id, now } => {
            let row = client.query_opt(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
                 RETURNING revoked_at",
                &[id, now],
            )?;
            Ok(Reply::Revoked(match row {
                Some(r) => r.try_get(0)?,
                None => None,
            }))
        }
        Op::BootRecovery { now, recoster } => {
            recovery::boot_recovery(client, replica, now, recoster.as_ref()).map(Reply::Count)
        }
        Op::ShutdownFinalize { now, recoster } => {
            recovery::shutdown_finalize(client, replica, now, recoster.as_ref()).map(Reply::Count)
        }
        Op::BackfillChunk(c) => crate::backfill::chunk(client, c).map(Reply::Backfill),
        Op::WalCheckpoint | Op::Shutdown | Op::SpoolFlush => Ok(Reply::Done),
        other => Err(PgError::Unsupported(other.name())),
    }
}

/// As the SQLite backend: only an uncorrelated row changes; a non-empty account adds the
/// row to its `daily_account_usage` bucket (a non-null auth index replaces the bucket's).
fn correlate(client: &mut Client, c: &Correlation) -> Result<bool, PgError> {
    let mut tx = client.transaction()?;
    let changed = tx.execute(
        "UPDATE request_logs SET cliproxy_account = COALESCE($2, cliproxy_account),
           cliproxy_auth_index = COALESCE($3, cliproxy_auth_index),
           cliproxy_source = COALESCE($2, cliproxy_source), correlated_at = $4
         WHERE id = $1 AND cliproxy_account IS NULL",
        &[&c.id, &c.source, &c.auth_index, &c.now],
    )?;
    if changed != 1 {
        return Ok(false);
    }
    if c.source.as_deref().is_some_and(|s| !s.is_empty()) {
        tx.execute(
            "INSERT INTO daily_account_usage (day, provider, model, cliproxy_account,
               cliproxy_auth_index, request_count, prompt_tokens, completion_tokens,
               cache_creation_tokens, cache_read_tokens, reasoning_tokens, total_tokens,
               cost_usd, cost_nanousd)
             SELECT substr(started_at, 1, 10), provider, model, cliproxy_account,
               cliproxy_auth_index, 1, COALESCE(prompt_tokens, 0),
               COALESCE(completion_tokens, 0), COALESCE(cache_creation_tokens, 0),
               COALESCE(cache_read_tokens, 0), COALESCE(reasoning_tokens, 0),
               COALESCE(total_tokens, 0), cost_nanousd::float8 / 1000000000::float8,
               cost_nanousd
             FROM request_logs WHERE id = $1
             ON CONFLICT (day, provider, model, cliproxy_account) DO UPDATE SET
               cliproxy_auth_index = COALESCE(EXCLUDED.cliproxy_auth_index,
                 daily_account_usage.cliproxy_auth_index),
               request_count = COALESCE(daily_account_usage.request_count, 0) + 1,
               prompt_tokens = COALESCE(daily_account_usage.prompt_tokens, 0)
                 + EXCLUDED.prompt_tokens,
               completion_tokens = COALESCE(daily_account_usage.completion_tokens, 0)
                 + EXCLUDED.completion_tokens,
               cache_creation_tokens = COALESCE(daily_account_usage.cache_creation_tokens, 0)
                 + EXCLUDED.cache_creation_tokens,
               cache_read_tokens = COALESCE(daily_account_usage.cache_read_tokens, 0)
                 + EXCLUDED.cache_read_tokens,
               reasoning_tokens = COALESCE(daily_account_usage.reasoning_tokens, 0)
                 + EXCLUDED.reasoning_tokens,
               total_tokens = COALESCE(daily_account_usage.total_tokens, 0)
                 + EXCLUDED.total_tokens,
               cost_nanousd = daily_account_usage.cost_nanousd + EXCLUDED.cost_nanousd,
               cost_usd = (daily_account_usage.cost_nanousd + EXCLUDED.cost_nanousd)::float8
                 / 1000000000::float8",
            &[&c.id],
        )?;
    }
    tx.commit()?;
    Ok(true)
}

fn insert_quota(client: &mut Client, rows: &[QuotaSnapshotRow]) -> Result<u64, PgError> {
    let mut tx = client.transaction()?;
    let stmt = tx.prepare(
        "INSERT INTO quota_snapshots (timestamp, provider, account, quota_type, model,
           used_pct, remaining, remaining_raw, resets_at, raw_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )?;
    for r in rows {
        tx.execute(
            &stmt,
            &[
                &r.timestamp,
                &r.provider,
                &r.account,
                &r.quota_type,
                &r.model,
                &r.used_pct,
                &r.remaining,
                &r.remaining_raw,
                &r.resets_at,
                &r.raw_json,
            ],
        )?;
    }
    tx.commit()?;
    Ok(rows.len() as u64)
}

/// A list as stored: normalized JSON (the SQLite backend's text), or NULL for
/// unrestricted.
fn list_text(list: Option<&Vec<String>>) -> Option<String> {
    let normalized = normalize_list(list?)?;
    serde_json::to_string(&normalized).ok()
}

fn create_key(client: &mut Client, k: &NewApiKey) -> Result<CreatedApiKey, PgError> {
    let key = k.key.expose();
    let prefix: String = key.chars().take(8).collect();
    let accounts = list_text(k.allowed_accounts.as_ref());
    let providers = list_text(k.allowed_providers.as_ref());
    let row = client.query_one(
        "INSERT INTO api_keys (key_hash, key_prefix, name, allowed_accounts, allowed_providers)
         VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at",
        &[&hash_key(key), &prefix, &k.name, &accounts, &providers],
    )?;
    Ok(CreatedApiKey {
        id: row.try_get(0)?,
        key_prefix: prefix,
        created_at: row.try_get(1)?,
        allowed_accounts: parse_list(accounts.as_deref()),
        allowed_providers: parse_list(providers.as_deref()),
    })
}

fn update_key(
    client: &mut Client,
    id: i64,
    accounts: &ListUpdate,
    providers: &ListUpdate,
) -> Result<bool, PgError> {
    let changed = client.execute(
        "UPDATE api_keys SET
           allowed_accounts = CASE WHEN $2 THEN $3 ELSE allowed_accounts END,
           allowed_providers = CASE WHEN $4 THEN $5 ELSE allowed_providers END
         WHERE id = $1 AND revoked_at IS NULL",
        &[
            &id,
            &accounts.is_some(),
            &accounts.as_ref().and_then(|l| list_text(l.as_ref())),
            &providers.is_some(),
            &providers.as_ref().and_then(|l| list_text(l.as_ref())),
        ],
    )?;
    Ok(changed == 1)
}

/// `/admin/keys`: newest first.
pub fn api_keys(client: &mut Client) -> Result<Vec<ApiKeyInfo>, PgError> {
    client
        .query(
            "SELECT k.id, k.key_prefix, k.name, k.created_at, k.revoked_at, k.last_used_at,
               (SELECT COUNT(*) FROM request_logs r WHERE r.proxy_api_key_id = k.id),
               k.allowed_accounts, k.allowed_providers
             FROM api_keys k ORDER BY k.created_at DESC, k.id DESC",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(ApiKeyInfo {
                id: r.try_get(0)?,
                key_prefix: r.try_get(1)?,
                name: r.try_get(2)?,
                created_at: r.try_get(3)?,
                revoked_at: r.try_get(4)?,
                last_used_at: r.try_get(5)?,
                request_count: r.try_get(6)?,
                allowed_accounts: parse_list(r.try_get::<_, Option<String>>(7)?.as_deref()),
                allowed_providers: parse_list(r.try_get::<_, Option<String>>(8)?.as_deref()),
            })
        })
        .collect()
}

/// `/admin/keys/:id/usage`; `None` when the key does not exist.
pub fn api_key_usage(client: &mut Client, id: i64) -> Result<Option<ApiKeyUsage>, PgError> {
    if client
        .query_opt("SELECT 1 FROM api_keys WHERE id = $1", &[&id])?
        .is_none()
    {
        return Ok(None);
    }
    let r = client.query_one(
        "SELECT COUNT(*), COALESCE(SUM(total_tokens), 0)::bigint,
           COALESCE(SUM(cost_nanousd), 0)::bigint
         FROM request_logs WHERE proxy_api_key_id = $1",
        &[&id],
    )?;
    let nano: i64 = r.try_get(2)?;
    Ok(Some(ApiKeyUsage {
        id,
        request_count: r.try_get(0)?,
        total_tokens: r.try_get(1)?,
        total_cost_usd: usd(nano),
        total_cost_nanousd: nano,
    }))
}

/// The grant of a live key by the SHA-256 hex of its text.
pub fn verify_api_key_hash(
    client: &mut Client,
    hash: &str,
) -> Result<Option<ApiKeyGrant>, PgError> {
    client
        .query_opt(
            "SELECT id, allowed_accounts, allowed_providers FROM api_keys
             WHERE key_hash = $1 AND revoked_at IS NULL",
            &[&hash],
        )?
        .map(|r| {
            Ok(ApiKeyGrant {
                id: r.try_get(0)?,
                allowed_accounts: parse_list(r.try_get::<_, Option<String>>(1)?.as_deref()),
                allowed_providers: parse_list(r.try_get::<_, Option<String>>(2)?.as_deref()),
            })
        })
        .transpose()
}
