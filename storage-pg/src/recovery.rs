//! Boot recovery, shutdown finalize and the abort of a lost replica's calls
//! (`control.md` §3.5 as scoped by `docs/replicas.md` §3): every pending `source = 'proxy'`
//! row of the replicas concerned becomes `aborted` with the given message, costed from its
//! columns through the caller's [`Recoster`], with the audit rule and the `daily_usage`
//! upsert of a finalize, all in one transaction like the SQLite command. A replica touches
//! only its own rows: a restarting replica never aborts another one's calls in flight.

use postgres::{Client, Row, Transaction};

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::op::{RecostRow, Recoster};
use agent_cli_proxy_storage::usage_convention;

use crate::daily::{DailyDeltas, DayKey};
use crate::error::PgError;
use crate::ingest::write_audit;
use crate::{sql_int, usd};

/// Rows read per step.
const CHUNK: i64 = 500;

/// The columns [`read_stored`] expects, in order.
pub(crate) const RECOST_COLUMNS: &str = "id, provider, model, actual_model, prompt_tokens,
    completion_tokens, cache_read_tokens, cache_creation_tokens, cache_write_1h_tokens,
    reasoning_tokens, total_tokens, meta_json, cost_status, started_at, actual_provider,
    cost_nanousd, cliproxy_account";

/// A row as stored, with what a re-cost needs.
pub(crate) struct StoredRow {
    pub(crate) recost: RecostRow,
    pub(crate) cost_status: String,
    pub(crate) cost_nanousd: i64,
    pub(crate) started_at: String,
    pub(crate) cliproxy_account: Option<String>,
}

pub(crate) fn read_stored(row: &Row) -> Result<StoredRow, PgError> {
    let tok = |i: usize| -> Result<u64, PgError> {
        Ok(u64::try_from(row.try_get::<_, Option<i64>>(i)?.unwrap_or(0)).unwrap_or(0))
    };
    let meta: Option<String> = row.try_get(11)?;
    Ok(StoredRow {
        recost: RecostRow {
            id: row.try_get(0)?,
            provider: row.try_get(1)?,
            model: row.try_get(2)?,
            actual_model: row.try_get(3)?,
            actual_provider: row.try_get(14)?,
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
        cost_status: row.try_get(12)?,
        started_at: row.try_get(13)?,
        cost_nanousd: row.try_get::<_, Option<i64>>(15)?.unwrap_or(0),
        cliproxy_account: row.try_get(16)?,
    })
}

/// Boot recovery of `replica` (`error_message = 'boot-recovery'`); returns the rows aborted.
pub fn boot_recovery(
    client: &mut Client,
    replica: &str,
    now: &str,
    recoster: &dyn Recoster,
) -> Result<u64, PgError> {
    abort_pending(client, &[replica], now, "boot-recovery", recoster)
}

/// Shutdown finalize of `replica` (`error_message = 'shutdown'`).
pub fn shutdown_finalize(
    client: &mut Client,
    replica: &str,
    now: &str,
    recoster: &dyn Recoster,
) -> Result<u64, PgError> {
    abort_pending(client, &[replica], now, "shutdown", recoster)
}

/// Replicas other than `own` whose `seen_at` is older than `cutoff` (ISO text, the caller's
/// now minus 10 minutes) and that still have pending rows.
pub fn lost_replicas(client: &mut Client, own: &str, cutoff: &str) -> Result<Vec<String>, PgError> {
    client
        .query(
            "SELECT r.replica FROM replicas r
             WHERE r.replica <> $1 AND r.seen_at < $2 AND EXISTS (
               SELECT 1 FROM request_logs l
               WHERE l.replica = r.replica AND l.lifecycle_status = 'pending')
             ORDER BY r.replica",
            &[&own, &cutoff],
        )?
        .iter()
        .map(|r| r.try_get(0).map_err(PgError::from))
        .collect()
}

/// Aborts the pending rows of `lost` replicas with `error_message = 'replica-lost'`, costed
/// as boot recovery (run by the holder of the retention loop).
pub fn abort_lost(
    client: &mut Client,
    lost: &[String],
    now: &str,
    recoster: &dyn Recoster,
) -> Result<u64, PgError> {
    let ids: Vec<&str> = lost.iter().map(String::as_str).collect();
    abort_pending(client, &ids, now, "replica-lost", recoster)
}

fn abort_pending(
    client: &mut Client,
    replicas: &[&str],
    now: &str,
    message: &str,
    recoster: &dyn Recoster,
) -> Result<u64, PgError> {
    let mut tx = client.transaction()?;
    let mut deltas = DailyDeltas::default();
    let mut last = 0i64;
    let mut total = 0u64;
    loop {
        let rows = tx.query(
            &format!(
                "SELECT {RECOST_COLUMNS} FROM request_logs
                 WHERE lifecycle_status = 'pending' AND source = 'proxy'
                   AND replica = ANY($1) AND id > $2
                 ORDER BY id LIMIT $3 FOR UPDATE"
            ),
            &[&replicas, &last, &CHUNK],
        )?;
        let Some(tail) = rows.last() else {
            break;
        };
        last = tail.try_get(0)?;
        for row in &rows {
            if abort_one(&mut tx, row, now, message, recoster, &mut deltas)? {
                total += 1;
            }
        }
    }
    deltas.apply(&mut tx)?;
    tx.commit()?;
    Ok(total)
}

fn abort_one(
    tx: &mut Transaction<'_>,
    row: &Row,
    now: &str,
    message: &str,
    recoster: &dyn Recoster,
    deltas: &mut DailyDeltas,
) -> Result<bool, PgError> {
    let stored = read_stored(row)?;
    let recost = stored.recost;
    let previous = stored.cost_status;
    let key = DayKey {
        started_at: stored.started_at,
        provider: recost.provider.clone(),
        model: recost.model.clone(),
    };
    let cost = recoster.recost(&recost);
    let nano = sql_int(cost.cost_nanousd);
    let changed = tx.execute(
        "UPDATE request_logs SET lifecycle_status = 'aborted', error_message = $2,
           finalized_at = $3, finished_at = COALESCE(finished_at, $3),
           incomplete = 1, usage_incomplete = 1, cost_nanousd = $4,
           cost_usd = $5, cost_status = $6
         WHERE id = $1 AND lifecycle_status = 'pending'",
        &[
            &recost.id,
            &message,
            &now,
            &nano,
            &usd(nano),
            &cost.cost_status.as_str(),
        ],
    )?;
    if changed != 1 {
        return Ok(false);
    }
    write_audit(
        tx,
        recost.id,
        &previous,
        cost.cost_status,
        nano,
        &cost.audit,
    )?;
    deltas.add(&key, &recost.tokens, nano);
    Ok(true)
}
