//! One backfill chunk (`accounting.md` §6.2 step 4): re-cost, audit rule, delta-only bucket
//! updates. The row update requires the old status, so a row finalized concurrently is never
//! overwritten. A bucket that does not exist (an inherited row) is not created: buckets are
//! never rebuilt.

use rusqlite::{Connection, OptionalExtension, params};

use super::lifecycle::{RECOST_COLUMNS, read_stored, write_audit};
use super::{sql_int, usd};
use crate::error::StorageError;
use crate::op::{BackfillChunk, BackfillCounts, ChunkOutcome, CostStatus};

/// §6.2 step 2, less the rows that recorded no token ([`crate::backfill::NO_USAGE_SQL`],
/// spelled out because `concat!` takes only literals; a test keeps the two equal): a
/// zero-token row costs 0 at any price, so re-costing it could never change it.
const CANDIDATE: &str = "lifecycle_status IN ('completed','error','aborted')
    AND cost_status IN ('pending','unresolved')
    AND (?1 IS NULL OR started_at >= ?1)
    AND NOT (COALESCE(prompt_tokens, 0) = 0 AND COALESCE(completion_tokens, 0) = 0
    AND COALESCE(cache_read_tokens, 0) = 0 AND COALESCE(cache_creation_tokens, 0) = 0
    AND COALESCE(cache_write_1h_tokens, 0) = 0 AND COALESCE(reasoning_tokens, 0) = 0
    AND COALESCE(total_tokens, 0) = 0)";

#[cfg(test)]
#[test]
fn candidate_excludes_exactly_the_no_usage_rows() {
    assert!(CANDIDATE.ends_with(&format!("AND NOT {}", crate::backfill::NO_USAGE_SQL)));
}

pub(super) fn chunk(conn: &Connection, c: &BackfillChunk) -> Result<ChunkOutcome, StorageError> {
    let max_id = match c.max_id {
        Some(m) => Some(m),
        None => conn
            .prepare_cached(&format!(
                "SELECT MAX(id) FROM request_logs WHERE {CANDIDATE}"
            ))?
            .query_row(params![c.since], |r| r.get::<_, Option<i64>>(0))
            .optional()?
            .flatten(),
    };
    let Some(max) = max_id else {
        return Ok(ChunkOutcome::default());
    };
    let rows = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RECOST_COLUMNS} FROM request_logs
             WHERE {CANDIDATE} AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?4"
        ))?;
        stmt.query_map(params![c.since, c.after_id, max, c.limit], read_stored)?
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut counts = BackfillCounts::default();
    for row in &rows {
        counts.scanned += 1;
        let cost = c.recoster.recost(&row.recost);
        match cost.cost_status {
            CostStatus::Ok => counts.ok += 1,
            CostStatus::Unsupported => counts.unsupported += 1,
            CostStatus::Pending | CostStatus::Unresolved => counts.pending += 1,
        }
        let nano = sql_int(cost.cost_nanousd);
        write_audit(
            conn,
            row.recost.id,
            &row.cost_status,
            cost.cost_status,
            nano,
            &cost.audit,
        )?;
        if nano == row.cost_nanousd && cost.cost_status.as_str() == row.cost_status {
            continue;
        }
        let changed = conn
            .prepare_cached(
                "UPDATE request_logs SET cost_nanousd = ?2, cost_usd = ?3, cost_status = ?4
                 WHERE id = ?1 AND cost_status = ?5
                   AND lifecycle_status IN ('completed','error','aborted')",
            )?
            .execute(params![
                row.recost.id,
                nano,
                usd(nano),
                cost.cost_status.as_str(),
                row.cost_status
            ])?;
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
        conn.prepare_cached(
            "UPDATE daily_usage SET cost_nanousd = cost_nanousd + ?4,
               cost_usd = (cost_nanousd + ?4) / 1e9
             WHERE day = substr(?1, 1, 10) AND provider = ?2 AND model = ?3",
        )?
        .execute(params![
            row.started_at,
            row.recost.provider,
            row.recost.model,
            delta
        ])?;
        if let Some(account) = row.cliproxy_account.as_deref() {
            conn.prepare_cached(
                "UPDATE daily_account_usage SET cost_nanousd = cost_nanousd + ?5,
                   cost_usd = (cost_nanousd + ?5) / 1e9
                 WHERE day = substr(?1, 1, 10) AND provider = ?2 AND model = ?3
                   AND cliproxy_account = ?4",
            )?
            .execute(params![
                row.started_at,
                row.recost.provider,
                row.recost.model,
                account,
                delta
            ])?;
        }
    }
    Ok(ChunkOutcome {
        max_id: Some(max),
        last_id: rows.last().map(|r| r.recost.id),
        counts,
    })
}
