//! Ingestion of the spool into the database (`docs/spool.md` §4), run by the writer thread.
//!
//! * One transaction per batch of up to `SPOOL_INGEST_BATCH` records; the applied position
//!   (`spool_position.applied_seq`) is written in the same transaction, so a crash before
//!   `COMMIT` re-applies the whole batch and a crash after it applies none of it again.
//! * A `Begin` whose `End` is in the same batch becomes one `INSERT` of the final row (plus
//!   its audit row and `daily_usage` bucket); the `End` is not visited again.
//! * Records after the `Begin` find their row by `request_id`: from this batch, from the
//!   calls still in flight (a map kept across batches), or by the indexed column.
//! * A batch the database refuses (busy, full, read-only, I/O) is retried after 50, 200 and
//!   800 ms and then every 5 s; nothing is dropped meanwhile. A record that fails on its own
//!   is set aside: counted, logged and copied to `<SPOOL_DIR>/rejected/<seq>.rec`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

use crate::apply::lifecycle::{self, FinalInsert};
use crate::daily::DailyTotals;
use crate::error::StorageError;
use crate::spool::codec;
use crate::spool::{Cursor, Record, Spool};

/// Ingestion settings (`docs/spool.md` §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestConfig {
    /// `SPOOL_INGEST_BATCH`.
    pub batch: usize,
    /// `SPOOL_INGEST_MAX_DELAY_MS`.
    pub max_delay: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch: 4_096,
            max_delay: Duration::from_millis(50),
        }
    }
}

/// Retry delays of a refused batch; the last repeats.
const RETRY_MS: [u64; 4] = [50, 200, 800, 5_000];

/// Counters for `/metrics` and `/ready`.
#[derive(Debug, Default)]
pub struct IngestStats {
    failures: AtomicU64,
    rejected: AtomicU64,
    batches: AtomicU64,
    records: AtomicU64,
    /// Milliseconds the oldest unapplied record has waited, at the last look.
    lag_ms: AtomicU64,
    /// Histogram of batch sizes: counts per bucket of [`BATCH_BUCKETS`], then the sum.
    sizes: [AtomicU64; BATCH_BUCKETS.len() + 1],
    size_sum: AtomicU64,
}

/// Upper bounds of the batch-size histogram buckets.
pub const BATCH_BUCKETS: [u64; 8] = [1, 4, 16, 64, 256, 1_024, 4_096, 65_536];

impl IngestStats {
    /// `agent_cli_proxy_ingest_failures_total`.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    /// Records set aside.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    /// Batches committed.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    /// Records applied.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
    /// `agent_cli_proxy_ingest_lag_ms`.
    pub fn lag_ms(&self) -> u64 {
        self.lag_ms.load(Ordering::Relaxed)
    }
    /// Cumulative bucket counts (Prometheus `le` order), the count and the sum.
    pub fn histogram(&self) -> (Vec<(u64, u64)>, u64, u64) {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(BATCH_BUCKETS.len());
        for (i, le) in BATCH_BUCKETS.iter().enumerate() {
            acc += self.sizes[i].load(Ordering::Relaxed);
            buckets.push((*le, acc));
        }
        let count = acc + self.sizes[BATCH_BUCKETS.len()].load(Ordering::Relaxed);
        (buckets, count, self.size_sum.load(Ordering::Relaxed))
    }

    // Recording, for the ingesters of both backends (the PostgreSQL one lives in another
    // crate), so `/metrics` and `/ready` read one set of counters whichever database runs.

    /// A committed batch of `n` records: the counts and the batch-size histogram.
    pub fn record_batch(&self, n: usize) {
        let n = n as u64;
        let i = BATCH_BUCKETS
            .iter()
            .position(|le| n <= *le)
            .unwrap_or(BATCH_BUCKETS.len());
        self.sizes[i].fetch_add(1, Ordering::Relaxed);
        self.size_sum.fetch_add(n, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(n, Ordering::Relaxed);
    }
    /// A batch the database refused (it will be retried).
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
    /// A record set aside because the database refused it on its own.
    pub fn record_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    /// How long the oldest unapplied record has waited, as last seen (0 when caught up).
    pub fn set_lag_ms(&self, ms: u64) {
        self.lag_ms.store(ms, Ordering::Relaxed);
    }
}

/// The ingester's state, owned by the writer thread.
pub struct Ingester {
    spool: Arc<Spool>,
    config: IngestConfig,
    cursor: Cursor,
    /// `request_id` → row id of calls whose `End` has not been applied.
    in_flight: HashMap<String, i64>,
    buf: Vec<(u64, Record)>,
    stats: Arc<IngestStats>,
    /// When unapplied records were first seen (the delay runs from there).
    waiting_since: Option<Instant>,
    retry: Option<(usize, Instant)>,
}

impl std::fmt::Debug for Ingester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// The applied position stored in the database (0 before any ingestion).
pub fn applied_seq(conn: &Connection) -> Result<u64, StorageError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT applied_seq FROM spool_position WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

impl Ingester {
    /// An ingester reading `spool` from `cursor`.
    pub fn new(spool: Arc<Spool>, cursor: Cursor, config: IngestConfig) -> Ingester {
        Ingester {
            spool,
            config: IngestConfig {
                batch: config.batch.max(1),
                ..config
            },
            cursor,
            in_flight: HashMap::new(),
            buf: Vec::new(),
            stats: Arc::new(IngestStats::default()),
            waiting_since: None,
            retry: None,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Records written and not yet applied.
    pub fn behind(&self) -> u64 {
        self.spool.stats().unapplied()
    }

    /// When the thread should next look, or `None` when nothing waits.
    pub fn deadline(&mut self, now: Instant) -> Option<Instant> {
        if self.behind() == 0 {
            self.waiting_since = None;
            self.stats.set_lag_ms(0);
            return None;
        }
        let since = *self.waiting_since.get_or_insert(now);
        self.stats
            .set_lag_ms(now.duration_since(since).as_millis() as u64);
        let due = since + self.config.max_delay;
        Some(match self.retry {
            Some((_, at)) => at.max(due),
            None => due,
        })
    }

    /// Called before the thread sleeps with nothing to apply: disarms the spool's bell so the
    /// next append rings it, then looks again. True when a record arrived in between (an
    /// append that found the bell still armed did not ring: without this look the thread
    /// would sleep on it until some command woke it).
    pub fn rearm(&self) -> bool {
        self.spool.disarm();
        self.behind() > 0
    }

    /// True when a batch should be applied now: the delay ran out or a batch is full, and no
    /// retry is being waited for.
    pub fn due(&mut self, now: Instant) -> bool {
        let behind = self.behind();
        if behind == 0 {
            return false;
        }
        if self.retry.is_some_and(|(_, at)| now < at) {
            return false;
        }
        behind >= self.config.batch as u64 || self.deadline(now).is_some_and(|d| now >= d)
    }

    /// Applies one batch; `Ok(0)` when the spool holds nothing more. On a database refusal
    /// the records stay and the next attempt waits for the backoff.
    pub fn step(&mut self, conn: &Connection, now: Instant) -> Result<usize, StorageError> {
        self.spool.disarm();
        self.buf.clear();
        let next = self
            .spool
            .read(self.cursor, self.config.batch, &mut self.buf)
            .map_err(|e| StorageError::Io {
                kind: std::io::ErrorKind::InvalidData,
                message: e.to_string(),
            })?;
        if self.buf.is_empty() {
            return Ok(0);
        }
        let last = self.buf.last().map_or(0, |(s, _)| *s);
        match self.commit(conn) {
            Ok(done) => {
                for (req, id) in done {
                    match id {
                        Some(id) => self.in_flight.insert(req, id),
                        None => self.in_flight.remove(&req),
                    };
                }
                let n = self.buf.len();
                self.cursor = next;
                self.retry = None;
                self.waiting_since = if self.spool.stats().last_written() > last {
                    Some(now)
                } else {
                    None
                };
                self.spool.release_through(last);
                self.stats.record_batch(n);
                Ok(n)
            }
            Err(e) => {
                self.stats.record_failure();
                let attempt = self.retry.map_or(0, |(a, _)| a + 1);
                let delay = RETRY_MS[attempt.min(RETRY_MS.len() - 1)];
                self.retry = Some((attempt, now + Duration::from_millis(delay)));
                Err(e)
            }
        }
    }

    /// Applies everything spooled so far (boot, shutdown, read-your-writes), ignoring the
    /// delay and the backoff; stops at the first refusal.
    pub fn drain(&mut self, conn: &Connection) -> Result<(), StorageError> {
        self.retry = None;
        while self.behind() > 0 {
            if self.step(conn, Instant::now())? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// One transaction: the batch, then the applied position. Returns the changes to the
    /// in-flight map, applied by the caller only after `COMMIT`.
    fn commit(&mut self, conn: &Connection) -> Result<Vec<(String, Option<i64>)>, StorageError> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let result = match self.apply_all(conn, false) {
            Ok(done) => Ok(done),
            Err(e) if is_batch_failure(&e) || conn.is_autocommit() => Err(e),
            // One record failed on its own: run again with a savepoint per record.
            Err(_) => {
                rollback(conn);
                conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                self.apply_all(conn, true)
            }
        };
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                rollback(conn);
                return Err(e);
            }
        };
        let last = self.buf.last().map_or(0, |(s, _)| *s);
        let position = conn
            .prepare_cached("UPDATE spool_position SET applied_seq = ?1 WHERE id = 1")
            .and_then(|mut s| s.execute([last as i64]));
        if let Err(e) = position {
            rollback(conn);
            return Err(e.into());
        }
        if let Err(e) = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
        {
            rollback(conn);
            return Err(e.into());
        }
        Ok(done)
    }

    fn apply_all(
        &self,
        conn: &Connection,
        isolate: bool,
    ) -> Result<Vec<(String, Option<i64>)>, StorageError> {
        let mut batch = Batch {
            ids: HashMap::new(),
            ends: HashMap::new(),
            merged: vec![false; self.buf.len()],
            isolated: isolate,
            // Summed over the batch, unless each record is isolated (a rejected record's
            // additions must roll back with it).
            daily: (!isolate).then(DailyTotals::default),
        };
        let mut done = Vec::new();
        let mut finals = None;
        // Index of the `End` of each call in this batch, for the single-insert path.
        for (i, (_, rec)) in self.buf.iter().enumerate() {
            if let Record::End { request_id, .. } = rec {
                batch.ends.entry(request_id.as_str()).or_insert(i);
            }
        }
        for (i, (seq, rec)) in self.buf.iter().enumerate() {
            if batch.merged[i] {
                continue;
            }
            if isolate {
                conn.prepare_cached("SAVEPOINT acp_rec")?.execute([])?;
            }
            let result = self.apply_one(conn, rec, i, &mut batch, &mut finals);
            match result {
                Ok(change) => {
                    if isolate {
                        conn.prepare_cached("RELEASE acp_rec")?.execute([])?;
                    }
                    done.extend(change);
                }
                Err(e) if !isolate || is_batch_failure(&e) || conn.is_autocommit() => {
                    return Err(e);
                }
                Err(e) => {
                    conn.execute_batch("ROLLBACK TO acp_rec; RELEASE acp_rec")?;
                    self.reject(*seq, rec, &e);
                }
            }
        }
        if let Some(daily) = &batch.daily {
            lifecycle::write_daily(conn, daily)?;
        }
        Ok(done)
    }

    fn apply_one<'b, 'c>(
        &'b self,
        conn: &'c Connection,
        rec: &'b Record,
        index: usize,
        batch: &mut Batch<'b>,
        finals: &mut Option<FinalInsert<'c>>,
    ) -> Result<Option<(String, Option<i64>)>, StorageError> {
        match rec {
            Record::Begin(row) => {
                // No usage checkpoint between them matters: the End carries the final counts.
                if let Some(&j) = batch.ends.get(row.request_id.as_str())
                    && j > index
                    && let Record::End { row: end, .. } = &self.buf[j].1
                {
                    let finals = match finals {
                        Some(f) => f,
                        None => finals.insert(FinalInsert::prepare(conn)?),
                    };
                    let id = finals.insert(conn, row, end, batch.daily.as_mut())?;
                    batch.ids.insert(row.request_id.as_str(), id);
                    batch.merged[j] = true;
                    return Ok(None);
                }
                let id = lifecycle::prelog(conn, row)?;
                batch.ids.insert(row.request_id.as_str(), id);
                Ok(Some((row.request_id.clone(), Some(id))))
            }
            Record::Usage { request_id, tokens } => {
                // Outside isolation, a checkpoint whose call ends later in this batch is
                // skipped: the `End` sets every token column it would.
                if !batch.isolated
                    && batch
                        .ends
                        .get(request_id.as_str())
                        .is_some_and(|&j| j > index)
                {
                    return Ok(None);
                }
                let id = self.resolve(conn, request_id, &batch.ids)?;
                lifecycle::checkpoint(conn, id, tokens)?;
                Ok(None)
            }
            Record::End { request_id, row } => {
                let id = self.resolve(conn, request_id, &batch.ids)?;
                let mut row = (**row).clone();
                row.id = id;
                lifecycle::finalize(conn, &row, batch.daily.as_mut())?;
                Ok(Some((request_id.clone(), None)))
            }
            Record::Fallback {
                request_id,
                message,
                now,
            } => {
                let id = self.resolve(conn, request_id, &batch.ids)?;
                lifecycle::fallback(conn, id, message, now)?;
                Ok(Some((request_id.clone(), None)))
            }
        }
    }

    fn resolve(
        &self,
        conn: &Connection,
        request_id: &str,
        batch_ids: &HashMap<&str, i64>,
    ) -> Result<i64, StorageError> {
        if let Some(id) = batch_ids.get(request_id) {
            return Ok(*id);
        }
        if let Some(id) = self.in_flight.get(request_id) {
            return Ok(*id);
        }
        conn.prepare_cached(
            "SELECT id FROM request_logs WHERE request_id = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([request_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StorageError::Sqlite {
            code: None,
            message: format!("no row for request_id {request_id}"),
        })
    }

    fn reject(&self, seq: u64, rec: &Record, e: &StorageError) {
        self.stats.record_rejected();
        let mut path: Option<PathBuf> = None;
        if let Some(dir) = self.spool.dir() {
            let dir = dir.join("rejected");
            let mut frame = Vec::new();
            codec::encode(rec, &mut frame);
            codec::seal(&mut frame, seq);
            let file = dir.join(format!("{seq:020}.rec"));
            if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&file, &frame).is_ok() {
                path = Some(file);
            }
        }
        tracing::error!(
            event = "spool.record_rejected",
            seq,
            kind = rec.kind().label(),
            request_id = rec.request_id(),
            reason = %e,
            copy = path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "spool record rejected by the database"
        );
    }
}

/// What one batch's records share while they are applied.
struct Batch<'b> {
    /// Row ids of the calls begun in this batch.
    ids: HashMap<&'b str, i64>,
    /// Index of the first `End` of each call in this batch.
    ends: HashMap<&'b str, usize>,
    /// `End`s already written with their `Begin`.
    merged: Vec<bool>,
    /// Each record under its own savepoint (after the batch as a whole was refused): every
    /// record is applied as it is, none skipped or summed.
    isolated: bool,
    daily: Option<DailyTotals>,
}

fn is_batch_failure(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::Busy | StorageError::Full | StorageError::ReadOnly | StorageError::Io { .. }
    )
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Applies a spool left by a daemon that is not running (`docs/spool.md` §5a): the commands
/// that open the database offline call this first, so what they read or copy is complete.
/// Returns the records applied; 0 when there is no spool, or when the database lock is held
/// (a running daemon owns the spool and applies it itself).
pub fn apply_leftover(
    path: &crate::DbPath,
    spool_dir: &std::path::Path,
) -> Result<u64, StorageError> {
    let has_segments = std::fs::read_dir(spool_dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".seg"))
    });
    if !has_segments {
        return Ok(0);
    }
    let Ok(_lock) = crate::DbLock::acquire(path) else {
        return Ok(0);
    };
    let mut store = crate::Store::open(path)?;
    store.migrate()?;
    let conn = store.connection();
    let applied = applied_seq(conn)?;
    let opened = Spool::open(
        crate::spool::SpoolConfig::in_dir(spool_dir),
        applied,
        Arc::new(crate::spool::Doorbell::default()),
    )
    .map_err(|e| StorageError::Io {
        kind: std::io::ErrorKind::InvalidData,
        message: e.to_string(),
    })?;
    let mut ingester = Ingester::new(opened.spool, opened.cursor, IngestConfig::default());
    let behind = ingester.behind();
    ingester.drain(conn)?;
    Ok(behind)
}
