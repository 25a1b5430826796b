//! The synchronous API over one connection (`style.md` §5): open, migrate, run a write
//! command in its own transaction, and every query (in [`crate::queries`]). Used by the CLI,
//! the tests, the readers (read-only) and, underneath, the writer thread.

use rusqlite::{Connection, TransactionBehavior};

use crate::apply::{apply, wal_checkpoint};
use crate::conn::{ConnOptions, DbPath, PragmaReport, open_read, open_write, read_pragmas};
use crate::error::StorageError;
use crate::op::{Op, Reply};
use crate::schema::{MigrationReport, assert_schema, migrate};

/// One SQLite connection with the storage operations on it.
pub struct Store {
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the read-write connection with the PRAGMAs of `control.md` §3.1 (creating the
    /// file and its parent directory). Does not migrate: call [`Store::migrate`].
    pub fn open(path: &DbPath) -> Result<Store, StorageError> {
        Store::open_with(path, ConnOptions::default())
    }

    /// [`Store::open`] with explicit options.
    pub fn open_with(path: &DbPath, opts: ConnOptions) -> Result<Store, StorageError> {
        Ok(Store {
            conn: open_write(path, opts)?,
        })
    }

    /// Opens, migrates and asserts the schema (`db init`, daemon startup step 4).
    pub fn open_and_migrate(path: &DbPath) -> Result<(Store, MigrationReport), StorageError> {
        let mut store = Store::open(path)?;
        let report = store.migrate()?;
        Ok((store, report))
    }

    /// Opens a read-only connection (the database must exist and be migrated).
    pub fn open_read_only(path: &DbPath) -> Result<Store, StorageError> {
        Ok(Store {
            conn: open_read(path, ConnOptions::default())?,
        })
    }

    pub(crate) fn from_connection(conn: Connection) -> Store {
        Store { conn }
    }

    /// The connection, as the writer thread and the ingester use it (benchmarks take it too): after the migration,
    /// with `PRAGMA ignore_check_constraints = ON` (why: `writer.rs`, module docs).
    pub fn into_writer_connection(self) -> Result<Connection, StorageError> {
        self.conn
            .execute_batch("PRAGMA ignore_check_constraints = ON;")?;
        Ok(self.conn)
    }

    /// Detects the layout, upgrades in place and asserts the schema (`control.md` §4).
    pub fn migrate(&mut self) -> Result<MigrationReport, StorageError> {
        migrate(&mut self.conn)
    }

    /// The schema assertion alone.
    pub fn assert_schema(&self) -> Result<(), StorageError> {
        assert_schema(&self.conn)
    }

    /// Reads the connection's PRAGMAs back.
    pub fn pragmas(&self) -> Result<PragmaReport, StorageError> {
        read_pragmas(&self.conn)
    }

    /// `PRAGMA integrity_check`, its rows joined by newlines (`ok` when healthy).
    pub fn integrity_check(&self) -> Result<String, StorageError> {
        integrity_check(&self.conn)
    }

    /// Runs one command in its own `BEGIN IMMEDIATE … COMMIT` (no group commit, no retry
    /// beyond the busy timeout). `WalCheckpoint` runs outside a transaction; `Shutdown` does
    /// nothing.
    pub fn execute(&mut self, op: Op) -> Result<Reply, StorageError> {
        match op {
            Op::WalCheckpoint => return wal_checkpoint(&self.conn).map(Reply::Checkpoint),
            Op::Shutdown => return Ok(Reply::Done),
            _ => {}
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let reply = apply(&tx, &op)?;
        tx.commit()?;
        Ok(reply)
    }

    /// The underlying connection, for ad-hoc checks in tests and `doctor`.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

pub(crate) fn integrity_check(conn: &Connection) -> Result<String, StorageError> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{CostStatus, Terminal};

    fn insert(conn: &Connection, lifecycle: &str, cost: &str) -> rusqlite::Result<usize> {
        conn.execute(
            "INSERT INTO request_logs (provider, model, path, started_at, lifecycle_status,
               cost_status) VALUES ('p', 'm', '/v1/messages', '2026-12-08T00:00:00.000Z', ?1, ?2)",
            [lifecycle, cost],
        )
    }

    /// The writer's connection does not evaluate the schema's CHECK lists; this is what
    /// guards them instead: every value it can write passes them on a connection that does.
    #[test]
    fn every_status_the_writer_writes_passes_the_schemas_checks() {
        let mut store = Store::open(&DbPath::memory()).expect("open");
        store.migrate().expect("migrate");
        let checked = &store.conn;
        // Exhaustive matches: a new variant does not compile until it is listed here.
        let lifecycles =
            [Terminal::Completed, Terminal::Error, Terminal::Aborted].map(|l| match l {
                Terminal::Completed | Terminal::Error | Terminal::Aborted => l.as_str(),
            });
        let costs = [
            CostStatus::Unresolved,
            CostStatus::Ok,
            CostStatus::Pending,
            CostStatus::Unsupported,
        ]
        .map(|c| match c {
            CostStatus::Unresolved
            | CostStatus::Ok
            | CostStatus::Pending
            | CostStatus::Unsupported => c.as_str(),
        });
        for lifecycle in lifecycles.iter().chain(&["pending"]) {
            for cost in costs {
                insert(checked, lifecycle, cost).expect("a status the writer writes");
            }
        }
        assert!(
            insert(checked, "finished", "ok").is_err(),
            "the CHECK is live here"
        );
        let writer = store.into_writer_connection().expect("writer connection");
        assert_eq!(
            insert(&writer, "finished", "ok").expect("not evaluated"),
            1,
            "the writer's connection skips the CHECK lists"
        );
    }
}
