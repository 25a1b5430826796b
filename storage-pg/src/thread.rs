//! The replica's ingestion thread (`acp-pg-ingest`): runs a [`PgIngester`] on its own
//! connection, as the SQLite writer thread runs the SQLite ingester (`docs/spool.md` §4),
//! and refreshes the replica's `replicas.seen_at` (`docs/replicas.md` §3). A plain OS thread:
//! no async runtime is asked of the caller, and both shells can own it.
//!
//! * The data path appends to [`PgIngestHandle::spool`] and never waits for this thread.
//! * A batch is applied when it is full or its oldest record has waited `max_delay`.
//! * [`PgIngestHandle::flush`] is read-your-writes (S6): it wakes the thread, which applies
//!   at once whatever is spooled, and waits until the position taken at the call is applied
//!   or the time is up; it answers what is still behind.
//! * [`PgIngestHandle::shutdown`] applies what it can within [`SHUTDOWN_DRAIN`], then stops
//!   the thread: the spool is durable, so a backlog larger than that is left for the next
//!   start rather than holding the stop past a service manager's timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_cli_proxy_storage::ingest::IngestStats;
use agent_cli_proxy_storage::spool::{Doorbell, Spool, SpoolConfig, TornTail};

use crate::PgStore;
use crate::error::PgError;
use crate::ingester::PgIngester;

/// Name of the thread.
pub const THREAD_NAME: &str = "acp-pg-ingest";

/// How long [`PgIngestHandle::shutdown`] keeps applying batches. A service manager's stop
/// timeout is commonly 10 s or more (systemd's default is 90 s), and the boot of the next
/// start applies whatever is left.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// The wall clock as ISO-8601 text, supplied by the caller (the storage layers never read
/// the clock for a value they write).
pub type Clock = Arc<dyn Fn() -> String + Send + Sync>;

/// Settings of the thread.
#[derive(Debug, Clone)]
pub struct ThreadConfig {
    /// This replica's id.
    pub replica: String,
    /// `SPOOL_INGEST_BATCH`.
    pub batch: usize,
    /// `SPOOL_INGEST_MAX_DELAY_MS`.
    pub max_delay: Duration,
    /// How often `replicas.seen_at` is refreshed (30 s).
    pub heartbeat: Duration,
    /// Host name recorded in `replicas`.
    pub host: String,
    /// Product version recorded in `replicas`.
    pub version: String,
}

struct Shared {
    urgent: AtomicBool,
    stop: AtomicBool,
    /// Until when a stopping thread may still apply batches; set before `stop`.
    stop_by: Mutex<Option<Instant>>,
    /// Notified after every pass of the loop, for `flush`.
    progress: (Mutex<()>, Condvar),
}

/// The running thread.
pub struct PgIngestHandle {
    spool: Arc<Spool>,
    bell: Arc<Doorbell>,
    shared: Arc<Shared>,
    stats: Arc<IngestStats>,
    orphans: Arc<AtomicU64>,
    boot_ingested: u64,
    join: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PgIngestHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgIngestHandle").finish_non_exhaustive()
    }
}

impl PgIngestHandle {
    /// Opens the replica's spool from its database position, applies what a previous run
    /// left (boot, before the listener binds: S5), records the replica, and starts the
    /// thread. Returns a torn tail cut at open, for the caller to log.
    pub fn spawn(
        mut store: PgStore,
        spool: SpoolConfig,
        config: ThreadConfig,
        clock: Clock,
    ) -> Result<(PgIngestHandle, Option<TornTail>), PgError> {
        let bell = Arc::new(Doorbell::default());
        let opened = PgIngester::open(
            &mut store,
            &config.replica,
            spool,
            config.batch,
            Arc::clone(&bell),
        )?;
        let mut ingester = opened.ingester;
        let boot_ingested = ingester.behind();
        ingester.drain(&mut store, &clock())?;
        let now = clock();
        store.register_replica(&config.replica, &config.host, &config.version, &now)?;
        let shared = Arc::new(Shared {
            urgent: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            stop_by: Mutex::new(None),
            progress: (Mutex::new(()), Condvar::new()),
        });
        let spool = Arc::clone(ingester.spool());
        let stats = Arc::clone(ingester.stats());
        let orphans = Arc::clone(ingester.orphans());
        let mut state = Loop {
            store,
            ingester,
            config,
            clock,
            bell: Arc::clone(&bell),
            shared: Arc::clone(&shared),
            next_heartbeat: Instant::now(),
        };
        state.next_heartbeat += state.config.heartbeat;
        let join = std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || state.run())
            .map_err(|e| PgError::Spool(format!("cannot start {THREAD_NAME}: {e}")))?;
        Ok((
            PgIngestHandle {
                spool,
                bell,
                shared,
                stats,
                orphans,
                boot_ingested,
                join: Some(join),
            },
            opened.torn,
        ))
    }

    /// The spool the data path appends to.
    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// The counters (the storage crate's, as the SQLite writer keeps them).
    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Records skipped because they name a call without a row.
    pub fn orphans(&self) -> u64 {
        self.orphans.load(Ordering::Relaxed)
    }

    /// Records a previous run left in the spool, applied by [`spawn`](Self::spawn).
    pub fn boot_ingested(&self) -> u64 {
        self.boot_ingested
    }

    /// Read-your-writes: waits up to `timeout` until everything spooled before the call is
    /// applied; returns the records still behind (0 when caught up).
    pub fn flush(&self, timeout: Duration) -> u64 {
        let target = self.spool.stats().last_written();
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &self.shared.progress;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let applied = self.spool.stats().applied();
            if applied >= target {
                return 0;
            }
            let now = Instant::now();
            if now >= deadline || self.join.as_ref().is_none_or(|j| j.is_finished()) {
                return target - applied;
            }
            self.shared.urgent.store(true, Ordering::Release);
            self.bell.ring();
            guard = cvar
                .wait_timeout(guard, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Applies what it can within [`SHUTDOWN_DRAIN`], then stops the thread; returns the
    /// records left unapplied (the database refused the last attempt, or the backlog was
    /// larger than the bound); they stay in the spool for the next start.
    pub fn shutdown(self) -> u64 {
        self.shutdown_within(SHUTDOWN_DRAIN)
    }

    /// [`shutdown`](Self::shutdown) with another bound: no batch starts after `budget` has
    /// passed (the one running then is finished, its transaction is not cut).
    pub fn shutdown_within(mut self, budget: Duration) -> u64 {
        self.stop_thread_within(budget);
        self.spool.stats().unapplied()
    }

    fn stop_thread(&mut self) {
        self.stop_thread_within(SHUTDOWN_DRAIN);
    }

    fn stop_thread_within(&mut self, budget: Duration) {
        {
            let mut by = self
                .shared
                .stop_by
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if by.is_none() {
                *by = Some(Instant::now() + budget);
            }
        }
        self.shared.stop.store(true, Ordering::Release);
        self.bell.ring();
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

impl Drop for PgIngestHandle {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

impl Shared {
    fn within_stop_budget(&self) -> bool {
        let by = *self.stop_by.lock().unwrap_or_else(PoisonError::into_inner);
        by.is_none_or(|by| Instant::now() < by)
    }
}

struct Loop {
    store: PgStore,
    ingester: PgIngester,
    config: ThreadConfig,
    clock: Clock,
    bell: Arc<Doorbell>,
    shared: Arc<Shared>,
    next_heartbeat: Instant,
}

impl Loop {
    fn run(&mut self) {
        loop {
            let stop = self.shared.stop.load(Ordering::Acquire);
            if stop || self.shared.urgent.swap(false, Ordering::AcqRel) {
                // A refusal is counted by the ingester and said by `flush`'s answer. A
                // shutdown asked for during a flush's drain bounds that drain too.
                let shared = &self.shared;
                let _ = self
                    .ingester
                    .drain_while(&mut self.store, &(self.clock)(), || {
                        !shared.stop.load(Ordering::Acquire) || shared.within_stop_budget()
                    });
            } else if self.ingester.ready(Instant::now(), self.config.max_delay) {
                let _ = self.ingester.step(&mut self.store, &(self.clock)());
            }
            self.notify();
            if stop {
                return;
            }
            let now = Instant::now();
            if now >= self.next_heartbeat {
                self.next_heartbeat = now + self.config.heartbeat;
                let c = &self.config;
                let result = self.store.ensure_connected().and_then(|()| {
                    self.store
                        .register_replica(&c.replica, &c.host, &c.version, &(self.clock)())
                });
                if let Err(e) = result {
                    tracing::warn!(event = "replica.heartbeat_failed", reason = %e, "replicas.seen_at not refreshed");
                }
            }
            if self.ingester.ready(Instant::now(), self.config.max_delay) {
                continue;
            }
            let deadline = match self
                .ingester
                .deadline(Instant::now(), self.config.max_delay)
            {
                Some(d) => d.min(self.next_heartbeat),
                // Nothing behind: re-arm and look again before sleeping until the heartbeat,
                // or an append that landed after `step` disarmed the bell (and so did not
                // ring it) would wait up to 30 s.
                None if self.ingester.rearm() => continue,
                None => self.next_heartbeat,
            };
            self.bell.wait(Some(deadline));
        }
    }

    fn notify(&self) {
        let (lock, cvar) = &self.shared.progress;
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        cvar.notify_all();
    }
}
