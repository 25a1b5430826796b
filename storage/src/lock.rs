//! The database lock `<DB_PATH>.lock` (`control.md` §1 step 3).
//!
//! An OS advisory lock taken with `std::fs::File::try_lock` (flock on Linux, no unsafe code),
//! held for the life of the [`DbLock`] value: the kernel releases it when the process dies,
//! even by SIGKILL. It is what lets boot recovery treat every pending row as orphaned.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::conn::DbPath;

/// The exclusive lock on a database; released on drop.
#[derive(Debug)]
pub struct DbLock {
    // Kept only to hold the lock; `None` for an in-memory database.
    _file: Option<File>,
    path: Option<PathBuf>,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process (or another handle in this one) holds the lock.
    #[error("database is locked: {}", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file or its directory could not be created or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl DbLock {
    /// Takes the lock of the database at `path` without waiting; creates the database's
    /// parent directory first. `:memory:` needs no lock and always succeeds.
    pub fn acquire(path: &DbPath) -> Result<DbLock, LockError> {
        let Some(db) = path.file() else {
            return Ok(DbLock {
                _file: None,
                path: None,
            });
        };
        let lock_path = lock_path(db);
        let io = |source| LockError::Io {
            path: lock_path.clone(),
            source,
        };
        if let Some(parent) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(DbLock {
                _file: Some(file),
                path: Some(lock_path),
            }),
            Err(TryLockError::WouldBlock) => Err(LockError::Locked { path: lock_path }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// The lock file, `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// `<db>.lock`: the suffix is appended to the whole file name.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = DbPath::File(dir.path().join("sub/acp.db"));
        let first = DbLock::acquire(&db).unwrap();
        assert_eq!(
            first.path(),
            Some(dir.path().join("sub/acp.db.lock").as_path())
        );
        assert!(matches!(
            DbLock::acquire(&db),
            Err(LockError::Locked { .. })
        ));
        drop(first);
        assert!(DbLock::acquire(&db).is_ok());
    }

    #[test]
    fn memory_needs_no_lock() {
        let db = DbPath::memory();
        let a = DbLock::acquire(&db).unwrap();
        let b = DbLock::acquire(&db).unwrap();
        assert!(a.path().is_none() && b.path().is_none());
    }
}
