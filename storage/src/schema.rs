//! Schema, migrations and the in-place upgrade of an original database (`control.md` §2, §4).
//!
//! The layout decides what runs, never the names in `schema_migrations`: an original 0.1
//! database already holds names such as `001_init.sql` that mean something else there. Names
//! are only recorded (`INSERT OR IGNORE`). `003_exact_cost.sql` adds each of its columns only
//! when missing, so it is safe on any layout.

use rusqlite::{Connection, OptionalExtension};

use crate::error::StorageError;

/// Name of the first migration: the 0.2.x consolidated schema.
pub const M001: &str = "001_init.sql";
/// Name of the second migration: the quota local-usage index.
pub const M002: &str = "002_quota_local_usage_index.sql";
/// Name of the third migration: exact integer costs.
pub const M003: &str = "003_exact_cost.sql";
/// Name of the fourth migration: the spool's applied position.
pub const M004: &str = "004_spool_position.sql";
/// Name recorded after upgrading an original 0.1 layout.
pub const LEGACY: &str = "legacy-0.1-upgrade";

const SQL_001: &str = include_str!("schema/001_init.sql");
const SQL_002: &str = include_str!("schema/002_quota_local_usage_index.sql");
const SQL_004: &str = include_str!("schema/004_spool_position.sql");

/// The layout found before migrating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// No `request_logs` table.
    Empty,
    /// The original's 0.2.x consolidated schema (or ours).
    V02,
    /// The original's 0.1.x migration set.
    V01,
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The layout detected before any change.
    pub layout: Layout,
    /// Migrations run (not merely recorded), in order.
    pub applied: Vec<&'static str>,
}

/// Detects the layout, upgrades it and asserts the schema. Running it twice is a no-op.
pub fn migrate(conn: &mut Connection) -> Result<MigrationReport, StorageError> {
    let layout = detect_layout(conn)?;
    let mut applied = Vec::new();
    match layout {
        Layout::Empty => {
            run_step(conn, M001, &[M001], |c| Ok(c.execute_batch(SQL_001)?))?;
            applied.push(M001);
            run_step(conn, M002, &[M002], |c| Ok(c.execute_batch(SQL_002)?))?;
            applied.push(M002);
        }
        Layout::V02 => {
            if !is_recorded(conn, M001)? || !is_recorded(conn, M002)? {
                run_step(conn, M001, &[M001, M002], |_| Ok(()))?;
            }
        }
        Layout::V01 => {
            run_step(conn, LEGACY, &[LEGACY, M001, M002], legacy_upgrade)?;
            applied.push(LEGACY);
        }
    }
    if !is_recorded(conn, M003)? || !has_column(conn, "request_logs", "cost_nanousd")? {
        run_step(conn, M003, &[M003], exact_cost)?;
        applied.push(M003);
    }
    if !is_recorded(conn, M004)? || !has_table(conn, "spool_position")? {
        run_step(conn, M004, &[M004], |c| Ok(c.execute_batch(SQL_004)?))?;
        applied.push(M004);
    }
    assert_schema(conn)?;
    Ok(MigrationReport { layout, applied })
}

/// Detects the layout of `control.md` §4 from tables and columns.
pub fn detect_layout(conn: &Connection) -> Result<Layout, StorageError> {
    if !has_table(conn, "request_logs")? {
        return Ok(Layout::Empty);
    }
    let v02 = has_column(conn, "request_logs", "actual_provider")?
        && has_column(conn, "request_logs", "proxy_api_key_id")?
        && has_table(conn, "api_keys")?
        && has_column(conn, "quota_snapshots", "model")?;
    Ok(if v02 { Layout::V02 } else { Layout::V01 })
}

/// Checks every column of §2 and every index of §2.1/§2.2 (except the quota local-usage
/// index); the error lists what is missing, in check order.
pub fn assert_schema(conn: &Connection) -> Result<(), StorageError> {
    let mut missing = Vec::new();
    for (table, columns) in EXPECTED_COLUMNS {
        let present = column_names(conn, table)?;
        for column in *columns {
            if !present.iter().any(|p| p == column) {
                missing.push(format!("{table}.{column}"));
            }
        }
    }
    for index in EXPECTED_INDEXES {
        if !has_index(conn, index)? {
            missing.push(format!("index.{index}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StorageError::SchemaAssertion { missing })
    }
}

/// The names in `schema_migrations`, sorted.
pub fn recorded_migrations(conn: &Connection) -> Result<Vec<String>, StorageError> {
    if !has_table(conn, "schema_migrations")? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT name FROM schema_migrations ORDER BY name")?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

/// Columns of every table of §2, in declared order.
pub const EXPECTED_COLUMNS: &[(&str, &[&str])] = &[
    (
        "request_logs",
        &[
            "id",
            "request_id",
            "provider",
            "model",
            "actual_model",
            "actual_provider",
            "proxy_api_key_id",
            "tool",
            "client_id",
            "agent",
            "source",
            "msg_id",
            "path",
            "streamed",
            "status",
            "prompt_tokens",
            "completion_tokens",
            "cache_creation_tokens",
            "cache_read_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost_usd",
            "cost_status",
            "lifecycle_status",
            "incomplete",
            "error_code",
            "error_message",
            "latency_ms",
            "started_at",
            "finished_at",
            "finalized_at",
            "meta_json",
            "user_agent",
            "source_ip",
            "cliproxy_account",
            "cliproxy_auth_index",
            "cliproxy_source",
            "correlated_at",
            "cache_write_1h_tokens",
            "usage_incomplete",
            "cost_nanousd",
        ],
    ),
    (
        "daily_usage",
        &[
            "day",
            "provider",
            "model",
            "request_count",
            "prompt_tokens",
            "completion_tokens",
            "cache_creation_tokens",
            "cache_read_tokens",
            "total_tokens",
            "cost_usd",
            "cost_nanousd",
        ],
    ),
    (
        "daily_account_usage",
        &[
            "day",
            "provider",
            "model",
            "cliproxy_account",
            "cliproxy_auth_index",
            "request_count",
            "prompt_tokens",
            "completion_tokens",
            "cache_creation_tokens",
            "cache_read_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost_usd",
            "cost_nanousd",
        ],
    ),
    (
        "cost_audit",
        &[
            "id",
            "request_log_id",
            "model",
            "provider",
            "source",
            "base_cost_usd",
            "calc_at",
            "cost_nanousd",
        ],
    ),
    (
        "quota_snapshots",
        &[
            "id",
            "timestamp",
            "provider",
            "account",
            "quota_type",
            "model",
            "used_pct",
            "remaining",
            "remaining_raw",
            "resets_at",
            "raw_json",
        ],
    ),
    (
        "api_keys",
        &[
            "id",
            "key_hash",
            "key_prefix",
            "name",
            "created_at",
            "revoked_at",
            "last_used_at",
            "allowed_accounts",
            "allowed_providers",
        ],
    ),
    ("schema_migrations", &["name", "applied_at"]),
];

/// Indexes the assertion requires.
pub const EXPECTED_INDEXES: &[&str] = &[
    "idx_request_logs_started_at",
    "idx_request_logs_tool",
    "idx_request_logs_client_id",
    "idx_request_logs_cliproxy_account",
    "idx_request_logs_cliproxy_auth_index",
    "idx_request_logs_request_id",
    "idx_request_logs_msg_id",
    "idx_request_logs_lifecycle_status",
    "idx_request_logs_cost_status",
    "idx_daily_usage_day",
    "idx_daily_account_usage_day",
    "idx_daily_account_usage_account",
    "idx_cost_audit_request_log_id",
    "idx_quota_snapshots_provider",
];

/// `request_logs` columns of the 0.2.x layout with their declarations, for the legacy step.
const V02_REQUEST_LOG_COLUMNS: &[(&str, &str)] = &[
    ("request_id", "TEXT"),
    ("actual_model", "TEXT"),
    ("actual_provider", "TEXT"),
    ("proxy_api_key_id", "INTEGER REFERENCES api_keys(id)"),
    ("tool", "TEXT DEFAULT 'unknown'"),
    ("client_id", "TEXT DEFAULT 'unknown'"),
    ("agent", "TEXT"),
    ("source", "TEXT DEFAULT 'proxy'"),
    ("msg_id", "TEXT"),
    ("streamed", "INTEGER NOT NULL DEFAULT 0"),
    ("status", "INTEGER"),
    ("prompt_tokens", "INTEGER DEFAULT 0"),
    ("completion_tokens", "INTEGER DEFAULT 0"),
    ("cache_creation_tokens", "INTEGER DEFAULT 0"),
    ("cache_read_tokens", "INTEGER DEFAULT 0"),
    ("reasoning_tokens", "INTEGER DEFAULT 0"),
    ("total_tokens", "INTEGER DEFAULT 0"),
    ("cost_usd", "REAL DEFAULT 0"),
    (
        "cost_status",
        "TEXT NOT NULL DEFAULT 'unresolved' \
         CHECK (cost_status IN ('unresolved','ok','pending','unsupported'))",
    ),
    (
        "lifecycle_status",
        "TEXT NOT NULL DEFAULT 'pending' \
         CHECK (lifecycle_status IN ('pending','completed','error','aborted'))",
    ),
    ("incomplete", "INTEGER NOT NULL DEFAULT 0"),
    ("error_code", "TEXT"),
    ("error_message", "TEXT"),
    ("latency_ms", "INTEGER"),
    ("finished_at", "TEXT"),
    ("finalized_at", "TEXT"),
    ("meta_json", "TEXT"),
    ("user_agent", "TEXT"),
    ("source_ip", "TEXT"),
    ("cliproxy_account", "TEXT"),
    ("cliproxy_auth_index", "TEXT"),
    ("cliproxy_source", "TEXT"),
    ("correlated_at", "TEXT"),
];

/// Runs `body` and records `names` in one transaction; a failure rolls both back.
fn run_step(
    conn: &mut Connection,
    file: &'static str,
    names: &[&str],
    body: impl FnOnce(&Connection) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let wrap = |e: StorageError| StorageError::Migration {
        file,
        source: Box::new(e),
    };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| wrap(e.into()))?;
    body(&tx).map_err(wrap)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
           name TEXT PRIMARY KEY,
           applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .map_err(|e| wrap(e.into()))?;
    for name in names {
        tx.execute(
            "INSERT OR IGNORE INTO schema_migrations(name) VALUES (?1)",
            [name],
        )
        .map_err(|e| wrap(e.into()))?;
    }
    tx.commit().map_err(|e| wrap(e.into()))
}

/// The legacy 0.1 step: only adds (columns, tables, indexes), never rewrites.
fn legacy_upgrade(conn: &Connection) -> Result<(), StorageError> {
    for (column, decl) in V02_REQUEST_LOG_COLUMNS {
        add_column_if_missing(conn, "request_logs", column, decl)?;
    }
    if has_table(conn, "quota_snapshots")? {
        add_column_if_missing(conn, "quota_snapshots", "model", "TEXT")?;
    }
    // Every statement of 001 is IF NOT EXISTS: this creates the missing tables and indexes.
    conn.execute_batch(SQL_001)?;
    conn.execute_batch(SQL_002)?;
    Ok(())
}

/// `003_exact_cost.sql`: our columns, the integer costs derived from the REAL ones, and the
/// non-unique partial `msg_id` index.
fn exact_cost(conn: &Connection) -> Result<(), StorageError> {
    add_column_if_missing(
        conn,
        "request_logs",
        "cache_write_1h_tokens",
        "INTEGER NOT NULL DEFAULT 0",
    )?;
    add_column_if_missing(
        conn,
        "request_logs",
        "usage_incomplete",
        "INTEGER NOT NULL DEFAULT 0",
    )?;
    let cost_tables = [
        ("request_logs", "cost_usd"),
        ("daily_usage", "cost_usd"),
        ("daily_account_usage", "cost_usd"),
    ];
    for (table, real) in cost_tables {
        if add_column_if_missing(conn, table, "cost_nanousd", "INTEGER NOT NULL DEFAULT 0")? {
            conn.execute(
                &format!(
                    "UPDATE {table} SET cost_nanousd = CAST(ROUND({real} * 1e9) AS INTEGER)
                     WHERE {real} IS NOT NULL AND {real} > 0"
                ),
                [],
            )?;
        }
    }
    if add_column_if_missing(conn, "cost_audit", "cost_nanousd", "INTEGER")? {
        conn.execute(
            "UPDATE cost_audit SET cost_nanousd = CAST(ROUND(base_cost_usd * 1e9) AS INTEGER)
             WHERE base_cost_usd IS NOT NULL",
            [],
        )?;
    }
    conn.execute_batch(
        "DROP INDEX IF EXISTS idx_request_logs_msg_id;
         CREATE INDEX idx_request_logs_msg_id ON request_logs(msg_id) WHERE msg_id IS NOT NULL;",
    )?;
    Ok(())
}

/// Adds a column unless present; true when it was added.
fn add_column_if_missing(
    conn: &Connection,
    table: &str,
    column: &str,
    decl: &str,
) -> Result<bool, StorageError> {
    if has_column(conn, table, column)? {
        return Ok(false);
    }
    conn.execute(
        &format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"),
        [],
    )?;
    Ok(true)
}

fn is_recorded(conn: &Connection, name: &str) -> Result<bool, StorageError> {
    if !has_table(conn, "schema_migrations")? {
        return Ok(false);
    }
    Ok(conn
        .query_row(
            "SELECT 1 FROM schema_migrations WHERE name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn has_table(conn: &Connection, table: &str) -> Result<bool, StorageError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn has_index(conn: &Connection, index: &str) -> Result<bool, StorageError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1",
            [index],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StorageError> {
    Ok(column_names(conn, table)?.iter().any(|c| c == column))
}

fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>, StorageError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}
