//! The multi-row path of a batch (`docs/replicas.md` §3, issue #14): one statement per round
//! trip was what held ingestion to ~2 k calls/s, so every `Begin` of a batch lands through one
//! `INSERT … SELECT … FROM UNNEST(…)` and the cost-audit rows of the calls it finalized
//! through one more.
//!
//! Why `UNNEST` of array parameters rather than `COPY` into a temporary table and a merge:
//! both send the batch in one go, but `COPY` adds a table, a merge statement and a text
//! encoding of every value, for no fewer round trips; the arrays keep the typed binary
//! parameters and the `ON CONFLICT` rules of the per-record statements. Measured in
//! `benches/ingest.rs`.
//!
//! Same outcome as the per-record path ([`crate::ingest`]):
//! * A pair (a `Begin` with its first `End` later in the batch) inserts the final row; a lone
//!   `Begin` the pending row. One statement carries both: its `ON CONFLICT … DO UPDATE` only
//!   fires for a final row meeting a pending one, so a lone `Begin` meeting any row changes
//!   nothing (the per-record `DO NOTHING`), and a pair meeting a final row leaves it.
//! * Rows are inserted in spool order (`WITH ORDINALITY … ORDER BY`), so ids keep arrival
//!   order as they did with one statement per record.
//! * The other records follow one by one in spool order, after every `Begin`. That equals
//!   the spool order unless such a record comes before a `Begin` of the same call, or two
//!   `Begin`s share a `request_id` (one statement cannot touch a row twice): such a batch
//!   takes the per-record path, as does one the server refused a record of.

use std::collections::HashMap;

use postgres::Transaction;
use postgres::types::ToSql;

use agent_cli_proxy_storage::op::{FinalizeRow, PreLogRow};
use agent_cli_proxy_storage::spool::Record;

use crate::daily::{DailyDeltas, DayKey};
use crate::error::PgError;
use crate::ingest::{BatchOutcome, FINAL_COLUMNS, FinalValues, apply_one, write_audit};
use crate::usd;

/// Columns the pre-log alone writes (those both write take the finalize's value, as in
/// [`crate::ingest`]), in the order of [`row_values`].
const PRELOG_ONLY: [&str; 12] = [
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
    "started_at",
    "replica",
];

/// Every column of the insert: the pre-log's, the finalize's, `finalized_at`.
const WIDTH: usize = PRELOG_ONLY.len() + FINAL_COLUMNS.len() + 1;

/// One value of a row, typed as its column.
#[derive(Clone, Copy)]
enum Val<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Real(f64),
}

/// One column of the batch, sent as one array parameter.
enum Col<'a> {
    Text(Vec<Option<&'a str>>),
    Int(Vec<Option<i64>>),
    Real(Vec<f64>),
}

impl<'a> Col<'a> {
    fn like(v: Val<'a>, capacity: usize) -> Col<'a> {
        match v {
            Val::Text(_) => Col::Text(Vec::with_capacity(capacity)),
            Val::Int(_) => Col::Int(Vec::with_capacity(capacity)),
            Val::Real(_) => Col::Real(Vec::with_capacity(capacity)),
        }
    }

    fn push(&mut self, v: Val<'a>) {
        match (self, v) {
            (Col::Text(c), Val::Text(x)) => c.push(x),
            (Col::Int(c), Val::Int(x)) => c.push(x),
            (Col::Real(c), Val::Real(x)) => c.push(x),
            // `row_values` gives every row the same kinds; a mismatch is a bug there.
            _ => unreachable!("row_values gave a column two kinds"),
        }
    }

    fn sql_type(&self) -> &'static str {
        match self {
            Col::Text(_) => "text[]",
            Col::Int(_) => "bigint[]",
            Col::Real(_) => "float8[]",
        }
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Col::Text(c) => c,
            Col::Int(c) => c,
            Col::Real(c) => c,
        }
    }
}

/// The row a `Begin` inserts: final when its `End` is given, pending otherwise (the values
/// of the per-record `insert_pending`).
fn row_values<'a>(
    replica: &'a str,
    pre: &'a PreLogRow,
    fin: Option<&'a FinalValues<'a>>,
) -> [Val<'a>; WIDTH] {
    let t = |s: &'a str| Val::Text(Some(s));
    let o = |s: &'a Option<String>| Val::Text(s.as_deref());
    let i = |v: i64| Val::Int(Some(v));
    let head = [
        t(&pre.request_id),
        t(&pre.provider),
        t(&pre.model),
        t(&pre.tool),
        t(&pre.client_id),
        o(&pre.agent),
        o(&pre.user_agent),
        o(&pre.source_ip),
        o(&pre.msg_id),
        t(&pre.path),
        t(&pre.started_at),
        t(replica),
    ];
    // In the order of `FINAL_COLUMNS`, then `finalized_at`.
    let tail: [Val<'a>; FINAL_COLUMNS.len() + 1] = match fin {
        Some(f) => {
            let r = f.row;
            [
                o(&r.actual_model),
                o(&r.actual_provider),
                Val::Int(r.proxy_api_key_id),
                i(f.streamed),
                Val::Int(r.status),
                i(f.tokens[0]),
                i(f.tokens[1]),
                i(f.tokens[2]),
                i(f.tokens[3]),
                i(f.tokens[4]),
                i(f.tokens[5]),
                i(f.tokens[6]),
                i(f.usage_incomplete),
                Val::Real(f.cost_usd),
                i(f.cost_nanousd),
                t(f.cost_status),
                i(f.incomplete),
                o(&r.error_code),
                o(&r.error_message),
                Val::Int(r.latency_ms),
                t(&r.now),
                t(f.lifecycle_status),
                t(&r.meta_json),
                t(&r.now),
            ]
        }
        None => [
            Val::Text(None),
            Val::Text(None),
            Val::Int(pre.proxy_api_key_id),
            i(i64::from(pre.streamed)),
            Val::Int(None),
            i(0),
            i(0),
            i(0),
            i(0),
            i(0),
            i(0),
            i(0),
            i(0),
            Val::Real(0.0),
            i(0),
            t("unresolved"),
            i(0),
            Val::Text(None),
            Val::Text(None),
            Val::Int(None),
            Val::Text(None),
            t("pending"),
            t(&pre.meta_json),
            Val::Text(None),
        ],
    };
    let mut all = [Val::Int(None); WIDTH];
    for (slot, v) in all.iter_mut().zip(head.into_iter().chain(tail)) {
        *slot = v;
    }
    all
}

/// Applies `todo` through the multi-row statements; false (having done nothing) when the
/// batch needs the per-record path. `ends` is the index of each call's first `End`.
pub(crate) fn apply(
    tx: &mut Transaction<'_>,
    replica: &str,
    todo: &[&(u64, Record)],
    ends: &HashMap<&str, usize>,
    outcome: &mut BatchOutcome,
    deltas: &mut DailyDeltas,
) -> Result<bool, PgError> {
    // Each call's `Begin` index; a second `Begin` of a call sends the batch the slow way.
    let mut begins: HashMap<&str, usize> = HashMap::with_capacity(todo.len());
    for (i, (_, rec)) in todo.iter().enumerate() {
        if let Record::Begin(row) = rec
            && begins.insert(row.request_id.as_str(), i).is_some()
        {
            return Ok(false);
        }
    }
    // Which records are an `End` merged into its `Begin`'s insert, and each pair's `End`.
    let mut merged = vec![false; todo.len()];
    let mut pairs: Vec<(usize, &PreLogRow, Option<&FinalizeRow>)> =
        Vec::with_capacity(begins.len());
    for (i, (_, rec)) in todo.iter().enumerate() {
        if let Record::Begin(row) = rec {
            let end = ends
                .get(row.request_id.as_str())
                .filter(|&&j| j > i)
                .and_then(|&j| match &todo[j].1 {
                    Record::End { row: end, .. } => {
                        merged[j] = true;
                        Some(end.as_ref())
                    }
                    _ => None,
                });
            pairs.push((i, row, end));
        }
    }
    // A usage checkpoint of a call whose `End` comes later in the batch changes nothing the
    // `End` does not overwrite (it sets every token column): skipped, as a round trip each
    // was most of a streamed call's ingestion.
    let superseded = |k: usize| match &todo[k].1 {
        Record::Usage { request_id, .. } => ends.get(request_id.as_str()).is_some_and(|&j| j > k),
        _ => false,
    };
    let rest: Vec<usize> = (0..todo.len())
        .filter(|&k| !merged[k] && !matches!(todo[k].1, Record::Begin(_)) && !superseded(k))
        .collect();
    // A record before its call's `Begin` would see the row too early if moved after it.
    if rest
        .iter()
        .any(|&k| begins.get(todo[k].1.request_id()).is_some_and(|&i| i > k))
    {
        return Ok(false);
    }
    if !pairs.is_empty() {
        insert_rows(tx, replica, &pairs, deltas)?;
    }
    for k in rest {
        let (seq, rec) = todo[k];
        if !apply_one(tx, replica, rec, None, deltas)? {
            outcome.orphans.push(*seq);
        }
    }
    Ok(true)
}

/// One insert of every `Begin`'s row, then the cost-audit rows of those it finalized.
fn insert_rows(
    tx: &mut Transaction<'_>,
    replica: &str,
    pairs: &[(usize, &PreLogRow, Option<&FinalizeRow>)],
    deltas: &mut DailyDeltas,
) -> Result<(), PgError> {
    let finals: Vec<Option<FinalValues<'_>>> = pairs
        .iter()
        .map(|(_, _, end)| end.map(FinalValues::of))
        .collect();
    let mut cols: Vec<Col<'_>> = Vec::new();
    for ((_, pre, _), fin) in pairs.iter().zip(&finals) {
        let vals = row_values(replica, pre, fin.as_ref());
        if cols.is_empty() {
            cols = vals.iter().map(|v| Col::like(*v, pairs.len())).collect();
        }
        for (c, v) in cols.iter_mut().zip(vals) {
            c.push(v);
        }
    }
    let names: Vec<&str> = PRELOG_ONLY
        .iter()
        .chain(FINAL_COLUMNS.iter())
        .copied()
        .chain(["finalized_at"])
        .collect();
    let arrays: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, c.sql_type()))
        .collect();
    let updates: Vec<String> = FINAL_COLUMNS
        .iter()
        .chain(["finalized_at"].iter())
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO request_logs ({names}, source)
         SELECT {names}, 'proxy' FROM UNNEST({arrays}) WITH ORDINALITY AS u({names}, ord)
         ORDER BY ord
         ON CONFLICT (request_id) DO UPDATE SET {updates}
         WHERE request_logs.lifecycle_status = 'pending'
           AND EXCLUDED.lifecycle_status <> 'pending'
         RETURNING id, request_id, started_at, provider, model, xmax = 0",
        names = names.join(", "),
        arrays = arrays.join(", "),
        updates = updates.join(", "),
    );
    let params: Vec<&(dyn ToSql + Sync)> = cols.iter().map(Col::param).collect();
    let rows = tx.query(&sql, &params)?;
    let index: HashMap<&str, usize> = pairs
        .iter()
        .enumerate()
        .map(|(n, (_, pre, _))| (pre.request_id.as_str(), n))
        .collect();
    // (position in the batch, row id) of each final row inserted: its audit row is due, as
    // a new row has none to compare with.
    let mut audits: Vec<(usize, i64)> = Vec::new();
    for row in rows {
        let request_id: String = row.try_get(1)?;
        let Some(&n) = index.get(request_id.as_str()) else {
            continue;
        };
        let (Some(fin), Some(end)) = (&finals[n], pairs[n].2) else {
            // A lone `Begin`'s pending row: nothing more to write.
            continue;
        };
        let id: i64 = row.try_get(0)?;
        let key = DayKey {
            started_at: row.try_get(2)?,
            provider: row.try_get(3)?,
            model: row.try_get(4)?,
        };
        if row.try_get::<_, bool>(5)? {
            audits.push((pairs[n].0, id));
        } else {
            // A pending row of an earlier batch finalized: the audit rule looks at its
            // history, as the per-record path does.
            write_audit(
                tx,
                id,
                "unresolved",
                end.cost_status,
                fin.cost_nanousd,
                &end.audit,
            )?;
        }
        deltas.add(&key, &end.tokens, fin.cost_nanousd);
    }
    if audits.is_empty() {
        return Ok(());
    }
    // Audit ids follow the batch's order, as one insert per record gave them.
    audits.sort_unstable();
    let by_pos: HashMap<usize, usize> = pairs
        .iter()
        .enumerate()
        .map(|(n, (pos, _, _))| (*pos, n))
        .collect();
    let mut ids = Vec::with_capacity(audits.len());
    let mut models: Vec<Option<&str>> = Vec::with_capacity(audits.len());
    let mut providers: Vec<Option<&str>> = Vec::with_capacity(audits.len());
    let mut sources: Vec<&str> = Vec::with_capacity(audits.len());
    let mut base: Vec<f64> = Vec::with_capacity(audits.len());
    let mut nanos: Vec<i64> = Vec::with_capacity(audits.len());
    for (pos, id) in &audits {
        let n = by_pos[pos];
        let (Some(fin), Some(end)) = (&finals[n], pairs[n].2) else {
            continue;
        };
        ids.push(*id);
        models.push(end.audit.model.as_deref());
        providers.push(end.audit.provider.as_deref());
        sources.push(end.audit.source.as_str());
        base.push(usd(fin.cost_nanousd));
        nanos.push(fin.cost_nanousd);
    }
    tx.execute(
        "INSERT INTO cost_audit (request_log_id, model, provider, source, base_cost_usd,
           cost_nanousd)
         SELECT id, model, provider, source, base, nano
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::float8[],
           $6::bigint[]) WITH ORDINALITY AS u(id, model, provider, source, base, nano, ord)
         ORDER BY ord",
        &[&ids, &models, &providers, &sources, &base, &nanos],
    )?;
    Ok(())
}
