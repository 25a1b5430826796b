//! [`Config::from_env`]: every variable of `control.md` §5.3 in table order, then the
//! warnings of §5.5.

use crate::config::{PostgresTarget, SpoolFsync, SpoolSettings};
use crate::pricing::overrides::{Aliases, Overrides, parse_aliases_json, parse_overrides_json};
use std::collections::BTreeMap;

use serde_json::Value;

use super::parse::Reader;
use super::{
    Config, ConfigError, ConfigWarning, ExternalInputs, FileRead, LogFormat, LogLevel, Paths,
};
use crate::base_url::{UrlProblem, is_file_url, is_loopback_host, parse_base_url};
use crate::provider::{ProviderSource, Providers, validate_document};
use crate::secret::Secret;

const LOCAL_DEFAULT_URL: &str = "http://localhost:8317";
const DEFAULT_PRICING_URL: &str = "https://models.dev/api.json";
const IGNORED: &[&str] = &[
    "CLAUDE_CODE_VERSION",
    "CCH_SALT",
    "CCH_POSITIONS",
    "TOOL_PREFIX",
];
const PLACEHOLDERS: &[&str] = &[
    "admin",
    "changeme",
    "change-me",
    "default",
    "example",
    "password",
    "proxy",
    "secret",
    "token",
];
const PLACEHOLDER_WARNING: &str =
    "uses a placeholder value; replace it with a unique random secret before exposure";

pub(super) fn from_env(
    env: &BTreeMap<String, String>,
    inputs: &ExternalInputs,
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let mut r = Reader::new(env);
    let mut warnings = Vec::new();
    let paths = Paths::from_env(env);

    let proxy_host = r.text("PROXY_HOST").unwrap_or("127.0.0.1").to_owned();
    let host_loopback = is_loopback_host(&proxy_host);
    let proxy_port = r.int_range("PROXY_PORT", 3100, 1, 65_535) as u16;
    let trust_proxy_headers = r.boolean("TRUST_PROXY_HEADERS", false);
    let proxy_require_api_key = r.boolean("PROXY_REQUIRE_API_KEY", !host_loopback);
    if !host_loopback && !proxy_require_api_key {
        r.issue(
            "PROXY_REQUIRE_API_KEY",
            "must be true when PROXY_HOST is not loopback",
        );
    }
    let admin_api_key = Secret::new(r.text("ADMIN_API_KEY").unwrap_or(""));
    let proxy_local_ok = r.raw("PROXY_LOCAL_OK") == Some("1");
    let direct = providers_route_directly(env, inputs);
    let (cli_proxy_api_url, upstream_host) =
        read_upstream_url(&mut r, proxy_local_ok, direct, &mut warnings);
    let cli_proxy_api_key = Secret::new(r.text("CLI_PROXY_API_KEY").unwrap_or("proxy"));
    let db_path = r.text("DB_PATH").unwrap_or(&paths.db_path).to_owned();
    let (db_path, postgres) = match read_database_url(&mut r) {
        Some(DatabaseUrl::Sqlite(path)) => (path, None),
        Some(DatabaseUrl::Postgres(target)) => (db_path, Some(target)),
        None => (db_path, None),
    };
    let pricing_cache_path = r
        .text("PRICING_CACHE_PATH")
        .unwrap_or(&paths.pricing_cache_path)
        .to_owned();
    let pricing_url = read_pricing_url(&mut r);
    let stream_usage_inject = r.boolean("STREAM_USAGE_INJECT", true);
    let pricing_cache_ttl_ms = r.positive_ms("PRICING_CACHE_TTL_MS", 3_600_000);
    let pricing_refresh_interval_ms = r.positive_ms("PRICING_REFRESH_INTERVAL_MS", 21_600_000);
    let ready_pricing_max_age_ms = r.positive_ms("READY_PRICING_MAX_AGE_MS", 86_400_000);
    let pricing_overrides_json = read_json_object(&mut r, "PRICING_OVERRIDES_JSON");
    let pricing_aliases_json = read_json_object(&mut r, "PRICING_ALIASES_JSON");
    let pricing_overrides = match pricing_overrides_json.as_deref() {
        None => Overrides::builtin(),
        Some(text) => parse_overrides_json(text).unwrap_or_else(|issues| {
            for (path, message) in issues {
                r.issue(&path, message);
            }
            Overrides::builtin()
        }),
    };
    let pricing_aliases = match pricing_aliases_json.as_deref() {
        None => Aliases::builtin(),
        Some(text) => parse_aliases_json(text).unwrap_or_else(|issues| {
            for (path, message) in issues {
                r.issue(&path, message);
            }
            Aliases::builtin()
        }),
    };
    let cost_backfill_interval_ms = r.positive_ms("COST_BACKFILL_INTERVAL_MS", 1_800_000);
    let cost_backfill_lookback_ms = r.positive_ms("COST_BACKFILL_LOOKBACK_MS", 604_800_000);
    let cost_backfill_chunk_size = r.int_range("COST_BACKFILL_CHUNK_SIZE", 500, 1, 100_000) as u32;
    let upstream_timeout_ms = r.non_negative("UPSTREAM_TIMEOUT_MS", 0);
    let upstream_connect_timeout_ms = r.non_negative("UPSTREAM_CONNECT_TIMEOUT_MS", 0);
    let upstream_stream_first_byte_timeout_ms =
        r.non_negative("UPSTREAM_STREAM_FIRST_BYTE_TIMEOUT_MS", 0);
    let upstream_max_retries = r.int_range("UPSTREAM_MAX_RETRIES", 2, 0, 100) as u32;
    let breaker_open_after_failures =
        r.int_range("UPSTREAM_CIRCUIT_BREAKER_OPEN_AFTER_FAILURES", 5, 1, 1000) as u32;
    let breaker_half_open_after_ms =
        r.positive_ms("UPSTREAM_CIRCUIT_BREAKER_HALF_OPEN_AFTER_MS", 30_000);
    let breaker_evict_after_ms = r.positive_ms("UPSTREAM_CIRCUIT_BREAKER_EVICT_AFTER_MS", 300_000);
    let max_request_body_bytes =
        r.int_range("MAX_REQUEST_BODY_BYTES", 25_000_000, 1, 1_000_000_000);
    let rate_limit_per_client_per_min =
        r.int_range("RATE_LIMIT_PER_CLIENT_PER_MIN", 0, 0, 1_000_000) as u32;
    let stale_pending_max_age_ms = r.positive_ms("STALE_PENDING_MAX_AGE_MS", 600_000);
    let quota_refresh_interval_ms = r.positive_ms("QUOTA_REFRESH_INTERVAL_MS", 300_000);
    let quota_refresh_timeout_ms = r.positive_ms("QUOTA_REFRESH_TIMEOUT_MS", 15_000);
    let quota_snapshot_retention_days =
        r.int_range("QUOTA_SNAPSHOT_RETENTION_DAYS", 7, 1, 3650) as u32;
    let client_name_mapping = read_client_name_mapping(&mut r);
    let providers = read_providers(&mut r, env, inputs, &cli_proxy_api_url, &mut warnings);
    let cliproxy_mgmt_key = Secret::new(r.text("CLIPROXY_MGMT_KEY").unwrap_or(""));
    if !cliproxy_mgmt_key.is_empty() && cli_proxy_api_url.is_empty() && direct {
        r.issue(
            "CLIPROXY_MGMT_KEY",
            "needs CLI_PROXY_API_URL (account correlation reads the router's management API)",
        );
    }
    let correlation_interval_ms = r.positive_ms("CLIPROXY_CORRELATION_INTERVAL_MS", 15_000);
    let correlation_lookback_ms = r.positive_ms("CLIPROXY_CORRELATION_LOOKBACK_MS", 300_000);
    let correlation_window_ms = r.positive_ms("CLIPROXY_CORRELATION_WINDOW_MS", 30_000);
    let cliproxy_auth_dir = r.text("CLIPROXY_AUTH_DIR").map(str::to_owned);
    let log_level = match r.text("LOG_LEVEL").map(str::to_ascii_lowercase).as_deref() {
        Some("debug") => LogLevel::Debug,
        Some("warn") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        _ => LogLevel::Info,
    };
    let log_format = match r.text("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
        Some("pretty") => LogFormat::Pretty,
        _ => LogFormat::Json,
    };
    let dashboard_password_hash = r.text("DASHBOARD_PASSWORD_HASH").map(str::to_owned);
    if let Some(phc) = &dashboard_password_hash
        && !crate::dashboard::session::is_argon2id_phc(phc)
    {
        r.issue(
            "DASHBOARD_PASSWORD_HASH",
            "must be an Argon2id PHC string (make one with: agent-cli-proxy dashboard hash-password)",
        );
    }
    let dashboard_password_hash = dashboard_password_hash.map(Secret::new);
    let dashboard_session_secret = r.text("DASHBOARD_SESSION_SECRET").map(Secret::new);
    let dashboard_session_ttl_ms = r.positive_ms(
        "DASHBOARD_SESSION_TTL_MS",
        crate::dashboard::session::DEFAULT_TTL_MS,
    );
    // With PostgreSQL the spool is all that is local, so it gets a home of its own
    // (`docs/replicas.md` §1) instead of following an unused `DB_PATH`.
    let spool_home = match &postgres {
        Some(_) => format!("{}/spool", paths.data_dir.trim_end_matches('/')),
        None => db_path.clone(),
    };
    let spool = read_spool(&mut r, &spool_home, postgres.is_some());
    let deploy_dir = r.text("AGENT_CLI_PROXY_DEPLOY_DIR").map(str::to_owned);
    let runtime_dir = r.text("AGENT_CLI_PROXY_RUNTIME_DIR").map(str::to_owned);
    let init_env_file = r.text("AGENT_CLI_PROXY_ENV").map(str::to_owned);

    if !r.issues.is_empty() {
        return Err(ConfigError { issues: r.issues });
    }

    for name in IGNORED {
        if r.text(name).is_some() {
            warnings.push(ConfigWarning::new(
                *name,
                "is not used by this version and is ignored",
            ));
        }
    }
    // Without a router (direct mode) CLI_PROXY_API_KEY is never sent, so its placeholder
    // does not matter.
    let remote = !cli_proxy_api_url.is_empty()
        && (!host_loopback || !upstream_host.as_deref().is_some_and(is_loopback_host));
    let placeholder_checks = [
        ("ADMIN_API_KEY", &admin_api_key, true),
        ("CLI_PROXY_API_KEY", &cli_proxy_api_key, remote),
        ("CLIPROXY_MGMT_KEY", &cliproxy_mgmt_key, true),
    ];
    for (name, secret, applies) in placeholder_checks {
        let value = secret.expose().trim().to_ascii_lowercase();
        if applies && PLACEHOLDERS.contains(&value.as_str()) {
            warnings.push(ConfigWarning::new(name, PLACEHOLDER_WARNING));
        }
    }
    let roots = [deploy_dir.as_deref(), runtime_dir.as_deref()];
    if db_path != ":memory:" {
        warn_path("DB_PATH", &db_path, &roots, &mut warnings);
    }
    warn_path(
        "PRICING_CACHE_PATH",
        &pricing_cache_path,
        &roots,
        &mut warnings,
    );
    // Provider warnings were collected while loading; keep them after the variable ones.
    let (provider_warnings, mut warnings): (Vec<_>, Vec<_>) = warnings
        .into_iter()
        .partition(|w| w.path.starts_with("providers"));
    warnings.extend(provider_warnings);

    let config = Config {
        proxy_host,
        proxy_port,
        trust_proxy_headers,
        proxy_require_api_key,
        admin_api_key,
        cli_proxy_api_url,
        proxy_local_ok,
        cli_proxy_api_key,
        db_path,
        postgres,
        spool,
        pricing_cache_path,
        pricing_url,
        stream_usage_inject,
        pricing_cache_ttl_ms,
        pricing_refresh_interval_ms,
        ready_pricing_max_age_ms,
        pricing_overrides_json,
        pricing_aliases_json,
        pricing_overrides,
        pricing_aliases,
        cost_backfill_interval_ms,
        cost_backfill_lookback_ms,
        cost_backfill_chunk_size,
        upstream_timeout_ms,
        upstream_connect_timeout_ms,
        upstream_stream_first_byte_timeout_ms,
        upstream_max_retries,
        breaker_open_after_failures,
        breaker_half_open_after_ms,
        breaker_evict_after_ms,
        max_request_body_bytes,
        rate_limit_per_client_per_min,
        stale_pending_max_age_ms,
        quota_refresh_interval_ms,
        quota_refresh_timeout_ms,
        quota_snapshot_retention_days,
        client_name_mapping,
        providers,
        cliproxy_mgmt_key,
        correlation_interval_ms,
        correlation_lookback_ms,
        correlation_window_ms,
        cliproxy_auth_dir,
        log_level,
        log_format,
        dashboard_password_hash,
        dashboard_session_secret,
        dashboard_session_ttl_ms,
        deploy_dir,
        runtime_dir,
        init_env_file,
        paths,
    };
    Ok((config, warnings))
}

/// `CLI_PROXY_API_URL` and its host (for the placeholder rule).
/// `direct`: the providers document routes `anthropic` and `openai` itself
/// (`provider::direct`), so an unset URL means "no router" (an empty URL) rather than an
/// error; the local default of `PROXY_LOCAL_OK=1` still wins when both apply.
fn read_upstream_url(
    r: &mut Reader<'_>,
    local_ok: bool,
    direct: bool,
    warnings: &mut Vec<ConfigWarning>,
) -> (String, Option<String>) {
    const NAME: &str = "CLI_PROXY_API_URL";
    let Some(raw) = r.text(NAME) else {
        if direct && !local_ok {
            return (String::new(), None);
        }
        if local_ok {
            warnings.push(ConfigWarning::new(
                NAME,
                format!("is not set; using {LOCAL_DEFAULT_URL} because PROXY_LOCAL_OK=1"),
            ));
            return (LOCAL_DEFAULT_URL.to_owned(), Some("localhost".to_owned()));
        }
        r.issue(
            NAME,
            "is required unless PROXY_LOCAL_OK=1 permits the local default",
        );
        return (String::new(), None);
    };
    match parse_base_url(raw) {
        Ok(url) => (url.normalized, Some(url.host)),
        Err(problem) => {
            r.issue(NAME, url_message(problem));
            (String::new(), None)
        }
    }
}

/// Whether the providers document that `read_providers` will load routes directly. Looked
/// at ahead of time so `CLI_PROXY_API_URL`'s issue keeps its place in table order.
fn providers_route_directly(env: &BTreeMap<String, String>, inputs: &ExternalInputs) -> bool {
    let inline = env
        .get("PROVIDERS_JSON")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty());
    let text = match (inline, &inputs.providers_file) {
        (Some(text), _) => text,
        (None, Some(FileRead::Contents(text))) => text.as_str(),
        _ => return false,
    };
    serde_json::from_str::<Value>(text)
        .is_ok_and(|doc| crate::provider::direct::routes_directly(&doc))
}

pub(crate) fn url_message(problem: UrlProblem) -> &'static str {
    match problem {
        UrlProblem::Unparseable => "must be a parseable http(s) URL",
        UrlProblem::NotHttp => "must be an http(s) URL",
        UrlProblem::CredentialsQueryFragment => "must not contain credentials, query or fragment",
    }
}

fn read_pricing_url(r: &mut Reader<'_>) -> String {
    let Some(raw) = r.text("PRICING_URL") else {
        return DEFAULT_PRICING_URL.to_owned();
    };
    // A pricing URL may carry a query; only the scheme and authority matter here.
    let http = matches!(
        parse_base_url(raw),
        Ok(_) | Err(UrlProblem::CredentialsQueryFragment)
    );
    if !http && !is_file_url(raw) {
        r.issue(
            "PRICING_URL",
            "must be an http(s) URL or a file:/// URL with an absolute path",
        );
    }
    raw.to_owned()
}

fn read_json_object(r: &mut Reader<'_>, name: &str) -> Option<String> {
    let raw = r.text(name)?;
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(_)) => Some(raw.to_owned()),
        Ok(_) => {
            r.issue(name, "must be a JSON object");
            None
        }
        Err(e) => {
            r.issue(name, format!("must be valid JSON: {e}"));
            None
        }
    }
}

fn read_client_name_mapping(r: &mut Reader<'_>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let Some(raw) = r.text("CLIENT_NAME_MAPPING") else {
        return map;
    };
    for (i, entry) in raw.split(',').enumerate() {
        let parsed = entry
            .trim()
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty());
        match parsed {
            Some((k, v)) => {
                map.insert(k.to_owned(), v.to_owned());
            }
            None => r.issue(
                &format!("CLIENT_NAME_MAPPING[{i}]"),
                "must be a non-empty key=value entry",
            ),
        }
    }
    map
}

fn read_providers(
    r: &mut Reader<'_>,
    env: &BTreeMap<String, String>,
    inputs: &ExternalInputs,
    url: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Providers {
    let (var, text, source) = if let Some(inline) = r.text("PROVIDERS_JSON") {
        ("PROVIDERS_JSON", inline.to_owned(), ProviderSource::Inline)
    } else if let Some(path) = ExternalInputs::providers_file_to_read(env) {
        let text = match &inputs.providers_file {
            Some(FileRead::Contents(text)) => text.clone(),
            Some(FileRead::Failed(err)) => {
                r.issue("PROVIDERS_CONFIG_PATH", format!("could not be read: {err}"));
                return Providers::built_in(url);
            }
            None => {
                r.issue(
                    "PROVIDERS_CONFIG_PATH",
                    "could not be read: not read by the caller",
                );
                return Providers::built_in(url);
            }
        };
        ("PROVIDERS_CONFIG_PATH", text, ProviderSource::File { path })
    } else {
        return Providers::built_in(url);
    };
    let doc = match serde_json::from_str::<Value>(&text) {
        Ok(doc) => doc,
        Err(e) => {
            r.issue(var, format!("must be valid JSON: {e}"));
            return Providers::built_in(url);
        }
    };
    let checked = validate_document(&doc, env);
    r.issues.extend(checked.issues);
    warnings.extend(checked.warnings);
    Providers::merged(url, checked.providers, source)
}

fn warn_path(name: &str, path: &str, roots: &[Option<&str>], warnings: &mut Vec<ConfigWarning>) {
    if !path.starts_with('/') {
        warnings.push(ConfigWarning::new(
            name,
            "should be an absolute path outside the deploy/runtime directory to survive releases",
        ));
        return;
    }
    let inside = roots.iter().flatten().find(|root| {
        let root = root.trim_end_matches('/');
        !root.is_empty() && (path == root || path.starts_with(&format!("{root}/")))
    });
    if let Some(root) = inside {
        warnings.push(ConfigWarning::new(
            name,
            format!("should be outside deploy/runtime directory {root} to survive releases"),
        ));
    }
}

/// `SPOOL_*` (`docs/spool.md` §6).
fn read_spool(r: &mut Reader<'_>, home: &str, postgres: bool) -> SpoolSettings {
    let dir = match r.text("SPOOL_DIR") {
        Some(d) => Some(d.to_owned()),
        None if postgres => Some(home.to_owned()),
        None if home == ":memory:" => None,
        None => Some(format!("{home}.spool")),
    };
    let fsync = match r
        .text("SPOOL_FSYNC")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("off") => SpoolFsync::Off,
        Some("batch") => SpoolFsync::Batch,
        Some("always") => SpoolFsync::Always,
        Some(_) => {
            r.issue("SPOOL_FSYNC", "must be off, batch or always");
            SpoolFsync::Off
        }
    };
    SpoolSettings {
        dir,
        fsync,
        ingest_max_delay_ms: r.int_range("SPOOL_INGEST_MAX_DELAY_MS", 50, 1, 10_000),
        ingest_batch: r.int_range("SPOOL_INGEST_BATCH", 4_096, 1, 65_536) as u32,
        segment_bytes: r.int_range("SPOOL_SEGMENT_BYTES", 67_108_864, 1_048_576, u64::MAX >> 1),
        max_bytes: r.int_range("SPOOL_MAX_BYTES", 1_073_741_824, 16_777_216, u64::MAX >> 1),
    }
}

enum DatabaseUrl {
    Sqlite(String),
    Postgres(PostgresTarget),
}

/// `DATABASE_URL` (`docs/replicas.md` §1): a SQLite form wins over `DB_PATH`; a PostgreSQL
/// URL selects that backend. Only its shape is checked here (the storage layer parses it
/// fully at start); the URL itself is never echoed (it may carry a password).
fn read_database_url(r: &mut Reader<'_>) -> Option<DatabaseUrl> {
    let url = r.text("DATABASE_URL")?.to_owned();
    if url == "sqlite::memory:" {
        return Some(DatabaseUrl::Sqlite(":memory:".to_owned()));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.starts_with('/') {
            return Some(DatabaseUrl::Sqlite(path.to_owned()));
        }
        r.issue(
            "DATABASE_URL",
            "a sqlite URL needs an absolute path (sqlite:///abs/path.db)",
        );
        return None;
    }
    if let Some(target) = PostgresTarget::parse(&url) {
        return Some(DatabaseUrl::Postgres(target));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        r.issue(
            "DATABASE_URL",
            "a postgres URL needs a database name (postgres://user@host:5432/dbname)",
        );
        return None;
    }
    r.issue(
        "DATABASE_URL",
        "must be sqlite:///abs/path.db, sqlite::memory: or a postgres:// URL",
    );
    None
}
