//! Which database the daemon records into (`docs/replicas.md` §1): SQLite at `DB_PATH`, or
//! PostgreSQL shared by several replicas. Everything above this module sees one shape: a
//! [`WriterHandle`] for commands, [`Reads`] for queries, the spool and its counters, and
//! [`OnceLoops`] for the loops that must run on one replica at a time.

use std::sync::Arc;
use std::thread::JoinHandle;

use agent_cli_proxy_core::config::Config;
use agent_cli_proxy_core::supervisor::LoopKind;
use agent_cli_proxy_storage::ingest::IngestStats;
use agent_cli_proxy_storage::spool::{Spool, TornTail};
use agent_cli_proxy_storage::{
    DbLock, DbPath, Queries, Readers, StorageError, WriterConfig, WriterHandle,
};
use serde_json::{Value, json};

/// The storage half of a started daemon.
pub(super) struct Opened {
    pub writer: WriterHandle,
    pub join: JoinHandle<()>,
    pub spool: Arc<Spool>,
    pub ingest: Arc<IngestStats>,
    pub readers: Reads,
    pub lock: DbLock,
    pub torn: Option<TornTail>,
    pub boot_ingested: u64,
    pub once: Arc<OnceLoops>,
}

/// Why the storage could not open: the event to log, its message and fields.
pub(super) struct OpenFailed {
    pub event: &'static str,
    pub message: String,
    pub fields: Vec<(&'static str, Value)>,
}

impl OpenFailed {
    fn startup(message: String, fields: Vec<(&'static str, Value)>) -> OpenFailed {
        OpenFailed {
            event: "startup.error",
            message,
            fields,
        }
    }
}

/// Opens the configured backend: takes its lock, upgrades the schema, applies what the
/// spool holds from the previous run and starts the threads.
pub(super) fn open(config: &Config) -> Result<Opened, OpenFailed> {
    match &config.postgres {
        None => open_sqlite(config),
        #[cfg(feature = "postgres")]
        Some(target) => postgres::open(config, target),
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err(OpenFailed::startup(
            "DATABASE_URL names PostgreSQL, which this build does not include: run the \
             agent-cli-proxy binary (the tokio build) for PostgreSQL, or unset DATABASE_URL \
             to record into SQLite at DB_PATH"
                .to_owned(),
            vec![],
        )),
    }
}

fn open_sqlite(config: &Config) -> Result<Opened, OpenFailed> {
    let db = DbPath::from_config(&config.db_path);
    if let Some(parent) = db.file().and_then(|p| p.parent())
        && !parent.as_os_str().is_empty()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return Err(OpenFailed::startup(
            format!("cannot create database directory: {e}"),
            vec![("path", json!(parent.display().to_string()))],
        ));
    }
    let lock = DbLock::acquire(&db).map_err(|e| OpenFailed {
        event: "startup.db_locked",
        message: format!("database is locked: {e}"),
        fields: vec![
            ("path", json!(config.db_path)),
            (
                "hint",
                json!("another agent-cli-proxy is using this database"),
            ),
        ],
    })?;
    let spooled = agent_cli_proxy_storage::Writer::spawn_with_spool(
        &db,
        WriterConfig::default(),
        super::spool_config(config),
        super::ingest_config(config),
    )
    .map_err(|e| {
        OpenFailed::startup(
            e.to_string(),
            vec![
                ("path", json!(config.db_path)),
                ("spool_dir", json!(config.spool.dir)),
            ],
        )
    })?;
    Ok(Opened {
        writer: spooled.writer,
        join: spooled.join,
        spool: spooled.spool,
        ingest: spooled.ingest,
        readers: Reads::Sqlite(Readers::new(db, Default::default())),
        lock,
        torn: spooled.torn,
        boot_ingested: spooled.boot_ingested,
        once: Arc::new(OnceLoops::default()),
    })
}

/// The read side of the backend: a small pool of connections either way.
#[derive(Clone)]
pub enum Reads {
    /// Read-only SQLite connections.
    Sqlite(Readers),
    /// PostgreSQL sessions.
    #[cfg(feature = "postgres")]
    Postgres(agent_cli_proxy_storage_pg::PgReaders),
}

impl Reads {
    /// Runs `f` on a free connection (blocking: call it where the shell runs blocking work).
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut dyn Queries) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        match self {
            Reads::Sqlite(r) => r.with(|s| f(s)),
            #[cfg(feature = "postgres")]
            Reads::Postgres(r) => r.with(|s| f(s)),
        }
    }
}

/// Whether this replica runs a loop's tick now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Run it: this replica holds the loop (always so with SQLite).
    Run,
    /// Another replica holds it: skip the tick (`standby` in `/ready`).
    Standby,
}

/// The loops that must run on one replica at a time (`docs/replicas.md` §5): the
/// correlator, quota refresh, quota retention and cost backfill. With SQLite there is one
/// process per database and every claim succeeds.
#[derive(Default)]
pub struct OnceLoops {
    #[cfg(feature = "postgres")]
    pg: Option<postgres::Claims>,
}

impl OnceLoops {
    /// True for the loops that run once across replicas.
    pub fn is_once_only(kind: LoopKind) -> bool {
        !matches!(kind, LoopKind::PricingRefresh)
    }

    /// True when replicas share the database, so claims and sweeps mean something (a SQLite
    /// daemon skips the blocking-pool hop they would cost).
    pub fn is_shared(&self) -> bool {
        self.replica().is_some()
    }

    /// Claims `kind` for the coming tick (blocking: a database round trip with PostgreSQL).
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub fn claim(&self, kind: LoopKind) -> Result<Claim, String> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.pg {
            return pg.claim(kind);
        }
        Ok(Claim::Run)
    }

    /// Aborts the pending rows of replicas unseen for ten minutes (`docs/replicas.md` §3),
    /// run by the holder of the retention loop; the rows aborted. Nothing to do with SQLite.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub fn sweep_lost_replicas(
        &self,
        now: agent_cli_proxy_core::time::UnixMillis,
        recoster: &dyn agent_cli_proxy_storage::Recoster,
    ) -> Result<u64, String> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.pg {
            return pg.sweep_lost(now, recoster);
        }
        Ok(0)
    }

    /// Gives every held loop up at shutdown, so another replica takes it at once.
    pub fn release_all(&self) {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.pg {
            pg.release_all();
        }
    }

    /// This replica's id (PostgreSQL only).
    pub fn replica(&self) -> Option<&str> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.pg {
            return Some(&pg.replica);
        }
        None
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::path::Path;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use agent_cli_proxy_core::config::{Config, PostgresTarget};
    use agent_cli_proxy_core::supervisor::LoopKind;
    use agent_cli_proxy_core::time::UnixMillis;
    use agent_cli_proxy_storage::{DbLock, DbPath, Recoster};
    use agent_cli_proxy_storage_pg::once::keys;
    use agent_cli_proxy_storage_pg::{LoopLock, PgBackend, PgStore, ThreadConfig, recovery};
    use serde_json::json;

    use super::{Claim, OnceLoops, OpenFailed, Opened, Reads};

    /// How long a replica may go unseen before its pending rows are aborted.
    const LOST_AFTER_MS: u64 = 600_000;
    /// How often a replica refreshes `replicas.seen_at`.
    const HEARTBEAT: Duration = Duration::from_secs(30);

    pub(super) fn open(config: &Config, target: &PostgresTarget) -> Result<Opened, OpenFailed> {
        let where_ = || {
            vec![
                ("host", json!(target.host)),
                ("dbname", json!(target.dbname)),
            ]
        };
        // The configuration always gives PostgreSQL a spool directory.
        let Some(spool_dir) = config.spool.dir.clone() else {
            return Err(OpenFailed::startup(
                "SPOOL_DIR is required".to_owned(),
                vec![],
            ));
        };
        if let Err(e) = std::fs::create_dir_all(&spool_dir) {
            return Err(OpenFailed::startup(
                format!("cannot create the spool directory: {e}"),
                vec![("spool_dir", json!(spool_dir))],
            ));
        }
        // The spool is the replica: two processes on one spool would interleave records
        // and share a replica id, so the directory is locked like a SQLite database.
        let lock = DbLock::acquire(&DbPath::from_config(&format!("{spool_dir}/replica"))).map_err(
            |e| OpenFailed {
                event: "startup.db_locked",
                message: format!("spool directory is locked: {e}"),
                fields: vec![
                    ("spool_dir", json!(spool_dir)),
                    (
                        "hint",
                        json!("another replica uses this SPOOL_DIR; each replica needs its own"),
                    ),
                ],
            },
        )?;
        let replica = agent_cli_proxy_storage_pg::replica::load_or_create(Path::new(&spool_dir))
            .map_err(|e| {
                OpenFailed::startup(e.to_string(), vec![("spool_dir", json!(spool_dir))])
            })?;
        let url = target.url.expose();
        let thread = ThreadConfig {
            replica: replica.clone(),
            batch: config.spool.ingest_batch as usize,
            max_delay: Duration::from_millis(config.spool.ingest_max_delay_ms),
            heartbeat: HEARTBEAT,
            host: host_name(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let clock: agent_cli_proxy_storage_pg::thread::Clock =
            Arc::new(|| super::super::wall_now().to_iso());
        let backend = PgBackend::start(
            url,
            &replica,
            super::super::spool_config(config),
            thread,
            clock,
        )
        .map_err(|e| {
            let mut fields = where_();
            fields.push(("spool_dir", json!(spool_dir)));
            OpenFailed::startup(
                format!(
                    "DATABASE_URL (PostgreSQL database {} on {}): {e}",
                    target.dbname, target.host
                ),
                fields,
            )
        })?;
        let claims = Claims::new(url, replica).map_err(|e| OpenFailed::startup(e, where_()))?;
        Ok(Opened {
            writer: backend.writer,
            join: backend.join,
            spool: backend.spool,
            ingest: backend.ingest,
            readers: Reads::Postgres(backend.readers),
            lock,
            torn: backend.torn,
            boot_ingested: backend.boot_ingested,
            once: Arc::new(OnceLoops { pg: Some(claims) }),
        })
    }

    fn host_name() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .unwrap_or_default()
    }

    /// One advisory-lock session per once-only loop, and one for the lost-replica sweep.
    pub(super) struct Claims {
        pub(super) replica: String,
        locks: Vec<(LoopKind, Mutex<LoopLock>)>,
        url: String,
        sweeper: Mutex<Option<PgStore>>,
    }

    impl Claims {
        fn new(url: &str, replica: String) -> Result<Claims, String> {
            let lock = |kind, key| {
                LoopLock::new(url, key)
                    .map(|l| (kind, Mutex::new(l)))
                    .map_err(|e| e.to_string())
            };
            Ok(Claims {
                replica,
                locks: vec![
                    lock(LoopKind::Correlator, keys::CORRELATOR)?,
                    lock(LoopKind::QuotaRefresh, keys::QUOTA_REFRESH)?,
                    lock(LoopKind::QuotaRetention, keys::QUOTA_RETENTION)?,
                    lock(LoopKind::CostBackfill, keys::BACKFILL)?,
                ],
                url: url.to_owned(),
                sweeper: Mutex::new(None),
            })
        }

        pub(super) fn claim(&self, kind: LoopKind) -> Result<Claim, String> {
            let Some((_, lock)) = self.locks.iter().find(|(k, _)| *k == kind) else {
                return Ok(Claim::Run);
            };
            let mut lock = lock.lock().unwrap_or_else(PoisonError::into_inner);
            match lock.try_acquire() {
                Ok(true) => Ok(Claim::Run),
                Ok(false) => Ok(Claim::Standby),
                Err(e) => Err(format!("loop lock: {e}")),
            }
        }

        pub(super) fn sweep_lost(
            &self,
            now: UnixMillis,
            recoster: &dyn Recoster,
        ) -> Result<u64, String> {
            let mut slot = self.sweeper.lock().unwrap_or_else(PoisonError::into_inner);
            let store = match slot.as_mut() {
                Some(s) => {
                    s.ensure_connected().map_err(|e| e.to_string())?;
                    s
                }
                None => slot.insert(PgStore::connect(&self.url).map_err(|e| e.to_string())?),
            };
            let cutoff = UnixMillis(now.0.saturating_sub(LOST_AFTER_MS)).to_iso();
            let lost = recovery::lost_replicas(store.client(), &self.replica, &cutoff)
                .map_err(|e| e.to_string())?;
            if lost.is_empty() {
                return Ok(0);
            }
            recovery::abort_lost(store.client(), &lost, &now.to_iso(), recoster)
                .map_err(|e| e.to_string())
        }

        pub(super) fn release_all(&self) {
            for (_, lock) in &self.locks {
                let _ = lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .release();
            }
        }
    }
}
