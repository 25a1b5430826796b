//! PostgreSQL storage of agent-cli-proxy for several replicas sharing one database
//! (`docs/replicas.md`): the counterpart of the SQLite storage crate. The Status section of
//! `docs/replicas.md` says what `serve` uses of it so far.
//!
//! * [`PgBackend::start`]: the whole backend of one replica in the daemon's SQLite shapes:
//!   a `WriterHandle` served by the `acp-pg-control` thread ([`backend`]), the [`PgReaders`]
//!   pool ([`pool`]), the spool and the storage crate's `IngestStats`.
//! * [`PgStore`]: one connection (`DATABASE_URL`, TLS through rustls, a bounded connect:
//!   [`conn`]) with [`PgStore::migrate`] ([`schema`]), the storage crate's control-plane
//!   commands ([`PgStore::execute`], [`control`]) and every read query ([`queries`],
//!   [`dashboard`]), also as the storage crate's `Queries` trait.
//! * Ingestion of a replica's spool exactly once: [`ingest::apply_batch`], the
//!   [`PgIngester`] over the spool, and its thread [`PgIngestHandle`]; they count into the
//!   storage crate's `IngestStats`, so `/metrics` and `/ready` read one set of counters.
//! * Per-replica boot recovery and lost-replica aborts ([`recovery`]), the replica id
//!   ([`replica`]), the once-only loop lock ([`LoopLock`]), and `db copy` ([`copy`]).
//!
//! Errors are [`PgError`]; they convert into the storage crate's `StorageError::Server`,
//! never carrying the URL.
//!
//! Built on the synchronous `postgres` crate (rust-postgres): the API here is blocking, like
//! the SQLite storage, so both shells can call it from their blocking threads. That crate
//! drives `tokio-postgres` on a private current-thread runtime inside each [`PgStore`]; no
//! runtime appears in this API and none is required of the caller.
//!
//! Rows, results and spool records are the storage crate's types; nothing is duplicated.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod backfill;
mod bulk;
pub mod conn;
pub mod control;
pub mod copy;
mod daily;
pub mod dashboard;
pub mod error;
pub mod ingest;
pub mod ingester;
pub mod once;
pub mod pool;
pub mod queries;
mod reads;
pub mod recovery;
pub mod replica;
pub mod schema;
pub mod thread;

pub use backend::PgBackend;
pub use conn::{connect, is_postgres_url};
pub use error::PgError;
pub use ingest::BatchOutcome;
pub use ingester::PgIngester;
pub use once::LoopLock;
pub use pool::PgReaders;
pub use schema::PgMigrationReport;
pub use thread::{PgIngestHandle, ThreadConfig};

use agent_cli_proxy_storage::queries::{
    CostAuditRow, DailyUsage, LogFilter, LogRow, ModelUsage, ProviderUsage, Stats, UsageDay,
};
use agent_cli_proxy_storage::spool::{Cursor, Record};

/// One connection to the database with the operations of this crate.
pub struct PgStore {
    client: postgres::Client,
    /// Kept to reconnect after the server went away (it holds the password: never printed).
    target: conn::Target,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`DATABASE_URL`, libpq syntax).
    pub fn connect(url: &str) -> Result<PgStore, PgError> {
        PgStore::connect_to(conn::parse(url)?)
    }

    /// Connects to an already parsed target (a pool parses the URL once).
    pub(crate) fn connect_to(target: conn::Target) -> Result<PgStore, PgError> {
        let client = target.connect()?;
        Ok(PgStore { client, target })
    }

    /// Opens a new connection when the current one is closed (server restarted or
    /// unreachable for a while); a no-op otherwise.
    pub fn ensure_connected(&mut self) -> Result<(), PgError> {
        if self.client.is_closed() {
            self.client = self.target.connect()?;
        }
        Ok(())
    }

    /// Makes a session that sat idle for `idle` usable: pings it first when `idle` reaches
    /// [`pool::IDLE_CHECK`] (after a server restart it looks open until used; the ping
    /// closes it instead of the caller's statement failing), then reopens it if closed.
    pub(crate) fn revive(&mut self, idle: std::time::Duration) -> Result<(), PgError> {
        if idle >= pool::IDLE_CHECK && !self.client.is_closed() {
            // A live session that refused the ping is kept; a dead one is now closed.
            let _ = self.ping();
        }
        self.ensure_connected()
    }

    /// Runs the pending migrations under the migration lock (`docs/replicas.md` §2).
    pub fn migrate(&mut self) -> Result<PgMigrationReport, PgError> {
        schema::migrate(&mut self.client)
    }

    /// The names recorded in `schema_migrations`, sorted.
    pub fn recorded_migrations(&mut self) -> Result<Vec<String>, PgError> {
        schema::recorded_migrations(&mut self.client)
    }

    /// See [`ingest::apply_batch`].
    pub fn apply_batch(
        &mut self,
        replica: &str,
        batch: &[(u64, Record)],
        next: Option<Cursor>,
        now: &str,
    ) -> Result<BatchOutcome, PgError> {
        ingest::apply_batch(&mut self.client, replica, batch, next, now)
    }

    /// The applied spool position of `replica`.
    pub fn applied_seq(&mut self, replica: &str) -> Result<u64, PgError> {
        ingest::applied_seq(&mut self.client, replica)
    }

    /// Records `replica` in `replicas` or refreshes its `seen_at` (every 30 s,
    /// `docs/replicas.md` §3); `started_at` is kept from the first call of a run.
    pub fn register_replica(
        &mut self,
        replica: &str,
        host: &str,
        version: &str,
        now: &str,
    ) -> Result<(), PgError> {
        self.client.execute(
            "INSERT INTO replicas (replica, host, version, started_at, seen_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (replica) DO UPDATE SET host = EXCLUDED.host,
               version = EXCLUDED.version, seen_at = EXCLUDED.seen_at",
            &[&replica, &host, &version, &now],
        )?;
        Ok(())
    }

    /// Applies a control-plane command for `replica` ([`control::execute`]).
    pub fn execute(
        &mut self,
        replica: &str,
        op: &agent_cli_proxy_storage::Op,
    ) -> Result<agent_cli_proxy_storage::Reply, PgError> {
        control::execute(&mut self.client, replica, op)
    }

    /// `/admin/keys`.
    pub fn api_keys(
        &mut self,
    ) -> Result<Vec<agent_cli_proxy_storage::queries::ApiKeyInfo>, PgError> {
        control::api_keys(&mut self.client)
    }

    /// `/admin/keys/:id/usage`.
    pub fn api_key_usage(
        &mut self,
        id: i64,
    ) -> Result<Option<agent_cli_proxy_storage::queries::ApiKeyUsage>, PgError> {
        control::api_key_usage(&mut self.client, id)
    }

    /// The grant of a live key, by the key's text.
    pub fn verify_api_key(
        &mut self,
        credential: &str,
    ) -> Result<Option<agent_cli_proxy_storage::queries::ApiKeyGrant>, PgError> {
        control::verify_api_key_hash(
            &mut self.client,
            &agent_cli_proxy_storage::hash_key(credential),
        )
    }

    /// `/admin/usage/today`.
    pub fn usage_today(&mut self, today: &str) -> Result<UsageDay, PgError> {
        queries::usage_today(&mut self.client, today)
    }

    /// `/admin/usage/range`.
    pub fn usage_range(&mut self, from: &str, to: &str) -> Result<Vec<UsageDay>, PgError> {
        queries::usage_range(&mut self.client, from, to)
    }

    /// `/admin/usage/models?day=`.
    pub fn usage_models_day(&mut self, day: &str) -> Result<Vec<DailyUsage>, PgError> {
        queries::usage_models_day(&mut self.client, day)
    }

    /// `/admin/usage/models?from=&to=`.
    pub fn usage_models_range(&mut self, from: &str, to: &str) -> Result<Vec<ModelUsage>, PgError> {
        queries::usage_models_range(&mut self.client, from, to)
    }

    /// `/admin/usage/providers`.
    pub fn usage_providers(&mut self, from: &str, to: &str) -> Result<Vec<ProviderUsage>, PgError> {
        queries::usage_providers(&mut self.client, from, to)
    }

    /// `/admin/logs/:id`.
    pub fn log_by_id(&mut self, id: i64) -> Result<Option<LogRow>, PgError> {
        queries::log_by_id(&mut self.client, id)
    }

    /// `/admin/logs/:id/cost-audit`.
    pub fn cost_audit(&mut self, log_id: i64) -> Result<Option<Vec<CostAuditRow>>, PgError> {
        queries::cost_audit(&mut self.client, log_id)
    }

    /// `/admin/usage/accounts?day=`.
    pub fn usage_accounts_day(
        &mut self,
        day: &str,
    ) -> Result<Vec<agent_cli_proxy_storage::queries::DailyAccountUsage>, PgError> {
        queries::usage_accounts_day(&mut self.client, day)
    }

    /// `/admin/usage/accounts/range`.
    pub fn usage_accounts_range(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<agent_cli_proxy_storage::queries::DailyAccountUsage>, PgError> {
        queries::usage_accounts_range(&mut self.client, from, to)
    }

    /// `/admin/usage/accounts/summary`.
    pub fn usage_accounts_summary(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<agent_cli_proxy_storage::queries::AccountSummary>, PgError> {
        queries::usage_accounts_summary(&mut self.client, from, to)
    }

    /// `/admin/usage/trend`.
    pub fn usage_trend(
        &mut self,
        span: &agent_cli_proxy_core::admin::Span,
        filter: &agent_cli_proxy_storage::queries::TrendFilter,
    ) -> Result<agent_cli_proxy_storage::queries::Trend, PgError> {
        queries::usage_trend(&mut self.client, span, filter)
    }

    /// A quota report's local usage window.
    pub fn local_usage(
        &mut self,
        account: &str,
        provider: &str,
        since: &str,
    ) -> Result<agent_cli_proxy_storage::queries::LocalUsage, PgError> {
        queries::local_usage(&mut self.client, account, provider, since)
    }

    /// The correlator's candidates.
    pub fn correlation_candidates(
        &mut self,
        since: &str,
        limit: u32,
    ) -> Result<Vec<agent_cli_proxy_storage::queries::CorrelationCandidate>, PgError> {
        queries::correlation_candidates(&mut self.client, since, limit)
    }

    /// `/admin/quotas`.
    pub fn quotas_latest(
        &mut self,
        since: &str,
    ) -> Result<Vec<agent_cli_proxy_storage::queries::QuotaSnapshot>, PgError> {
        queries::quotas_latest(&mut self.client, since)
    }

    /// `/admin/quotas/history`.
    pub fn quota_history(
        &mut self,
        span: &agent_cli_proxy_core::admin::Span,
        provider: Option<&str>,
        account: Option<&str>,
    ) -> Result<agent_cli_proxy_storage::queries::QuotaHistory, PgError> {
        queries::quota_history(&mut self.client, span, provider, account)
    }

    /// `/admin/usage/summary`.
    pub fn usage_summary(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<agent_cli_proxy_storage::queries::UsageSummary, PgError> {
        dashboard::usage_summary(&mut self.client, from, to)
    }

    /// `/admin/usage/series`.
    pub fn usage_series(
        &mut self,
        from: &str,
        to: &str,
        by: agent_cli_proxy_storage::queries::SeriesDimension,
    ) -> Result<Vec<agent_cli_proxy_storage::queries::SeriesKey>, PgError> {
        dashboard::usage_series(&mut self.client, from, to, by)
    }

    /// `/admin/stats`.
    pub fn stats(&mut self) -> Result<Stats, PgError> {
        queries::stats(&mut self.client)
    }

    /// `/admin/logs`.
    pub fn logs(&mut self, f: &LogFilter, limit: u32, offset: u32) -> Result<Vec<LogRow>, PgError> {
        queries::logs(&mut self.client, f, limit, offset)
    }

    /// `SELECT 1`, the database check of `/ready`.
    pub fn ping(&mut self) -> Result<(), PgError> {
        self.client.simple_query("SELECT 1")?;
        Ok(())
    }

    /// The connection, for what this crate does not wrap yet (and for tests).
    pub fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// A count as a BIGINT; larger values (never produced) saturate.
pub(crate) fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `cost_usd` from the exact cost, the same division as the SQLite backend.
pub(crate) fn usd(nanousd: i64) -> f64 {
    nanousd as f64 / 1e9
}
