//! `usage [daily|weekly|monthly|session]` (`control.md` §11.8): reports from the database,
//! read-only and lock-free, so they run while the daemon writes.
//!
//! Choices where the spec is silent:
//! * `--since`/`--until` bound the rows' days (in the report's time zone); a week or month
//!   cut by a bound holds only the days inside it. `--since` after `--until` is a usage error.
//! * A missing database file is a runtime error naming `DB_PATH` (not an empty report), as it
//!   usually means a wrong path.
//! * `--by` does not apply to `session` (its key is the session); JSON says `"by":"session"`.
//! * The range in the empty message is `<since>..<until>`, with `…` for an open end, or
//!   `all time`.
//! * With `DATABASE_URL=postgres://…` the rows come from PostgreSQL (every replica's,
//!   `docs/replicas.md` §4), read with the same statement; the output is byte for byte the
//!   SQLite one for the same rows, but the empty message names the database as
//!   `PostgreSQL database <dbname> on <host>`. No spool is applied: each replica ingests its own.

pub(crate) mod query;
mod report;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use agent_cli_proxy_core::provider::{ProviderType, Providers};
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::args::{Report, UsageArgs};
use crate::env::Database;
use crate::{CliError, CmdResult, env};

/// Runs a usage report.
pub(crate) fn run(process: &BTreeMap<String, String>, args: UsageArgs) -> CmdResult {
    let loaded = env::load(process, args.env.as_deref())?;
    let database = env::database(&loaded.vars);
    match &database {
        Database::Sqlite(db_path) => crate::spool::apply_leftover(&loaded.vars, db_path)?,
        Database::Postgres(_) => crate::pg::available("DATABASE_URL")?,
    }
    let report_kind = args.report.unwrap_or_default();
    let (tz, tz_name) = if args.local {
        let tz = TimeZone::system();
        let name = tz.iana_name().unwrap_or("local").to_owned();
        (tz, name)
    } else {
        (TimeZone::UTC, "UTC".to_owned())
    };
    let today = jiff::Timestamp::now().to_zoned(tz.clone()).date();
    let default_since = match report_kind {
        Report::Daily | Report::Session => today.checked_sub(29.days()).ok(),
        Report::Weekly | Report::Monthly => None,
    };
    let since = args.since.or(default_since);
    let until = args.until.or(match report_kind {
        Report::Daily | Report::Session => Some(today),
        Report::Weekly | Report::Monthly => None,
    });
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(CliError::Usage(format!(
            "--since {s} is after --until {u}; run 'agent-cli-proxy usage --help' for usage"
        )));
    }
    let start = since.map(|d| day_start_utc(d, &tz)).transpose()?;
    let end = until
        .map(|d| {
            d.checked_add(1.day())
                .map_err(|e| CliError::Usage(format!("--until {d}: {e}")))
                .and_then(|next| day_start_utc(next, &tz))
        })
        .transpose()?;
    let (rows, location) = match &database {
        Database::Sqlite(db_path) => {
            if !db_path.starts_with(':') && !Path::new(db_path).exists() {
                return Err(CliError::Runtime(format!(
                    "DB_PATH {db_path}: database does not exist; run 'agent-cli-proxy db init' or check DB_PATH"
                )));
            }
            let rows = query::finalized_rows(db_path, start.as_deref(), end.as_deref())
                .map_err(|e| CliError::Runtime(format!("DB_PATH {db_path}: {e}")))?;
            (rows, db_path.clone())
        }
        Database::Postgres(target) => (
            crate::pg::usage_rows(target, start.as_deref(), end.as_deref())?,
            crate::pg::describe(target),
        ),
    };
    let providers = provider_types(&loaded.vars);
    let is_anthropic = |id: &str| {
        providers
            .get(id)
            .map_or(id == "anthropic", |p| p.kind == ProviderType::Anthropic)
    };
    let lines = report::aggregate(&rows, report_kind, args.by, &tz, &is_anthropic);
    let since_text = since.map(|d| d.to_string());
    let until_text = until.map(|d| d.to_string());
    if args.json {
        let doc = report::to_json(
            report_kind,
            args.by,
            &tz_name,
            since_text,
            until_text,
            &lines,
        );
        crate::out_line!("{}", env::pretty(&doc));
        return Ok(ExitCode::SUCCESS);
    }
    if lines.is_empty() {
        let range = match (&since_text, &until_text) {
            (None, None) => "all time".to_owned(),
            (s, u) => format!(
                "{}..{}",
                s.as_deref().unwrap_or("…"),
                u.as_deref().unwrap_or("…")
            ),
        };
        crate::out_line!("No usage recorded in {range} ({location}).");
        return Ok(ExitCode::SUCCESS);
    }
    if report_kind == Report::Session {
        crate::out_line!("Session usage ({tz_name})");
    } else {
        crate::out_line!(
            "{} usage by {} ({tz_name})",
            capitalized(report::report_name(report_kind)),
            by_word(args.by)
        );
    }
    crate::out_text!("{}", report::to_table(report_kind, args.by, &lines));
    Ok(ExitCode::SUCCESS)
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` of midnight of `day` in `tz`, the form `started_at` uses.
fn day_start_utc(day: Date, tz: &TimeZone) -> Result<String, CliError> {
    let zoned = day
        .to_zoned(tz.clone())
        .map_err(|e| CliError::Usage(format!("date {day}: {e}")))?;
    let ts = zoned.timestamp();
    let ms = u64::try_from(ts.as_millisecond()).unwrap_or(0);
    Ok(agent_cli_proxy_core::time::UnixMillis(ms).to_iso())
}

/// The provider list for the convention of old rows: the configured one when the
/// configuration is valid, else the built-ins.
fn provider_types(vars: &BTreeMap<String, String>) -> Providers {
    match agent_cli_proxy_core::config::Config::from_env(vars, &env::external_inputs(vars)) {
        Ok((config, _)) => config.providers,
        Err(_) => Providers::built_in("http://localhost:8317"),
    }
}

fn by_word(by: crate::args::GroupBy) -> &'static str {
    match by {
        crate::args::GroupBy::Tool => "tool",
        crate::args::GroupBy::Client => "client",
        crate::args::GroupBy::Model => "model",
        crate::args::GroupBy::Provider => "provider",
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
