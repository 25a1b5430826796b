//! `db copy --to postgres://…` (`docs/replicas.md` §7): copies a SQLite database the product
//! has opened and upgraded (so any layout it can upgrade, the original's included) into an
//! empty PostgreSQL database, every table of the schema with ids kept, advances the identity
//! sequences past them, and verifies row counts and the `daily_usage` sums before `COMMIT`.
//! A target holding any row is refused; a failed copy leaves it as it was (one transaction).
//!
//! Values are converted by the target column's type, so SQLite's loose typing (an integer
//! stored as text, a whole REAL in an INTEGER column) lands as it reads; a value that cannot
//! be converted stops the copy naming its table and row, never its content.

use postgres::types::ToSql;
use postgres::{Client, Transaction};
use rusqlite::types::ValueRef;

use agent_cli_proxy_storage::schema::EXPECTED_COLUMNS;

use crate::error::PgError;

/// Tables copied, in an order that puts referenced rows first.
pub const TABLES: [&str; 6] = [
    "api_keys",
    "request_logs",
    "daily_usage",
    "daily_account_usage",
    "cost_audit",
    "quota_snapshots",
];

/// Tables whose `id` is an identity column.
const IDENTITY: [&str; 4] = ["api_keys", "request_logs", "cost_audit", "quota_snapshots"];

/// Rows of one table on both sides after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// Table.
    pub table: &'static str,
    /// Rows in SQLite.
    pub source: i64,
    /// Rows in PostgreSQL.
    pub target: i64,
}

/// Σ over `daily_usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DailySums {
    /// Σ `request_count`.
    pub request_count: i64,
    /// Σ `total_tokens`.
    pub total_tokens: i64,
    /// Σ `cost_nanousd`.
    pub cost_nanousd: i64,
}

/// What the copy did and found, for the command to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Per table, in copy order.
    pub tables: Vec<TableCount>,
    /// `daily_usage` sums in SQLite.
    pub source_daily: DailySums,
    /// `daily_usage` sums in PostgreSQL.
    pub target_daily: DailySums,
    /// Rows still pending in the source (copied as they are, without a replica: no
    /// replica's boot recovery will abort them).
    pub pending_rows: i64,
    /// Tables of the source that are not part of the schema (the original 0.1's own), left
    /// behind.
    pub skipped_tables: Vec<String>,
}

/// Copies `src` into the database of `client` (migrated here first).
pub fn copy_sqlite(src: &rusqlite::Connection, client: &mut Client) -> Result<CopyReport, PgError> {
    crate::schema::migrate(client)?;
    for table in TABLES {
        let busy: bool = client
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])?
            .try_get(0)?;
        if busy {
            return Err(PgError::Copy(format!(
                "the target is not empty ({table} has rows); db copy only fills an empty database"
            )));
        }
    }
    let mut tx = client.transaction()?;
    let mut tables = Vec::new();
    for table in TABLES {
        let copied = copy_table(src, &mut tx, table)?;
        if IDENTITY.contains(&table) {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                       GREATEST(COALESCE(MAX(id), 0), 1), COALESCE(MAX(id), 0) > 0)
                     FROM {table}"
                ),
                &[],
            )?;
        }
        let target: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
            .try_get(0)?;
        let source: i64 = src
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .map_err(sqlite)?;
        if source != target || copied != source {
            return Err(PgError::Copy(format!(
                "{table}: {source} rows in SQLite, {target} in PostgreSQL; nothing was kept"
            )));
        }
        tables.push(TableCount {
            table,
            source,
            target,
        });
    }
    let sums = "COALESCE(SUM(request_count), 0), COALESCE(SUM(total_tokens), 0),
        COALESCE(SUM(cost_nanousd), 0)";
    let source_daily = src
        .query_row(&format!("SELECT {sums} FROM daily_usage"), [], |r| {
            Ok(DailySums {
                request_count: r.get(0)?,
                total_tokens: r.get(1)?,
                cost_nanousd: r.get(2)?,
            })
        })
        .map_err(sqlite)?;
    let r = tx.query_one(
        "SELECT COALESCE(SUM(request_count), 0)::bigint, COALESCE(SUM(total_tokens), 0)::bigint,
           COALESCE(SUM(cost_nanousd), 0)::bigint FROM daily_usage",
        &[],
    )?;
    let target_daily = DailySums {
        request_count: r.try_get(0)?,
        total_tokens: r.try_get(1)?,
        cost_nanousd: r.try_get(2)?,
    };
    if source_daily != target_daily {
        return Err(PgError::Copy(format!(
            "daily_usage sums differ: {source_daily:?} in SQLite, {target_daily:?} in \
             PostgreSQL; nothing was kept"
        )));
    }
    tx.commit()?;
    let pending_rows = src
        .query_row(
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'pending'",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite)?;
    let mut stmt = src
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
        )
        .map_err(sqlite)?;
    let skipped_tables = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?
        .into_iter()
        .filter(|t| {
            !TABLES.contains(&t.as_str()) && t != "schema_migrations" && t != "spool_position"
        })
        .collect();
    Ok(CopyReport {
        tables,
        source_daily,
        target_daily,
        pending_rows,
        skipped_tables,
    })
}

fn sqlite(e: rusqlite::Error) -> PgError {
    PgError::Copy(format!("reading the SQLite database: {e}"))
}

/// The declared type of a target column.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Real,
    Text,
}

fn copy_table(
    src: &rusqlite::Connection,
    tx: &mut Transaction<'_>,
    table: &'static str,
) -> Result<i64, PgError> {
    let columns: &[&str] = EXPECTED_COLUMNS
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, c)| *c)
        .unwrap_or_default();
    let mut kinds = Vec::with_capacity(columns.len());
    for column in columns {
        let ty: String = tx
            .query_one(
                "SELECT data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
                &[&table, column],
            )?
            .try_get(0)?;
        kinds.push(match ty.as_str() {
            "bigint" | "integer" => Kind::Int,
            "double precision" | "real" => Kind::Real,
            _ => Kind::Text,
        });
    }
    let list = columns.join(", ");
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let overriding = if IDENTITY.contains(&table) {
        "OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let insert = tx.prepare(&format!(
        "INSERT INTO {table} ({list}) {overriding} VALUES ({})",
        placeholders.join(", ")
    ))?;
    let mut stmt = src
        .prepare(&format!("SELECT {list} FROM {table} ORDER BY rowid"))
        .map_err(sqlite)?;
    let mut rows = stmt.query([]).map_err(sqlite)?;
    let mut copied = 0i64;
    while let Some(row) = rows.next().map_err(sqlite)? {
        copied += 1;
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
        for (i, kind) in kinds.iter().enumerate() {
            let value = row.get_ref(i).map_err(sqlite)?;
            values.push(convert(value, *kind).ok_or_else(|| {
                PgError::Copy(format!(
                    "{table} row {copied}: column {} holds a value that does not fit its \
                     type; nothing was kept",
                    columns[i]
                ))
            })?);
        }
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        tx.execute(&insert, &params)?;
    }
    Ok(copied)
}

fn convert(value: ValueRef<'_>, kind: Kind) -> Option<Box<dyn ToSql + Sync>> {
    Some(match (kind, value) {
        (Kind::Int, ValueRef::Null) => Box::new(None::<i64>),
        (Kind::Int, ValueRef::Integer(i)) => Box::new(i),
        (Kind::Int, ValueRef::Real(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => {
            Box::new(f as i64)
        }
        (Kind::Int, ValueRef::Text(t)) => {
            Box::new(std::str::from_utf8(t).ok()?.trim().parse::<i64>().ok()?)
        }
        (Kind::Real, ValueRef::Null) => Box::new(None::<f64>),
        (Kind::Real, ValueRef::Integer(i)) => Box::new(i as f64),
        (Kind::Real, ValueRef::Real(f)) => Box::new(f),
        (Kind::Real, ValueRef::Text(t)) => {
            Box::new(std::str::from_utf8(t).ok()?.trim().parse::<f64>().ok()?)
        }
        (Kind::Text, ValueRef::Null) => Box::new(None::<String>),
        (Kind::Text, ValueRef::Text(t)) => Box::new(std::str::from_utf8(t).ok()?.to_owned()),
        (Kind::Text, ValueRef::Integer(i)) => Box::new(i.to_string()),
        (Kind::Text, ValueRef::Real(f)) => Box::new(f.to_string()),
        (_, ValueRef::Blob(_)) | (Kind::Int, ValueRef::Real(_)) => return None,
    })
}
