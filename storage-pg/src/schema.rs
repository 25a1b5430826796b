//! Schema and named migrations (`docs/replicas.md` §2), run under a session advisory lock so
//! that replicas starting together migrate once: the first takes the lock and migrates, the
//! others wait for it and then find every name recorded.
//!
//! PostgreSQL has transactional DDL, so each migration and the record of its name commit
//! together; a failure leaves neither.

use postgres::Client;

use agent_cli_proxy_storage::schema::{EXPECTED_COLUMNS, EXPECTED_INDEXES};

use crate::error::PgError;

/// Key of `pg_advisory_lock` for migrations: "acpmigr" in ASCII, fixed forever so that
/// replicas of different versions still exclude each other.
pub const MIGRATION_LOCK_KEY: i64 = 0x0061_6370_6d69_6772;

/// The migrations in order, named as their SQLite counterparts where one exists.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_init.sql", include_str!("schema/001_init.sql")),
    (
        "002_quota_local_usage_index.sql",
        include_str!("schema/002_quota_local_usage_index.sql"),
    ),
    (
        "003_exact_cost.sql",
        include_str!("schema/003_exact_cost.sql"),
    ),
    (
        "004_spool_position.sql",
        include_str!("schema/004_spool_position.sql"),
    ),
    ("005_replicas.sql", include_str!("schema/005_replicas.sql")),
    ("006_epoch.sql", include_str!("schema/006_epoch.sql")),
    (
        "007_usage_convention.sql",
        include_str!("schema/007_usage_convention.sql"),
    ),
];

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT COLLATE \"C\" PRIMARY KEY,
    applied_at TEXT COLLATE \"C\" NOT NULL
      DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'))";

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgMigrationReport {
    /// Migrations run by this call, in order (empty when another replica ran them).
    pub applied: Vec<&'static str>,
}

/// Runs every migration not yet recorded, under the advisory lock, then asserts the schema.
pub fn migrate(client: &mut Client) -> Result<PgMigrationReport, PgError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])?;
    let result = run_pending(client);
    // Released even after a failure; a dropped connection releases it too.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]);
    let report = result?;
    unlocked?;
    assert_schema(client)?;
    Ok(report)
}

fn run_pending(client: &mut Client) -> Result<PgMigrationReport, PgError> {
    client.batch_execute(MIGRATIONS_TABLE)?;
    let done = recorded_migrations(client)?;
    let mut applied = Vec::new();
    for (name, sql) in MIGRATIONS {
        if done.iter().any(|d| d == name) {
            continue;
        }
        let wrap = |source| PgError::Migration { name, source };
        let mut tx = client.transaction().map_err(wrap)?;
        tx.batch_execute(sql).map_err(wrap)?;
        tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[name])
            .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        applied.push(*name);
    }
    Ok(PgMigrationReport { applied })
}

/// The names in `schema_migrations`, sorted.
pub fn recorded_migrations(client: &mut Client) -> Result<Vec<String>, PgError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .try_get(0)?;
    if !exists {
        return Ok(Vec::new());
    }
    client
        .query("SELECT name FROM schema_migrations ORDER BY name", &[])?
        .iter()
        .map(|r| r.try_get(0).map_err(PgError::from))
        .collect()
}

/// Checks the columns and indexes the SQLite schema assertion requires (the same lists, so
/// the two backends cannot drift apart), plus `request_logs.replica`.
pub fn assert_schema(client: &mut Client) -> Result<(), PgError> {
    let mut missing = Vec::new();
    let columns = client.query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema()",
        &[],
    )?;
    let mut present = Vec::with_capacity(columns.len());
    for row in &columns {
        let table: String = row.try_get(0)?;
        let column: String = row.try_get(1)?;
        present.push((table, column));
    }
    let extra: &[(&str, &[&str])] = &[
        ("request_logs", &["replica"]),
        (
            "spool_position",
            &["replica", "applied_seq", "segment", "offset", "updated_at"],
        ),
        (
            "replicas",
            &["replica", "host", "version", "started_at", "seen_at"],
        ),
    ];
    for (table, cols) in EXPECTED_COLUMNS.iter().chain(extra) {
        for column in *cols {
            if !present.iter().any(|(t, c)| t == table && c == column) {
                missing.push(format!("{table}.{column}"));
            }
        }
    }
    let indexes = client.query(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema()",
        &[],
    )?;
    let mut names = Vec::with_capacity(indexes.len());
    for row in &indexes {
        names.push(row.try_get::<_, String>(0)?);
    }
    for index in EXPECTED_INDEXES {
        if !names.iter().any(|n| n == index) {
            missing.push(format!("index.{index}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PgError::SchemaAssertion { missing })
    }
}
