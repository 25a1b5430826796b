//! Configuration (`control.md` §5): the environment map → a validated, immutable [`Config`],
//! with every issue collected before failing once, and warnings returned separately.
//!
//! The core reads no environment and no file: the CLI builds the map (process environment
//! merged with the env file by [`merge_env`] after [`parse_env_file`]) and reads the custom
//! provider file named by [`ExternalInputs::providers_file_to_read`], passing its contents in
//! [`ExternalInputs`].
//!
//! Choices where the spec is silent:
//! * Blank string variables count as unset (`PROXY_HOST=` → `127.0.0.1`, `DB_PATH=` → the
//!   default path, `CLI_PROXY_API_KEY=` → `proxy`). Secrets are trimmed. Blank booleans take
//!   their default; blank numbers are an error, as the spec says.
//! * `CLI_PROXY_API_URL` gets the same three messages as a provider's `upstreamBaseUrl`.
//! * `LOG_LEVEL` and `LOG_FORMAT` are trimmed and case-insensitive.
//! * The ignored variables warn only when set to a non-blank value.
//! * The placeholder check applies to the effective `CLI_PROXY_API_KEY`, so the default
//!   `proxy` warns when either host is not loopback.

mod env_file;
mod load;
mod parse;
mod paths;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use thiserror::Error;

use crate::provider::Providers;
use crate::secret::Secret;

pub use crate::config_issue::{ConfigIssue, ConfigWarning};
pub use env_file::{merge_env, parse_env_file};
pub use paths::Paths;

/// Validation failed (code `CONFIG_INVALID`); every issue found is listed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("Configuration validation failed: {}", join_issues(.issues))]
#[non_exhaustive]
pub struct ConfigError {
    /// Every issue, in variable order.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    /// The error code logged with `config.error`.
    pub const CODE: &'static str = "CONFIG_INVALID";
}

/// The result of the caller reading the custom provider file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRead {
    /// The file's contents.
    Contents(String),
    /// The read failed; the error text (shown as `could not be read: <text>`).
    Failed(String),
}

/// Inputs that need IO, gathered by the caller before [`Config::from_env`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalInputs {
    /// The file at `PROVIDERS_CONFIG_PATH`, when [`Self::providers_file_to_read`] named one.
    /// `None` there is reported as `could not be read: not read by the caller`.
    pub providers_file: Option<FileRead>,
}

impl ExternalInputs {
    /// The file the caller must read: `PROVIDERS_CONFIG_PATH`, unless `PROVIDERS_JSON` is
    /// non-blank (it wins) or the path is blank.
    pub fn providers_file_to_read(env: &BTreeMap<String, String>) -> Option<String> {
        let blank = |name: &str| env.get(name).is_none_or(|v| v.trim().is_empty());
        if !blank("PROVIDERS_JSON") {
            return None;
        }
        env.get("PROVIDERS_CONFIG_PATH")
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
    }
}

/// `LOG_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info` (default, and anything unrecognised)
    #[default]
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
}

impl LogLevel {
    /// The spelling used in log records.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON record per line (default, and anything unrecognised).
    #[default]
    Json,
    /// `<ts> <LEVEL> <msg> key=value …`
    Pretty,
}

/// The validated configuration: every variable of `control.md` §5.3, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `PROXY_HOST` (trimmed).
    pub proxy_host: String,
    /// `PROXY_PORT`.
    pub proxy_port: u16,
    /// `TRUST_PROXY_HEADERS`.
    pub trust_proxy_headers: bool,
    /// `PROXY_REQUIRE_API_KEY` (default: true unless `PROXY_HOST` is loopback).
    pub proxy_require_api_key: bool,
    /// `ADMIN_API_KEY` (empty: admin routes need no token).
    pub admin_api_key: Secret,
    /// `CLI_PROXY_API_URL`, trailing `/` removed; empty in direct mode (no router: the
    /// providers document routes `anthropic` and `openai` itself, see `provider::direct`).
    pub cli_proxy_api_url: String,
    /// `PROXY_LOCAL_OK` was exactly `1`.
    pub proxy_local_ok: bool,
    /// `CLI_PROXY_API_KEY` (default `proxy`).
    pub cli_proxy_api_key: Secret,
    /// `DB_PATH` (`:memory:` allowed).
    pub db_path: String,
    /// `DATABASE_URL=postgres://…`: PostgreSQL instead of SQLite at `db_path`
    /// (`docs/replicas.md`).
    pub postgres: Option<PostgresTarget>,
    /// `SPOOL_*`.
    pub spool: SpoolSettings,
    /// `PRICING_CACHE_PATH`.
    pub pricing_cache_path: String,
    /// `PRICING_URL`.
    pub pricing_url: String,
    /// `STREAM_USAGE_INJECT`.
    pub stream_usage_inject: bool,
    /// `PRICING_CACHE_TTL_MS`.
    pub pricing_cache_ttl_ms: u64,
    /// `PRICING_REFRESH_INTERVAL_MS`.
    pub pricing_refresh_interval_ms: u64,
    /// `READY_PRICING_MAX_AGE_MS`.
    pub ready_pricing_max_age_ms: u64,
    /// `PRICING_OVERRIDES_JSON` as written (a JSON object), `None` when blank.
    pub pricing_overrides_json: Option<String>,
    /// `PRICING_ALIASES_JSON` as written (a JSON object), `None` when blank.
    pub pricing_aliases_json: Option<String>,
    /// Parsed `PRICING_OVERRIDES_JSON` (the built-ins when unset).
    pub pricing_overrides: crate::pricing::overrides::Overrides,
    /// Parsed `PRICING_ALIASES_JSON` (the built-ins when unset).
    pub pricing_aliases: crate::pricing::overrides::Aliases,
    /// `COST_BACKFILL_INTERVAL_MS`.
    pub cost_backfill_interval_ms: u64,
    /// `COST_BACKFILL_LOOKBACK_MS`.
    pub cost_backfill_lookback_ms: u64,
    /// `COST_BACKFILL_CHUNK_SIZE`.
    pub cost_backfill_chunk_size: u32,
    /// `UPSTREAM_TIMEOUT_MS` (0 disables).
    pub upstream_timeout_ms: u64,
    /// `UPSTREAM_CONNECT_TIMEOUT_MS` (0 disables).
    pub upstream_connect_timeout_ms: u64,
    /// `UPSTREAM_STREAM_FIRST_BYTE_TIMEOUT_MS` (0 disables).
    pub upstream_stream_first_byte_timeout_ms: u64,
    /// `UPSTREAM_MAX_RETRIES`.
    pub upstream_max_retries: u32,
    /// `UPSTREAM_CIRCUIT_BREAKER_OPEN_AFTER_FAILURES`.
    pub breaker_open_after_failures: u32,
    /// `UPSTREAM_CIRCUIT_BREAKER_HALF_OPEN_AFTER_MS`.
    pub breaker_half_open_after_ms: u64,
    /// `UPSTREAM_CIRCUIT_BREAKER_EVICT_AFTER_MS`.
    pub breaker_evict_after_ms: u64,
    /// `MAX_REQUEST_BODY_BYTES`.
    pub max_request_body_bytes: u64,
    /// `RATE_LIMIT_PER_CLIENT_PER_MIN` (0 disables).
    pub rate_limit_per_client_per_min: u32,
    /// `STALE_PENDING_MAX_AGE_MS` (accepted, no effect).
    pub stale_pending_max_age_ms: u64,
    /// `QUOTA_REFRESH_INTERVAL_MS`.
    pub quota_refresh_interval_ms: u64,
    /// `QUOTA_REFRESH_TIMEOUT_MS`.
    pub quota_refresh_timeout_ms: u64,
    /// `QUOTA_SNAPSHOT_RETENTION_DAYS`.
    pub quota_snapshot_retention_days: u32,
    /// `CLIENT_NAME_MAPPING`, key → value.
    pub client_name_mapping: BTreeMap<String, String>,
    /// Built-ins merged with `PROVIDERS_JSON` or the `PROVIDERS_CONFIG_PATH` document.
    pub providers: Providers,
    /// `CLIPROXY_MGMT_KEY` (empty: the correlator is off).
    pub cliproxy_mgmt_key: Secret,
    /// `CLIPROXY_CORRELATION_INTERVAL_MS`.
    pub correlation_interval_ms: u64,
    /// `CLIPROXY_CORRELATION_LOOKBACK_MS`.
    pub correlation_lookback_ms: u64,
    /// `CLIPROXY_CORRELATION_WINDOW_MS`.
    pub correlation_window_ms: u64,
    /// `CLIPROXY_AUTH_DIR` (`None`: quota refresh is off).
    pub cliproxy_auth_dir: Option<String>,
    /// `LOG_LEVEL`.
    pub log_level: LogLevel,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `DASHBOARD_PASSWORD_HASH` (an Argon2id PHC string; `None`: no dashboard sign-in).
    pub dashboard_password_hash: Option<Secret>,
    /// `DASHBOARD_SESSION_SECRET` (`None`: the daemon keeps a generated one).
    pub dashboard_session_secret: Option<Secret>,
    /// `DASHBOARD_SESSION_TTL_MS` (default 7 days).
    pub dashboard_session_ttl_ms: u64,
    /// `AGENT_CLI_PROXY_DEPLOY_DIR`.
    pub deploy_dir: Option<String>,
    /// `AGENT_CLI_PROXY_RUNTIME_DIR`.
    pub runtime_dir: Option<String>,
    /// `AGENT_CLI_PROXY_ENV` (the env file of `init --non-interactive`).
    pub init_env_file: Option<String>,
    /// The default paths (`AGENT_CLI_PROXY_DATA_DIR` is applied here).
    pub paths: Paths,
}

impl Config {
    /// Validates the environment map. All issues are collected and returned together;
    /// warnings come back only with a valid configuration.
    pub fn from_env(
        env: &BTreeMap<String, String>,
        inputs: &ExternalInputs,
    ) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        load::from_env(env, inputs)
    }

    /// Whether a CLIProxyAPI router is configured (false in direct mode).
    pub fn has_router(&self) -> bool {
        !self.cli_proxy_api_url.is_empty()
    }

    /// The `GET /admin/config` body (`control.md` §6.5); secrets appear only as booleans.
    pub fn admin_json(&self) -> Value {
        json!({
            "proxy": {
                "host": self.proxy_host,
                "port": self.proxy_port,
                "proxyRequireApiKey": self.proxy_require_api_key,
                "trustProxyHeaders": self.trust_proxy_headers,
            },
            "upstream": {
                "cliProxyApiUrl": self.cli_proxy_api_url,
                "timeoutMs": self.upstream_timeout_ms,
                "connectTimeoutMs": self.upstream_connect_timeout_ms,
                "firstByteTimeoutMs": self.upstream_stream_first_byte_timeout_ms,
                "maxRetries": self.upstream_max_retries,
            },
            "pricing": {
                "url": self.pricing_url,
                "cachePath": self.pricing_cache_path,
                "refreshMs": self.pricing_refresh_interval_ms,
                "streamUsageInject": self.stream_usage_inject,
            },
            "intervals": {
                "costBackfillMs": self.cost_backfill_interval_ms,
                "quotaRefreshMs": self.quota_refresh_interval_ms,
                "correlationMs": self.correlation_interval_ms,
            },
            "features": {
                "hasAdminApiKey": !self.admin_api_key.is_empty(),
                "hasMgmtKey": !self.cliproxy_mgmt_key.is_empty(),
                "hasAuthDir": self.cliproxy_auth_dir.is_some(),
                "customProviders": self.providers.custom_count(),
            },
            "dbPath": if self.postgres.is_some() { Value::Null } else { json!(self.db_path) },
            "database": match &self.postgres {
                Some(pg) => json!({"kind": "postgres", "host": pg.host, "dbname": pg.dbname}),
                None => json!({"kind": "sqlite", "path": self.db_path}),
            },
        })
    }

    /// True when `PROXY_HOST` is a loopback name.
    pub fn proxy_host_is_loopback(&self) -> bool {
        crate::base_url::is_loopback_host(&self.proxy_host)
    }
}

fn join_issues(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ConfigIssue::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;

/// `SPOOL_FSYNC` (`docs/spool.md` §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolFsync {
    /// `off`: a record survives a process kill, not an OS crash.
    Off,
    /// `batch`: `fdatasync` at most every 2 ms.
    Batch,
    /// `always`: `fdatasync` per record.
    Always,
}

/// A PostgreSQL `DATABASE_URL` (`docs/replicas.md` §1). `Debug` shows only the host and the
/// database name: the URL may carry a password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    /// The whole URL, for the connection alone.
    pub url: Secret,
    /// The host (and port) it names, or the `host=` parameter (a socket directory).
    pub host: String,
    /// The database name.
    pub dbname: String,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("host", &self.host)
            .field("dbname", &self.dbname)
            .finish_non_exhaustive()
    }
}

impl PostgresTarget {
    /// Reads host and database name out of a `postgres://` or `postgresql://` URL; `None`
    /// when it is not one or names no database.
    pub fn parse(url: &str) -> Option<PostgresTarget> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, dbname) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let param = |name: &str| {
            query?
                .split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        let dbname = param("dbname").unwrap_or(dbname);
        let host = param("host").unwrap_or(host);
        if dbname.is_empty() {
            return None;
        }
        Some(PostgresTarget {
            url: Secret::new(url),
            host: if host.is_empty() { "localhost" } else { host }.to_owned(),
            dbname: dbname.to_owned(),
        })
    }
}

/// The spool's settings (`docs/spool.md` §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// `SPOOL_DIR`, default `<DB_PATH>.spool`; `None` for `DB_PATH=:memory:`.
    pub dir: Option<String>,
    /// `SPOOL_FSYNC`.
    pub fsync: SpoolFsync,
    /// `SPOOL_INGEST_MAX_DELAY_MS` (1..10 000).
    pub ingest_max_delay_ms: u64,
    /// `SPOOL_INGEST_BATCH` (1..65 536).
    pub ingest_batch: u32,
    /// `SPOOL_SEGMENT_BYTES` (≥ 1 MiB).
    pub segment_bytes: u64,
    /// `SPOOL_MAX_BYTES` (≥ 16 MiB).
    pub max_bytes: u64,
}
