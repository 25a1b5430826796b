//! The spool as the offline commands see it (`docs/spool.md` §5a): apply what a stopped daemon
//! left before reading or copying the database, and `db spool status`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_cli_proxy_storage::DbPath;

use std::process::ExitCode;

use agent_cli_proxy_storage::Store;
use serde_json::json;

use crate::args::SpoolStatusArgs;
use crate::{CliError, CmdResult, env};

/// `SPOOL_DIR`, or `<DB_PATH>.spool`; `None` for an in-memory database.
pub(crate) fn dir(vars: &BTreeMap<String, String>, db_path: &str) -> Option<PathBuf> {
    match vars.get("SPOOL_DIR").map(|v| v.trim()) {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ if db_path == ":memory:" => None,
        _ => Some(PathBuf::from(format!("{db_path}.spool"))),
    }
}

/// Applies a spool left by a daemon that stopped without ingesting it; says so on stderr.
pub(crate) fn apply_leftover(
    vars: &BTreeMap<String, String>,
    db_path: &str,
) -> Result<(), CliError> {
    match dir(vars, db_path) {
        Some(dir) => apply_dir(&dir, db_path),
        None => Ok(()),
    }
}

/// [`apply_leftover`] with the spool directory given.
pub(crate) fn apply_dir(dir: &Path, db_path: &str) -> Result<(), CliError> {
    let n = agent_cli_proxy_storage::ingest::apply_leftover(&DbPath::from_config(db_path), dir)
        .map_err(|e| {
            CliError::Runtime(format!(
                "SPOOL_DIR {}: {}",
                dir.display(),
                crate::one_line(&e.to_string())
            ))
        })?;
    if n > 0 {
        crate::err_line!(
            "Applied {n} spooled records left by a stopped daemon ({})",
            dir.display()
        );
    }
    Ok(())
}

/// `db spool status`: what the spool holds and how far the database has applied it.
pub(crate) fn status(process: &BTreeMap<String, String>, args: SpoolStatusArgs) -> CmdResult {
    let loaded = env::load(process, args.env.as_deref())?;
    let (dir, applied) = match env::database(&loaded.vars) {
        env::Database::Sqlite(db_path) => {
            let Some(dir) = dir(&loaded.vars, &db_path) else {
                crate::out_line!("DB_PATH is :memory:; the spool lives in the daemon's memory");
                return Ok(ExitCode::SUCCESS);
            };
            let applied = Store::open_read_only(&DbPath::from_config(&db_path))
                .ok()
                .and_then(|s| agent_cli_proxy_storage::ingest::applied_seq(s.connection()).ok());
            (dir, applied)
        }
        // This replica's spool and the position PostgreSQL holds for it (`docs/replicas.md`).
        env::Database::Postgres(target) => {
            let (config, _) = env::load_config(&loaded.vars)?;
            let Some(dir) = config.spool.dir.map(PathBuf::from) else {
                return Err(CliError::Runtime("SPOOL_DIR is not set".to_owned()));
            };
            let replica = std::fs::read_to_string(dir.join("replica-id"))
                .ok()
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty());
            let applied = match replica {
                Some(replica) => Some(crate::pg::applied_seq(&target, &replica)?),
                None => None,
            };
            (dir, applied)
        }
    };
    let found = agent_cli_proxy_storage::spool::inspect(&dir)
        .map_err(|e| CliError::Runtime(format!("SPOOL_DIR {}: {e}", dir.display())))?;
    let bytes: u64 = found.segments.iter().map(|(_, b)| b).sum();
    let behind = match (found.last_seq, applied) {
        (Some(last), Some(applied)) => Some(last.saturating_sub(applied)),
        (None, Some(_)) => Some(0),
        _ => None,
    };
    if args.json {
        crate::out_line!(
            "{}",
            json!({
                "dir": dir.display().to_string(),
                "segments": found.segments.iter().map(|(n, b)| json!({"name": n, "bytes": b})).collect::<Vec<_>>(),
                "bytes": bytes,
                "lastWritten": found.last_seq,
                "applied": applied,
                "behind": behind,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::out_line!("Spool directory:  {}", dir.display());
    crate::out_line!("Segments:         {}", found.segments.len());
    crate::out_line!("Bytes:            {bytes}");
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    crate::out_line!("Last written:     {}", show(found.last_seq));
    crate::out_line!("Applied to DB:    {}", show(applied));
    crate::out_line!("Not yet applied:  {}", show(behind));
    Ok(ExitCode::SUCCESS)
}
