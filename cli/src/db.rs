//! `db init` and `db backup` (`control.md` §11.2, §3.6, §4).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use agent_cli_proxy_storage::{DbPath, MigrationReport, Store, backup as storage_backup};
use serde_json::json;

use crate::args::BackupArgs;
use crate::{CliError, CmdResult, env, log};

/// `db init [--env PATH]`.
pub(crate) fn init(process: &BTreeMap<String, String>, env_file: Option<&Path>) -> CmdResult {
    let loaded = env::load(process, env_file)?;
    let db_path = env::db_path(&loaded.vars);
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
    let db_path = env::db_path(&loaded.vars);
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
