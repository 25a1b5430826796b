//! The backfill driver (`accounting.md` §6.2 step 3): walks candidate rows by id in chunks,
//! each chunk one writer transaction ([`Op::BackfillChunk`]), and is single-flight per
//! process. The walk itself is a small state machine ([`BackfillWalk`]) shared by the async
//! driver (through the writer thread) and the synchronous one (CLI, through a [`Store`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::StorageError;
use crate::op::{BackfillChunk, BackfillCounts, ChunkOutcome, Op, Reply, SharedRecoster};
use crate::store::Store;
use crate::writer::WriterHandle;

/// SQL condition true for a `request_logs` row that recorded no token at all: the call never
/// produced usage (connection refused, timeout or an upstream error before any body, a
/// request rejected before the upstream). Its cost is exactly 0 whatever the price, so it is
/// not "cost pending": the backfill skips it and the reports do not count it as pending. The
/// row keeps its stored `cost_status` (the schema and `accounting.md` §5.4 stay as they are);
/// only the selection changes.
pub const NO_USAGE_SQL: &str =
    "(COALESCE(prompt_tokens, 0) = 0 AND COALESCE(completion_tokens, 0) = 0
    AND COALESCE(cache_read_tokens, 0) = 0 AND COALESCE(cache_creation_tokens, 0) = 0
    AND COALESCE(cache_write_1h_tokens, 0) = 0 AND COALESCE(reasoning_tokens, 0) = 0
    AND COALESCE(total_tokens, 0) = 0)";

/// Default `COST_BACKFILL_CHUNK_SIZE`.
pub const DEFAULT_CHUNK_SIZE: u32 = 500;

/// What a backfill run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillOptions {
    /// `started_at >= since` (ISO of `now − COST_BACKFILL_LOOKBACK_MS`); `None` for `--all`.
    pub since: Option<String>,
    /// Rows per chunk (`COST_BACKFILL_CHUNK_SIZE`), at least 1.
    pub chunk_size: u32,
    /// Rows scanned at most.
    pub limit: Option<u64>,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            since: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            limit: None,
        }
    }
}

/// The single-flight gate: one run per process at a time.
#[derive(Debug, Clone, Default)]
pub struct BackfillFlight {
    running: Arc<AtomicBool>,
}

/// Held while a run is in progress; releases the gate on drop.
#[derive(Debug)]
pub struct FlightGuard {
    running: Arc<AtomicBool>,
}

impl BackfillFlight {
    /// A fresh gate.
    pub fn new() -> BackfillFlight {
        BackfillFlight::default()
    }

    /// Takes the gate, or `None` when a run is in progress.
    pub fn try_start(&self) -> Option<FlightGuard> {
        self.running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| FlightGuard {
                running: Arc::clone(&self.running),
            })
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Release);
    }
}

/// The chunk walk: ask for [`BackfillWalk::next_chunk`], run it, feed the outcome back.
#[derive(Debug)]
pub struct BackfillWalk {
    opts: BackfillOptions,
    recoster: SharedRecoster,
    after: i64,
    max: Option<i64>,
    totals: BackfillCounts,
    done: bool,
}

impl BackfillWalk {
    /// A walk from the first candidate.
    pub fn new(opts: BackfillOptions, recoster: SharedRecoster) -> BackfillWalk {
        BackfillWalk {
            opts,
            recoster,
            after: 0,
            max: None,
            totals: BackfillCounts::default(),
            done: false,
        }
    }

    /// The next chunk command, or `None` when the walk is over.
    pub fn next_chunk(&self) -> Option<BackfillChunk> {
        if self.done {
            return None;
        }
        let mut limit = u64::from(self.opts.chunk_size.max(1));
        if let Some(cap) = self.opts.limit {
            limit = limit.min(cap.saturating_sub(self.totals.scanned));
        }
        if limit == 0 {
            return None;
        }
        Some(BackfillChunk {
            after_id: self.after,
            max_id: self.max,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            since: self.opts.since.clone(),
            recoster: Arc::clone(&self.recoster),
        })
    }

    /// Feeds a chunk's outcome.
    pub fn handle(&mut self, outcome: &ChunkOutcome) {
        self.totals.add(&outcome.counts);
        self.max = self.max.or(outcome.max_id);
        match (outcome.last_id, self.max) {
            (Some(last), Some(max)) if last < max => self.after = last,
            _ => self.done = true,
        }
    }

    /// Counts so far.
    pub fn totals(&self) -> BackfillCounts {
        self.totals
    }
}

/// Runs a backfill through the writer thread. A run started while another is in progress
/// returns all zeros at once.
pub async fn run_backfill(
    writer: &WriterHandle,
    flight: &BackfillFlight,
    opts: BackfillOptions,
    recoster: SharedRecoster,
) -> Result<BackfillCounts, StorageError> {
    let Some(_guard) = flight.try_start() else {
        return Ok(BackfillCounts::default());
    };
    let mut walk = BackfillWalk::new(opts, recoster);
    while let Some(chunk) = walk.next_chunk() {
        let reply = writer.send(Op::BackfillChunk(chunk)).await?;
        walk.handle(&chunk_outcome(reply)?);
    }
    Ok(walk.totals())
}

impl Store {
    /// Runs a backfill on this connection, one transaction per chunk (CLI
    /// `backfill-costs`). Single-flight through `flight`, like [`run_backfill`].
    pub fn run_backfill(
        &mut self,
        flight: &BackfillFlight,
        opts: BackfillOptions,
        recoster: SharedRecoster,
    ) -> Result<BackfillCounts, StorageError> {
        let Some(_guard) = flight.try_start() else {
            return Ok(BackfillCounts::default());
        };
        let mut walk = BackfillWalk::new(opts, recoster);
        while let Some(chunk) = walk.next_chunk() {
            let reply = self.execute(Op::BackfillChunk(chunk))?;
            walk.handle(&chunk_outcome(reply)?);
        }
        Ok(walk.totals())
    }
}

fn chunk_outcome(reply: Reply) -> Result<ChunkOutcome, StorageError> {
    match reply {
        Reply::Backfill(outcome) => Ok(outcome),
        other => Err(StorageError::Sqlite {
            code: None,
            message: format!("unexpected reply to BackfillChunk: {other:?}"),
        }),
    }
}
