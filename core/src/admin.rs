//! The admin router and request validation (`control.md` §6), and JSON reply rendering.
//!
//! [`parse`] turns a request that passed the admin gate into an [`AdminRequest`] whose
//! parameters are validated and typed, or into the exact rejection [`Reply`] of §6.1–§6.7.
//! The shell then runs the query and renders the result with [`ok`], [`created`] or the
//! bucket helpers ([`trend_reply`], [`history_reply`]). Every reply here carries
//! `cache-control: no-store`.
//!
//! Choices where the spec is silent:
//! * Paths match exactly: a trailing slash or an empty `:providerId` is 404. `HEAD` is an
//!   unsupported method (404).
//! * A query parameter that is present but empty counts as present: `from=` is an invalid
//!   date, `limit=` is not an integer. Except the optional `provider`/`model`/`tool`/`account`
//!   filters of trend, history and pricing, where an empty value means "no filter".
//! * When both `day` and `from`/`to` are given, `from`/`to` win. `/admin/usage/providers`
//!   without parameters reports today, like `/admin/usage/models`.
//! * `/admin/usage/accounts/summary` defaults each end on its own (`from` = today − 7 days,
//!   `to` = today), so giving only one of them is accepted.
//! * `hours` of trend may be fractional (finite, > 0, ≤ 8 784); `hours` of quota history is a
//!   whole number 1..=8 784: the upper bound (366 days, as for date ranges) is ours, so a
//!   request cannot ask for billions of buckets.
//! * Where both `hours` and `from`/`to` are given, `from`/`to` win.

mod dates;
mod keys;
mod logs;
mod query;

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::head::Reply;
use crate::time::UnixMillis;

pub use dates::{
    DateRange, DayOrRange, HistoryBucket, MAX_RANGE_DAYS, Span, TrendBucket, TrendRow,
    bucket_timestamp, bucket_width_secs, history_buckets, nanousd_to_usd, parse_day, trend_buckets,
};
pub use keys::{ApiKeyCreate, ApiKeyMaterial, ApiKeyPatch, MAX_NAME_CHARS, list_column};
pub use logs::{DEFAULT_LIMIT, LifecycleFilter, LogsQuery, MAX_LIMIT, MAX_OFFSET};
pub use query::{Query, decode_form, decode_path_segment};

/// Largest `hours` value of trend and quota history (366 days).
pub const MAX_HOURS: f64 = 8_784.0;

/// A validated admin request: one variant per endpoint of `control.md` §6.2–§6.8.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminRequest {
    /// `GET /admin/usage/today`, for the UTC day `date`.
    UsageToday {
        /// Today, `YYYY-MM-DD`.
        date: String,
    },
    /// `GET /admin/usage/range`.
    UsageRange(DateRange),
    /// `GET /admin/usage/models`.
    UsageModels(DayOrRange),
    /// `GET /admin/usage/providers`.
    UsageProviders(DayOrRange),
    /// `GET /admin/usage/accounts`.
    UsageAccounts {
        /// The day, `YYYY-MM-DD` (default today).
        day: String,
    },
    /// `GET /admin/usage/accounts/range`.
    UsageAccountsRange(DateRange),
    /// `GET /admin/usage/accounts/summary`, defaults filled in.
    UsageAccountsSummary(DateRange),
    /// `GET /admin/usage/trend`.
    UsageTrend {
        /// Window and bucket width.
        span: Span,
        /// Exact `provider` filter.
        provider: Option<String>,
        /// Exact `model` filter.
        model: Option<String>,
        /// Exact `tool` filter.
        tool: Option<String>,
    },
    /// `GET /admin/usage/summary` (ours, `control.md` §6.9).
    UsageSummary(DateRange),
    /// `GET /admin/usage/series` (ours, `control.md` §6.9).
    UsageSeries {
        /// The days.
        range: DateRange,
        /// The grouping column.
        by: SeriesBy,
    },
    /// `GET /admin/stats`.
    Stats,
    /// `GET /admin/logs`.
    Logs(LogsQuery),
    /// `GET /admin/logs/:id`.
    Log {
        /// Row id.
        id: i64,
    },
    /// `GET /admin/logs/:id/cost-audit`.
    LogCostAudit {
        /// Row id.
        id: i64,
    },
    /// `GET /admin/quotas`.
    Quotas,
    /// `GET /admin/quotas?refresh=true` or `GET /admin/quotas/refresh`.
    QuotasRefresh,
    /// `GET /admin/quotas/probes`.
    QuotaProbes,
    /// `GET /admin/quotas/history`.
    QuotaHistory {
        /// Window and bucket width.
        span: Span,
        /// Exact `provider` filter.
        provider: Option<String>,
        /// Exact `account` filter.
        account: Option<String>,
    },
    /// `GET /admin/providers`.
    Providers,
    /// `GET /admin/pricing`.
    Pricing {
        /// Model to look up; without it `match` is null.
        model: Option<String>,
        /// Provider hint for the lookup.
        provider: Option<String>,
    },
    /// `GET /admin/config`.
    Config,
    /// `GET /admin/api-keys`.
    ApiKeys,
    /// `POST /admin/api-keys`.
    ApiKeyCreate(ApiKeyCreate),
    /// `PATCH /admin/api-keys/:id`.
    ApiKeyPatch {
        /// Key id.
        id: i64,
        /// The fields to change.
        patch: ApiKeyPatch,
    },
    /// `DELETE /admin/api-keys/:id`.
    ApiKeyRevoke {
        /// Key id.
        id: i64,
    },
    /// `GET /admin/api-keys/:id/usage`.
    ApiKeyUsage {
        /// Key id.
        id: i64,
    },
    /// `GET /admin/breakers`.
    Breakers,
    /// `GET /admin/breakers/:providerId`.
    Breaker {
        /// Percent-decoded provider id.
        provider_id: String,
    },
    /// `POST /admin/breakers/:providerId/reset`.
    BreakerReset {
        /// Percent-decoded provider id.
        provider_id: String,
    },
}

/// The dimension of `/admin/usage/series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesBy {
    /// `by=tool` (the default).
    Tool,
    /// `by=model`.
    Model,
    /// `by=provider`.
    Provider,
    /// `by=client`.
    Client,
    /// `by=account`.
    Account,
}

impl SeriesBy {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesBy::Tool => "tool",
            SeriesBy::Model => "model",
            SeriesBy::Provider => "provider",
            SeriesBy::Client => "client",
            SeriesBy::Account => "account",
        }
    }

    fn parse(s: &str) -> Option<SeriesBy> {
        [
            SeriesBy::Tool,
            SeriesBy::Model,
            SeriesBy::Provider,
            SeriesBy::Client,
            SeriesBy::Account,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

/// Why an admin request was rejected; [`AdminError::into_reply`] gives the exact response and
/// `Display` the exact `error` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Unknown path, unsupported method or a malformed path identifier (404).
    #[error("Not found")]
    NotFound,
    /// `from`, `to` or `day` is not a real `YYYY-MM-DD` date.
    #[error("Invalid {param} parameter; expected YYYY-MM-DD")]
    InvalidDate {
        /// `from`, `to` or `day`.
        param: &'static str,
    },
    /// `from` is after `to`.
    #[error("from must be on or before to")]
    FromAfterTo,
    /// The range spans more than 366 days.
    #[error("Date range cannot exceed 366 days")]
    RangeTooLong {
        /// Days in the requested range, both ends included.
        days: u64,
    },
    /// A route that needs both `from` and `to` got fewer.
    #[error("Missing from or to parameter")]
    MissingFromOrTo,
    /// Only one of `from`/`to` on a route where both are optional.
    #[error("Both from and to are required when using date range")]
    HalfRange,
    /// `hours` is not acceptable.
    #[error("Invalid hours parameter")]
    InvalidHours,
    /// `limit` or `offset` is not an integer or out of range.
    #[error("Invalid limit or offset")]
    InvalidLimitOrOffset {
        /// `limit` or `offset`.
        param: &'static str,
    },
    /// `by` of `/admin/usage/series` is not a known dimension.
    #[error("Invalid by parameter; expected tool, model, provider, client or account")]
    InvalidBy,
    /// A log filter is blank, a status bound not an integer, a lifecycle status unknown.
    #[error("Invalid filter parameter")]
    InvalidFilter {
        /// The offending parameter.
        param: &'static str,
    },
    /// The api-key body is not acceptable.
    #[error("Invalid request body")]
    InvalidBody,
    /// The api-key `name` is missing or blank.
    #[error("name is required")]
    NameRequired,
}

impl AdminError {
    /// The response: 404 for [`AdminError::NotFound`], else 400; `{"error": <Display>}`.
    pub fn into_reply(self) -> Reply {
        let status = match self {
            AdminError::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        error_reply(status, &self.to_string())
    }
}

/// Routes and validates an admin request. `now` gives "today" (UTC) and the end of `hours`
/// spans. Rejections are complete replies (§6.1–§6.7), with `cache-control: no-store`.
// The reply is the product here: the shell writes it as is, and a boxed one would only move
// the allocation onto every rejection.
#[allow(clippy::result_large_err)]
pub fn parse(
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    now: UnixMillis,
) -> Result<AdminRequest, Reply> {
    route(method, path, &Query::parse(query), body, now).map_err(AdminError::into_reply)
}

/// `200` with `value` as JSON and `cache-control: no-store`.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Reply {
    json_reply(StatusCode::OK, value)
}

/// `201` with `value` as JSON and `cache-control: no-store`.
pub fn created<T: Serialize + ?Sized>(value: &T) -> Reply {
    json_reply(StatusCode::CREATED, value)
}

/// `status` with `value` as JSON and `cache-control: no-store`; a value that cannot be
/// serialized becomes the 500 reply instead of a panic.
pub fn json_reply<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => Reply::json(status, body).no_store(),
        Err(_) => internal_error(),
    }
}

/// `404 {"error":"Not found"}`: also the answer for an unknown log, key or audit.
pub fn not_found() -> Reply {
    AdminError::NotFound.into_reply()
}

/// `404 {"error":"Breaker not found"}`.
pub fn breaker_not_found() -> Reply {
    error_reply(StatusCode::NOT_FOUND, "Breaker not found")
}

/// `500 {"error":"Internal server error"}` for a failure inside a handler.
pub fn internal_error() -> Reply {
    error_reply(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

/// `{"buckets":[...]}` of a trend span with every bucket, empty ones included.
pub fn trend_reply(span: &Span, rows: &[TrendRow]) -> Reply {
    ok(&json!({ "buckets": trend_buckets(span, rows) }))
}

/// `{"buckets":[{timestamp, snapshots}]}` of a quota-history span, empty buckets included.
pub fn history_reply<T: Serialize + Clone>(span: &Span, rows: &[(i64, T)]) -> Reply {
    #[derive(Serialize)]
    struct Body<T> {
        buckets: Vec<HistoryBucket<T>>,
    }
    ok(&Body {
        buckets: history_buckets(span, rows),
    })
}

fn error_reply(status: StatusCode, message: &str) -> Reply {
    Reply::json_value(status, &json!({ "error": message })).no_store()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Patch,
    Delete,
    Other,
}

fn route(
    method: &Method,
    path: &str,
    q: &Query,
    body: &[u8],
    now: UnixMillis,
) -> Result<AdminRequest, AdminError> {
    let verb = match *method {
        Method::GET => Verb::Get,
        Method::POST => Verb::Post,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        _ => Verb::Other,
    };
    let rest = path.strip_prefix("/admin/").ok_or(AdminError::NotFound)?;
    let segs: Vec<&str> = rest.split('/').collect();
    use AdminRequest as R;
    use Verb::{Delete, Get, Patch, Post};
    match (verb, segs.as_slice()) {
        (Get, ["usage", "today"]) => Ok(R::UsageToday { date: now.to_day() }),
        (Get, ["usage", "range"]) => required_range(q).map(R::UsageRange),
        (Get, ["usage", "models"]) => day_or_range(q, now).map(R::UsageModels),
        (Get, ["usage", "providers"]) => day_or_range(q, now).map(R::UsageProviders),
        (Get, ["usage", "accounts"]) => day(q, now).map(|day| R::UsageAccounts { day }),
        (Get, ["usage", "accounts", "range"]) => required_range(q).map(R::UsageAccountsRange),
        (Get, ["usage", "accounts", "summary"]) => {
            summary_range(q, now).map(R::UsageAccountsSummary)
        }
        (Get, ["usage", "trend"]) => Ok(R::UsageTrend {
            span: span(q, now, trend_hours)?,
            provider: optional(q, "provider"),
            model: optional(q, "model"),
            tool: optional(q, "tool"),
        }),
        (Get, ["usage", "summary"]) => week_range(q, now).map(R::UsageSummary),
        (Get, ["usage", "series"]) => Ok(R::UsageSeries {
            range: week_range(q, now)?,
            by: match q.get("by") {
                None => SeriesBy::Tool,
                Some(b) => SeriesBy::parse(b).ok_or(AdminError::InvalidBy)?,
            },
        }),
        (Get, ["stats"]) => Ok(R::Stats),
        (Get, ["logs"]) => logs::parse_logs(q).map(R::Logs),
        (Get, ["logs", id]) => Ok(R::Log { id: path_id(id)? }),
        (Get, ["logs", id, "cost-audit"]) => Ok(R::LogCostAudit { id: path_id(id)? }),
        (Get, ["quotas"]) if q.get("refresh") == Some("true") => Ok(R::QuotasRefresh),
        (Get, ["quotas"]) => Ok(R::Quotas),
        (Get, ["quotas", "refresh"]) => Ok(R::QuotasRefresh),
        (Get, ["quotas", "probes"]) => Ok(R::QuotaProbes),
        (Get, ["quotas", "history"]) => Ok(R::QuotaHistory {
            span: span(q, now, history_hours)?,
            provider: optional(q, "provider"),
            account: optional(q, "account"),
        }),
        (Get, ["providers"]) => Ok(R::Providers),
        (Get, ["pricing"]) => Ok(R::Pricing {
            model: optional(q, "model"),
            provider: optional(q, "provider"),
        }),
        (Get, ["config"]) => Ok(R::Config),
        (Get, ["api-keys"]) => Ok(R::ApiKeys),
        (Post, ["api-keys"]) => keys::parse_create(body).map(R::ApiKeyCreate),
        (Patch, ["api-keys", id]) => {
            let id = path_id(id)?;
            Ok(R::ApiKeyPatch {
                id,
                patch: keys::parse_patch(body)?,
            })
        }
        (Delete, ["api-keys", id]) => Ok(R::ApiKeyRevoke { id: path_id(id)? }),
        (Get, ["api-keys", id, "usage"]) => Ok(R::ApiKeyUsage { id: path_id(id)? }),
        (Get, ["breakers"]) => Ok(R::Breakers),
        (Get, ["breakers", id]) => Ok(R::Breaker {
            provider_id: provider_id(id)?,
        }),
        (Post, ["breakers", id, "reset"]) => Ok(R::BreakerReset {
            provider_id: provider_id(id)?,
        }),
        _ => Err(AdminError::NotFound),
    }
}

/// `:id`: ASCII digits only, within `i64` (a larger id cannot exist, so it is 404 too).
fn path_id(seg: &str) -> Result<i64, AdminError> {
    if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AdminError::NotFound);
    }
    seg.parse().map_err(|_| AdminError::NotFound)
}

fn provider_id(seg: &str) -> Result<String, AdminError> {
    decode_path_segment(seg)
        .filter(|id| !id.is_empty())
        .ok_or(AdminError::NotFound)
}

fn optional(q: &Query, param: &str) -> Option<String> {
    q.get(param).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn required_range(q: &Query) -> Result<DateRange, AdminError> {
    let (Some(from), Some(to)) = (q.get("from"), q.get("to")) else {
        return Err(AdminError::MissingFromOrTo);
    };
    DateRange::new(from, to)
}

/// `Ok(None)` when neither `from` nor `to` is given.
fn optional_range(q: &Query) -> Result<Option<DateRange>, AdminError> {
    match (q.get("from"), q.get("to")) {
        (None, None) => Ok(None),
        (Some(from), Some(to)) => DateRange::new(from, to).map(Some),
        _ => Err(AdminError::HalfRange),
    }
}

fn day(q: &Query, now: UnixMillis) -> Result<String, AdminError> {
    match q.get("day") {
        None => Ok(now.to_day()),
        Some(d) if parse_day(d).is_some() => Ok(d.to_owned()),
        Some(_) => Err(AdminError::InvalidDate { param: "day" }),
    }
}

fn day_or_range(q: &Query, now: UnixMillis) -> Result<DayOrRange, AdminError> {
    match optional_range(q)? {
        Some(range) => Ok(DayOrRange::Range(range)),
        None => day(q, now).map(DayOrRange::Day),
    }
}

fn summary_range(q: &Query, now: UnixMillis) -> Result<DateRange, AdminError> {
    let week_ago = UnixMillis(now.0.saturating_sub(7 * 86_400_000)).to_day();
    let today = now.to_day();
    DateRange::new(
        q.get("from").unwrap_or(&week_ago),
        q.get("to").unwrap_or(&today),
    )
}

/// `from`+`to`, or without both the last 7 UTC days including today (the dashboard's default
/// range, `dashboard.md` §3).
fn week_range(q: &Query, now: UnixMillis) -> Result<DateRange, AdminError> {
    match optional_range(q)? {
        Some(range) => Ok(range),
        None => DateRange::new(
            &UnixMillis(now.0.saturating_sub(6 * 86_400_000)).to_day(),
            &now.to_day(),
        ),
    }
}

/// The span of a trend or history request: `from`+`to` if either is given, else `hours`
/// (validated by `hours_ms`) ending at `now`.
fn span(
    q: &Query,
    now: UnixMillis,
    hours_ms: fn(Option<&str>) -> Result<u64, AdminError>,
) -> Result<Span, AdminError> {
    match optional_range(q)? {
        Some(range) => Ok(Span::of_range(&range)),
        None => Ok(Span::ending_at(now, hours_ms(q.get("hours"))?)),
    }
}

fn trend_hours(raw: Option<&str>) -> Result<u64, AdminError> {
    let Some(raw) = raw else {
        return Ok(24 * 3_600_000);
    };
    let hours: f64 = raw.trim().parse().map_err(|_| AdminError::InvalidHours)?;
    if !hours.is_finite() || hours <= 0.0 || hours > MAX_HOURS {
        return Err(AdminError::InvalidHours);
    }
    // Bounded above by 8 784 h, so the product fits comfortably in u64.
    Ok((hours * 3_600_000.0).round() as u64)
}

fn history_hours(raw: Option<&str>) -> Result<u64, AdminError> {
    let Some(raw) = raw else {
        return Ok(24 * 3_600_000);
    };
    let hours: u64 = raw.trim().parse().map_err(|_| AdminError::InvalidHours)?;
    if hours == 0 || hours as f64 > MAX_HOURS {
        return Err(AdminError::InvalidHours);
    }
    Ok(hours * 3_600_000)
}

#[cfg(test)]
mod tests;
