//! `db backup` (`control.md` §3.6): a consistent snapshot with `VACUUM INTO`, checked and
//! moved into place atomically. Writers continue meanwhile (WAL).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::conn::{ConnOptions, DbPath, open_read};
use crate::error::StorageError;
use crate::store::{Store, integrity_check};

/// A written backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Absolute path of the backup.
    pub path: PathBuf,
    /// Absolute path of the database.
    pub source_path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// Why a backup was refused or failed; the messages are those of the spec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// `DB_PATH` is `:memory:`.
    #[error("cannot back up in-memory database")]
    InMemory,
    /// The database file does not exist.
    #[error("database does not exist: {}", .0.display())]
    MissingDatabase(PathBuf),
    /// The output resolves to the database itself.
    #[error("backup output must differ from DB_PATH")]
    SameAsDatabase,
    /// The output exists.
    #[error("backup output already exists: {}", .0.display())]
    OutputExists(PathBuf),
    /// The snapshot failed `PRAGMA integrity_check`.
    #[error("backup integrity check failed: {0}")]
    IntegrityCheck(String),
    /// Storage or file-system error.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<std::io::Error> for BackupError {
    fn from(e: std::io::Error) -> Self {
        BackupError::Storage(e.into())
    }
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Storage(e.into())
    }
}

/// Backs `db` up to `output`. The temporary file is `<output>.tmp-<pid>`.
pub fn backup(db: &DbPath, output: &Path) -> Result<BackupReport, BackupError> {
    let Some(db_file) = db.file() else {
        return Err(BackupError::InMemory);
    };
    if !db_file.is_file() {
        return Err(BackupError::MissingDatabase(db_file.to_path_buf()));
    }
    let source_path = db_file.canonicalize()?;
    let output = std::path::absolute(output)?;
    if resolve(&output) == source_path {
        return Err(BackupError::SameAsDatabase);
    }
    if output.exists() {
        return Err(BackupError::OutputExists(output));
    }
    let parent = output.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&parent)?;

    let mut store = Store::open(db)?;
    store.migrate()?;
    let mut tmp_name = output.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let result = snapshot(&store, &tmp);
    drop(store);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &output)?;
    File::open(&parent)?.sync_all()?;
    let size = std::fs::metadata(&output)?.len();
    Ok(BackupReport {
        path: output,
        source_path,
        size,
    })
}

fn snapshot(store: &Store, tmp: &Path) -> Result<(), BackupError> {
    let tmp_str = tmp.to_string_lossy().into_owned();
    store.connection().execute("VACUUM INTO ?1", [&tmp_str])?;
    File::open(tmp)?.sync_all()?;
    let check = {
        let conn = open_read(&DbPath::File(tmp.to_path_buf()), ConnOptions::default())?;
        integrity_check(&conn)?
    };
    if check != "ok" {
        return Err(BackupError::IntegrityCheck(check));
    }
    Ok(())
}

/// Resolves symlinks of the existing part of a path that may not exist yet.
fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => resolve(parent).join(name),
        _ => path.to_path_buf(),
    }
}
