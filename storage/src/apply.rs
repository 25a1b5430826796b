//! Executes one write command on a connection that is already inside a transaction (the
//! writer's savepoint, or the single transaction of [`crate::Store::execute`]).

mod backfill;
mod keys;
pub(crate) mod lifecycle;
mod loops;

use rusqlite::Connection;

use crate::error::StorageError;
use crate::op::{CheckpointInfo, Op, Reply};

pub use keys::{hash_key, normalize_list, parse_list};

/// Runs `op`. `WalCheckpoint` and `Shutdown` are not transactional and are handled by the
/// caller; here they are no-ops.
pub(crate) fn apply(conn: &Connection, op: &Op) -> Result<Reply, StorageError> {
    match op {
        Op::PreLog(row) => lifecycle::prelog(conn, row).map(Reply::RowId),
        Op::CheckpointUsage { id, tokens } => {
            lifecycle::checkpoint(conn, *id, tokens).map(|()| Reply::Done)
        }
        Op::Finalize(row) => lifecycle::finalize(conn, row, None).map(Reply::Finalized),
        Op::FinalizeFallback { id, message, now } => {
            lifecycle::fallback(conn, *id, message, now).map(Reply::Finalized)
        }
        Op::TouchApiKey { id, at } => keys::touch(conn, *id, at).map(|()| Reply::Done),
        Op::Correlate(c) => loops::correlate(conn, c).map(Reply::Changed),
        Op::BackfillChunk(chunk) => backfill::chunk(conn, chunk).map(Reply::Backfill),
        Op::InsertQuotaSnapshots(rows) => loops::insert_quota(conn, rows).map(Reply::Count),
        Op::PruneQuotaSnapshots { before } => loops::prune_quota(conn, before).map(Reply::Count),
        Op::CreateApiKey(key) => keys::create(conn, key).map(Reply::ApiKeyCreated),
        Op::UpdateApiKey {
            id,
            allowed_accounts,
            allowed_providers,
        } => keys::update(conn, *id, allowed_accounts, allowed_providers).map(Reply::Changed),
        Op::RevokeApiKey { id, now } => keys::revoke(conn, *id, now).map(Reply::Revoked),
        Op::BootRecovery { now, recoster } => {
            lifecycle::abort_pending(conn, now, "boot-recovery", recoster.as_ref())
                .map(Reply::Count)
        }
        Op::ShutdownFinalize { now, recoster } => {
            lifecycle::abort_pending(conn, now, "shutdown", recoster.as_ref()).map(Reply::Count)
        }
        Op::WalCheckpoint | Op::Shutdown | Op::SpoolFlush => Ok(Reply::Done),
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`; must run outside a transaction.
pub(crate) fn wal_checkpoint(conn: &Connection) -> Result<CheckpointInfo, StorageError> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok(CheckpointInfo {
            busy: r.get(0)?,
            log_frames: r.get(1)?,
            checkpointed_frames: r.get(2)?,
        })
    })?)
}

/// A `u64` count as an SQLite integer, saturating (a hostile upstream cannot make it wrap
/// negative).
pub(crate) fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An SQLite integer as a count; negative values (never written by us) read as 0.
pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `cost_usd` derived from the exact cost, for display only.
pub(crate) fn usd(nanousd: i64) -> f64 {
    nanousd as f64 / 1e9
}
