//! The daemon's shared, runtime-agnostic half: the startup sequence of `control.md` §1 up to
//! the bind (config, lock, upgrade, writer, pricing cache, boot recovery), the state both
//! shells share while serving (the core behind a mutex, the writer handle, readers, logger,
//! metrics, the managed-key cache), and the shutdown tail (shutdown finalize, checkpoint,
//! writer stop). Each shell adds only its own IO: the listener, the upstream client,
//! timers and signals.

pub mod admin;
pub mod backend;
pub mod correlator;
mod lifecycle;
pub mod log;
pub mod pipeline;
mod pricing;
pub mod quota;
pub mod ready;
pub mod session;
mod spooling;
pub mod ticks;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_cli_proxy_core::config::{Config, ExternalInputs, FileRead, LogFormat, LogLevel};
use agent_cli_proxy_core::exchange::{ExchangeEvent, Level, MetricEvent};
use agent_cli_proxy_core::head::RequestHead;
use agent_cli_proxy_core::metrics::{self, MetricsRegistry, RequestLabels, Snapshot, TodayRow};
use agent_cli_proxy_core::proxy::{Core, KeyLookup, ManagedKey};
use agent_cli_proxy_core::time::{Instant, UnixMillis};
use agent_cli_proxy_storage::ingest::{IngestConfig, IngestStats};
use agent_cli_proxy_storage::spool::{Fsync, Spool, SpoolConfig};
use agent_cli_proxy_storage::{
    DbLock, Op, Reply as StoreReply, SharedRecoster, StorageError, WriterHandle,
};
use serde_json::{Value, json};

pub use self::backend::{Claim, OnceLoops, Reads};
pub use self::log::Logger;
pub use self::pricing::PricingState;
pub use self::spooling::Flushed;

/// What [`Daemon::key_step`] found.
pub enum KeyStep {
    /// The answer, without blocking.
    Known(KeyLookup),
    /// Not cached: call [`Daemon::lookup_key`] with this hash where blocking is allowed.
    Lookup(String),
}

/// How long a managed-key lookup may be served from the cache (`datapath.md` §4.3).
pub const KEY_CACHE_MS: u64 = 1_000;
/// Global budget of buffered request bodies (`datapath.md` §5): 512 MiB.
pub const BODY_BUDGET_BYTES: u64 = 536_870_912;

/// Why the daemon could not start; already logged when returned.
#[derive(Debug)]
pub struct StartupFailed;

/// Everything the serving shells share.
pub struct Daemon {
    /// The validated configuration.
    pub config: Arc<Config>,
    core: Mutex<Core>,
    /// The writer thread's handle (control-plane commands; it also ingests the spool).
    pub writer: WriterHandle,
    /// The data path's durability point (`docs/spool.md`).
    pub spool: Arc<Spool>,
    /// Ingestion counters.
    pub ingest: Arc<IngestStats>,
    writer_join: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Connections for admin queries, `/metrics` and `/ready`.
    pub readers: Reads,
    /// The loops that run on one replica at a time (`docs/replicas.md` §5).
    pub once: Arc<OnceLoops>,
    /// The process logger.
    pub logger: Logger,
    metrics: Mutex<MetricsRegistry>,
    /// Prices, their cache file and refresh bookkeeping.
    pub pricing: Arc<PricingState>,
    /// Single-flight quota refreshes and the shell's HTTP client for them.
    pub quota: quota::QuotaService,
    key_cache: Mutex<BTreeMap<String, (Instant, KeyLookup)>>,
    /// The `last_used_at` last sent per managed key.
    touched: Mutex<BTreeMap<i64, String>>,
    sessions: Mutex<agent_cli_proxy_core::dashboard::session::Sessions>,
    body_budget: AtomicU64,
    active_streams: AtomicI64,
    clock_origin: std::time::Instant,
    _lock: DbLock,
}

impl Daemon {
    /// Steps 1–7 of `control.md` §1: validate the configuration, take the database lock,
    /// open and upgrade the database, start the writer, load the pricing cache, recover every
    /// pending row. Logs its own failures (`config.error`, `startup.db_locked`,
    /// `startup.error`).
    pub fn prepare(env: &BTreeMap<String, String>, seed: u64) -> Result<Daemon, StartupFailed> {
        let bootstrap = Logger::start(level_of(env), format_of(env));
        let inputs = ExternalInputs {
            providers_file: ExternalInputs::providers_file_to_read(env).map(|path| {
                match std::fs::read_to_string(&path) {
                    Ok(text) => FileRead::Contents(text),
                    Err(e) => FileRead::Failed(e.to_string()),
                }
            }),
        };
        let (config, warnings) = match Config::from_env(env, &inputs) {
            Ok(c) => c,
            Err(err) => {
                let issues: Vec<String> = err.issues.iter().map(ToString::to_string).collect();
                bootstrap.event(
                    Level::Error,
                    "config.error",
                    &err.to_string(),
                    vec![("issues", json!(issues)), ("code", json!("CONFIG_INVALID"))],
                );
                bootstrap.flush();
                return Err(StartupFailed);
            }
        };
        let logger = Logger::start(
            log_level(config.log_level),
            match config.log_format {
                LogFormat::Json => log::Format::Json,
                LogFormat::Pretty => log::Format::Pretty,
            },
        );
        bootstrap.flush();
        logger.install_tracing();
        for w in &warnings {
            logger.event(
                Level::Warn,
                "config.warning",
                "configuration warning",
                vec![("path", json!(w.path)), ("message", json!(w.message))],
            );
        }
        let config = Arc::new(config);
        let fail = |logger: &Logger, event: &str, msg: String, extra: Vec<(&str, Value)>| {
            logger.event(Level::Error, event, &msg, extra);
            logger.flush();
            StartupFailed
        };
        let spooled = match backend::open(&config) {
            Ok(opened) => opened,
            Err(f) => return Err(fail(&logger, f.event, f.message, f.fields)),
        };
        if let Some(replica) = spooled.once.replica() {
            let pg = config.postgres.as_ref();
            logger.event(
                Level::Info,
                "startup.replica",
                "recording into PostgreSQL as a replica",
                vec![
                    ("replica", json!(replica)),
                    ("host", json!(pg.map(|t| &t.host))),
                    ("dbname", json!(pg.map(|t| &t.dbname))),
                    ("spool_dir", json!(config.spool.dir)),
                ],
            );
        }
        if let Some(t) = &spooled.torn {
            logger.event(
                Level::Warn,
                "spool.torn_tail",
                "torn tail of the spool cut off",
                vec![
                    ("segment", json!(t.segment)),
                    ("offset", json!(t.offset)),
                    ("bytes", json!(t.bytes)),
                ],
            );
        }
        if spooled.boot_ingested > 0 {
            logger.event(
                Level::Info,
                "spool.boot_ingested",
                "records left in the spool applied",
                vec![("records", json!(spooled.boot_ingested))],
            );
        }
        let pricing = Arc::new(PricingState::load(&config, &logger));
        let core = Core::new(Arc::clone(&config), pricing.table(), seed);
        let sessions = agent_cli_proxy_core::dashboard::session::Sessions::new(
            session::load_secret(&config, &logger),
            config.dashboard_session_ttl_ms,
        );
        let daemon = Daemon {
            readers: spooled.readers,
            once: spooled.once,
            config: Arc::clone(&config),
            core: Mutex::new(core),
            writer: spooled.writer,
            spool: spooled.spool,
            ingest: spooled.ingest,
            writer_join: Mutex::new(Some(spooled.join)),
            logger,
            metrics: Mutex::new(MetricsRegistry::new()),
            pricing,
            quota: quota::QuotaService::default(),
            key_cache: Mutex::new(BTreeMap::new()),
            touched: Mutex::new(BTreeMap::new()),
            sessions: Mutex::new(sessions),
            body_budget: AtomicU64::new(BODY_BUDGET_BYTES),
            active_streams: AtomicI64::new(0),
            clock_origin: std::time::Instant::now(),
            _lock: spooled.lock,
        };
        let op = Op::BootRecovery {
            now: daemon.wall().to_iso(),
            recoster: daemon.recoster(),
        };
        match futures_lite::future::block_on(daemon.writer.send(op)) {
            Ok(StoreReply::Count(n)) if n > 0 => daemon.logger.event(
                Level::Warn,
                "lifecycle.boot_recovery",
                "pending rows recovered",
                vec![("recovered", json!(n))],
            ),
            Ok(_) => {}
            Err(e) => {
                return Err(fail(&daemon.logger, "startup.error", e.to_string(), vec![]));
            }
        }
        Ok(daemon)
    }

    /// The monotonic clock of this process, as the core sees it.
    pub fn now(&self) -> Instant {
        Instant::from_duration(self.clock_origin.elapsed())
    }

    /// The origin of [`Daemon::now`] on the standard monotonic clock.
    pub fn clock_origin(&self) -> std::time::Instant {
        self.clock_origin
    }

    /// Wall time.
    pub fn wall(&self) -> UnixMillis {
        wall_now()
    }

    /// The core, locked. Never hold the guard across an `.await`.
    pub fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The metrics registry, locked.
    pub fn metrics(&self) -> MutexGuard<'_, MetricsRegistry> {
        self.metrics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A recoster over the current prices (boot recovery, shutdown finalize, backfill).
    pub fn recoster(&self) -> SharedRecoster {
        self.pricing.recoster(&self.config)
    }

    /// The first step of learning a proxied request's managed key: answered at once when
    /// the request has no credential or its key was looked up less than [`KEY_CACHE_MS`]
    /// ago; otherwise the credential's hash, for [`Daemon::lookup_key`] on a thread where
    /// blocking is allowed. Most calls of a busy client take the first branch, so they do
    /// not hop to a blocking thread and back.
    pub fn key_step(&self, head: &RequestHead) -> KeyStep {
        let Some(hash) = Core::credential_hash(head) else {
            return KeyStep::Known(KeyLookup::NoCredential);
        };
        match self.cached_key(&hash, self.now()) {
            Ok(found) => KeyStep::Known(found),
            Err(_) => KeyStep::Lookup(hash),
        }
    }

    /// The fresh cached answer for `hash`, or the stale one (if any) as the error.
    fn cached_key(&self, hash: &str, now: Instant) -> Result<KeyLookup, Option<KeyLookup>> {
        let cache = self
            .key_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match cache.get(hash) {
            Some((at, found)) if now.millis_since(*at) < KEY_CACHE_MS => Ok(found.clone()),
            Some((_, found)) => Err(Some(found.clone())),
            None => Err(None),
        }
    }

    /// The managed key whose credential hashes to `hash` (a blocking read, cached for at
    /// most [`KEY_CACHE_MS`] so a revocation takes effect within a second). While the
    /// database does not answer, the last answer for that key stands.
    pub fn lookup_key(&self, hash: Option<&str>) -> KeyLookup {
        let Some(hash) = hash else {
            return KeyLookup::NoCredential;
        };
        let now = self.now();
        let stale = match self.cached_key(hash, now) {
            Ok(found) => return found,
            Err(stale) => stale,
        };
        let found = match self.readers.with(|s| s.verify_api_key_hash(hash)) {
            Ok(Some(grant)) => KeyLookup::Valid(ManagedKey {
                id: grant.id,
                allowed_providers: grant.allowed_providers.unwrap_or_default(),
            }),
            Ok(None) => KeyLookup::Unknown,
            Err(e) => {
                self.logger.event(
                    Level::Warn,
                    "proxy_api_key.lookup_failed",
                    "managed key lookup failed",
                    vec![
                        ("err", json!(e.to_string())),
                        ("served_from_cache", json!(stale.is_some())),
                    ],
                );
                // A database that is away (PostgreSQL restarting) must not lock out a key
                // that was valid a moment ago; the last answer stands until one comes back.
                // Not cached again, so the next call asks the database.
                return stale.unwrap_or(KeyLookup::Unknown);
            }
        };
        let mut cache = self
            .key_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(hash.to_owned(), (now, found.clone()));
        found
    }

    /// Fire-and-forget `last_used_at` update of a managed key. `at` has one-second
    /// resolution, so a key is touched at most once per second: a busy key would otherwise
    /// cost a database command per call (a round trip each on PostgreSQL).
    pub fn touch_key(&self, id: i64, at: String) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
            if touched.get(&id) == Some(&at) {
                return;
            }
            if touched.len() > 4096 {
                touched.clear();
            }
            touched.insert(id, at.clone());
        }
        if let Err(e) = self.writer.try_send(Op::TouchApiKey { id, at }) {
            // Not sent: let the next call of this second try again.
            self.touched
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            self.logger.event(
                Level::Warn,
                "proxy_api_key.touch_failed",
                "managed key touch failed",
                vec![
                    ("proxy_api_key_id", json!(id)),
                    ("err", json!(e.to_string())),
                ],
            );
        }
    }

    /// Charges `bytes` to the global body budget; `false` when it would be exceeded.
    pub fn charge_body(&self, bytes: u64) -> bool {
        self.body_budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    /// Returns `bytes` to the global body budget.
    pub fn release_body(&self, bytes: u64) {
        self.body_budget.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Applies one exchange event: the breaker outcome to the core, logs to the logger,
    /// metrics to the registry.
    pub fn handle_event(&self, event: ExchangeEvent) {
        match event {
            ExchangeEvent::Outcome { permit, class } => {
                let now = self.now();
                self.core().handle_outcome(permit, class, now);
            }
            ExchangeEvent::Log(record) => self.logger.record(&record),
            ExchangeEvent::Metric(m) => self.metric(m),
            ExchangeEvent::Finished => {}
        }
    }

    fn metric(&self, m: MetricEvent) {
        match m {
            MetricEvent::StreamStarted => {
                self.active_streams.fetch_add(1, Ordering::Relaxed);
            }
            MetricEvent::StreamEnded => {
                self.active_streams.fetch_sub(1, Ordering::Relaxed);
            }
            other => {
                let mut reg = self.metrics();
                match other {
                    MetricEvent::RequestDuration {
                        lifecycle_status,
                        provider,
                        status,
                        streamed,
                        ms,
                    } => reg.observe_request(
                        RequestLabels {
                            lifecycle_status,
                            provider: &provider,
                            status: Some(status),
                            streamed,
                        },
                        i64::try_from(ms).unwrap_or(i64::MAX),
                    ),
                    MetricEvent::Retry { provider } => reg.inc_upstream_retry(&provider),
                    MetricEvent::BreakerRejected { provider } => {
                        reg.inc_breaker_rejection(&provider)
                    }
                    MetricEvent::UsageIncomplete => reg.inc_usage_incomplete(),
                    MetricEvent::StorageFailure { op } => reg.inc_storage_failure(op),
                    MetricEvent::RateLimited => reg.inc_rate_limited(),
                    MetricEvent::StreamStarted | MetricEvent::StreamEnded => {}
                }
            }
        }
    }

    /// Counts a panic caught at a task boundary.
    pub fn count_panic(&self) {
        self.metrics().inc_panic();
    }

    /// Renders `/metrics` (a blocking read of today's `daily_usage`).
    pub fn render_metrics(&self) -> agent_cli_proxy_core::head::Reply {
        self.flush_spool();
        let today = self.wall().to_day();
        let rows = self
            .readers
            .with(|s| s.usage_models_day(&today))
            .unwrap_or_default()
            .into_iter()
            .map(|r| TodayRow {
                provider: r.provider,
                model: r.model,
                request_count: u64::try_from(r.request_count).unwrap_or(0),
                total_tokens: u64::try_from(r.total_tokens).unwrap_or(0),
                cost_nanousd: r.cost_nanousd,
            })
            .collect::<Vec<_>>();
        let snapshot = Snapshot {
            active_streams: u64::try_from(self.active_streams.load(Ordering::Relaxed)).unwrap_or(0),
            log_dropped_lines: self.logger.dropped_lines(),
            spool: self.spool_snapshot(),
        };
        metrics::reply(self.metrics().render(&rows, &snapshot))
    }

    /// The tail of shutdown (`control.md` §9.2 steps 6–8) after the shell drained its
    /// connections and stopped its loops.
    pub fn shutdown_storage(&self) {
        self.once.release_all();
        let now = self.wall().to_iso();
        let op = Op::ShutdownFinalize {
            now,
            recoster: self.recoster(),
        };
        match futures_lite::future::block_on(self.writer.send(op)) {
            Ok(StoreReply::Count(n)) => self.logger.event(
                Level::Info,
                "shutdown.finalize",
                "pending rows finalized",
                vec![("aborted_rows", json!(n))],
            ),
            Ok(_) => {}
            Err(e) => self.shutdown_error(&e),
        }
        // PostgreSQL has no WAL of ours to checkpoint.
        if self.config.postgres.is_none() {
            match futures_lite::future::block_on(self.writer.send(Op::WalCheckpoint)) {
                Ok(_) => self.logger.event(
                    Level::Info,
                    "shutdown.checkpoint",
                    "WAL checkpointed",
                    vec![],
                ),
                Err(e) => self.shutdown_error(&e),
            }
        }
        if let Err(e) = futures_lite::future::block_on(self.writer.shutdown()) {
            self.shutdown_error(&e);
        }
        let join = self
            .writer_join
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(join) = join {
            let _ = join.join();
        }
    }

    fn shutdown_error(&self, e: &StorageError) {
        self.logger.event(
            Level::Error,
            "shutdown.error",
            "shutdown step failed",
            vec![("err", json!(e.to_string()))],
        );
    }
}

fn ingest_config(config: &Config) -> IngestConfig {
    IngestConfig {
        batch: config.spool.ingest_batch as usize,
        max_delay: Duration::from_millis(config.spool.ingest_max_delay_ms),
    }
}

fn spool_config(config: &Config) -> SpoolConfig {
    use agent_cli_proxy_core::config::SpoolFsync;
    SpoolConfig {
        dir: config.spool.dir.as_ref().map(Into::into),
        fsync: match config.spool.fsync {
            SpoolFsync::Off => Fsync::Off,
            SpoolFsync::Batch => Fsync::Batch,
            SpoolFsync::Always => Fsync::Always,
        },
        segment_bytes: config.spool.segment_bytes,
        max_bytes: config.spool.max_bytes,
    }
}

/// Wall-clock now.
pub fn wall_now() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    UnixMillis(ms)
}

/// A seed for the core's generator from the clock and the process id.
pub fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Sleeps in small steps until `done` or `limit` (used by blocking shutdown waits).
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    done()
}

fn level_of(env: &BTreeMap<String, String>) -> Level {
    match env
        .get("LOG_LEVEL")
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("debug") => Level::Debug,
        Some("warn") => Level::Warn,
        Some("error") => Level::Error,
        _ => Level::Info,
    }
}

fn format_of(env: &BTreeMap<String, String>) -> log::Format {
    match env
        .get("LOG_FORMAT")
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("pretty") => log::Format::Pretty,
        _ => log::Format::Json,
    }
}

fn log_level(l: LogLevel) -> Level {
    match l {
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warn => Level::Warn,
        LogLevel::Error => Level::Error,
    }
}
