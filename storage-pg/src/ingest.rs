//! Ingestion of one replica's spool (`docs/replicas.md` §3, `docs/spool.md` §4).
//!
//! [`apply_batch`] applies a batch of `(seq, Record)` read from the spool (the storage
//! crate's records, not a second codec) in one transaction together with the replica's
//! `spool_position`. The position row is locked first and every record at or below it is
//! skipped, so a batch applied twice (a crash after `COMMIT` but before the spool learned it,
//! or a retry) changes nothing the second time: S4 holds per replica.
//!
//! Rows are keyed by `request_id` (unique in this schema), so unlike the SQLite ingester no
//! map of calls in flight is needed across batches. A `Begin` whose `End` is in the same
//! batch becomes one `INSERT … ON CONFLICT (request_id) DO UPDATE` of the final row.
//!
//! Every `Begin` of a batch (with its `End` when both are there) lands through one multi-row
//! statement ([`crate::bulk`]); the records that depend on rows of earlier batches (`Usage`,
//! a later `End`, `Fallback`) follow one by one in spool order, as do all records of a batch
//! the server refused a record of (each under its own savepoint).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Transaction};

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::op::{AuditInfo, CostStatus, FinalizeRow, PreLogRow};
use agent_cli_proxy_storage::spool::{Cursor, Record};

use crate::daily::{DailyDeltas, DayKey};
use crate::error::PgError;
use crate::{sql_int, usd};

/// What a batch did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Records applied by this call.
    pub applied: usize,
    /// Records skipped because the replica's position already covered them.
    pub skipped: usize,
    /// Sequence numbers of records that name a `request_id` with no row (a `Usage`, `End`
    /// or `Fallback` whose `Begin` never reached the database); the SQLite ingester sets
    /// these aside as rejected, here they are reported and skipped.
    pub orphans: Vec<u64>,
    /// Records the server refused on their own, with its message; skipped.
    pub rejected: Vec<(u64, String)>,
    /// The replica's applied position after the batch.
    pub applied_seq: u64,
}

/// The applied position of `replica` (0 before its first batch).
pub fn applied_seq(client: &mut Client, replica: &str) -> Result<u64, PgError> {
    let row = client.query_opt(
        "SELECT applied_seq FROM spool_position WHERE replica = $1",
        &[&replica],
    )?;
    Ok(match row {
        Some(r) => u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
        None => 0,
    })
}

/// Applies `batch` (in spool order) for `replica` in one transaction. `next` is where the
/// replica's reader continues after it (stored for `db spool status`); `now` stamps the
/// position row.
///
/// When the server refuses one record on its own (a data or constraint error, SQLSTATE
/// classes 22 and 23), the batch is run again with a savepoint per record: the others land,
/// the refused ones are listed in [`BatchOutcome::rejected`] and the position moves past
/// them, so one bad record cannot stop ingestion. Any other error (connection lost, server
/// shutting down, disk full) fails the whole batch for the caller to retry.
pub fn apply_batch(
    client: &mut Client,
    replica: &str,
    batch: &[(u64, Record)],
    next: Option<Cursor>,
    now: &str,
) -> Result<BatchOutcome, PgError> {
    match attempt(client, replica, batch, next, now, false) {
        Err(PgError::Postgres(e)) if is_record_failure(&e) => {
            attempt(client, replica, batch, next, now, true)
        }
        other => other,
    }
}

/// A refusal that belongs to one record rather than to the batch or the connection.
fn is_record_failure(e: &postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

fn attempt(
    client: &mut Client,
    replica: &str,
    batch: &[(u64, Record)],
    next: Option<Cursor>,
    now: &str,
    isolate: bool,
) -> Result<BatchOutcome, PgError> {
    let mut tx = client.transaction()?;
    tx.execute(
        "INSERT INTO spool_position (replica, applied_seq, updated_at) VALUES ($1, 0, $2)
         ON CONFLICT (replica) DO NOTHING",
        &[&replica, &now],
    )?;
    // The row lock also serializes two ingesters that were wrongly given the same id.
    let position: i64 = tx
        .query_one(
            "SELECT applied_seq FROM spool_position WHERE replica = $1 FOR UPDATE",
            &[&replica],
        )?
        .try_get(0)?;
    let position = u64::try_from(position).unwrap_or(0);
    let todo: Vec<&(u64, Record)> = batch.iter().filter(|(seq, _)| *seq > position).collect();
    let mut outcome = BatchOutcome {
        skipped: batch.len() - todo.len(),
        applied_seq: position,
        ..BatchOutcome::default()
    };
    let Some(last) = todo.last().map(|(seq, _)| *seq) else {
        tx.commit()?;
        return Ok(outcome);
    };
    let mut deltas = DailyDeltas::default();
    apply_records(&mut tx, replica, &todo, isolate, &mut outcome, &mut deltas)?;
    deltas.apply(&mut tx)?;
    let segment = next.map(|c| sql_int(c.segment));
    let offset = next.map(|c| sql_int(c.offset));
    tx.execute(
        "UPDATE spool_position SET applied_seq = $2, segment = $3, \"offset\" = $4,
           updated_at = $5 WHERE replica = $1",
        &[&replica, &sql_int(last), &segment, &offset, &now],
    )?;
    tx.commit()?;
    outcome.applied = todo.len() - outcome.rejected.len();
    outcome.applied_seq = last;
    Ok(outcome)
}

fn apply_records(
    tx: &mut Transaction<'_>,
    replica: &str,
    todo: &[&(u64, Record)],
    isolate: bool,
    outcome: &mut BatchOutcome,
    deltas: &mut DailyDeltas,
) -> Result<(), PgError> {
    // Index of the first `End` of each call in this batch, for the single-insert path.
    let mut ends: HashMap<&str, usize> = HashMap::new();
    for (i, (_, rec)) in todo.iter().enumerate() {
        if let Record::End { request_id, .. } = rec {
            ends.entry(request_id.as_str()).or_insert(i);
        }
    }
    if !isolate && crate::bulk::apply(tx, replica, todo, &ends, outcome, deltas)? {
        return Ok(());
    }
    let mut merged = vec![false; todo.len()];
    for (i, (seq, rec)) in todo.iter().enumerate() {
        if merged[i] {
            continue;
        }
        let end = match rec {
            Record::Begin(row) => ends
                .get(row.request_id.as_str())
                .filter(|&&j| j > i)
                .and_then(|&j| match &todo[j].1 {
                    Record::End { row: end, .. } => Some((j, end.as_ref())),
                    _ => None,
                }),
            _ => None,
        };
        let found = if isolate {
            let mut sp = tx.savepoint("acp_rec")?;
            let mut own = DailyDeltas::default();
            match apply_one(&mut sp, replica, rec, end.map(|(_, e)| e), &mut own) {
                Ok(found) => {
                    sp.commit()?;
                    deltas.merge(own);
                    Some(found)
                }
                Err(PgError::Postgres(e)) if is_record_failure(&e) => {
                    sp.rollback()?;
                    outcome.rejected.push((*seq, crate::error::describe(&e)));
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            Some(apply_one(tx, replica, rec, end.map(|(_, e)| e), deltas)?)
        };
        if found.is_some()
            && let Some((j, _)) = end
        {
            merged[j] = true;
        }
        if found == Some(false) {
            outcome.orphans.push(*seq);
        }
    }
    Ok(())
}

/// Applies one record (with its `End` when both are in the batch); false when the record
/// names a call that has no row.
pub(crate) fn apply_one(
    tx: &mut Transaction<'_>,
    replica: &str,
    rec: &Record,
    end: Option<&FinalizeRow>,
    deltas: &mut DailyDeltas,
) -> Result<bool, PgError> {
    match rec {
        Record::Begin(row) => {
            match end {
                Some(end) => insert_final(tx, replica, row, end, deltas)?,
                None => insert_pending(tx, replica, row)?,
            }
            Ok(true)
        }
        Record::Usage { request_id, tokens } => checkpoint(tx, request_id, tokens),
        Record::End { request_id, row } => finalize(tx, request_id, row, deltas),
        Record::Fallback {
            request_id,
            message,
            now,
        } => fallback(tx, request_id, message, now, deltas),
    }
}

/// Pre-log columns, in the order of [`prelog_params`].
pub(crate) const PRELOG_COLUMNS: [&str; 15] = [
    "request_id",
    "provider",
    "model",
    "tool",
    "client_id",
    "agent",
    "user_agent",
    "source_ip",
    "msg_id",
    "path",
    "streamed",
    "proxy_api_key_id",
    "started_at",
    "meta_json",
    "replica",
];

fn prelog_params<'a>(
    r: &'a PreLogRow,
    streamed: &'a i64,
    replica: &'a &'a str,
) -> [&'a (dyn ToSql + Sync); 15] {
    [
        &r.request_id,
        &r.provider,
        &r.model,
        &r.tool,
        &r.client_id,
        &r.agent,
        &r.user_agent,
        &r.source_ip,
        &r.msg_id,
        &r.path,
        streamed,
        &r.proxy_api_key_id,
        &r.started_at,
        &r.meta_json,
        replica,
    ]
}

/// A lone `Begin`: the pending row. On a conflict the existing row is kept as it is (it can
/// only be this call's own row, possibly already final, which must not go back to pending).
fn insert_pending(tx: &mut Transaction<'_>, replica: &str, r: &PreLogRow) -> Result<(), PgError> {
    let streamed = i64::from(r.streamed);
    let params = prelog_params(r, &streamed, &replica);
    tx.execute(
        &format!(
            "INSERT INTO request_logs ({}, source, prompt_tokens,
               completion_tokens, cache_creation_tokens, cache_read_tokens, reasoning_tokens,
               total_tokens, cache_write_1h_tokens, cost_usd, cost_nanousd, incomplete,
               usage_incomplete, lifecycle_status, cost_status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'proxy',
               0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'pending', 'unresolved')
             ON CONFLICT (request_id) DO NOTHING",
            PRELOG_COLUMNS.join(", ")
        ),
        &params,
    )?;
    Ok(())
}

/// The finalize columns as SQL values.
pub(crate) struct FinalValues<'a> {
    pub(crate) row: &'a FinalizeRow,
    pub(crate) streamed: i64,
    pub(crate) tokens: [i64; 7],
    pub(crate) usage_incomplete: i64,
    pub(crate) cost_usd: f64,
    pub(crate) cost_nanousd: i64,
    pub(crate) cost_status: &'static str,
    pub(crate) incomplete: i64,
    pub(crate) lifecycle_status: &'static str,
}

impl<'a> FinalValues<'a> {
    pub(crate) fn of(row: &'a FinalizeRow) -> FinalValues<'a> {
        let t = &row.tokens;
        let cost = sql_int(row.cost_nanousd);
        FinalValues {
            row,
            streamed: i64::from(row.streamed),
            tokens: [
                sql_int(t.prompt_tokens),
                sql_int(t.completion_tokens),
                sql_int(t.cache_creation_tokens),
                sql_int(t.cache_read_tokens),
                sql_int(t.reasoning_tokens),
                sql_int(t.total_tokens),
                sql_int(t.cache_write_1h_tokens),
            ],
            usage_incomplete: i64::from(row.usage_incomplete),
            cost_usd: usd(cost),
            cost_nanousd: cost,
            cost_status: row.cost_status.as_str(),
            incomplete: i64::from(row.lifecycle_status.incomplete()),
            lifecycle_status: row.lifecycle_status.as_str(),
        }
    }

    /// In the order of [`FINAL_COLUMNS`].
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 23] {
        let r = self.row;
        [
            &r.actual_model,
            &r.actual_provider,
            &r.proxy_api_key_id,
            &self.streamed,
            &r.status,
            &self.tokens[0],
            &self.tokens[1],
            &self.tokens[2],
            &self.tokens[3],
            &self.tokens[4],
            &self.tokens[5],
            &self.tokens[6],
            &self.usage_incomplete,
            &self.cost_usd,
            &self.cost_nanousd,
            &self.cost_status,
            &self.incomplete,
            &r.error_code,
            &r.error_message,
            &r.latency_ms,
            &r.now,
            &self.lifecycle_status,
            &r.meta_json,
        ]
    }
}

/// What a finalize writes, in the order of [`FinalValues::params`]; `now` is written to both
/// `finished_at` and `finalized_at`.
pub(crate) const FINAL_COLUMNS: [&str; 23] = [
    "actual_model",
    "actual_provider",
    "proxy_api_key_id",
    "streamed",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cache_write_1h_tokens",
    "usage_incomplete",
    "cost_usd",
    "cost_nanousd",
    "cost_status",
    "incomplete",
    "error_code",
    "error_message",
    "latency_ms",
    "finished_at",
    "lifecycle_status",
    "meta_json",
];

/// `Begin` and `End` in one batch: one insert of the final row. A conflicting row still
/// pending is finalized instead (first finalize wins, as in SQLite); a final one is left.
fn insert_final(
    tx: &mut Transaction<'_>,
    replica: &str,
    begin: &PreLogRow,
    end: &FinalizeRow,
    deltas: &mut DailyDeltas,
) -> Result<(), PgError> {
    let fin = FinalValues::of(end);
    let streamed = i64::from(begin.streamed);
    let pre = prelog_params(begin, &streamed, &replica);
    // Where both lists name a column (streamed, key id, meta_json) the finalize's value is
    // the one written, as the SQLite UPDATE after the pre-log leaves it.
    let mut columns: Vec<&str> = Vec::with_capacity(40);
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(40);
    for (c, p) in PRELOG_COLUMNS.iter().zip(pre) {
        if !FINAL_COLUMNS.contains(c) {
            columns.push(c);
            params.push(p);
        }
    }
    for (c, p) in FINAL_COLUMNS.iter().zip(fin.params()) {
        columns.push(c);
        params.push(p);
    }
    let finished = columns
        .iter()
        .position(|c| *c == "finished_at")
        .map_or(0, |p| p + 1);
    let placeholders: Vec<String> = (1..=params.len()).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = FINAL_COLUMNS
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO request_logs ({}, finalized_at, source)
         VALUES ({}, ${finished}, 'proxy')
         ON CONFLICT (request_id) DO UPDATE SET {}, finalized_at = EXCLUDED.finalized_at
         WHERE request_logs.lifecycle_status = 'pending'
         RETURNING id, started_at, provider, model",
        columns.join(", "),
        placeholders.join(", "),
        updates.join(", "),
    );
    let Some(row) = tx.query_opt(&sql, &params)? else {
        return Ok(());
    };
    let id: i64 = row.try_get(0)?;
    let key = DayKey {
        started_at: row.try_get(1)?,
        provider: row.try_get(2)?,
        model: row.try_get(3)?,
    };
    // A row is `unresolved` while pending (row invariant 4), whichever way it got here.
    write_audit(
        tx,
        id,
        "unresolved",
        end.cost_status,
        fin.cost_nanousd,
        &end.audit,
    )?;
    deltas.add(&key, &end.tokens, fin.cost_nanousd);
    Ok(())
}

/// True when the call has a row (so a change of nothing is not an orphan).
fn has_row(tx: &mut Transaction<'_>, request_id: &str) -> Result<bool, PgError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM request_logs WHERE request_id = $1",
            &[&request_id],
        )?
        .is_some())
}

fn checkpoint(
    tx: &mut Transaction<'_>,
    request_id: &str,
    t: &TokenColumns,
) -> Result<bool, PgError> {
    let changed = tx.execute(
        "UPDATE request_logs SET prompt_tokens = $2, completion_tokens = $3,
           cache_creation_tokens = $4, cache_read_tokens = $5, reasoning_tokens = $6,
           total_tokens = $7, cache_write_1h_tokens = $8
         WHERE request_id = $1 AND lifecycle_status = 'pending'",
        &[
            &request_id,
            &sql_int(t.prompt_tokens),
            &sql_int(t.completion_tokens),
            &sql_int(t.cache_creation_tokens),
            &sql_int(t.cache_read_tokens),
            &sql_int(t.reasoning_tokens),
            &sql_int(t.total_tokens),
            &sql_int(t.cache_write_1h_tokens),
        ],
    )?;
    Ok(changed == 1 || has_row(tx, request_id)?)
}

/// A lone `End`: the SQLite finalize keyed by `request_id`; only a pending row changes.
fn finalize(
    tx: &mut Transaction<'_>,
    request_id: &str,
    end: &FinalizeRow,
    deltas: &mut DailyDeltas,
) -> Result<bool, PgError> {
    let Some(row) = tx.query_opt(
        "SELECT id, cost_status, started_at, provider, model FROM request_logs
         WHERE request_id = $1 AND lifecycle_status = 'pending' FOR UPDATE",
        &[&request_id],
    )?
    else {
        return has_row(tx, request_id);
    };
    let id: i64 = row.try_get(0)?;
    let previous: String = row.try_get(1)?;
    let key = DayKey {
        started_at: row.try_get(2)?,
        provider: row.try_get(3)?,
        model: row.try_get(4)?,
    };
    let fin = FinalValues::of(end);
    let sets: Vec<String> = FINAL_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 2))
        .collect();
    let finished = FINAL_COLUMNS
        .iter()
        .position(|c| *c == "finished_at")
        .map_or(0, |p| p + 2);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
    params.extend(fin.params());
    tx.execute(
        &format!(
            "UPDATE request_logs SET {}, finalized_at = ${finished}
             WHERE id = $1 AND lifecycle_status = 'pending'",
            sets.join(", ")
        ),
        &params,
    )?;
    write_audit(
        tx,
        id,
        &previous,
        end.cost_status,
        fin.cost_nanousd,
        &end.audit,
    )?;
    deltas.add(&key, &end.tokens, fin.cost_nanousd);
    Ok(true)
}

/// Outcome O16 as in the SQLite backend: not costed, but the row joins its `daily_usage`
/// bucket with its checkpointed tokens and stored cost.
fn fallback(
    tx: &mut Transaction<'_>,
    request_id: &str,
    message: &str,
    now: &str,
    deltas: &mut DailyDeltas,
) -> Result<bool, PgError> {
    let Some(row) = tx.query_opt(
        "SELECT id, started_at, provider, model, COALESCE(prompt_tokens, 0),
           COALESCE(completion_tokens, 0), COALESCE(cache_creation_tokens, 0),
           COALESCE(cache_read_tokens, 0), COALESCE(total_tokens, 0), cost_nanousd
         FROM request_logs WHERE request_id = $1 AND lifecycle_status = 'pending' FOR UPDATE",
        &[&request_id],
    )?
    else {
        return has_row(tx, request_id);
    };
    let id: i64 = row.try_get(0)?;
    let key = DayKey {
        started_at: row.try_get(1)?,
        provider: row.try_get(2)?,
        model: row.try_get(3)?,
    };
    let count = |i: usize| -> Result<u64, PgError> {
        Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0))
    };
    let tokens = TokenColumns {
        prompt_tokens: count(4)?,
        completion_tokens: count(5)?,
        cache_creation_tokens: count(6)?,
        cache_read_tokens: count(7)?,
        total_tokens: count(8)?,
        ..TokenColumns::default()
    };
    let cost: i64 = row.try_get(9)?;
    tx.execute(
        "UPDATE request_logs SET lifecycle_status = 'error', incomplete = 1,
           error_code = COALESCE(error_code, 'finalize_failed'),
           error_message = 'finalize_failed: ' || $2, finalized_at = $3,
           cost_status = CASE cost_status WHEN 'unresolved' THEN 'pending'
                         ELSE cost_status END
         WHERE id = $1 AND lifecycle_status = 'pending'",
        &[&id, &message, &now],
    )?;
    deltas.add(&key, &tokens, cost);
    Ok(true)
}

/// The audit rule of `accounting.md` §6.1, as the SQLite backend applies it.
pub(crate) fn write_audit(
    tx: &mut Transaction<'_>,
    id: i64,
    previous_status: &str,
    new_status: CostStatus,
    cost_nanousd: i64,
    audit: &AuditInfo,
) -> Result<(), PgError> {
    let needed = previous_status != new_status.as_str() || {
        let latest = tx.query_opt(
            "SELECT cost_nanousd FROM cost_audit WHERE request_log_id = $1
             ORDER BY id DESC LIMIT 1",
            &[&id],
        )?;
        match latest {
            None => true,
            Some(r) => r.try_get::<_, Option<i64>>(0)? != Some(cost_nanousd),
        }
    };
    if needed {
        tx.execute(
            "INSERT INTO cost_audit (request_log_id, model, provider, source, base_cost_usd,
               cost_nanousd) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &id,
                &audit.model,
                &audit.provider,
                &audit.source,
                &usd(cost_nanousd),
                &cost_nanousd,
            ],
        )?;
    }
    Ok(())
}
