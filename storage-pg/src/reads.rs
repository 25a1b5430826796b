//! [`Queries`] for [`PgStore`]: the daemon's reads run on PostgreSQL through the same trait
//! as on SQLite, each answering what the matching [`PgStore`] method answers, its error as
//! [`StorageError::Server`].

use agent_cli_proxy_core::admin::Span;
use agent_cli_proxy_storage::StorageError;
use agent_cli_proxy_storage::queries::{
    AccountSummary, ApiKeyGrant, ApiKeyInfo, ApiKeyUsage, CorrelationCandidate, CostAuditRow,
    DailyAccountUsage, DailyUsage, LocalUsage, LogFilter, LogRow, ModelUsage, ProviderUsage,
    Queries, QuotaHistory, QuotaSnapshot, SeriesDimension, SeriesKey, Stats, Trend, TrendFilter,
    UsageDay, UsageSummary,
};

use crate::{PgStore, control};

impl Queries for PgStore {
    fn usage_today(&mut self, today: &str) -> Result<UsageDay, StorageError> {
        Ok(PgStore::usage_today(self, today)?)
    }
    fn usage_range(&mut self, from: &str, to: &str) -> Result<Vec<UsageDay>, StorageError> {
        Ok(PgStore::usage_range(self, from, to)?)
    }
    fn usage_models_day(&mut self, day: &str) -> Result<Vec<DailyUsage>, StorageError> {
        Ok(PgStore::usage_models_day(self, day)?)
    }
    fn usage_models_range(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<ModelUsage>, StorageError> {
        Ok(PgStore::usage_models_range(self, from, to)?)
    }
    fn usage_providers(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<ProviderUsage>, StorageError> {
        Ok(PgStore::usage_providers(self, from, to)?)
    }
    fn usage_accounts_day(&mut self, day: &str) -> Result<Vec<DailyAccountUsage>, StorageError> {
        Ok(PgStore::usage_accounts_day(self, day)?)
    }
    fn usage_accounts_range(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyAccountUsage>, StorageError> {
        Ok(PgStore::usage_accounts_range(self, from, to)?)
    }
    fn usage_accounts_summary(
        &mut self,
        from: &str,
        to: &str,
    ) -> Result<Vec<AccountSummary>, StorageError> {
        Ok(PgStore::usage_accounts_summary(self, from, to)?)
    }
    fn usage_trend(&mut self, span: &Span, filter: &TrendFilter) -> Result<Trend, StorageError> {
        Ok(PgStore::usage_trend(self, span, filter)?)
    }
    fn usage_summary(&mut self, from: &str, to: &str) -> Result<UsageSummary, StorageError> {
        Ok(PgStore::usage_summary(self, from, to)?)
    }
    fn usage_series(
        &mut self,
        from: &str,
        to: &str,
        by: SeriesDimension,
    ) -> Result<Vec<SeriesKey>, StorageError> {
        Ok(PgStore::usage_series(self, from, to, by)?)
    }
    fn stats(&mut self) -> Result<Stats, StorageError> {
        Ok(PgStore::stats(self)?)
    }
    fn logs(
        &mut self,
        f: &LogFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<LogRow>, StorageError> {
        Ok(PgStore::logs(self, f, limit, offset)?)
    }
    fn log_by_id(&mut self, id: i64) -> Result<Option<LogRow>, StorageError> {
        Ok(PgStore::log_by_id(self, id)?)
    }
    fn cost_audit(&mut self, log_id: i64) -> Result<Option<Vec<CostAuditRow>>, StorageError> {
        Ok(PgStore::cost_audit(self, log_id)?)
    }
    fn quotas_latest(&mut self, since: &str) -> Result<Vec<QuotaSnapshot>, StorageError> {
        Ok(PgStore::quotas_latest(self, since)?)
    }
    fn quota_history(
        &mut self,
        span: &Span,
        provider: Option<&str>,
        account: Option<&str>,
    ) -> Result<QuotaHistory, StorageError> {
        Ok(PgStore::quota_history(self, span, provider, account)?)
    }
    fn api_keys(&mut self) -> Result<Vec<ApiKeyInfo>, StorageError> {
        Ok(PgStore::api_keys(self)?)
    }
    fn api_key_usage(&mut self, id: i64) -> Result<Option<ApiKeyUsage>, StorageError> {
        Ok(PgStore::api_key_usage(self, id)?)
    }
    fn verify_api_key_hash(&mut self, hash: &str) -> Result<Option<ApiKeyGrant>, StorageError> {
        Ok(control::verify_api_key_hash(self.client(), hash)?)
    }
    fn local_usage(
        &mut self,
        account: &str,
        provider: &str,
        since: &str,
    ) -> Result<LocalUsage, StorageError> {
        Ok(PgStore::local_usage(self, account, provider, since)?)
    }
    fn correlation_candidates(
        &mut self,
        since: &str,
        limit: u32,
    ) -> Result<Vec<CorrelationCandidate>, StorageError> {
        Ok(PgStore::correlation_candidates(self, since, limit)?)
    }
    fn ping(&mut self) -> Result<(), StorageError> {
        Ok(PgStore::ping(self)?)
    }
}
