//! The offline commands on PostgreSQL (`docs/replicas.md` §1, §4, §7): `db init`, `db copy`,
//! `doctor`'s database check and the rows behind `usage`.
//!
//! Only the tokio build has the backend (cli's `postgres` feature brings tokio-postgres); in
//! the smol build every entry point here fails with [`unavailable`], before anything is
//! opened, so a command never half-runs against the wrong database.
//!
//! The URL can carry a password: messages name the database as `PostgreSQL database <dbname>
//! on <host>` ([`describe`]) and the variable or flag it came from, never the URL itself.

use agent_cli_proxy_core::config::PostgresTarget;

use crate::CliError;

#[cfg(feature = "postgres")]
pub(crate) use backend::{applied_seq, copy, doctor_details, init, usage_rows};

/// The database in words, for messages and output.
pub(crate) fn describe(target: &PostgresTarget) -> String {
    format!("PostgreSQL database {} on {}", target.dbname, target.host)
}

/// The error of a build without the backend; `source` names where the URL came from.
pub(crate) fn unavailable(source: &str) -> CliError {
    CliError::Runtime(format!(
        "{source} names a PostgreSQL database, but this build has no PostgreSQL backend; \
         use agent-cli-proxy (the tokio build)"
    ))
}

/// `Ok` when this build can reach PostgreSQL; checked before a command touches anything.
pub(crate) fn available(source: &str) -> Result<(), CliError> {
    if cfg!(feature = "postgres") {
        Ok(())
    } else {
        Err(unavailable(source))
    }
}

#[cfg(not(feature = "postgres"))]
pub(crate) use without::{applied_seq, copy, doctor_details, init, usage_rows};

/// The smol build's stand-ins: same signatures, each one the refusal.
#[cfg(not(feature = "postgres"))]
mod without {
    use std::collections::BTreeMap;

    use agent_cli_proxy_core::config::PostgresTarget;
    use serde_json::Value;

    use super::unavailable;
    use crate::usage::query::UsageRow;
    use crate::{CliError, CmdResult};

    pub(crate) fn init(_target: &PostgresTarget) -> CmdResult {
        Err(unavailable("DATABASE_URL"))
    }

    pub(crate) fn copy(
        _vars: &BTreeMap<String, String>,
        _from: &str,
        _src: &rusqlite::Connection,
        _target: &PostgresTarget,
        source: &str,
    ) -> CmdResult {
        Err(unavailable(source))
    }

    pub(crate) fn doctor_details(_target: &PostgresTarget) -> Result<Value, String> {
        Err(unavailable("DATABASE_URL").to_string())
    }

    pub(crate) fn applied_seq(_target: &PostgresTarget, _replica: &str) -> Result<u64, CliError> {
        Err(unavailable("DATABASE_URL"))
    }

    pub(crate) fn usage_rows(
        _target: &PostgresTarget,
        _start: Option<&str>,
        _end: Option<&str>,
    ) -> Result<Vec<UsageRow>, CliError> {
        Err(unavailable("DATABASE_URL"))
    }
}

#[cfg(feature = "postgres")]
mod backend {
    use std::collections::BTreeMap;
    use std::process::ExitCode;

    use agent_cli_proxy_core::config::PostgresTarget;
    use agent_cli_proxy_storage_pg::copy::{CopyReport, copy_sqlite};
    use agent_cli_proxy_storage_pg::schema::MIGRATIONS;
    use agent_cli_proxy_storage_pg::{PgError, PgStore};
    use serde_json::{Value, json};

    use super::describe;
    use crate::usage::query::{Columns, UsageRow, finalized_rows_sql};
    use crate::{CliError, CmdResult, log};

    /// A failure naming the source of the URL and the database, never the URL.
    fn failure(target: &PostgresTarget, source: &str, e: &PgError) -> CliError {
        CliError::Runtime(format!(
            "{source} ({}): {}",
            describe(target),
            crate::one_line(&e.to_string())
        ))
    }

    fn connect(target: &PostgresTarget, source: &str) -> Result<PgStore, CliError> {
        PgStore::connect(target.url.expose()).map_err(|e| failure(target, source, &e))
    }

    /// `db init`: migrates (under the migration lock, so a starting replica is no race).
    pub(crate) fn init(target: &PostgresTarget) -> CmdResult {
        let mut store = connect(target, "DATABASE_URL")?;
        store
            .migrate()
            .map_err(|e| failure(target, "DATABASE_URL", &e))?;
        crate::out_line!(
            "Initialized PostgreSQL database {} on {}",
            target.dbname,
            target.host
        );
        Ok(ExitCode::SUCCESS)
    }

    /// `db copy`: `src` is opened, upgraded and has its spool applied; `from` names it.
    pub(crate) fn copy(
        vars: &BTreeMap<String, String>,
        from: &str,
        src: &rusqlite::Connection,
        target: &PostgresTarget,
        source: &str,
    ) -> CmdResult {
        let mut store = connect(target, source)?;
        store.migrate().map_err(|e| failure(target, source, &e))?;
        let report = copy_sqlite(src, store.client()).map_err(|e| failure(target, source, &e))?;
        let tables: serde_json::Map<String, Value> = report
            .tables
            .iter()
            .map(|t| (t.table.to_owned(), json!(t.target)))
            .collect();
        let sums = &report.target_daily;
        log::info(
            vars,
            "db.copy",
            "database copied to PostgreSQL",
            json!({
                "source_path": from,
                "host": target.host,
                "dbname": target.dbname,
                "tables": tables,
                "daily_usage": {
                    "request_count": sums.request_count,
                    "total_tokens": sums.total_tokens,
                    "cost_nanousd": sums.cost_nanousd,
                },
                "pending_rows": report.pending_rows,
                "skipped_tables": report.skipped_tables,
            }),
        );
        crate::out_line!("Copied {from} to {}", describe(target));
        crate::out_text!("{}", report_table(&report));
        if report.pending_rows > 0 {
            crate::out_line!(
                "Pending rows copied as they are (no replica will finalize them): {}",
                report.pending_rows
            );
        }
        if !report.skipped_tables.is_empty() {
            crate::out_line!(
                "Left behind (not part of the schema): {}",
                report.skipped_tables.join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The verified counts and sums, one aligned line per table and per sum.
    fn report_table(report: &CopyReport) -> String {
        let d = (&report.source_daily, &report.target_daily);
        let mut lines: Vec<[String; 3]> =
            vec![["table".into(), "SQLite".into(), "PostgreSQL".into()]];
        lines.extend(report.tables.iter().map(|t| {
            [
                t.table.to_owned(),
                t.source.to_string(),
                t.target.to_string(),
            ]
        }));
        lines.push([
            "daily_usage sums".into(),
            "SQLite".into(),
            "PostgreSQL".into(),
        ]);
        for (name, s, t) in [
            ("request_count", d.0.request_count, d.1.request_count),
            ("total_tokens", d.0.total_tokens, d.1.total_tokens),
            ("cost_nanousd", d.0.cost_nanousd, d.1.cost_nanousd),
        ] {
            lines.push([name.to_owned(), s.to_string(), t.to_string()]);
        }
        let width = |i: usize| lines.iter().map(|l| l[i].len()).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        lines
            .iter()
            .map(|[a, b, c]| format!("{a:<w0$}  {b:>w1$}  {c:>w2$}\n"))
            .collect()
    }

    /// The spool position PostgreSQL holds for `replica` (`db spool status`).
    pub(crate) fn applied_seq(target: &PostgresTarget, replica: &str) -> Result<u64, CliError> {
        connect(target, "DATABASE_URL")?
            .applied_seq(replica)
            .map_err(|e| failure(target, "DATABASE_URL", &e))
    }

    /// `doctor`'s database details: connects, reads the recorded migrations and pings.
    pub(crate) fn doctor_details(target: &PostgresTarget) -> Result<Value, String> {
        let fail = |e: PgError| failure(target, "DATABASE_URL", &e).to_string();
        let mut store = PgStore::connect(target.url.expose()).map_err(fail)?;
        let recorded = store.recorded_migrations().map_err(fail)?;
        store.ping().map_err(fail)?;
        let pending: Vec<&str> = MIGRATIONS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !recorded.iter().any(|r| r == name))
            .collect();
        Ok(json!({
            "kind": "postgres",
            "host": target.host,
            "dbname": target.dbname,
            "appliedMigrations": recorded.iter().rev().take(10).collect::<Vec<_>>(),
            "pendingMigrations": pending,
        }))
    }

    /// The finalized rows of `usage`, read with the same statement as on SQLite.
    pub(crate) fn usage_rows(
        target: &PostgresTarget,
        start: Option<&str>,
        end: Option<&str>,
    ) -> Result<Vec<UsageRow>, CliError> {
        let mut store = connect(target, "DATABASE_URL")?;
        let rows = store
            .client()
            .query(&finalized_rows_sql(), &[&start, &end])
            .map_err(|e| failure(target, "DATABASE_URL", &PgError::from(e)))?;
        rows.iter()
            .map(|r| UsageRow::from_columns(&PgColumns(r)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError::Runtime(format!("DATABASE_URL ({}): {e}", describe(target))))
    }

    struct PgColumns<'a>(&'a postgres::Row);

    impl Columns for PgColumns<'_> {
        fn text(&self, i: usize) -> Result<String, String> {
            self.0.try_get(i).map_err(|e| e.to_string())
        }
        fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
            self.0.try_get(i).map_err(|e| e.to_string())
        }
        fn int(&self, i: usize) -> Result<i64, String> {
            self.0.try_get(i).map_err(|e| e.to_string())
        }
        fn flag(&self, i: usize) -> Result<bool, String> {
            self.0.try_get(i).map_err(|e| e.to_string())
        }
    }
}
