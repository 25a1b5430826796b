//! Write commands (`control.md` §3.2) and their replies.
//!
//! Every command carries what the caller computed (row columns, costs, timestamps); the
//! storage layer never reads a clock for a value it writes, except SQLite column defaults
//! (`created_at`, `calc_at`, `applied_at`) that the schema itself declares.

use std::fmt;
use std::sync::Arc;

use agent_cli_proxy_core::secret::Secret;
use agent_cli_proxy_core::usage::{Convention, TokenColumns};

/// `cost_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CostStatus {
    /// Not costed yet (only while `pending`).
    Unresolved,
    /// Costed, `cost_nanousd > 0`.
    Ok,
    /// No price, overflow or a zero cost; the backfill retries it.
    Pending,
    /// The model cannot be priced.
    Unsupported,
}

impl CostStatus {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            CostStatus::Unresolved => "unresolved",
            CostStatus::Ok => "ok",
            CostStatus::Pending => "pending",
            CostStatus::Unsupported => "unsupported",
        }
    }

    /// Parses a column value.
    pub fn parse(s: &str) -> Option<CostStatus> {
        match s {
            "unresolved" => Some(CostStatus::Unresolved),
            "ok" => Some(CostStatus::Ok),
            "pending" => Some(CostStatus::Pending),
            "unsupported" => Some(CostStatus::Unsupported),
            _ => None,
        }
    }
}

/// Terminal `lifecycle_status` values a finalize may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Terminal {
    /// The exchange completed.
    Completed,
    /// The exchange failed.
    Error,
    /// The exchange was aborted.
    Aborted,
}

impl Terminal {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Terminal::Completed => "completed",
            Terminal::Error => "error",
            Terminal::Aborted => "aborted",
        }
    }
}

/// The pre-logged row of an LLM call (`datapath.md` §14.1). Token columns, costs and flags
/// start at 0, `lifecycle_status`/`cost_status` at `pending`/`unresolved`, `source` at
/// `proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PreLogRow {
    /// UUID v4 of the request.
    pub request_id: String,
    /// Resolved provider id.
    pub provider: String,
    /// Requested model, or `unknown`.
    pub model: String,
    /// Detected tool.
    pub tool: String,
    /// Client id.
    pub client_id: String,
    /// Agent name, if any.
    pub agent: Option<String>,
    /// `user-agent` header.
    pub user_agent: Option<String>,
    /// Peer address.
    pub source_ip: Option<String>,
    /// `x-request-id` of the client.
    pub msg_id: Option<String>,
    /// Request path without query.
    pub path: String,
    /// The request asked for a stream.
    pub streamed: bool,
    /// Managed key id.
    pub proxy_api_key_id: Option<i64>,
    /// Entry time, ISO-8601 UTC with milliseconds and `Z`.
    pub started_at: String,
    /// `{"method":…,"originator":…,"session_id":…}`.
    pub meta_json: String,
}

/// Who computed a cost and how, for the `cost_audit` row (`accounting.md` §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditInfo {
    /// The priced model.
    pub model: Option<String>,
    /// The provider.
    pub provider: Option<String>,
    /// `pricing`, `guard` or `unsupported_model`.
    pub source: String,
}

/// Every column a finalize writes (`datapath.md` §14.3), computed by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizeRow {
    /// Row id returned by the pre-log.
    pub id: i64,
    /// Terminal state.
    pub lifecycle_status: Terminal,
    /// The response's model.
    pub actual_model: Option<String>,
    /// The provider that answered.
    pub actual_provider: Option<String>,
    /// Managed key id.
    pub proxy_api_key_id: Option<i64>,
    /// The response was SSE or NDJSON.
    pub streamed: bool,
    /// HTTP status recorded for the row.
    pub status: Option<i64>,
    /// Token columns.
    pub tokens: TokenColumns,
    /// The usage is known to be incomplete.
    pub usage_incomplete: bool,
    /// Exact cost.
    pub cost_nanousd: u64,
    /// Cost status.
    pub cost_status: CostStatus,
    /// `error_code`.
    pub error_code: Option<String>,
    /// `error_message`.
    pub error_message: Option<String>,
    /// Entry → finalize, in milliseconds.
    pub latency_ms: Option<i64>,
    /// `finished_at` = `finalized_at`, ISO-8601.
    pub now: String,
    /// The complete final `meta_json` text.
    pub meta_json: String,
    /// Audit fields.
    pub audit: AuditInfo,
}

/// The columns a re-cost reads (boot recovery, shutdown finalize, backfill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecostRow {
    /// Row id.
    pub id: i64,
    /// `provider`.
    pub provider: String,
    /// Requested `model`.
    pub model: String,
    /// `actual_model`.
    pub actual_model: Option<String>,
    /// `actual_provider`.
    pub actual_provider: Option<String>,
    /// Token columns as stored.
    pub tokens: TokenColumns,
    /// `meta_json.usage_convention`, when present and valid. When `None`, the recoster uses
    /// the provider's type (`anthropic` → Anthropic, else OpenAI).
    pub usage_convention: Option<Convention>,
}

/// The cost of a re-costed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecostResult {
    /// Exact cost.
    pub cost_nanousd: u64,
    /// `ok`, `pending` or `unsupported` (never `unresolved`).
    pub cost_status: CostStatus,
    /// Audit fields.
    pub audit: AuditInfo,
}

/// Costs a row from its columns with the current prices. Implemented over the core's
/// pricer by the shell; tests use a flat price.
pub trait Recoster: Send + Sync {
    /// The cost of `row`.
    fn recost(&self, row: &RecostRow) -> RecostResult;
}

impl fmt::Debug for dyn Recoster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recoster")
    }
}

/// A shared recoster.
pub type SharedRecoster = Arc<dyn Recoster>;

/// Allowed-list change of an update: `None` leaves the column as it is.
pub type ListUpdate = Option<Option<Vec<String>>>;

/// A new managed key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The 64-hex key, generated by the caller; only its hash and prefix are stored.
    pub key: Secret,
    /// Display name.
    pub name: String,
    /// Allowed accounts (`None` = unrestricted).
    pub allowed_accounts: Option<Vec<String>>,
    /// Allowed providers (`None` = unrestricted).
    pub allowed_providers: Option<Vec<String>>,
}

/// One `quota_snapshots` row to insert (`control.md` §8.5).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuotaSnapshotRow {
    /// ISO time of the refresh.
    pub timestamp: String,
    /// Provider.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Window type (`5h`, `week`, …).
    pub quota_type: String,
    /// Model the window applies to.
    pub model: Option<String>,
    /// Used percentage 0..100.
    pub used_pct: Option<f64>,
    /// Remaining percentage.
    pub remaining: Option<f64>,
    /// Remaining as displayed (`12.50%`).
    pub remaining_raw: Option<String>,
    /// Reset time, ISO.
    pub resets_at: Option<String>,
    /// Raw window JSON.
    pub raw_json: Option<String>,
}

/// A correlation to apply (`control.md` §8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    /// Row id.
    pub id: i64,
    /// `detail.source`: written to `cliproxy_account` and `cliproxy_source`.
    pub source: Option<String>,
    /// `detail.auth_index`.
    pub auth_index: Option<String>,
    /// `correlated_at`, ISO.
    pub now: String,
}

/// One backfill chunk (`accounting.md` §6.2).
#[derive(Clone)]
pub struct BackfillChunk {
    /// Rows with `id > after_id`.
    pub after_id: i64,
    /// Rows with `id <= max_id`; `None` on the first chunk: the command computes it.
    pub max_id: Option<i64>,
    /// Rows to take at most.
    pub limit: u32,
    /// `started_at >= since` unless `None` (`--all`).
    pub since: Option<String>,
    /// Prices to re-cost with.
    pub recoster: SharedRecoster,
}

impl fmt::Debug for BackfillChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackfillChunk")
            .field("after_id", &self.after_id)
            .field("max_id", &self.max_id)
            .field("limit", &self.limit)
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

/// What one backfill chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkOutcome {
    /// The candidates' `max(id)` used (computed by the first chunk).
    pub max_id: Option<i64>,
    /// The last id scanned (the next chunk starts after it).
    pub last_id: Option<i64>,
    /// Counts of this chunk.
    pub counts: BackfillCounts,
}

/// Backfill result `{scanned, updated, ok, pending, unsupported}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct BackfillCounts {
    /// Rows examined.
    pub scanned: u64,
    /// Rows that changed to `ok`.
    pub updated: u64,
    /// Rows whose new status is `ok`.
    pub ok: u64,
    /// Rows whose new status is `pending`.
    pub pending: u64,
    /// Rows whose new status is `unsupported`.
    pub unsupported: u64,
}

impl BackfillCounts {
    /// Adds another chunk's counts.
    pub fn add(&mut self, o: &BackfillCounts) {
        self.scanned += o.scanned;
        self.updated += o.updated;
        self.ok += o.ok;
        self.pending += o.pending;
        self.unsupported += o.unsupported;
    }
}

/// A write command.
#[derive(Clone)]
#[non_exhaustive]
pub enum Op {
    /// Insert a pending row → [`Reply::RowId`].
    PreLog(Box<PreLogRow>),
    /// Update the token columns of a pending row (fire-and-forget) → [`Reply::Done`].
    CheckpointUsage {
        /// Row id.
        id: i64,
        /// Token columns known so far.
        tokens: TokenColumns,
    },
    /// Finalize a row, its audit and its `daily_usage` bucket → [`Reply::Finalized`].
    Finalize(Box<FinalizeRow>),
    /// The fallback update after a failed finalize (outcome O16) → [`Reply::Finalized`].
    FinalizeFallback {
        /// Row id.
        id: i64,
        /// The finalize error, written as `finalize_failed: <message>`.
        message: String,
        /// `finalized_at`, ISO.
        now: String,
    },
    /// Set `last_used_at` (fire-and-forget) → [`Reply::Done`].
    TouchApiKey {
        /// Key id.
        id: i64,
        /// `YYYY-MM-DD HH:MM:SS`.
        at: String,
    },
    /// Apply a correlation → [`Reply::Changed`].
    Correlate(Correlation),
    /// One backfill chunk → [`Reply::Backfill`].
    BackfillChunk(BackfillChunk),
    /// Insert quota snapshots → [`Reply::Count`].
    InsertQuotaSnapshots(Vec<QuotaSnapshotRow>),
    /// Delete snapshots with `timestamp < before` → [`Reply::Count`].
    PruneQuotaSnapshots {
        /// ISO cut-off.
        before: String,
    },
    /// Create a managed key → [`Reply::ApiKeyCreated`].
    CreateApiKey(NewApiKey),
    /// Replace the allowed lists of a live key → [`Reply::Changed`] (false: unknown or
    /// revoked).
    UpdateApiKey {
        /// Key id.
        id: i64,
        /// New `allowed_accounts`.
        allowed_accounts: ListUpdate,
        /// New `allowed_providers`.
        allowed_providers: ListUpdate,
    },
    /// Revoke a key → [`Reply::Revoked`].
    RevokeApiKey {
        /// Key id.
        id: i64,
        /// `YYYY-MM-DD HH:MM:SS`, used unless already revoked.
        now: String,
    },
    /// Abort and cost every pending proxy row (`boot-recovery`) → [`Reply::Count`].
    BootRecovery {
        /// `finalized_at`, ISO.
        now: String,
        /// Prices.
        recoster: SharedRecoster,
    },
    /// Abort and cost every pending proxy row (`shutdown`) → [`Reply::Count`].
    ShutdownFinalize {
        /// `finalized_at`, ISO.
        now: String,
        /// Prices.
        recoster: SharedRecoster,
    },
    /// `PRAGMA wal_checkpoint(TRUNCATE)`, outside any transaction → [`Reply::Checkpoint`].
    WalCheckpoint,
    /// Drain the queue and stop the writer thread → [`Reply::Done`].
    Shutdown,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Op {
    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Op::PreLog(_) => "PreLog",
            Op::CheckpointUsage { .. } => "CheckpointUsage",
            Op::Finalize(_) => "Finalize",
            Op::FinalizeFallback { .. } => "FinalizeFallback",
            Op::TouchApiKey { .. } => "TouchApiKey",
            Op::Correlate(_) => "Correlate",
            Op::BackfillChunk(_) => "BackfillChunk",
            Op::InsertQuotaSnapshots(_) => "InsertQuotaSnapshots",
            Op::PruneQuotaSnapshots { .. } => "PruneQuotaSnapshots",
            Op::CreateApiKey(_) => "CreateApiKey",
            Op::UpdateApiKey { .. } => "UpdateApiKey",
            Op::RevokeApiKey { .. } => "RevokeApiKey",
            Op::BootRecovery { .. } => "BootRecovery",
            Op::ShutdownFinalize { .. } => "ShutdownFinalize",
            Op::WalCheckpoint => "WalCheckpoint",
            Op::Shutdown => "Shutdown",
        }
    }

    /// The failure counter this command increments (`prelog`, `finalize` or `other`).
    pub fn failure_label(&self) -> FailureOp {
        match self {
            Op::PreLog(_) => FailureOp::Prelog,
            Op::Finalize(_) | Op::FinalizeFallback { .. } => FailureOp::Finalize,
            _ => FailureOp::Other,
        }
    }
}

/// The `op` label of `agent_cli_proxy_storage_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureOp {
    /// Pre-log.
    Prelog,
    /// Finalize and its fallback.
    Finalize,
    /// Everything else.
    Other,
}

impl FailureOp {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureOp::Prelog => "prelog",
            FailureOp::Finalize => "finalize",
            FailureOp::Other => "other",
        }
    }
}

/// The reply to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// Nothing to report.
    Done,
    /// The id of the inserted row.
    RowId(i64),
    /// True when this finalize won; false when the row had already left `pending` (a
    /// no-op).
    Finalized(bool),
    /// True when a row changed.
    Changed(bool),
    /// A count of rows.
    Count(u64),
    /// A backfill chunk's outcome.
    Backfill(ChunkOutcome),
    /// The created key.
    ApiKeyCreated(CreatedApiKey),
    /// `revoked_at` of the key (the earlier value if it was already revoked); `None` when
    /// the key does not exist.
    Revoked(Option<String>),
    /// `PRAGMA wal_checkpoint` result.
    Checkpoint(CheckpointInfo),
}

/// A created managed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedApiKey {
    /// Row id.
    pub id: i64,
    /// The first 8 characters of the key.
    pub key_prefix: String,
    /// `created_at`, `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
    /// Stored `allowed_accounts`, normalized.
    pub allowed_accounts: Option<Vec<String>>,
    /// Stored `allowed_providers`, normalized.
    pub allowed_providers: Option<Vec<String>>,
}

/// What `PRAGMA wal_checkpoint(TRUNCATE)` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// 1 when the checkpoint could not complete because of readers or writers.
    pub busy: i64,
    /// Frames in the WAL (-1 when not in WAL mode).
    pub log_frames: i64,
    /// Frames checkpointed.
    pub checkpointed_frames: i64,
}
