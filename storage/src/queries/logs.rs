//! Stats, logs and cost audits (`control.md` §6.3).

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use crate::apply::usd;
use crate::error::StorageError;
use crate::store::Store;

/// `/admin/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Rows.
    pub total_requests: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Σ cost in USD.
    pub total_cost_usd: f64,
    /// Σ exact cost.
    pub total_cost_nanousd: i64,
    /// Earliest `started_at`.
    pub first_request_at: Option<String>,
    /// Latest `started_at`.
    pub last_request_at: Option<String>,
}

/// Filters of `/admin/logs` (validated by the caller; all exact).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogFilter {
    /// `tool`.
    pub tool: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `model`.
    pub model: Option<String>,
    /// `provider`.
    pub provider: Option<String>,
    /// `status >= status_min`.
    pub status_min: Option<i64>,
    /// `status <= status_max`.
    pub status_max: Option<i64>,
    /// `lifecycle_status`.
    pub lifecycle_status: Option<String>,
    /// `q`: case-insensitive substring of `path` or `model`.
    pub search: Option<String>,
}

/// Every `request_logs` column under its name, values as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct LogRow {
    pub id: i64,
    pub request_id: Option<String>,
    pub provider: String,
    pub model: String,
    pub actual_model: Option<String>,
    pub actual_provider: Option<String>,
    pub proxy_api_key_id: Option<i64>,
    pub tool: Option<String>,
    pub client_id: Option<String>,
    pub agent: Option<String>,
    pub source: Option<String>,
    pub msg_id: Option<String>,
    pub path: String,
    pub streamed: i64,
    pub status: Option<i64>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cache_creation_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub cost_status: String,
    pub lifecycle_status: String,
    pub incomplete: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub latency_ms: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub finalized_at: Option<String>,
    pub meta_json: Option<String>,
    pub user_agent: Option<String>,
    pub source_ip: Option<String>,
    pub cliproxy_account: Option<String>,
    pub cliproxy_auth_index: Option<String>,
    pub cliproxy_source: Option<String>,
    pub correlated_at: Option<String>,
    pub cache_write_1h_tokens: i64,
    pub usage_incomplete: i64,
    pub cost_nanousd: i64,
}

/// One `cost_audit` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostAuditRow {
    /// Audit id.
    pub id: i64,
    /// Row id.
    pub request_log_id: Option<i64>,
    /// Priced model.
    pub model: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// `pricing`, `guard`, `unsupported_model`.
    pub source: Option<String>,
    /// Cost in USD.
    pub base_cost_usd: Option<f64>,
    /// Exact cost.
    pub cost_nanousd: Option<i64>,
    /// `YYYY-MM-DD HH:MM:SS`.
    pub calc_at: String,
}

const LOG_COLUMNS: &str = "id, request_id, provider, model, actual_model, actual_provider,
    proxy_api_key_id, tool, client_id, agent, source, msg_id, path, streamed, status,
    prompt_tokens, completion_tokens, cache_creation_tokens, cache_read_tokens,
    reasoning_tokens, total_tokens, cost_usd, cost_status, lifecycle_status, incomplete,
    error_code, error_message, latency_ms, started_at, finished_at, finalized_at, meta_json,
    user_agent, source_ip, cliproxy_account, cliproxy_auth_index, cliproxy_source,
    correlated_at, cache_write_1h_tokens, usage_incomplete, cost_nanousd";

impl Store {
    /// `/admin/stats` over all rows; an empty table gives zeros and nulls.
    pub fn stats(&self) -> Result<Stats, StorageError> {
        Ok(self.connection().query_row(
            "SELECT COUNT(*), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_nanousd), 0),
               MIN(started_at), MAX(started_at) FROM request_logs",
            [],
            |r| {
                let nano: i64 = r.get(2)?;
                Ok(Stats {
                    total_requests: r.get(0)?,
                    total_tokens: r.get(1)?,
                    total_cost_usd: usd(nano),
                    total_cost_nanousd: nano,
                    first_request_at: r.get(3)?,
                    last_request_at: r.get(4)?,
                })
            },
        )?)
    }

    /// `/admin/logs`: ordered `started_at` descending, then `id` descending.
    pub fn logs(
        &self,
        f: &LogFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<LogRow>, StorageError> {
        let mut stmt = self.connection().prepare_cached(&format!(
            "SELECT {LOG_COLUMNS} FROM request_logs
             WHERE (?1 IS NULL OR tool = ?1) AND (?2 IS NULL OR client_id = ?2)
               AND (?3 IS NULL OR model = ?3) AND (?4 IS NULL OR provider = ?4)
               AND (?5 IS NULL OR status >= ?5) AND (?6 IS NULL OR status <= ?6)
               AND (?7 IS NULL OR lifecycle_status = ?7)
               AND (?10 IS NULL OR instr(lower(path), lower(?10)) > 0
                    OR instr(lower(model), lower(?10)) > 0)
             ORDER BY started_at DESC, id DESC LIMIT ?8 OFFSET ?9"
        ))?;
        let rows = stmt
            .query_map(
                params![
                    f.tool,
                    f.client_id,
                    f.model,
                    f.provider,
                    f.status_min,
                    f.status_max,
                    f.lifecycle_status,
                    limit,
                    offset,
                    f.search
                ],
                log_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `/admin/logs/:id`.
    pub fn log_by_id(&self, id: i64) -> Result<Option<LogRow>, StorageError> {
        Ok(self
            .connection()
            .prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM request_logs WHERE id = ?1"
            ))?
            .query_row([id], log_row)
            .optional()?)
    }

    /// `/admin/logs/:id/cost-audit`, oldest first; `None` when the log does not exist.
    pub fn cost_audit(&self, log_id: i64) -> Result<Option<Vec<CostAuditRow>>, StorageError> {
        let exists = self
            .connection()
            .prepare_cached("SELECT 1 FROM request_logs WHERE id = ?1")?
            .query_row([log_id], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let mut stmt = self.connection().prepare_cached(
            "SELECT id, request_log_id, model, provider, source, base_cost_usd, cost_nanousd,
               calc_at FROM cost_audit WHERE request_log_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([log_id], |r| {
                Ok(CostAuditRow {
                    id: r.get(0)?,
                    request_log_id: r.get(1)?,
                    model: r.get(2)?,
                    provider: r.get(3)?,
                    source: r.get(4)?,
                    base_cost_usd: r.get(5)?,
                    cost_nanousd: r.get(6)?,
                    calc_at: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(rows))
    }

    /// `SELECT 1`, the database check of `/ready`.
    pub fn ping(&self) -> Result<(), StorageError> {
        self.connection().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

fn log_row(r: &Row<'_>) -> rusqlite::Result<LogRow> {
    Ok(LogRow {
        id: r.get(0)?,
        request_id: r.get(1)?,
        provider: r.get(2)?,
        model: r.get(3)?,
        actual_model: r.get(4)?,
        actual_provider: r.get(5)?,
        proxy_api_key_id: r.get(6)?,
        tool: r.get(7)?,
        client_id: r.get(8)?,
        agent: r.get(9)?,
        source: r.get(10)?,
        msg_id: r.get(11)?,
        path: r.get(12)?,
        streamed: r.get(13)?,
        status: r.get(14)?,
        prompt_tokens: r.get(15)?,
        completion_tokens: r.get(16)?,
        cache_creation_tokens: r.get(17)?,
        cache_read_tokens: r.get(18)?,
        reasoning_tokens: r.get(19)?,
        total_tokens: r.get(20)?,
        cost_usd: r.get(21)?,
        cost_status: r.get(22)?,
        lifecycle_status: r.get(23)?,
        incomplete: r.get(24)?,
        error_code: r.get(25)?,
        error_message: r.get(26)?,
        latency_ms: r.get(27)?,
        started_at: r.get(28)?,
        finished_at: r.get(29)?,
        finalized_at: r.get(30)?,
        meta_json: r.get(31)?,
        user_agent: r.get(32)?,
        source_ip: r.get(33)?,
        cliproxy_account: r.get(34)?,
        cliproxy_auth_index: r.get(35)?,
        cliproxy_source: r.get(36)?,
        correlated_at: r.get(37)?,
        cache_write_1h_tokens: r.get(38)?,
        usage_incomplete: r.get(39)?,
        cost_nanousd: r.get(40)?,
    })
}
