//! [`PgBackend`]: everything one replica runs on PostgreSQL, in the shapes the daemon
//! already uses for SQLite, so `serve` keeps one command type and one read trait:
//!
//! * [`PgBackend::writer`]: a [`WriterHandle`] whose commands the `acp-pg-control` thread
//!   serves on its own session ([`control::execute`], scoped to this replica);
//! * [`PgBackend::readers`]: the [`PgReaders`] pool for the reads ([`Queries`] on each
//!   [`PgStore`]);
//! * [`PgBackend::spool`] and [`PgBackend::ingest`]: the spool the data path appends to and
//!   the storage crate's ingestion counters, applied by the `acp-pg-ingest` thread
//!   ([`PgIngestHandle`]).
//!
//! How the control thread answers each command, where it differs from applying it:
//!
//! * `SpoolFlush`: waits up to [`FLUSH_TIMEOUT`] for the ingest thread and answers
//!   `Flushed { behind, lag_ms }` as the SQLite writer does (`lag_ms` 0 when caught up). A
//!   server that is down makes it answer in time with `behind > 0`.
//! * `BootRecovery`, `ShutdownFinalize`: the spool is applied first (up to
//!   [`SETTLE_TIMEOUT`]), because they judge which rows are still pending; when records
//!   remain behind they are not run and answer an error, so a call whose end is still
//!   spooled is never aborted (the rows stay pending for the next boot recovery, S5).
//! * `Correlate`, `BackfillChunk`: the spool is flushed first, as SQLite ingests before them
//!   (they read a row's final usage), and they run whatever the flush answered.
//! * `WalCheckpoint`: nothing to do without a WAL; answers what SQLite answers for a
//!   database not in WAL mode.
//! * `Shutdown`: refuses further commands, answers those already queued, stops the ingest
//!   thread (which applies what it can within `thread::SHUTDOWN_DRAIN`; the rest stays
//!   spooled for the next start), then
//!   answers `Done` and the thread ends.
//! * The data-path commands (`PreLog`, `CheckpointUsage`, `Finalize`, `FinalizeFallback`)
//!   arrive as spool records on this backend; sent as commands they answer an error.
//! * Every other command runs as is; a failure (server down, a refused statement) answers
//!   [`StorageError::Server`] and the thread carries on, reopening its session when it
//!   finds it closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_cli_proxy_storage::ingest::IngestStats;
use agent_cli_proxy_storage::op::CheckpointInfo;
use agent_cli_proxy_storage::spool::{Spool, SpoolConfig, TornTail};
use agent_cli_proxy_storage::writer::CHANNEL_CAPACITY;
use agent_cli_proxy_storage::{CommandQueue, Op, Reply, StorageError, WriterHandle};

#[cfg(doc)]
use crate::control;
#[cfg(doc)]
use agent_cli_proxy_storage::Queries;

use crate::PgStore;
use crate::error::PgError;
use crate::pool::PgReaders;
use crate::thread::{Clock, PgIngestHandle, ThreadConfig};

/// Name of the thread serving the commands.
pub const CONTROL_THREAD: &str = "acp-pg-control";
/// How long `SpoolFlush` waits for the ingest thread.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long boot recovery and shutdown finalize wait for the spool to be applied.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Sessions of the read pool, as many as the SQLite readers.
pub const READERS: usize = agent_cli_proxy_storage::conn::MAX_READERS;

/// The PostgreSQL backend of one replica, started by [`PgBackend::start`].
#[derive(Debug)]
pub struct PgBackend {
    /// Control-plane commands, flush and shutdown.
    pub writer: WriterHandle,
    /// The read pool.
    pub readers: PgReaders,
    /// The spool the data path appends to.
    pub spool: Arc<Spool>,
    /// Ingestion counters (`/metrics`, `/ready`).
    pub ingest: Arc<IngestStats>,
    /// A torn tail cut off the spool at start (`spool.torn_tail`), for the caller to log.
    pub torn: Option<TornTail>,
    /// Records a previous run left in the spool, applied before `start` returned.
    pub boot_ingested: u64,
    /// The control thread; it ends after `Shutdown` (or when every handle is dropped).
    pub join: std::thread::JoinHandle<()>,
}

impl PgBackend {
    /// Connects to `url` and migrates (under the migration lock), starts the ingest thread
    /// for `replica` (it applies what the previous run left before this returns), and starts
    /// the control thread. `thread.replica` is replaced by `replica`. The read pool connects
    /// on first use.
    pub fn start(
        url: &str,
        replica: &str,
        spool: SpoolConfig,
        mut thread: ThreadConfig,
        clock: Clock,
    ) -> Result<PgBackend, PgError> {
        let readers = PgReaders::new(url, READERS)?;
        let mut store = PgStore::connect(url)?;
        store.migrate()?;
        thread.replica = replica.to_owned();
        let (ingest, torn) = PgIngestHandle::spawn(PgStore::connect(url)?, spool, thread, clock)?;
        let (writer, queue) = WriterHandle::served_elsewhere(CHANNEL_CAPACITY);
        let spool = Arc::clone(ingest.spool());
        let stats = Arc::clone(ingest.stats());
        let boot_ingested = ingest.boot_ingested();
        let control = Control {
            store,
            replica: replica.to_owned(),
            ingest,
            last_used: Instant::now(),
        };
        let join = std::thread::Builder::new()
            .name(CONTROL_THREAD.to_owned())
            .spawn(move || control.run(queue))
            .map_err(|e| PgError::Spool(format!("cannot start {CONTROL_THREAD}: {e}")))?;
        Ok(PgBackend {
            writer,
            readers,
            spool,
            ingest: stats,
            torn,
            boot_ingested,
            join,
        })
    }
}

struct Control {
    store: PgStore,
    replica: String,
    ingest: PgIngestHandle,
    /// When the session last answered, to ping it after a pause (see `PgStore::revive`).
    last_used: Instant,
}

impl Control {
    fn run(mut self, queue: CommandQueue) {
        let mut stopping = Vec::new();
        while let Some(cmd) = queue.recv() {
            if matches!(cmd.op, Op::Shutdown) {
                // What is already queued is still answered; `recv` ends once it is taken.
                queue.close();
                stopping.push(cmd);
                continue;
            }
            let result = self.serve(&cmd.op);
            if let Err(e) = &result {
                tracing::warn!(event = "storage.command_failed", op = cmd.op.name(), reason = %e, "PostgreSQL command failed");
            }
            cmd.answer(result);
        }
        let left = self.ingest.shutdown();
        if left > 0 {
            tracing::warn!(
                event = "spool.left_at_shutdown",
                records = left,
                "spooled records not yet in PostgreSQL; the next start applies them"
            );
        }
        for cmd in stopping {
            cmd.answer(Ok(Reply::Done));
        }
    }

    fn serve(&mut self, op: &Op) -> Result<Reply, StorageError> {
        match op {
            Op::SpoolFlush => {
                let behind = self.ingest.flush(FLUSH_TIMEOUT);
                Ok(Reply::Flushed {
                    behind,
                    lag_ms: if behind == 0 {
                        0
                    } else {
                        self.ingest.stats().lag_ms()
                    },
                })
            }
            Op::WalCheckpoint => Ok(Reply::Checkpoint(CheckpointInfo {
                busy: 0,
                log_frames: -1,
                checkpointed_frames: -1,
            })),
            Op::BootRecovery { .. } | Op::ShutdownFinalize { .. } => {
                let behind = self.ingest.flush(SETTLE_TIMEOUT);
                if behind > 0 {
                    return Err(StorageError::Server {
                        message: format!(
                            "{} not run: {behind} spooled records are not in the database yet",
                            op.name()
                        ),
                    });
                }
                self.execute(op)
            }
            Op::Correlate(_) | Op::BackfillChunk(_) => {
                // The reply says nothing of the flush; a server that is down fails the
                // command itself.
                let _ = self.ingest.flush(FLUSH_TIMEOUT);
                self.execute(op)
            }
            _ => self.execute(op),
        }
    }

    fn execute(&mut self, op: &Op) -> Result<Reply, StorageError> {
        self.store.revive(self.last_used.elapsed())?;
        let result = self.store.execute(&self.replica, op);
        self.last_used = Instant::now();
        Ok(result?)
    }
}
