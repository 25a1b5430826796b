//! The read-only query behind `usage`: finalized rows of `request_logs` in a `started_at`
//! range, on SQLite through storage's read-only open, on PostgreSQL through `crate::pg`.
//! Neither storage crate has a per-row report query (their admin queries aggregate by day,
//! provider and model only), so the SQL lives here.

use agent_cli_proxy_storage::backfill::NO_USAGE_SQL;
use agent_cli_proxy_storage::{DbPath, Store};
use rusqlite::params;

/// One finalized row, as the report needs it. Token counts below zero read as zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageRow {
    pub started_at: String,
    pub tool: String,
    pub client_id: String,
    pub model: String,
    pub provider: String,
    pub meta_json: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cache_read_tokens: u64,
    pub total_tokens: u64,
    pub cost_nanousd: u64,
    /// `pending` and the call produced usage: a backfill with prices can still cost it.
    pub cost_pending: bool,
    /// The call recorded no token (it failed before the upstream sent usage): cost 0 at any
    /// price, never pending whatever its stored `cost_status`.
    pub no_usage: bool,
}

/// The finalized rows with `start <= started_at < end` (each bound optional, `$1` and `$2`),
/// oldest first. One text for both backends, so the two reports cannot drift: SQLite takes
/// `$1` as its first parameter, and `CAST(… AS TEXT)` types a NULL bound for PostgreSQL.
pub(crate) fn finalized_rows_sql() -> String {
    format!(
        "SELECT started_at, COALESCE(tool, 'unknown'), COALESCE(client_id, 'unknown'), \
                model, provider, meta_json, \
                COALESCE(prompt_tokens, 0), COALESCE(completion_tokens, 0), \
                COALESCE(cache_creation_tokens, 0), COALESCE(cache_read_tokens, 0), \
                COALESCE(total_tokens, 0), COALESCE(cost_nanousd, 0), cost_status, \
                {NO_USAGE_SQL} \
         FROM request_logs \
         WHERE lifecycle_status IN ('completed', 'error', 'aborted') \
           AND (CAST($1 AS TEXT) IS NULL OR started_at >= $1) \
           AND (CAST($2 AS TEXT) IS NULL OR started_at < $2) \
         ORDER BY started_at, id",
    )
}

/// A result row of [`finalized_rows_sql`] on either backend.
pub(crate) trait Columns {
    fn text(&self, i: usize) -> Result<String, String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, String>;
    fn int(&self, i: usize) -> Result<i64, String>;
    fn flag(&self, i: usize) -> Result<bool, String>;
}

impl UsageRow {
    /// Reads the columns of [`finalized_rows_sql`].
    pub(crate) fn from_columns(r: &impl Columns) -> Result<UsageRow, String> {
        let count = |i: usize| r.int(i).map(|v| u64::try_from(v).unwrap_or(0));
        let no_usage = r.flag(13)?;
        Ok(UsageRow {
            started_at: r.text(0)?,
            tool: r.text(1)?,
            client_id: r.text(2)?,
            model: r.text(3)?,
            provider: r.text(4)?,
            meta_json: r.opt_text(5)?,
            prompt_tokens: count(6)?,
            completion_tokens: count(7)?,
            cache_creation_tokens: count(8)?,
            cache_read_tokens: count(9)?,
            total_tokens: count(10)?,
            cost_nanousd: count(11)?,
            cost_pending: r.text(12)? == "pending" && !no_usage,
            no_usage,
        })
    }
}

/// [`finalized_rows_sql`] on the SQLite database at `db_path`, through storage's read-only
/// open.
pub(crate) fn finalized_rows(
    db_path: &str,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Vec<UsageRow>, String> {
    let store = Store::open_read_only(&DbPath::from_config(db_path))
        .map_err(|e| crate::one_line(&e.to_string()))?;
    let mut stmt = store
        .connection()
        .prepare(&finalized_rows_sql())
        .map_err(|e| e.to_string())?;
    let mut rows = stmt.query(params![start, end]).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        out.push(UsageRow::from_columns(&SqliteColumns(row))?);
    }
    Ok(out)
}

struct SqliteColumns<'a, 'b>(&'a rusqlite::Row<'b>);

impl Columns for SqliteColumns<'_, '_> {
    fn text(&self, i: usize) -> Result<String, String> {
        self.0.get(i).map_err(|e| e.to_string())
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
        self.0.get(i).map_err(|e| e.to_string())
    }
    fn int(&self, i: usize) -> Result<i64, String> {
        self.0.get(i).map_err(|e| e.to_string())
    }
    fn flag(&self, i: usize) -> Result<bool, String> {
        self.0.get(i).map_err(|e| e.to_string())
    }
}
