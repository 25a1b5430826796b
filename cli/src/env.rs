//! Environment loading (`control.md` §5.1), configuration validation for commands, and the
//! `paths` command (§5.2).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use agent_cli_proxy_core::config::{
    Config, ConfigWarning, ExternalInputs, FileRead, Paths, PostgresTarget, merge_env,
    parse_env_file,
};
use serde_json::json;

use crate::{CliError, CmdResult};

/// The environment a command sees, and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct LoadedEnv {
    /// Process environment merged with the env file.
    pub vars: BTreeMap<String, String>,
    /// The env file that applies (`--env` or the default), whether or not it exists.
    pub env_path: String,
}

/// The process environment (variables that are not valid UTF-8 are skipped).
pub(crate) fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Merges the env file into `process`: `--env PATH` must exist; the default file is read
/// when it exists.
pub(crate) fn load(
    process: &BTreeMap<String, String>,
    explicit: Option<&Path>,
) -> Result<LoadedEnv, CliError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_string_lossy().into_owned(), true),
        None => (Paths::from_env(process).env_file, false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if required {
                return Err(CliError::Runtime(format!("env file not found: {path}")));
            }
            None
        }
        Err(e) => {
            return Err(CliError::Runtime(format!(
                "env file could not be read: {path}: {e}"
            )));
        }
    };
    let vars = match text {
        Some(text) => merge_env(process, &parse_env_file(&text)),
        None => process.clone(),
    };
    Ok(LoadedEnv {
        vars,
        env_path: path,
    })
}

/// Validates the configuration, reading the custom providers file when one is named.
pub(crate) fn load_config(
    vars: &BTreeMap<String, String>,
) -> Result<(Config, Vec<ConfigWarning>), CliError> {
    Config::from_env(vars, &external_inputs(vars))
        .map_err(|e| CliError::Runtime(crate::one_line(&e.to_string())))
}

/// The inputs that need IO for [`Config::from_env`].
pub(crate) fn external_inputs(vars: &BTreeMap<String, String>) -> ExternalInputs {
    let providers_file = ExternalInputs::providers_file_to_read(vars).map(|path| {
        match std::fs::read_to_string(&path) {
            Ok(text) => FileRead::Contents(text),
            Err(e) => FileRead::Failed(e.to_string()),
        }
    });
    ExternalInputs { providers_file }
}

/// Prints configuration warnings on stderr.
pub(crate) fn print_warnings(warnings: &[ConfigWarning]) {
    for w in warnings {
        crate::err_line!("warning: {} {}", w.path, w.message);
    }
}

/// `DB_PATH` for commands that need nothing else: from a valid configuration (printing its
/// warnings), else the variable as set, else the default.
pub(crate) fn db_path(vars: &BTreeMap<String, String>) -> String {
    match Config::from_env(vars, &external_inputs(vars)) {
        Ok((config, warnings)) => validated_db_path(config, warnings),
        Err(_) => db_path_as_set(vars),
    }
}

fn validated_db_path(config: Config, warnings: Vec<ConfigWarning>) -> String {
    print_warnings(
        &warnings
            .into_iter()
            .filter(|w| w.path == "DB_PATH")
            .collect::<Vec<_>>(),
    );
    config.db_path
}

fn db_path_as_set(vars: &BTreeMap<String, String>) -> String {
    match vars.get("DB_PATH").map(|v| v.trim()) {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => Paths::from_env(vars).db_path,
    }
}

/// The database a command's environment selects (`docs/replicas.md` §1).
#[derive(Debug, Clone)]
pub(crate) enum Database {
    /// SQLite at this `DB_PATH`.
    Sqlite(String),
    /// `DATABASE_URL=postgres://…`.
    Postgres(PostgresTarget),
}

/// The database for commands that need nothing else. A PostgreSQL `DATABASE_URL` is honoured
/// even when the rest of the configuration is invalid, as [`db_path`] honours `DB_PATH`:
/// `db init` must be able to prepare the database before the rest is set up.
pub(crate) fn database(vars: &BTreeMap<String, String>) -> Database {
    match Config::from_env(vars, &external_inputs(vars)) {
        Ok((config, warnings)) => match config.postgres {
            Some(target) => Database::Postgres(target),
            None => Database::Sqlite(validated_db_path(config, warnings)),
        },
        Err(_) => match vars
            .get("DATABASE_URL")
            .and_then(|v| PostgresTarget::parse(v.trim()))
        {
            Some(target) => Database::Postgres(target),
            None => Database::Sqlite(db_path_as_set(vars)),
        },
    }
}

/// `paths`: the default locations as pretty JSON. `databaseKind` and `spoolDir` come after
/// the keys of `control.md` §11.2: the spool's default home depends on the backend
/// `DATABASE_URL` selects.
pub(crate) fn paths(process: &BTreeMap<String, String>) -> CmdResult {
    let p = Paths::from_env(process);
    let postgres = process
        .get("DATABASE_URL")
        .and_then(|v| PostgresTarget::parse(v.trim()))
        .is_some();
    let (kind, spool_dir) = if postgres {
        (
            "postgres",
            format!("{}/spool", p.data_dir.trim_end_matches('/')),
        )
    } else {
        ("sqlite", format!("{}.spool", p.db_path))
    };
    let body = json!({
        "configDir": p.config_dir,
        "dataDir": p.data_dir,
        "envPath": p.env_file,
        "dbPath": p.db_path,
        "pricingCachePath": p.pricing_cache_path,
        "providersPath": p.providers_file,
        "databaseKind": kind,
        "spoolDir": spool_dir,
    });
    crate::out_line!("{}", pretty(&body));
    Ok(ExitCode::SUCCESS)
}

/// JSON with a 2-space indent.
pub(crate) fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// An absolute form of `path` (relative to the working directory), without touching the
/// file system beyond reading the working directory.
pub(crate) fn absolute(path: &Path) -> Result<std::path::PathBuf, CliError> {
    std::path::absolute(path).map_err(|e| {
        CliError::Runtime(format!(
            "could not resolve path {}: {e}",
            path.to_string_lossy()
        ))
    })
}
