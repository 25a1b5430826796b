//! One cost-backfill chunk (`accounting.md` §6.2 step 4) on PostgreSQL, with the SQLite
//! backend's rules: re-cost, the audit rule, an update that requires the old status (a row
//! finalized concurrently is never overwritten), and delta-only bucket updates (a missing
//! bucket, from an inherited row, is not created).

use postgres::Client;

use agent_cli_proxy_storage::backfill::NO_USAGE_SQL;
use agent_cli_proxy_storage::op::{BackfillChunk, BackfillCounts, ChunkOutcome, CostStatus};

use crate::error::PgError;
use crate::ingest::write_audit;
use crate::recovery::{RECOST_COLUMNS, read_stored};
use crate::{sql_int, usd};

fn candidate() -> String {
    format!(
        "lifecycle_status IN ('completed','error','aborted')
         AND cost_status IN ('pending','unresolved')
         AND ($1::text IS NULL OR started_at >= $1)
         AND NOT {NO_USAGE_SQL}"
    )
}

/// Applies one chunk in one transaction.
pub fn chunk(client: &mut Client, c: &BackfillChunk) -> Result<ChunkOutcome, PgError> {
    let mut tx = client.transaction()?;
    let max_id = match c.max_id {
        Some(m) => Some(m),
        None => tx
            .query_one(
                &format!("SELECT MAX(id) FROM request_logs WHERE {}", candidate()),
                &[&c.since],
            )?
            .try_get::<_, Option<i64>>(0)?,
    };
    let Some(max) = max_id else {
        return Ok(ChunkOutcome::default());
    };
    let rows = tx.query(
        &format!(
            "SELECT {RECOST_COLUMNS} FROM request_logs
             WHERE {} AND id > $2 AND id <= $3 ORDER BY id LIMIT $4",
            candidate()
        ),
        &[&c.since, &c.after_id, &max, &i64::from(c.limit)],
    )?;
    let mut counts = BackfillCounts::default();
    let mut last_id = None;
    for r in &rows {
        let row = read_stored(r)?;
        last_id = Some(row.recost.id);
        counts.scanned += 1;
        let cost = c.recoster.recost(&row.recost);
        match cost.cost_status {
            CostStatus::Ok => counts.ok += 1,
            CostStatus::Unsupported => counts.unsupported += 1,
            CostStatus::Pending | CostStatus::Unresolved => counts.pending += 1,
        }
        let nano = sql_int(cost.cost_nanousd);
        write_audit(
            &mut tx,
            row.recost.id,
            &row.cost_status,
            cost.cost_status,
            nano,
            &cost.audit,
        )?;
        if nano == row.cost_nanousd && cost.cost_status.as_str() == row.cost_status {
            continue;
        }
        let changed = tx.execute(
            "UPDATE request_logs SET cost_nanousd = $2, cost_usd = $3, cost_status = $4
             WHERE id = $1 AND cost_status = $5
               AND lifecycle_status IN ('completed','error','aborted')",
            &[
                &row.recost.id,
                &nano,
                &usd(nano),
                &cost.cost_status.as_str(),
                &row.cost_status,
            ],
        )?;
        if changed != 1 {
            continue;
        }
        if cost.cost_status == CostStatus::Ok {
            counts.updated += 1;
        }
        let delta = nano.saturating_sub(row.cost_nanousd);
        if delta == 0 {
            continue;
        }
        tx.execute(
            "UPDATE daily_usage SET cost_nanousd = cost_nanousd + $4,
               cost_usd = (cost_nanousd + $4)::float8 / 1000000000::float8
             WHERE day = substr($1, 1, 10) AND provider = $2 AND model = $3",
            &[
                &row.started_at,
                &row.recost.provider,
                &row.recost.model,
                &delta,
            ],
        )?;
        if let Some(account) = row.cliproxy_account.as_deref() {
            tx.execute(
                "UPDATE daily_account_usage SET cost_nanousd = cost_nanousd + $5,
                   cost_usd = (cost_nanousd + $5)::float8 / 1000000000::float8
                 WHERE day = substr($1, 1, 10) AND provider = $2 AND model = $3
                   AND cliproxy_account = $4",
                &[
                    &row.started_at,
                    &row.recost.provider,
                    &row.recost.model,
                    &account,
                    &delta,
                ],
            )?;
        }
    }
    tx.commit()?;
    Ok(ChunkOutcome {
        max_id: Some(max),
        last_id,
        counts,
    })
}
