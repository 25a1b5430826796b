//! The writer thread (`control.md` §3.2): one named OS thread owns the only write
//! connection and commits commands in groups.
//!
//! * Commands arrive on a bounded `async-channel` (capacity 1 024): `send` is async and
//!   works from any runtime; the thread uses `recv_blocking`. Replies go back through
//!   `futures-channel` one-shots, so nothing here depends on an async runtime.
//! * Group commit: block for one command, take up to 255 more already queued (never wait for
//!   more), run them in one `BEGIN IMMEDIATE … COMMIT`, each in its own savepoint, and reply
//!   only after `COMMIT` returned. A command that fails rolls back its savepoint alone (the
//!   group first runs without savepoints and is re-run with them only when a command fails;
//!   see `try_group`).
//! * A busy or locked `BEGIN`/`COMMIT` (after the busy timeout) retries the whole batch
//!   after 50, 200 and 800 ms, then fails every command of it. Full, read-only and I/O
//!   errors fail the batch at once.
//! * `WalCheckpoint` and `Shutdown` are barriers: the commands before them commit first.
//!   `Shutdown` closes the channel, drains what is already queued, and the thread exits;
//!   its reply comes after the drain. Later sends get `WriterGone`, as do all commands if the
//!   thread dies.
//! * The writer's connection sets `PRAGMA ignore_check_constraints = ON`
//!   ([`Store::into_writer_connection`], before the boot drain too). The schema's
//!   `CHECK (cost_status IN (…))` and `CHECK (lifecycle_status IN (…))` stay as the spec
//!   writes them, and every other connection (CLI commands, the `sqlite3` shell) still
//!   enforces them; but SQLite evaluates a four-value `IN` list through a temporary B-tree
//!   built and torn down on every execution, twice per pre-log and twice per finalize, which
//!   cost about a tenth of the writer thread. Every value this thread writes into those two
//!   columns is a string literal in our SQL or the `as_str()` of a Rust enum
//!   (`CostStatus`, `Terminal`), so the check can never fail here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use async_channel::{Receiver, Sender, TryRecvError, TrySendError};
use futures_channel::oneshot;
use rusqlite::Connection;

use crate::apply::{apply, wal_checkpoint};
use crate::conn::{ConnOptions, DbPath};
use crate::error::StorageError;
use crate::ingest::{IngestConfig, IngestStats, Ingester};
use crate::op::{FailureOp, Op, Reply};
use crate::spool::{Doorbell, Spool, SpoolConfig, TornTail};
use crate::store::Store;

/// The thread's name.
pub const THREAD_NAME: &str = "acp-sqlite-writer";
/// Capacity of the command channel.
pub const CHANNEL_CAPACITY: usize = 1_024;
/// Commands per group commit at most.
pub const MAX_BATCH: usize = 256;

/// Writer settings; the defaults are those of `control.md` §3.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// Connection options (busy timeout).
    pub conn: ConnOptions,
    /// Delays before each retry of a busy batch, in milliseconds.
    pub retry_delays_ms: Vec<u64>,
    /// Channel capacity.
    pub capacity: usize,
    /// Commands per group at most.
    pub max_batch: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            conn: ConnOptions::default(),
            retry_delays_ms: vec![50, 200, 800],
            capacity: CHANNEL_CAPACITY,
            max_batch: MAX_BATCH,
        }
    }
}

/// Counters of the writer, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    prelog_failures: AtomicU64,
    finalize_failures: AtomicU64,
    other_failures: AtomicU64,
    dropped: AtomicU64,
    batches: AtomicU64,
    commands: AtomicU64,
}

impl WriterStats {
    /// `agent_cli_proxy_storage_failures_total{op}`.
    pub fn failures(&self, op: FailureOp) -> u64 {
        match op {
            FailureOp::Prelog => self.prelog_failures.load(Ordering::Relaxed),
            FailureOp::Finalize => self.finalize_failures.load(Ordering::Relaxed),
            FailureOp::Other => self.other_failures.load(Ordering::Relaxed),
        }
    }

    /// Fire-and-forget commands dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Transactions attempted (one per group; retries not counted).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Commands executed.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    fn count_failure(&self, op: FailureOp) {
        let counter = match op {
            FailureOp::Prelog => &self.prelog_failures,
            FailureOp::Finalize => &self.finalize_failures,
            FailureOp::Other => &self.other_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

type ReplySender = oneshot::Sender<Result<Reply, StorageError>>;

#[derive(Debug)]
struct Envelope {
    op: Op,
    reply: Option<ReplySender>,
}

/// Starts the writer thread.
pub struct Writer;

impl Writer {
    /// Opens the write connection, migrates (idempotent; asserts the schema) and starts the
    /// thread.
    pub fn spawn(
        path: &DbPath,
        config: WriterConfig,
    ) -> Result<(WriterHandle, JoinHandle<()>), StorageError> {
        let mut store = Store::open_with(path, config.conn)?;
        store.migrate()?;
        Writer::spawn_with_store(store, config)
    }

    /// Starts the thread on an already opened and migrated store (keeps an in-memory
    /// database alive across the hand-over).
    pub fn spawn_with_store(
        store: Store,
        config: WriterConfig,
    ) -> Result<(WriterHandle, JoinHandle<()>), StorageError> {
        Writer::start(
            store.into_writer_connection()?,
            config,
            Arc::new(Doorbell::default()),
            None,
        )
    }

    /// Opens the database and the spool, applies the whole spool (`docs/spool.md` S5: before
    /// boot recovery and the bind), then starts the thread as the spool's ingester.
    pub fn spawn_with_spool(
        path: &DbPath,
        config: WriterConfig,
        spool: SpoolConfig,
        ingest: IngestConfig,
    ) -> Result<Spooled, StorageError> {
        let mut store = Store::open_with(path, config.conn)?;
        store.migrate()?;
        // Set before the boot drain, which applies records as the thread later does.
        let conn = store.into_writer_connection()?;
        let applied = crate::ingest::applied_seq(&conn)?;
        let bell = Arc::new(Doorbell::default());
        let opened =
            Spool::open(spool, applied, Arc::clone(&bell)).map_err(|e| StorageError::Io {
                kind: std::io::ErrorKind::InvalidData,
                message: e.to_string(),
            })?;
        let mut ingester = Ingester::new(Arc::clone(&opened.spool), opened.cursor, ingest);
        let before = ingester.behind();
        ingester.drain(&conn)?;
        let ingest_stats = Arc::clone(ingester.stats());
        let (handle, join) = Writer::start(conn, config, bell, Some(ingester))?;
        Ok(Spooled {
            writer: handle,
            join,
            spool: opened.spool,
            ingest: ingest_stats,
            torn: opened.torn,
            boot_ingested: before,
        })
    }

    fn start(
        conn: Connection,
        config: WriterConfig,
        bell: Arc<Doorbell>,
        ingester: Option<Ingester>,
    ) -> Result<(WriterHandle, JoinHandle<()>), StorageError> {
        let (tx, rx) = async_channel::bounded(config.capacity.max(1));
        let stats = Arc::new(WriterStats::default());
        let thread_stats = Arc::clone(&stats);
        let thread_bell = Arc::clone(&bell);
        let join = std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || {
                let mut thread = Thread {
                    conn,
                    rx,
                    cfg: config,
                    stats: thread_stats,
                    bell: thread_bell,
                    ingester,
                };
                thread.run();
            })?;
        Ok((WriterHandle { tx, stats, bell }, join))
    }
}

/// The writer started as the spool's ingester.
#[derive(Debug)]
pub struct Spooled {
    /// The writer's handle (control-plane commands, flush, shutdown).
    pub writer: WriterHandle,
    /// The thread.
    pub join: JoinHandle<()>,
    /// The spool the data path appends to.
    pub spool: Arc<Spool>,
    /// Ingestion counters.
    pub ingest: Arc<IngestStats>,
    /// A torn tail cut off at boot (`spool.torn_tail`).
    pub torn: Option<TornTail>,
    /// Records applied at boot (left by the previous run).
    pub boot_ingested: u64,
}

/// A cloneable handle to the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: Sender<Envelope>,
    stats: Arc<WriterStats>,
    bell: Arc<Doorbell>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("queued", &self.tx.len())
            .finish_non_exhaustive()
    }
}

impl WriterHandle {
    /// Sends an awaited command and waits for its reply (after `COMMIT`). Waits for room in
    /// the queue when it is full (backpressure).
    pub async fn send(&self, op: Op) -> Result<Reply, StorageError> {
        self.submit(op).await?.await
    }

    /// Queues an awaited command and returns the pending reply without waiting for it, so a
    /// caller can have many commands in flight.
    pub async fn submit(&self, op: Op) -> Result<PendingReply, StorageError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Envelope {
                op,
                reply: Some(reply),
            })
            .await
            .map_err(|_| StorageError::WriterGone)?;
        self.bell.ring();
        Ok(PendingReply { rx })
    }

    /// Queues a fire-and-forget command (`CheckpointUsage`, `TouchApiKey`). A full queue
    /// drops it, counts it and answers `QueueFull`.
    pub fn try_send(&self, op: Op) -> Result<(), StorageError> {
        match self.tx.try_send(Envelope { op, reply: None }) {
            Ok(()) => {
                self.bell.ring();
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Err(StorageError::QueueFull)
            }
            Err(TrySendError::Closed(_)) => Err(StorageError::WriterGone),
        }
    }

    /// Drains the queue and stops the thread; returns once everything queued before it was
    /// committed.
    pub async fn shutdown(&self) -> Result<(), StorageError> {
        self.send(Op::Shutdown).await.map(|_| ())
    }

    /// True once the writer stopped accepting commands.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Commands waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

impl WriterHandle {
    /// A handle whose commands are served by a thread of the caller's instead of the SQLite
    /// writer (the PostgreSQL backend): everything that sends commands keeps one type and
    /// one behaviour (backpressure, `try_send` drops, `WriterGone`), whichever database
    /// answers them.
    pub fn served_elsewhere(capacity: usize) -> (WriterHandle, CommandQueue) {
        let (tx, rx) = async_channel::bounded(capacity.max(1));
        let handle = WriterHandle {
            tx,
            stats: Arc::new(WriterStats::default()),
            bell: Arc::new(Doorbell::default()),
        };
        (handle, CommandQueue { rx })
    }
}

/// The receiving end of [`WriterHandle::served_elsewhere`].
#[derive(Debug)]
pub struct CommandQueue {
    rx: Receiver<Envelope>,
}

impl CommandQueue {
    /// Blocks for the next command; `None` once every handle is dropped or
    /// [`CommandQueue::close`] was called and the queue is empty.
    pub fn recv(&self) -> Option<Command> {
        self.rx.recv_blocking().ok().map(|e| Command {
            op: e.op,
            reply: e.reply,
        })
    }

    /// Refuses further commands (they get `WriterGone`); the queued ones can still be taken.
    pub fn close(&self) {
        self.rx.close();
    }
}

/// One command taken from a [`CommandQueue`]; answer it exactly once (dropping it answers
/// `WriterGone`).
#[derive(Debug)]
pub struct Command {
    /// The command.
    pub op: Op,
    reply: Option<ReplySender>,
}

impl Command {
    /// Sends the reply (ignored for fire-and-forget commands and gone callers).
    pub fn answer(self, result: Result<Reply, StorageError>) {
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }
}

/// The reply of a submitted command; resolves to `WriterGone` if the thread dies first.
#[derive(Debug)]
pub struct PendingReply {
    rx: oneshot::Receiver<Result<Reply, StorageError>>,
}

impl Future for PendingReply {
    type Output = Result<Reply, StorageError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(oneshot::Canceled)) => Poll::Ready(Err(StorageError::WriterGone)),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct Thread {
    conn: Connection,
    rx: Receiver<Envelope>,
    cfg: WriterConfig,
    stats: Arc<WriterStats>,
    bell: Arc<Doorbell>,
    ingester: Option<Ingester>,
}

impl Thread {
    /// Commands first, in groups; then the spool when its delay ran out or a batch is full;
    /// then sleep until a command or an append rings, or the ingest deadline.
    fn run(&mut self) {
        let mut shutdown_replies = Vec::new();
        let mut closed = false;
        loop {
            let mut batch = Vec::new();
            while batch.len() < self.cfg.max_batch.max(1) {
                match self.rx.try_recv() {
                    Ok(env) => batch.push(env),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => {
                        closed = true;
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                // These name rows the spool may still hold.
                if batch.iter().any(|e| {
                    matches!(
                        e.op,
                        Op::Correlate(_)
                            | Op::BackfillChunk(_)
                            | Op::BootRecovery { .. }
                            | Op::ShutdownFinalize { .. }
                    )
                }) {
                    self.ingest_all();
                }
                self.commands(batch, &mut shutdown_replies);
                continue;
            }
            if closed {
                self.ingest_all();
                break;
            }
            let now = std::time::Instant::now();
            let deadline = match &mut self.ingester {
                Some(ing) => {
                    if ing.due(now) {
                        // A refusal is counted and retried after its backoff.
                        let _ = ing.step(&self.conn, now);
                        continue;
                    }
                    let deadline = ing.deadline(now);
                    if deadline.is_none() && ing.rearm() {
                        continue;
                    }
                    deadline
                }
                None => None,
            };
            self.bell.wait(deadline);
        }
        for reply in shutdown_replies {
            let _ = reply.send(Ok(Reply::Done));
        }
    }

    fn ingest_all(&mut self) -> Reply {
        match &mut self.ingester {
            Some(ing) => {
                let _ = ing.drain(&self.conn);
                let now = std::time::Instant::now();
                let _ = ing.deadline(now);
                Reply::Flushed {
                    behind: ing.behind(),
                    lag_ms: ing.stats().lag_ms(),
                }
            }
            None => Reply::Flushed {
                behind: 0,
                lag_ms: 0,
            },
        }
    }

    fn commands(&mut self, batch: Vec<Envelope>, shutdown_replies: &mut Vec<ReplySender>) {
        let mut group = Vec::new();
        for env in batch {
            match env.op {
                Op::WalCheckpoint => {
                    self.commit(std::mem::take(&mut group));
                    let result = wal_checkpoint(&self.conn).map(Reply::Checkpoint);
                    finish(&self.stats, env, result);
                }
                Op::SpoolFlush => {
                    self.commit(std::mem::take(&mut group));
                    let reply = self.ingest_all();
                    finish(&self.stats, env, Ok(reply));
                }
                Op::Shutdown => {
                    self.commit(std::mem::take(&mut group));
                    self.rx.close();
                    shutdown_replies.extend(env.reply);
                }
                _ => group.push(env),
            }
        }
        self.commit(group);
    }

    fn commit(&mut self, group: Vec<Envelope>) {
        commit_group(&mut self.conn, group, &self.cfg, &self.stats);
    }
}

/// Runs a group with the busy retries and answers every command after the outcome is known.
fn commit_group(
    conn: &mut Connection,
    group: Vec<Envelope>,
    cfg: &WriterConfig,
    stats: &WriterStats,
) {
    if group.is_empty() {
        return;
    }
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .commands
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    let mut attempt = 0;
    let outcome = loop {
        match try_group(conn, &group) {
            Err(e) if e.is_busy() && attempt < cfg.retry_delays_ms.len() => {
                std::thread::sleep(Duration::from_millis(cfg.retry_delays_ms[attempt]));
                attempt += 1;
            }
            other => break other,
        }
    };
    match outcome {
        Ok(results) => {
            for (env, result) in group.into_iter().zip(results) {
                finish(stats, env, result);
            }
        }
        Err(e) => {
            for env in group {
                finish(stats, env, Err(e.clone()));
            }
        }
    }
}

fn finish(stats: &WriterStats, env: Envelope, result: Result<Reply, StorageError>) {
    if result.is_err() {
        stats.count_failure(env.op.failure_label());
    }
    if let Some(reply) = env.reply {
        // The caller may have stopped waiting; its command is committed all the same.
        let _ = reply.send(result);
    }
}

/// One transaction over the group. `Err` means the whole batch failed (nothing committed).
///
/// The group first runs without savepoints: a savepoint per command makes SQLite copy every
/// page a command touches into the sub-journal, which costs more than the commands
/// themselves. Only when a command fails on its own is that attempt rolled back and the
/// group run again with one savepoint per command, so the failure is isolated exactly as
/// before. Commands are deterministic over the database state, so the second run gives the
/// same replies the first would have.
fn try_group(
    conn: &Connection,
    group: &[Envelope],
) -> Result<Vec<Result<Reply, StorageError>>, StorageError> {
    begin(conn)?;
    let results = match run_plain(conn, group) {
        Ok(Some(results)) => results,
        Ok(None) => {
            rollback(conn);
            begin(conn)?;
            match run_savepoints(conn, group) {
                Ok(results) => results,
                Err(e) => {
                    rollback(conn);
                    return Err(e);
                }
            }
        }
        Err(e) => {
            rollback(conn);
            return Err(e);
        }
    };
    match conn
        .prepare_cached("COMMIT")
        .and_then(|mut commit| commit.execute([]))
    {
        Ok(_) => Ok(results),
        Err(e) => {
            rollback(conn);
            Err(e.into())
        }
    }
}

/// `BEGIN IMMEDIATE` through the statement cache: `execute_batch` would parse it again for
/// every group (2 % of the writer's instructions, with `COMMIT`).
fn begin(conn: &Connection) -> Result<(), StorageError> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    Ok(())
}

/// Runs the group with no savepoint; `None` when one command failed on its own (the caller
/// rolls back and isolates it).
fn run_plain(
    conn: &Connection,
    group: &[Envelope],
) -> Result<Option<Vec<Result<Reply, StorageError>>>, StorageError> {
    let mut results = Vec::with_capacity(group.len());
    for env in group {
        match apply(conn, &env.op) {
            Ok(reply) => results.push(Ok(reply)),
            Err(e) if fails_batch(&e) || conn.is_autocommit() => return Err(e),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(results))
}

fn run_savepoints(
    conn: &Connection,
    group: &[Envelope],
) -> Result<Vec<Result<Reply, StorageError>>, StorageError> {
    let mut results = Vec::with_capacity(group.len());
    for env in group {
        conn.prepare_cached("SAVEPOINT acp_cmd")?.execute([])?;
        match apply(conn, &env.op) {
            Ok(reply) => {
                conn.prepare_cached("RELEASE acp_cmd")?.execute([])?;
                results.push(Ok(reply));
            }
            Err(e) if fails_batch(&e) || conn.is_autocommit() => return Err(e),
            Err(e) => {
                conn.execute_batch("ROLLBACK TO acp_cmd; RELEASE acp_cmd")?;
                results.push(Err(e));
            }
        }
    }
    Ok(results)
}

/// Errors that concern the database rather than one command.
fn fails_batch(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::Busy | StorageError::Full | StorageError::ReadOnly | StorageError::Io { .. }
    )
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        // Nothing more can be done if the rollback fails: the next BEGIN reports it.
        let _ = conn.execute_batch("ROLLBACK");
    }
}
