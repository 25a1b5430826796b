//! `db init`, `db backup` and `db copy` (`control.md` §11.2, §3.6, §4; `docs/replicas.md`
//! §7).
//!
//! Choices where the spec is silent:
//! * With `DATABASE_URL=postgres://…`, `db init` migrates PostgreSQL and applies no spool
//!   (each replica ingests its own at start); `db backup` refuses and points at `pg_dump`.
//! * `db copy` applies the spool of its source only when the source is the environment's own
//!   SQLite database (`SPOOL_DIR` belongs to the backend `DATABASE_URL` selects), else the
//!   source's `<path>.spool`; it then holds the source's lock for the copy, so it refuses a
//!   database a running daemon still writes to.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use agent_cli_proxy_core::config::PostgresTarget;
use agent_cli_proxy_storage::{DbLock, DbPath, MigrationReport, Store, backup as storage_backup};
use serde_json::json;

use crate::args::{BackupArgs, CopyArgs};
use crate::env::Database;
use crate::{CliError, CmdResult, env, log};

/// `db init [--env PATH]`.
pub(crate) fn init(process: &BTreeMap<String, String>, env_file: Option<&Path>) -> CmdResult {
    let loaded = env::load(process, env_file)?;
    let db_path = match env::database(&loaded.vars) {
        Database::Postgres(target) => return crate::pg::init(&target),
        Database::Sqlite(db_path) => db_path,
    };
    init_at(&db_path)?;
    crate::spool::apply_leftover(&loaded.vars, &db_path)?;
    crate::out_line!("Initialized DB at {db_path}");
    Ok(ExitCode::SUCCESS)
}

/// `db backup --output PATH [--env PATH]`.
pub(crate) fn backup(process: &BTreeMap<String, String>, args: BackupArgs) -> CmdResult {
    let Some(output) = args.output else {
        return Err(CliError::Usage(
            "--output is required; run 'agent-cli-proxy db backup --help' for usage".to_owned(),
        ));
    };
    let loaded = env::load(process, args.env.as_deref())?;
    let db_path = match env::database(&loaded.vars) {
        Database::Postgres(target) => {
            return Err(CliError::Runtime(format!(
                "DATABASE_URL names {}: db backup copies a SQLite database only; back \
                 PostgreSQL up with its own tools (pg_dump --format=custom {})",
                crate::pg::describe(&target),
                target.dbname
            )));
        }
        Database::Sqlite(db_path) => db_path,
    };
    crate::spool::apply_leftover(&loaded.vars, &db_path)?;
    let report = storage_backup(&DbPath::from_config(&db_path), &output)
        .map_err(|e| CliError::Runtime(crate::one_line(&e.to_string())))?;
    log::info(
        &loaded.vars,
        "db.backup",
        "database backup written",
        json!({
            "path": report.path.display().to_string(),
            "source_path": report.source_path.display().to_string(),
            "size": report.size,
        }),
    );
    crate::out_line!(
        "Backup written: {} ({} bytes)",
        report.path.display(),
        report.size
    );
    Ok(ExitCode::SUCCESS)
}

/// `db copy [--to URL] [--from PATH] [--env PATH]`.
pub(crate) fn copy(process: &BTreeMap<String, String>, args: CopyArgs) -> CmdResult {
    let loaded = env::load(process, args.env.as_deref())?;
    let database = env::database(&loaded.vars);
    let (target, source) = match (&args.to, &database) {
        (Some(url), _) => (
            PostgresTarget::parse(url.trim()).ok_or_else(|| {
                CliError::Usage(
                    "--to must be a postgres:// URL naming a database \
                     (postgres://user@host:5432/dbname); run 'agent-cli-proxy db copy --help' \
                     for usage"
                        .to_owned(),
                )
            })?,
            "--to",
        ),
        (None, Database::Postgres(target)) => (target.clone(), "DATABASE_URL"),
        (None, Database::Sqlite(_)) => {
            return Err(CliError::Usage(
                "--to is required unless DATABASE_URL names a PostgreSQL database; run \
                 'agent-cli-proxy db copy --help' for usage"
                    .to_owned(),
            ));
        }
    };
    crate::pg::available(source)?;
    let env_db = match &database {
        Database::Sqlite(db_path) => db_path.clone(),
        Database::Postgres(_) => env::db_path(&loaded.vars),
    };
    let (from, from_name) = match &args.from {
        Some(p) => (env::absolute(p)?.display().to_string(), "--from"),
        None => (env_db.clone(), "DB_PATH"),
    };
    if from.starts_with(':') || !Path::new(&from).is_file() {
        return Err(CliError::Runtime(format!(
            "{from_name} {from}: no SQLite database there to copy"
        )));
    }
    let own_database = matches!(database, Database::Sqlite(_)) && from == env_db;
    let spool_dir = if own_database {
        crate::spool::dir(&loaded.vars, &from)
    } else {
        Some(format!("{from}.spool").into())
    };
    if let Some(dir) = spool_dir {
        crate::spool::apply_dir(&dir, &from)?;
    }
    let db = DbPath::from_config(&from);
    let _lock = DbLock::acquire(&db).map_err(|e| {
        CliError::Runtime(format!(
            "{from_name} {from}: {}; stop the daemon that uses it before db copy",
            crate::one_line(&e.to_string())
        ))
    })?;
    let (store, _) = Store::open_and_migrate(&db).map_err(|e| {
        CliError::Runtime(format!(
            "{from_name} {from}: {}",
            crate::one_line(&e.to_string())
        ))
    })?;
    crate::pg::copy(&loaded.vars, &from, store.connection(), &target, source)
}

/// Creates the parent directory, opens, upgrades and asserts the database at `db_path`.
pub(crate) fn init_at(db_path: &str) -> Result<MigrationReport, CliError> {
    Store::open_and_migrate(&DbPath::from_config(db_path))
        .map(|(_, report)| report)
        .map_err(|e| {
            CliError::Runtime(format!(
                "DB_PATH {db_path}: {}",
                crate::one_line(&e.to_string())
            ))
        })
}
