//! Connections (`control.md` §3.1): where the database lives and the PRAGMAs every
//! connection kind sets. The pool of read-only connections is `readers`.
//!
//! `:memory:` becomes a process-unique shared-cache URI so that the writer and the readers
//! see one database. Shared-cache connections lock whole tables instead of using WAL, so
//! readers of an in-memory database set `read_uncommitted` to avoid waiting on the writer's
//! table locks; a file database needs nothing of the kind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::StorageError;

/// The busy timeout every connection sets, in milliseconds.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;
/// The WAL size limit write connections set, in bytes.
pub const JOURNAL_SIZE_LIMIT: i64 = 67_108_864;
/// The number of read-only connections a [`Readers`] pool opens at most.
pub const MAX_READERS: usize = 4;
/// Page cache of the write connection, in KiB (`PRAGMA cache_size = -8192`).
///
/// SQLite's default of 2 MiB no longer holds the interior pages of `request_logs` and its
/// ten indexes once the table has a few hundred thousand rows, and every miss is a `pread`
/// on the writer thread. The cache fills only as pages are touched, so idle RSS is unchanged.
pub const WRITER_CACHE_KIB: i64 = 8_192;
/// WAL frames after which a commit runs an automatic checkpoint (`PRAGMA
/// wal_autocheckpoint`), set explicitly because it is a measured choice: SQLite's default.
///
/// A longer WAL looks cheaper (fewer checkpoints, each with two `fsync`s) but is not: the
/// few pages every commit touches (the tail leaves of `request_logs` and its indexes, the
/// `daily_usage` row) get one WAL-index hash entry per commit, and SQLite probes linearly
/// past all earlier entries of the same page, so each frame appended costs in proportion to
/// the WAL's length. At 4 000 frames that probing was 13 % of the writer's instructions;
/// at 1 000 the writer runs 8 % fewer instructions per request.
pub const WAL_AUTOCHECKPOINT_PAGES: i64 = 1_000;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbPath {
    /// A database file.
    File(PathBuf),
    /// An in-memory database shared by every connection opened with this value.
    Memory {
        /// The shared-cache URI naming it.
        uri: String,
    },
}

static MEMORY_SEQ: AtomicU64 = AtomicU64::new(0);

impl DbPath {
    /// `DB_PATH` as configured: `:memory:` gets a fresh process-unique in-memory database,
    /// anything else is a file path.
    pub fn from_config(value: &str) -> DbPath {
        if value == ":memory:" {
            DbPath::memory()
        } else {
            DbPath::File(PathBuf::from(value))
        }
    }

    /// A new in-memory database, distinct from every other one in this process.
    pub fn memory() -> DbPath {
        let seq = MEMORY_SEQ.fetch_add(1, Ordering::Relaxed);
        DbPath::Memory {
            uri: format!(
                "file:acp-memdb-{}-{seq}?mode=memory&cache=shared",
                std::process::id()
            ),
        }
    }

    /// True for an in-memory database.
    pub fn is_memory(&self) -> bool {
        matches!(self, DbPath::Memory { .. })
    }

    /// The file path, if this is a file database.
    pub fn file(&self) -> Option<&Path> {
        match self {
            DbPath::File(p) => Some(p),
            DbPath::Memory { .. } => None,
        }
    }
}

/// Options of one connection; the defaults are those of `control.md` §3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOptions {
    /// `PRAGMA busy_timeout` in milliseconds.
    pub busy_timeout_ms: u64,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            busy_timeout_ms: BUSY_TIMEOUT_MS,
        }
    }
}

/// Opens the read-write connection (creating the file and its parent directory) and applies
/// the write PRAGMAs: WAL, `journal_size_limit`, `synchronous = NORMAL`, `busy_timeout`,
/// `foreign_keys = OFF`, and for speed `temp_store = MEMORY` (statement journals and the
/// temporary B-trees of the schema's `CHECK … IN (…)` constraints would otherwise be files
/// created and deleted under `/var/tmp` in every batch), [`WRITER_CACHE_KIB`] of page cache
/// and [`WAL_AUTOCHECKPOINT_PAGES`].
pub fn open_write(path: &DbPath, opts: ConnOptions) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match path {
        DbPath::File(p) => {
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            Connection::open_with_flags(p, flags)?
        }
        DbPath::Memory { uri } => Connection::open_with_flags(uri, flags)?,
    };
    conn.busy_timeout(Duration::from_millis(opts.busy_timeout_ms))?;
    // journal_mode answers with a row, so it goes through a query, not execute.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    let _limit: i64 = conn.query_row(
        &format!("PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}"),
        [],
        |r| r.get(0),
    )?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{WRITER_CACHE_KIB};
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens a read-only connection with `synchronous = NORMAL`, `busy_timeout` and
/// `foreign_keys = OFF`.
pub fn open_read(path: &DbPath, opts: ConnOptions) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match path {
        DbPath::File(p) => Connection::open_with_flags(p, flags)?,
        DbPath::Memory { uri } => Connection::open_with_flags(uri, flags)?,
    };
    conn.busy_timeout(Duration::from_millis(opts.busy_timeout_ms))?;
    // The bundled SQLite enables foreign keys by default; the schema only declares them.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")?;
    if path.is_memory() {
        conn.execute_batch("PRAGMA read_uncommitted = 1;")?;
    }
    Ok(conn)
}

/// The PRAGMA values a connection reports, for tests and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PragmaReport {
    /// `journal_mode` (`wal` for a file database).
    pub journal_mode: String,
    /// `synchronous` (1 = NORMAL).
    pub synchronous: i64,
    /// `busy_timeout` in milliseconds.
    pub busy_timeout: i64,
    /// `journal_size_limit` in bytes.
    pub journal_size_limit: i64,
    /// `foreign_keys` (0 = off).
    pub foreign_keys: i64,
}

/// Reads the PRAGMAs of §3.1 back from a connection.
pub fn read_pragmas(conn: &Connection) -> Result<PragmaReport, StorageError> {
    let get_i = |name: &str| -> Result<i64, StorageError> {
        Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
    };
    Ok(PragmaReport {
        journal_mode: conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
        synchronous: get_i("synchronous")?,
        busy_timeout: get_i("busy_timeout")?,
        journal_size_limit: get_i("journal_size_limit")?,
        foreign_keys: get_i("foreign_keys")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_connection_sets_its_speed_pragmas_and_readers_do_not_need_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = DbPath::File(dir.path().join("acp.db"));
        let conn = open_write(&path, ConnOptions::default()).expect("open");
        let get = |name: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .expect(name)
        };
        assert_eq!(get("temp_store"), 2, "temp_store = MEMORY");
        assert_eq!(get("cache_size"), -WRITER_CACHE_KIB);
        assert_eq!(get("wal_autocheckpoint"), WAL_AUTOCHECKPOINT_PAGES);
        assert_eq!(get("synchronous"), 1);
        let report = read_pragmas(&conn).expect("pragmas");
        assert_eq!(report.journal_mode, "wal");
        assert_eq!(report.journal_size_limit, JOURNAL_SIZE_LIMIT);
    }
}
