//! Storage errors (`style.md` §6): [`StorageError`] for callers that can act on details, and
//! [`StorageFailure`], the small copyable summary the core sees.

use rusqlite::ErrorCode;

/// Why a storage operation failed.
///
/// `Clone` because one failed batch answers every command it held with the same error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database stayed locked (`SQLITE_BUSY`/`SQLITE_LOCKED`) past the busy timeout and
    /// every retry.
    #[error("database is busy")]
    Busy,
    /// The disk or the database is full (`SQLITE_FULL`).
    #[error("database or disk is full")]
    Full,
    /// The database cannot be written (`SQLITE_READONLY`).
    #[error("database is read-only")]
    ReadOnly,
    /// The writer thread is gone (stopped or crashed); nothing was written.
    #[error("storage writer is gone")]
    WriterGone,
    /// A fire-and-forget command found the writer's queue full and was dropped.
    #[error("storage queue is full")]
    QueueFull,
    /// Any other SQLite failure.
    #[error("sqlite error {code:?}: {message}")]
    Sqlite {
        /// The extended SQLite result code, when SQLite reported one.
        code: Option<i32>,
        /// SQLite's message.
        message: String,
    },
    /// The schema lacks columns or indexes after migration (`control.md` §4).
    #[error("schema assertion failed: missing {}", missing.join(", "))]
    SchemaAssertion {
        /// `<table>.<column>` and `index.<name>` entries, in check order.
        missing: Vec<String>,
    },
    /// A migration failed; the database is left as it was before that migration.
    #[error("migration {file} failed: {source}")]
    Migration {
        /// The migration's name (`003_exact_cost.sql`, `legacy-0.1-upgrade`, …).
        file: &'static str,
        /// What went wrong.
        source: Box<StorageError>,
    },
    /// A database server (the PostgreSQL backend) refused or could not be reached; the
    /// message never carries the connection URL.
    #[error("database server error: {message}")]
    Server {
        /// What the server or the driver said.
        message: String,
    },
    /// A file-system operation failed.
    #[error("io error ({kind:?}): {message}")]
    Io {
        /// The kind of the underlying error.
        kind: std::io::ErrorKind,
        /// The error's message.
        message: String,
    },
}

impl StorageError {
    /// The copyable summary handed to the core.
    pub fn failure(&self) -> StorageFailure {
        match self {
            StorageError::Busy => StorageFailure::Busy,
            StorageError::Full => StorageFailure::Full,
            StorageError::ReadOnly => StorageFailure::ReadOnly,
            StorageError::WriterGone => StorageFailure::WriterGone,
            StorageError::QueueFull => StorageFailure::QueueFull,
            _ => StorageFailure::Other,
        }
    }

    /// True for a lock that outlived the busy timeout, the case the writer retries.
    pub fn is_busy(&self) -> bool {
        matches!(self, StorageError::Busy)
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, msg) = &e {
            return match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StorageError::Busy,
                ErrorCode::DiskFull => StorageError::Full,
                ErrorCode::ReadOnly => StorageError::ReadOnly,
                _ => StorageError::Sqlite {
                    code: Some(f.extended_code),
                    message: msg.clone().unwrap_or_else(|| f.to_string()),
                },
            };
        }
        StorageError::Sqlite {
            code: None,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// A storage failure as the core sees it: what happened, without details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageFailure {
    /// Locked past the timeout and retries.
    Busy,
    /// Disk or database full.
    Full,
    /// Read-only database.
    ReadOnly,
    /// The writer thread is gone.
    WriterGone,
    /// A fire-and-forget command was dropped because the queue was full.
    QueueFull,
    /// Anything else.
    Other,
}

impl StorageFailure {
    /// A short label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageFailure::Busy => "busy",
            StorageFailure::Full => "full",
            StorageFailure::ReadOnly => "read_only",
            StorageFailure::WriterGone => "writer_gone",
            StorageFailure::QueueFull => "queue_full",
            StorageFailure::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_assertion_message_lists_missing_items_in_order() {
        let e = StorageError::SchemaAssertion {
            missing: vec!["request_logs.cost_nanousd".into(), "index.idx_x".into()],
        };
        assert_eq!(
            e.to_string(),
            "schema assertion failed: missing request_logs.cost_nanousd, index.idx_x"
        );
    }

    #[test]
    fn busy_and_locked_map_to_busy() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        let locked = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(6), None);
        assert_eq!(StorageError::from(busy), StorageError::Busy);
        assert_eq!(StorageError::from(locked).failure(), StorageFailure::Busy);
    }
}
