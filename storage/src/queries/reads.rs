//! [`Queries`]: every read the daemon makes, as one object-safe trait, so the admin answers,
//! `/metrics`, `/ready`, the correlator and quota reports run unchanged on either backend
//! (SQLite here, PostgreSQL in `agent-cli-proxy-storage-pg`).

use agent_cli_proxy_core::admin::Span;

use super::{
    AccountSummary, ApiKeyGrant, ApiKeyInfo, ApiKeyUsage, CorrelationCandidate, CostAuditRow,
    DailyAccountUsage, DailyUsage, LocalUsage, LogFilter, LogRow, ModelUsage, ProviderUsage,
    QuotaHistory, QuotaSnapshot, SeriesDimension, SeriesKey, Stats, Trend, TrendFilter, UsageDay,
    UsageSummary,
};
use crate::error::StorageError;
use crate::store::Store;

/// The read queries of either backend, answering the same values for the same rows.
#[allow(missing_docs)] // Each method is documented on the SQLite `Store` method it names.
pub trait Queries {
    fn usage_today(&mut self, today: &str) -> Result<UsageDay, StorageError>;
    fn usage_range(&mut self, from: &str, to: &str) -> Result<Vec<UsageDay>, StorageError>;
    fn usage_models_day(&mut self, day: &str) -> Result<Vec<DailyUsage>, StorageError>;
    fn usage_models_range(&mut self, from: &str, to: &str)
    -> Result<Vec<ModelUsage>, StorageError>;
    fn usage_providers(&mut self, from: &str, to: &str)
    -> Result<Vec<ProviderUsage>, StorageError>;
    fn usage_accounts_day(&mut self, day: &str) -> Result<Vec<DailyAccountUsage>, StorageError>;
    fn usage_accounts_range(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyAccountUsage>, StorageError>;
    fn usage_accounts_summary(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<AccountSummary>, StorageError>;
    fn usage_trend(&mut self, span: &Span, filter: &TrendFilter) -> Result<Trend, StorageError>;
    fn usage_summary(&mut self, from: &str, to: &str) -> Result<UsageSummary, StorageError>;
    fn usage_series(
        &mut self,
        from: &str,
        to: &str,
        by: SeriesDimension,
    ) -> Result<Vec<SeriesKey>, StorageError>;
    fn stats(&mut self) -> Result<Stats, StorageError>;
    fn logs(&mut self, f: &LogFilter, limit: u32, offset: u32)
    -> Result<Vec<LogRow>, StorageError>;
    fn log_by_id(&mut self, id: i64) -> Result<Option<LogRow>, StorageError>;
    fn cost_audit(&mut self, log_id: i64) -> Result<Option<Vec<CostAuditRow>>, StorageError>;
    fn quotas_latest(&mut self, since: &str) -> Result<Vec<QuotaSnapshot>, StorageError>;
    fn quota_history(
        &mut self,
        span: &Span,
        provider: Option<&str>,
        account: Option<&str>,
    ) -> Result<QuotaHistory, StorageError>;
    fn api_keys(&mut self) -> Result<Vec<ApiKeyInfo>, StorageError>;
    fn api_key_usage(&mut self, id: i64) -> Result<Option<ApiKeyUsage>, StorageError>;
    fn verify_api_key_hash(&mut self, hash: &str) -> Result<Option<ApiKeyGrant>, StorageError>;
    fn local_usage(
        &mut self,
        account: &str,
        provider: &str,
        since: &str,
    ) -> Result<LocalUsage, StorageError>;
    fn correlation_candidates(
        &mut self,
        since: &str,
        limit: u32,
    ) -> Result<Vec<CorrelationCandidate>, StorageError>;
    /// The database check of `/ready`.
    fn ping(&mut self) -> Result<(), StorageError>;
}

impl Queries for Store {
    fn usage_today(&mut self, today: &str) -> Result<UsageDay, StorageError> {
        Store::usage_today(self, today)
    }
    fn usage_range(&mut self, from: &str, to: &str) -> Result<Vec<UsageDay>, StorageError> {
        Store::usage_range(self, from, to)
    }
    fn usage_models_day(&mut self, day: &str) -> Result<Vec<DailyUsage>, StorageError> {
        Store::usage_models_day(self, day)
    }
    fn usage_models_range(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<ModelUsage>, StorageError> {
        Store::usage_models_range(self, from, to)
    }
    fn usage_providers(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<ProviderUsage>, StorageError> {
        Store::usage_providers(self, from, to)
    }
    fn usage_accounts_day(&mut self, day: &str) -> Result<Vec<DailyAccountUsage>, StorageError> {
        Store::usage_accounts_day(self, day)
    }
    fn usage_accounts_range(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyAccountUsage>, StorageError> {
        Store::usage_accounts_range(self, from, to)
    }
    fn usage_accounts_summary(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<AccountSummary>, StorageError> {
        Store::usage_accounts_summary(self, from, to)
    }
    fn usage_trend(&mut self, span: &Span, filter: &TrendFilter) -> Result<Trend, StorageError> {
        Store::usage_trend(self, span, filter)
    }
    fn usage_summary(&mut self, from: &str, to: &str) -> Result<UsageSummary, StorageError> {
        Store::usage_summary(self, from, to)
    }
    fn usage_series(
        &mut self,
        from: &str,
        to: &str,
        by: SeriesDimension,
    ) -> Result<Vec<SeriesKey>, StorageError> {
        Store::usage_series(self, from, to, by)
    }
    fn stats(&mut self) -> Result<Stats, StorageError> {
        Store::stats(self)
    }
    fn logs(
        &mut self,
        f: &LogFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<LogRow>, StorageError> {
        Store::logs(self, f, limit, offset)
    }
    fn log_by_id(&mut self, id: i64) -> Result<Option<LogRow>, StorageError> {
        Store::log_by_id(self, id)
    }
    fn cost_audit(&mut self, log_id: i64) -> Result<Option<Vec<CostAuditRow>>, StorageError> {
        Store::cost_audit(self, log_id)
    }
    fn quotas_latest(&mut self, since: &str) -> Result<Vec<QuotaSnapshot>, StorageError> {
        Store::quotas_latest(self, since)
    }
    fn quota_history(
        &mut self,
        span: &Span,
        provider: Option<&str>,
        account: Option<&str>,
    ) -> Result<QuotaHistory, StorageError> {
        Store::quota_history(self, span, provider, account)
    }
    fn api_keys(&mut self) -> Result<Vec<ApiKeyInfo>, StorageError> {
        Store::api_keys(self)
    }
    fn api_key_usage(&mut self, id: i64) -> Result<Option<ApiKeyUsage>, StorageError> {
        Store::api_key_usage(self, id)
    }
    fn verify_api_key_hash(&mut self, hash: &str) -> Result<Option<ApiKeyGrant>, StorageError> {
        Store::verify_api_key_hash(self, hash)
    }
    fn local_usage(
        &mut self,
        account: &str,
        provider: &str,
        since: &str,
    ) -> Result<LocalUsage, StorageError> {
        Store::local_usage(self, account, provider, since)
    }
    fn correlation_candidates(
        &mut self,
        since: &str,
        limit: u32,
    ) -> Result<Vec<CorrelationCandidate>, StorageError> {
        Store::correlation_candidates(self, since, limit)
    }
    fn ping(&mut self) -> Result<(), StorageError> {
        Store::ping(self)
    }
}
