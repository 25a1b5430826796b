//! The read-only query behind `usage`: finalized rows of `request_logs` in a `started_at`
//! range, through storage's read-only open. Storage has no per-row report query (its admin
//! queries aggregate by day, provider and model only), so the SQL lives here.

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

/// Rows with `start <= started_at < end` (each bound optional), oldest first.
pub(crate) fn finalized_rows(
    db_path: &str,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Vec<UsageRow>, String> {
    let store = Store::open_read_only(&DbPath::from_config(db_path))
        .map_err(|e| crate::one_line(&e.to_string()))?;
    let conn = store.connection();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT started_at, COALESCE(tool, 'unknown'), COALESCE(client_id, 'unknown'), \
                    model, provider, meta_json, \
                    COALESCE(prompt_tokens, 0), COALESCE(completion_tokens, 0), \
                    COALESCE(cache_creation_tokens, 0), COALESCE(cache_read_tokens, 0), \
                    COALESCE(total_tokens, 0), COALESCE(cost_nanousd, 0), cost_status, \
                    {NO_USAGE_SQL} \
             FROM request_logs \
             WHERE lifecycle_status IN ('completed', 'error', 'aborted') \
               AND (?1 IS NULL OR started_at >= ?1) \
               AND (?2 IS NULL OR started_at < ?2) \
             ORDER BY started_at, id",
        ))
        .map_err(|e| e.to_string())?;
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let rows = stmt
        .query_map(params![start, end], |r| {
            Ok(UsageRow {
                started_at: r.get(0)?,
                tool: r.get(1)?,
                client_id: r.get(2)?,
                model: r.get(3)?,
                provider: r.get(4)?,
                meta_json: r.get(5)?,
                prompt_tokens: count(r.get(6)?),
                completion_tokens: count(r.get(7)?),
                cache_creation_tokens: count(r.get(8)?),
                cache_read_tokens: count(r.get(9)?),
                total_tokens: count(r.get(10)?),
                cost_nanousd: count(r.get(11)?),
                no_usage: r.get::<_, bool>(13)?,
                cost_pending: r.get::<_, String>(12)? == "pending" && !r.get::<_, bool>(13)?,
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}
