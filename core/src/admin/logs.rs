//! `GET /admin/logs` parameters (`control.md` §6.3).
//!
//! Integers are parsed as Rust `i64` (an optional sign, digits, nothing else), so `1.0`,
//! ` 5` and an empty value are "not an integer". Filters are used exactly as given (no
//! trimming); a present filter that is empty or only whitespace is rejected.

use super::AdminError;
use super::query::Query;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 200;
/// Largest offset.
pub const MAX_OFFSET: u32 = 100_000;

/// A `request_logs.lifecycle_status` value accepted as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LifecycleFilter {
    /// `pending`
    Pending,
    /// `completed`
    Completed,
    /// `error`
    Error,
    /// `aborted`
    Aborted,
}

impl LifecycleFilter {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleFilter::Pending => "pending",
            LifecycleFilter::Completed => "completed",
            LifecycleFilter::Error => "error",
            LifecycleFilter::Aborted => "aborted",
        }
    }

    fn parse(s: &str) -> Option<LifecycleFilter> {
        match s {
            "pending" => Some(LifecycleFilter::Pending),
            "completed" => Some(LifecycleFilter::Completed),
            "error" => Some(LifecycleFilter::Error),
            "aborted" => Some(LifecycleFilter::Aborted),
            _ => None,
        }
    }
}

/// Validated log-list parameters; rows are ordered `started_at` desc, then `id` desc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsQuery {
    /// Page size, 1..=200.
    pub limit: u32,
    /// Rows to skip, 0..=100 000.
    pub offset: u32,
    /// Exact `tool`.
    pub tool: Option<String>,
    /// Exact `client_id`.
    pub client_id: Option<String>,
    /// Exact `model`.
    pub model: Option<String>,
    /// Exact `provider`.
    pub provider: Option<String>,
    /// `status >= status_min`.
    pub status_min: Option<i64>,
    /// `status <= status_max`.
    pub status_max: Option<i64>,
    /// Exact `lifecycle_status`.
    pub lifecycle_status: Option<LifecycleFilter>,
    /// `q` (ours, for the dashboard): case-insensitive substring of `path` or `model`; at
    /// most [`MAX_SEARCH_CHARS`] characters.
    pub search: Option<String>,
}

/// Longest `q` accepted by `/admin/logs`.
pub const MAX_SEARCH_CHARS: usize = 200;

/// Validates the log-list query: limit and offset first, then the filters in their
/// documented order.
pub fn parse_logs(q: &Query) -> Result<LogsQuery, AdminError> {
    let limit = bounded(q, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = bounded(q, "offset", 0, 0, MAX_OFFSET)?;
    Ok(LogsQuery {
        limit,
        offset,
        tool: text_filter(q, "tool")?,
        client_id: text_filter(q, "client_id")?,
        model: text_filter(q, "model")?,
        provider: text_filter(q, "provider")?,
        status_min: int_filter(q, "status_min")?,
        status_max: int_filter(q, "status_max")?,
        lifecycle_status: match text_filter(q, "lifecycle_status")? {
            None => None,
            Some(s) => Some(LifecycleFilter::parse(&s).ok_or(AdminError::InvalidFilter {
                param: "lifecycle_status",
            })?),
        },
        search: match text_filter(q, "q")? {
            Some(s) if s.chars().count() > MAX_SEARCH_CHARS => {
                return Err(AdminError::InvalidFilter { param: "q" });
            }
            other => other,
        },
    })
}

fn bounded(
    q: &Query,
    param: &'static str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, AdminError> {
    let Some(raw) = q.get(param) else {
        return Ok(default);
    };
    raw.parse::<i64>()
        .ok()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| (min..=max).contains(v))
        .ok_or(AdminError::InvalidLimitOrOffset { param })
}

fn text_filter(q: &Query, param: &'static str) -> Result<Option<String>, AdminError> {
    match q.get(param) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Err(AdminError::InvalidFilter { param }),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

fn int_filter(q: &Query, param: &'static str) -> Result<Option<i64>, AdminError> {
    let Some(v) = text_filter(q, param)? else {
        return Ok(None);
    };
    v.parse::<i64>()
        .map(Some)
        .map_err(|_| AdminError::InvalidFilter { param })
}
