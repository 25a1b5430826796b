//! A replica's ingester: reads its spool from the position PostgreSQL holds for it and
//! applies it in batches ([`crate::ingest::apply_batch`]), the PostgreSQL counterpart of the
//! SQLite writer thread's `storage::ingest::Ingester` (`docs/spool.md` §4,
//! `docs/replicas.md` §3).
//!
//! * Opening reads the replica's `applied_seq` first and opens the spool from there, so
//!   whatever a previous run committed is skipped and the rest is applied: S4 per replica
//!   across any crash.
//! * A segment is released only after the batch that passed it committed.
//! * A refused batch (server down, connection lost) is retried after 50, 200 and 800 ms,
//!   then every 5 s; the records stay in the spool meanwhile and the connection is reopened
//!   before the next attempt. The data path is not involved: it keeps appending.
//! * A record the server refuses on its own is logged (`spool.record_rejected`), counted and
//!   copied to `<SPOOL_DIR>/rejected/<seq>.rec` in the spool's own framing, as SQLite does.
//!
//! The thread and its schedule (doorbell, `SPOOL_INGEST_MAX_DELAY_MS`) are the caller's; this
//! type only says when it is [`due`](PgIngester::due).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agent_cli_proxy_storage::ingest::IngestStats;
use agent_cli_proxy_storage::spool::codec;
use agent_cli_proxy_storage::spool::{Cursor, Doorbell, Record, Spool, SpoolConfig, TornTail};

use crate::PgStore;
use crate::error::PgError;

/// Retry delays of a refused batch; the last repeats.
const RETRY_MS: [u64; 4] = [50, 200, 800, 5_000];

/// The ingester of one replica's spool.
pub struct PgIngester {
    spool: Arc<Spool>,
    replica: String,
    batch: usize,
    cursor: Cursor,
    buf: Vec<(u64, Record)>,
    retry: Option<(usize, Instant)>,
    /// The storage crate's counters, so `/metrics` and `/ready` read the same figures on
    /// both backends.
    stats: Arc<IngestStats>,
    /// Records naming a call without a row; SQLite counts these as rejected, here they are
    /// skipped without a copy, so they are counted apart.
    orphans: Arc<AtomicU64>,
    /// When unapplied records were first seen (the delay runs from there).
    waiting_since: Option<Instant>,
}

impl std::fmt::Debug for PgIngester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgIngester")
            .field("replica", &self.replica)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// What [`PgIngester::open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The ingester.
    pub ingester: PgIngester,
    /// A torn tail cut off the last segment (`spool.torn_tail`).
    pub torn: Option<TornTail>,
}

impl PgIngester {
    /// Opens `replica`'s spool from the position the database holds for it. `batch` is
    /// `SPOOL_INGEST_BATCH`.
    pub fn open(
        store: &mut PgStore,
        replica: &str,
        spool: SpoolConfig,
        batch: usize,
        bell: Arc<Doorbell>,
    ) -> Result<Opened, PgError> {
        let applied = store.applied_seq(replica)?;
        let opened =
            Spool::open(spool, applied, bell).map_err(|e| PgError::Spool(e.to_string()))?;
        Ok(Opened {
            ingester: PgIngester {
                spool: opened.spool,
                replica: replica.to_owned(),
                batch: batch.max(1),
                cursor: opened.cursor,
                buf: Vec::new(),
                retry: None,
                stats: Arc::new(IngestStats::default()),
                orphans: Arc::new(AtomicU64::new(0)),
                waiting_since: None,
            },
            torn: opened.torn,
        })
    }

    /// The spool the data path appends to.
    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Records skipped because they name a call without a row (shared with the thread that
    /// runs this ingester).
    pub fn orphans(&self) -> &Arc<AtomicU64> {
        &self.orphans
    }

    /// Records written and not yet applied.
    pub fn behind(&self) -> u64 {
        self.spool.stats().unapplied()
    }

    /// True when records wait and no retry delay is running.
    pub fn due(&self, now: Instant) -> bool {
        self.behind() > 0 && self.retry.is_none_or(|(_, at)| now >= at)
    }

    /// True when a batch should be applied now: records wait, no backoff runs, and either a
    /// full batch is there or the oldest has waited `max_delay`
    /// (`SPOOL_INGEST_MAX_DELAY_MS`).
    pub fn ready(&mut self, now: Instant, max_delay: Duration) -> bool {
        self.due(now)
            && (self.behind() >= self.batch as u64
                || self.deadline(now, max_delay).is_some_and(|d| now >= d))
    }

    /// When the caller should look again, or `None` when nothing waits.
    pub fn deadline(&mut self, now: Instant, max_delay: Duration) -> Option<Instant> {
        if self.behind() == 0 {
            self.waiting_since = None;
            self.stats.set_lag_ms(0);
            return None;
        }
        let since = *self.waiting_since.get_or_insert(now);
        self.stats
            .set_lag_ms(now.saturating_duration_since(since).as_millis() as u64);
        let due = since + max_delay;
        Some(match self.retry {
            Some((_, at)) => at.max(due),
            None => due,
        })
    }

    /// Called before the thread sleeps with nothing to apply: disarms the spool's bell so the
    /// next append rings it, then looks again; true when a record arrived in between (its
    /// append found the bell still armed and did not ring).
    pub fn rearm(&self) -> bool {
        self.spool.disarm();
        self.behind() > 0
    }

    /// Applies one batch; `Ok(0)` when the spool holds nothing more. `now` stamps the
    /// position row. On a refusal the records stay and the next attempt waits for the
    /// backoff (see [`due`](Self::due)).
    pub fn step(&mut self, store: &mut PgStore, now: &str) -> Result<usize, PgError> {
        self.spool.disarm();
        self.buf.clear();
        let next = self
            .spool
            .read(self.cursor, self.batch, &mut self.buf)
            .map_err(|e| PgError::Spool(e.to_string()))?;
        let Some(last) = self.buf.last().map(|(s, _)| *s) else {
            return Ok(0);
        };
        let result = store
            .ensure_connected()
            .and_then(|()| store.apply_batch(&self.replica, &self.buf, Some(next), now));
        match result {
            Ok(outcome) => {
                self.cursor = next;
                self.retry = None;
                self.spool.release_through(last);
                self.waiting_since = (self.spool.stats().last_written() > last).then(Instant::now);
                // The batch's size, as the SQLite ingester counts it (skipped, orphaned and
                // rejected records included), so the histograms compare.
                self.stats.record_batch(self.buf.len());
                self.orphans
                    .fetch_add(outcome.orphans.len() as u64, Ordering::Relaxed);
                for (seq, reason) in &outcome.rejected {
                    self.reject(*seq, reason);
                }
                Ok(self.buf.len())
            }
            Err(e) => {
                self.stats.record_failure();
                let attempt = self.retry.map_or(0, |(a, _)| a + 1);
                let delay = RETRY_MS[attempt.min(RETRY_MS.len() - 1)];
                self.retry = Some((attempt, Instant::now() + Duration::from_millis(delay)));
                Err(e)
            }
        }
    }

    /// Applies everything spooled so far (boot), ignoring the backoff; stops at the first
    /// refusal. Returns the records applied.
    pub fn drain(&mut self, store: &mut PgStore, now: &str) -> Result<u64, PgError> {
        self.drain_while(store, now, || true)
    }

    /// [`drain`](Self::drain), asking `more` before each batch and stopping when it says
    /// no: a shutdown bounds its drain this way, the rest waits in the spool for the next
    /// start.
    pub fn drain_while(
        &mut self,
        store: &mut PgStore,
        now: &str,
        mut more: impl FnMut() -> bool,
    ) -> Result<u64, PgError> {
        self.retry = None;
        let mut total = 0u64;
        while self.behind() > 0 && more() {
            let n = self.step(store, now)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        Ok(total)
    }

    fn reject(&self, seq: u64, reason: &str) {
        self.stats.record_rejected();
        let Some((_, rec)) = self.buf.iter().find(|(s, _)| *s == seq) else {
            return;
        };
        let mut copy: Option<PathBuf> = None;
        if let Some(dir) = self.spool.dir() {
            let dir = dir.join("rejected");
            let mut frame = Vec::new();
            codec::encode(rec, &mut frame);
            codec::seal(&mut frame, seq);
            let file = dir.join(format!("{seq:020}.rec"));
            if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&file, &frame).is_ok() {
                copy = Some(file);
            }
        }
        tracing::error!(
            event = "spool.record_rejected",
            seq,
            kind = rec.kind().label(),
            request_id = rec.request_id(),
            reason,
            copy = copy.map(|p| p.display().to_string()).unwrap_or_default(),
            "spool record rejected by PostgreSQL"
        );
    }
}
