//! The request lifecycle: pre-log, usage checkpoint, finalize (with the audit rule and the
//! `daily_usage` upsert of `accounting.md` §6.1), the fallback update, and the bulk aborts of
//! boot recovery and shutdown.
//!
//! The fallback update (outcome O16) is not costed, but it still adds the row to its
//! `daily_usage` bucket (request +1, its checkpointed tokens, its cost, usually 0) and turns
//! `cost_status = 'unresolved'` into `pending`: that keeps the aggregate invariant and row
//! invariant 4 ("`unresolved` only while pending"), and lets the backfill cost the row later.

use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, params};

use agent_cli_proxy_core::usage::{Convention, TokenColumns};

use super::{sql_int, usd};
use crate::daily::{DailySums, DailyTotals};
use crate::error::StorageError;
use crate::op::{AuditInfo, CostStatus, FinalizeRow, PreLogRow, RecostRow, Recoster};

/// Rows handled per step of a bulk abort.
const CHUNK: i64 = 500;

pub(crate) fn prelog(conn: &Connection, r: &PreLogRow) -> Result<i64, StorageError> {
    conn.prepare_cached(
        "INSERT INTO request_logs (request_id, provider, model, tool, client_id, agent,
           user_agent, source_ip, msg_id, path, streamed, proxy_api_key_id, source,
           prompt_tokens, completion_tokens, cache_creation_tokens, cache_read_tokens,
           reasoning_tokens, total_tokens, cache_write_1h_tokens, cost_usd, cost_nanousd,
           incomplete, usage_incomplete, lifecycle_status, cost_status, started_at, meta_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'proxy',
           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'pending', 'unresolved', ?13, ?14)",
    )?
    .execute(params![
        r.request_id,
        r.provider,
        r.model,
        r.tool,
        r.client_id,
        r.agent,
        r.user_agent,
        r.source_ip,
        r.msg_id,
        r.path,
        r.streamed,
        r.proxy_api_key_id,
        r.started_at,
        r.meta_json,
    ])?;
    Ok(conn.last_insert_rowid())
}

pub(crate) fn checkpoint(conn: &Connection, id: i64, t: &TokenColumns) -> Result<(), StorageError> {
    conn.prepare_cached(
        "UPDATE request_logs SET prompt_tokens = ?2, completion_tokens = ?3,
           cache_creation_tokens = ?4, cache_read_tokens = ?5, reasoning_tokens = ?6,
           total_tokens = ?7, cache_write_1h_tokens = ?8
         WHERE id = ?1 AND lifecycle_status = 'pending'",
    )?
    .execute(params![
        id,
        sql_int(t.prompt_tokens),
        sql_int(t.completion_tokens),
        sql_int(t.cache_creation_tokens),
        sql_int(t.cache_read_tokens),
        sql_int(t.reasoning_tokens),
        sql_int(t.total_tokens),
        sql_int(t.cache_write_1h_tokens),
    ])?;
    Ok(())
}

/// The single-insert path's two statements, taken from the statement cache once per batch
/// instead of once per call: each lookup hashes the statement's text, and the `INSERT`'s is
/// over 600 bytes.
pub(crate) struct FinalInsert<'c> {
    row: CachedStatement<'c>,
    audit: CachedStatement<'c>,
}

const INSERT_FINAL: &str =
    "INSERT INTO request_logs (request_id, provider, model, tool, client_id, agent,
       user_agent, source_ip, msg_id, path, streamed, proxy_api_key_id, source,
       actual_model, actual_provider, status, prompt_tokens, completion_tokens,
       cache_creation_tokens, cache_read_tokens, reasoning_tokens, total_tokens,
       cache_write_1h_tokens, usage_incomplete, cost_usd, cost_nanousd, cost_status,
       incomplete, error_code, error_message, latency_ms, finished_at, finalized_at,
       lifecycle_status, started_at, meta_json)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'proxy', ?13, ?14, ?15,
       ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?31,
       ?32, ?33, ?34)";

const INSERT_AUDIT: &str =
    "INSERT INTO cost_audit (request_log_id, model, provider, source, base_cost_usd,
       cost_nanousd) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

impl<'c> FinalInsert<'c> {
    pub(crate) fn prepare(conn: &'c Connection) -> Result<FinalInsert<'c>, StorageError> {
        Ok(FinalInsert {
            row: conn.prepare_cached(INSERT_FINAL)?,
            audit: conn.prepare_cached(INSERT_AUDIT)?,
        })
    }

    /// A call whose `Begin` and `End` are ingested in the same batch (`docs/spool.md` §4):
    /// its final row in one `INSERT`, then the audit and the `daily_usage` bucket exactly as
    /// [`finalize`] writes them for a pending row (whose status would be `unresolved`).
    pub(crate) fn insert(
        &mut self,
        conn: &Connection,
        p: &PreLogRow,
        r: &FinalizeRow,
        daily: Option<&mut DailyTotals>,
    ) -> Result<i64, StorageError> {
        let t = &r.tokens;
        let cost = sql_int(r.cost_nanousd);
        self.row.execute(params![
            p.request_id,
            p.provider,
            p.model,
            p.tool,
            p.client_id,
            p.agent,
            p.user_agent,
            p.source_ip,
            p.msg_id,
            p.path,
            r.streamed,
            r.proxy_api_key_id,
            r.actual_model,
            r.actual_provider,
            r.status,
            sql_int(t.prompt_tokens),
            sql_int(t.completion_tokens),
            sql_int(t.cache_creation_tokens),
            sql_int(t.cache_read_tokens),
            sql_int(t.reasoning_tokens),
            sql_int(t.total_tokens),
            sql_int(t.cache_write_1h_tokens),
            r.usage_incomplete,
            usd(cost),
            cost,
            r.cost_status.as_str(),
            r.lifecycle_status.incomplete(),
            r.error_code,
            r.error_message,
            r.latency_ms,
            r.now,
            r.lifecycle_status.as_str(),
            p.started_at,
            r.meta_json,
        ])?;
        let id = conn.last_insert_rowid();
        // The audit rule of `write_audit` for a new row, whose previous status is
        // `unresolved` and which has no audit yet: always an audit row.
        self.audit.execute(params![
            id,
            r.audit.model,
            r.audit.provider,
            r.audit.source,
            usd(cost),
            cost
        ])?;
        match daily {
            Some(totals) => totals.add(&p.started_at, &p.provider, &p.model, t, cost),
            None => add_daily(conn, &p.started_at, &p.provider, &p.model, t, cost)?,
        }
        Ok(id)
    }
}

/// The first finalize wins: the update requires `lifecycle_status = 'pending'`; a later one
/// changes nothing and answers `false`.
pub(crate) fn finalize(
    conn: &Connection,
    r: &FinalizeRow,
    daily: Option<&mut DailyTotals>,
) -> Result<bool, StorageError> {
    let Some(key) = pending_key(conn, r.id)? else {
        return Ok(false);
    };
    let t = &r.tokens;
    let cost = sql_int(r.cost_nanousd);
    let changed = conn
        .prepare_cached(
            "UPDATE request_logs SET actual_model = ?2, actual_provider = ?3,
               proxy_api_key_id = ?4, streamed = ?5, status = ?6, prompt_tokens = ?7,
               completion_tokens = ?8, cache_creation_tokens = ?9, cache_read_tokens = ?10,
               reasoning_tokens = ?11, total_tokens = ?12, cache_write_1h_tokens = ?13,
               usage_incomplete = ?14, cost_usd = ?15, cost_nanousd = ?16, cost_status = ?17,
               incomplete = ?18, error_code = ?19, error_message = ?20, latency_ms = ?21,
               finished_at = ?22, finalized_at = ?22, lifecycle_status = ?23, meta_json = ?24
             WHERE id = ?1 AND lifecycle_status = 'pending'",
        )?
        .execute(params![
            r.id,
            r.actual_model,
            r.actual_provider,
            r.proxy_api_key_id,
            r.streamed,
            r.status,
            sql_int(t.prompt_tokens),
            sql_int(t.completion_tokens),
            sql_int(t.cache_creation_tokens),
            sql_int(t.cache_read_tokens),
            sql_int(t.reasoning_tokens),
            sql_int(t.total_tokens),
            sql_int(t.cache_write_1h_tokens),
            r.usage_incomplete,
            usd(cost),
            cost,
            r.cost_status.as_str(),
            r.lifecycle_status.incomplete(),
            r.error_code,
            r.error_message,
            r.latency_ms,
            r.now,
            r.lifecycle_status.as_str(),
            r.meta_json,
        ])?;
    if changed != 1 {
        return Ok(false);
    }
    write_audit(conn, r.id, &key.cost_status, r.cost_status, cost, &r.audit)?;
    match daily {
        Some(totals) => totals.add(&key.started_at, &key.provider, &key.model, t, cost),
        None => add_daily(conn, &key.started_at, &key.provider, &key.model, t, cost)?,
    }
    Ok(true)
}

/// Outcome O16; see the module docs for the bucket it adds.
pub(crate) fn fallback(
    conn: &Connection,
    id: i64,
    message: &str,
    now: &str,
) -> Result<bool, StorageError> {
    let Some(row) = read_recost(conn, id, true)? else {
        return Ok(false);
    };
    let changed = conn
        .prepare_cached(
            "UPDATE request_logs SET lifecycle_status = 'error', incomplete = 1,
               error_code = COALESCE(error_code, 'finalize_failed'),
               error_message = 'finalize_failed: ' || ?2, finalized_at = ?3,
               cost_status = CASE cost_status WHEN 'unresolved' THEN 'pending'
                             ELSE cost_status END
             WHERE id = ?1 AND lifecycle_status = 'pending'",
        )?
        .execute(params![id, message, now])?;
    if changed != 1 {
        return Ok(false);
    }
    add_daily(
        conn,
        &row.started_at,
        &row.recost.provider,
        &row.recost.model,
        &row.recost.tokens,
        row.cost_nanousd,
    )?;
    Ok(true)
}

/// Boot recovery and shutdown finalize: every pending `source = 'proxy'` row becomes
/// `aborted` with `message`, costed from its columns, in chunks of 500 within this one
/// command. Returns the number of rows changed.
pub(super) fn abort_pending(
    conn: &Connection,
    now: &str,
    message: &str,
    recoster: &dyn Recoster,
) -> Result<u64, StorageError> {
    let mut last = 0i64;
    let mut total = 0u64;
    loop {
        let rows = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECOST_COLUMNS} FROM request_logs
                 WHERE lifecycle_status = 'pending' AND source = 'proxy' AND id > ?1
                 ORDER BY id LIMIT ?2"
            ))?;
            stmt.query_map(params![last, CHUNK], read_stored)?
                .collect::<Result<Vec<_>, _>>()?
        };
        let Some(tail) = rows.last() else {
            break;
        };
        last = tail.recost.id;
        for row in &rows {
            let cost = recoster.recost(&row.recost);
            let nano = sql_int(cost.cost_nanousd);
            let changed = conn
                .prepare_cached(
                    "UPDATE request_logs SET lifecycle_status = 'aborted', error_message = ?2,
                       finalized_at = ?3, finished_at = COALESCE(finished_at, ?3),
                       incomplete = 1, usage_incomplete = 1, cost_nanousd = ?4,
                       cost_usd = ?5, cost_status = ?6
                     WHERE id = ?1 AND lifecycle_status = 'pending'",
                )?
                .execute(params![
                    row.recost.id,
                    message,
                    now,
                    nano,
                    usd(nano),
                    cost.cost_status.as_str()
                ])?;
            if changed != 1 {
                continue;
            }
            total += 1;
            write_audit(
                conn,
                row.recost.id,
                &row.cost_status,
                cost.cost_status,
                nano,
                &cost.audit,
            )?;
            add_daily(
                conn,
                &row.started_at,
                &row.recost.provider,
                &row.recost.model,
                &row.recost.tokens,
                nano,
            )?;
        }
    }
    Ok(total)
}

/// The columns [`read_stored`] expects, in order.
pub(super) const RECOST_COLUMNS: &str = "id, provider, model, actual_model, prompt_tokens,
    completion_tokens, cache_read_tokens, cache_creation_tokens, cache_write_1h_tokens,
    reasoning_tokens, total_tokens, meta_json, cost_status, cost_nanousd, started_at,
    cliproxy_account, actual_provider";

/// A row as stored, with what a re-cost needs.
pub(super) struct StoredRow {
    pub recost: RecostRow,
    pub cost_status: String,
    pub cost_nanousd: i64,
    pub started_at: String,
    pub cliproxy_account: Option<String>,
}

pub(super) fn read_stored(r: &Row<'_>) -> rusqlite::Result<StoredRow> {
    let tok = |i: usize| -> rusqlite::Result<u64> {
        Ok(super::count(r.get::<_, Option<i64>>(i)?.unwrap_or(0)))
    };
    let meta: Option<String> = r.get(11)?;
    Ok(StoredRow {
        recost: RecostRow {
            id: r.get(0)?,
            provider: r.get(1)?,
            model: r.get(2)?,
            actual_model: r.get(3)?,
            actual_provider: r.get(16)?,
            tokens: TokenColumns {
                prompt_tokens: tok(4)?,
                completion_tokens: tok(5)?,
                cache_read_tokens: tok(6)?,
                cache_creation_tokens: tok(7)?,
                cache_write_1h_tokens: tok(8)?,
                reasoning_tokens: tok(9)?,
                total_tokens: tok(10)?,
            },
            usage_convention: meta.as_deref().and_then(usage_convention),
        },
        cost_status: r.get(12)?,
        cost_nanousd: r.get::<_, Option<i64>>(13)?.unwrap_or(0),
        started_at: r.get(14)?,
        cliproxy_account: r.get(15)?,
    })
}

/// `meta_json.usage_convention`, when it is `anthropic` or `openai`.
pub fn usage_convention(meta_json: &str) -> Option<Convention> {
    let value: serde_json::Value = serde_json::from_str(meta_json).ok()?;
    match value.get("usage_convention")?.as_str()? {
        "anthropic" => Some(Convention::Anthropic),
        "openai" => Some(Convention::OpenAi),
        _ => None,
    }
}

fn read_recost(
    conn: &Connection,
    id: i64,
    pending_only: bool,
) -> Result<Option<StoredRow>, StorageError> {
    let sql = if pending_only {
        format!(
            "SELECT {RECOST_COLUMNS} FROM request_logs WHERE id = ?1 AND lifecycle_status = 'pending'"
        )
    } else {
        format!("SELECT {RECOST_COLUMNS} FROM request_logs WHERE id = ?1")
    };
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], read_stored)
        .optional()?)
}

struct PendingKey {
    cost_status: String,
    started_at: String,
    provider: String,
    model: String,
}

fn pending_key(conn: &Connection, id: i64) -> Result<Option<PendingKey>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT cost_status, started_at, provider, model FROM request_logs
             WHERE id = ?1 AND lifecycle_status = 'pending'",
        )?
        .query_row([id], |r| {
            Ok(PendingKey {
                cost_status: r.get(0)?,
                started_at: r.get(1)?,
                provider: r.get(2)?,
                model: r.get(3)?,
            })
        })
        .optional()?)
}

/// The audit rule of `accounting.md` §6.1: insert when the row has no audit yet, or the
/// latest audit's cost differs, or the previous status differs from the new one.
pub(super) fn write_audit(
    conn: &Connection,
    id: i64,
    previous_status: &str,
    new_status: CostStatus,
    cost_nanousd: i64,
    audit: &AuditInfo,
) -> Result<bool, StorageError> {
    // A status change alone decides; only otherwise is the latest audit looked up.
    let needed = previous_status != new_status.as_str() || {
        let latest: Option<Option<i64>> = conn
            .prepare_cached(
                "SELECT cost_nanousd FROM cost_audit WHERE request_log_id = ?1
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([id], |r| r.get(0))
            .optional()?;
        latest.is_none_or(|latest_cost| latest_cost != Some(cost_nanousd))
    };
    if needed {
        conn.prepare_cached(INSERT_AUDIT)?.execute(params![
            id,
            audit.model,
            audit.provider,
            audit.source,
            usd(cost_nanousd),
            cost_nanousd
        ])?;
    }
    Ok(needed)
}

/// The `daily_usage` upsert: day = first 10 characters of `started_at`, request +1, the five
/// token sums, the exact cost; `cost_usd` recomputed from the integer sum.
pub(super) fn add_daily(
    conn: &Connection,
    started_at: &str,
    provider: &str,
    model: &str,
    t: &TokenColumns,
    cost_nanousd: i64,
) -> Result<(), StorageError> {
    // `write_bucket`'s upsert takes the day with `substr(?1, 1, 10)` itself.
    write_bucket(
        conn,
        started_at,
        provider,
        model,
        &DailySums::of_one(t, cost_nanousd),
    )
}

/// Writes every bucket of `totals`; in the batch's transaction, before its commit. The
/// ingester sums a batch's calls (`crate::daily`): under load most of a batch falls in one
/// bucket, and one upsert per call was an eighth of its work.
pub(crate) fn write_daily(conn: &Connection, totals: &DailyTotals) -> Result<(), StorageError> {
    for ((day, provider, model), sums) in totals.buckets() {
        write_bucket(conn, day, provider, model, sums)?;
    }
    Ok(())
}

fn write_bucket(
    conn: &Connection,
    started_at: &str,
    provider: &str,
    model: &str,
    b: &DailySums,
) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO daily_usage (day, provider, model, request_count, prompt_tokens,
           completion_tokens, cache_creation_tokens, cache_read_tokens, total_tokens,
           cost_usd, cost_nanousd)
         VALUES (substr(?1, 1, 10), ?2, ?3, ?10, ?4, ?5, ?6, ?7, ?8, ?9 / 1e9, ?9)
         ON CONFLICT (day, provider, model) DO UPDATE SET
           request_count = COALESCE(request_count, 0) + excluded.request_count,
           prompt_tokens = COALESCE(prompt_tokens, 0) + excluded.prompt_tokens,
           completion_tokens = COALESCE(completion_tokens, 0) + excluded.completion_tokens,
           cache_creation_tokens = COALESCE(cache_creation_tokens, 0)
             + excluded.cache_creation_tokens,
           cache_read_tokens = COALESCE(cache_read_tokens, 0) + excluded.cache_read_tokens,
           total_tokens = COALESCE(total_tokens, 0) + excluded.total_tokens,
           cost_nanousd = cost_nanousd + excluded.cost_nanousd,
           cost_usd = (cost_nanousd + excluded.cost_nanousd) / 1e9",
    )?
    .execute(params![
        started_at,
        provider,
        model,
        b.prompt,
        b.completion,
        b.cache_creation,
        b.cache_read,
        b.total,
        b.cost_nanousd,
        b.requests,
    ])?;
    Ok(())
}
