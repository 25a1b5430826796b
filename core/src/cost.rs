//! Exact integer cost and cost status (`accounting.md` §5), and the audit rule of §6.1.
//!
//! One expression prices every convention: after normalization (§3) an OpenAI record is an
//! Anthropic record with no cache writes. The sum is evaluated in quarter-picodollars with
//! checked `u128` arithmetic so the default 5-minute write price `Pin × 5/4` stays exact,
//! then rounded half up to nanodollars. Floating point appears only in [`nanousd_to_usd`].
//!
//! Where the spec is silent: the guard reasons are `overflow` and `zero`; a row whose
//! `actual_model` is whitespace counts as having none; on a miss the priced model reported
//! for the audit is the actual model when present, else the requested one.

use crate::pricing::{MatchSource, Price, Pricer};
use crate::usage::UsageRecord;

/// Log event of a guarded cost (fields `provider`, `model`, `reason`).
pub const GUARD_EVENT: &str = "cost.guard";

/// What to price: the row's usage, models and providers.
#[derive(Debug, Clone, Copy)]
pub struct CostInput<'a> {
    /// The usage known when the row ended.
    pub usage: &'a UsageRecord,
    /// The requested model.
    pub model: &'a str,
    /// The model the upstream reported, if any.
    pub actual_model: Option<&'a str>,
    /// The row's provider.
    pub provider: &'a str,
    /// The provider that actually served it, if different.
    pub actual_provider: Option<&'a str>,
}

/// `request_logs.cost_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CostStatus {
    /// Not costed yet (pending rows only).
    Unresolved,
    /// Costed, `cost_nanousd > 0`.
    Ok,
    /// No price, or guarded; the backfill retries it.
    Pending,
    /// The model is unknown to the proxy; never priced.
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
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unresolved" => Some(CostStatus::Unresolved),
            "ok" => Some(CostStatus::Ok),
            "pending" => Some(CostStatus::Pending),
            "unsupported" => Some(CostStatus::Unsupported),
            _ => None,
        }
    }
}

/// `cost_audit.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditSource {
    /// Priced from the table (or missed it).
    Pricing,
    /// The model name is empty, `unknown` or `undefined`.
    UnsupportedModel,
    /// Overflow or a zero result.
    Guard,
}

impl AuditSource {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditSource::Pricing => "pricing",
            AuditSource::UnsupportedModel => "unsupported_model",
            AuditSource::Guard => "guard",
        }
    }
}

/// The result of costing one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Costed {
    /// Cost in nanodollars; `> 0` exactly when `status` is [`CostStatus::Ok`].
    pub cost_nanousd: u64,
    /// The row's new status (never [`CostStatus::Unresolved`]).
    pub status: CostStatus,
    /// The audit `source`.
    pub source: AuditSource,
    /// The model that was priced (the audit's `model`).
    pub priced_model: String,
    /// `overflow` or `zero` when `source` is [`AuditSource::Guard`] (for `cost.guard`).
    pub guard_reason: Option<&'static str>,
    /// The lookup step that found the price, if one did.
    pub matched: Option<MatchSource>,
}

/// Costs a row by the status table of §5.4.
pub fn cost(pricer: &Pricer, input: &CostInput<'_>) -> Costed {
    let actual = input.actual_model.filter(|m| !m.trim().is_empty());
    if actual.is_none() && is_unsupported_model(input.model) {
        return Costed {
            cost_nanousd: 0,
            status: CostStatus::Unsupported,
            source: AuditSource::UnsupportedModel,
            priced_model: input.model.to_string(),
            guard_reason: None,
            matched: None,
        };
    }
    let Some(found) = pricer.lookup_row(actual, input.model, input.provider, input.actual_provider)
    else {
        return Costed {
            cost_nanousd: 0,
            status: CostStatus::Pending,
            source: AuditSource::Pricing,
            priced_model: actual.unwrap_or(input.model).to_string(),
            guard_reason: None,
            matched: None,
        };
    };
    let priced = |cost_nanousd, status, source, guard_reason| Costed {
        cost_nanousd,
        status,
        source,
        priced_model: found.model.to_string(),
        guard_reason,
        matched: Some(found.source),
    };
    match cost_nanousd(input.usage, found.price) {
        None => priced(0, CostStatus::Pending, AuditSource::Guard, Some("overflow")),
        Some(0) => priced(0, CostStatus::Pending, AuditSource::Guard, Some("zero")),
        Some(n) => priced(n, CostStatus::Ok, AuditSource::Pricing, None),
    }
}

/// The cost of `usage` at `price` in nanodollars, `None` on overflow:
/// `floor((q + 2000) / 4000)` with `q` from [`cost_quarter_pusd`].
pub fn cost_nanousd(usage: &UsageRecord, price: &Price) -> Option<u64> {
    let q = cost_quarter_pusd(usage, price)?;
    u64::try_from(q.checked_add(2000)? / 4000).ok()
}

/// The exact cost in quarter-picodollars (§5.3), `None` on `u128` overflow. The rate set is
/// the tier chosen by `T = input_uncached + cache_read + cache_write_5m + cache_write_1h`.
pub fn cost_quarter_pusd(usage: &UsageRecord, price: &Price) -> Option<u128> {
    let prompt = [
        usage.input_uncached,
        usage.cache_read,
        usage.cache_write_5m,
        usage.cache_write_1h,
    ]
    .iter()
    .map(|&n| u128::from(n))
    .sum::<u128>();
    let rates = price.rates_for(prompt);
    let term = |tokens: u64, factor: u128, rate: u64| {
        u128::from(tokens)
            .checked_mul(u128::from(rate))?
            .checked_mul(factor)
    };
    let cache_write_5m = match rates.cache_write {
        Some(pcw) => term(usage.cache_write_5m, 4, pcw)?,
        None => term(usage.cache_write_5m, 5, rates.input)?,
    };
    [
        term(usage.input_uncached, 4, rates.input)?,
        term(usage.output, 4, rates.output)?,
        term(usage.cache_read, 4, rates.cache_read.unwrap_or(rates.input))?,
        cache_write_5m,
        term(usage.cache_write_1h, 8, rates.input)?,
    ]
    .into_iter()
    .try_fold(0u128, u128::checked_add)
}

/// §6.1: write a `cost_audit` row when there is none yet, when the latest audit's cost
/// differs, or when the status changes.
pub fn needs_audit(prev_status: CostStatus, prev_audit_cost: Option<u64>, new: &Costed) -> bool {
    prev_audit_cost != Some(new.cost_nanousd) || prev_status != new.status
}

/// `cost_usd` for display: nanodollars / 10^9, the nearest `f64`.
pub fn nanousd_to_usd(nanousd: u64) -> f64 {
    nanousd as f64 / 1e9
}

/// §5.4 first row: the requested model, trimmed, is empty, `unknown` or `undefined`.
fn is_unsupported_model(model: &str) -> bool {
    let model = model.trim();
    model.is_empty()
        || model.eq_ignore_ascii_case("unknown")
        || model.eq_ignore_ascii_case("undefined")
}

#[cfg(test)]
mod tests;
