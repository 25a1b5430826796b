//! `daily_usage` changes of one transaction, summed per bucket and written at its end in
//! bucket order. Two replicas whose batches touch the same buckets then lock them in the
//! same order and cannot deadlock; and a batch writes each bucket once, not once per call.
//! The stored values are those of the SQLite backend's per-call upserts: request +1 and the
//! five token sums per call, the exact cost summed, `cost_usd` recomputed from the integer
//! sum with the same IEEE division.

use postgres::Transaction;

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::daily::DailyTotals;

use crate::error::PgError;
use crate::usd;

/// The bucket of a row: day (first 10 characters of `started_at`), provider, model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DayKey {
    pub(crate) started_at: String,
    pub(crate) provider: String,
    pub(crate) model: String,
}

/// Pending `daily_usage` changes (the storage crate's sums, keyed by [`DayKey`]).
#[derive(Debug, Default)]
pub(crate) struct DailyDeltas(DailyTotals);

impl DailyDeltas {
    /// One more call in `key`'s bucket.
    pub(crate) fn add(&mut self, key: &DayKey, t: &TokenColumns, cost_nanousd: i64) {
        self.0
            .add(&key.started_at, &key.provider, &key.model, t, cost_nanousd);
    }

    /// Takes over `other`'s changes (a record applied under its own savepoint).
    pub(crate) fn merge(&mut self, other: DailyDeltas) {
        self.0.merge(other.0);
    }

    /// Writes every bucket, in key order.
    pub(crate) fn apply(self, tx: &mut Transaction<'_>) -> Result<(), PgError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let stmt = tx.prepare(
            "INSERT INTO daily_usage (day, provider, model, request_count, prompt_tokens,
               completion_tokens, cache_creation_tokens, cache_read_tokens, total_tokens,
               cost_usd, cost_nanousd)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (day, provider, model) DO UPDATE SET
               request_count = COALESCE(daily_usage.request_count, 0) + EXCLUDED.request_count,
               prompt_tokens = COALESCE(daily_usage.prompt_tokens, 0) + EXCLUDED.prompt_tokens,
               completion_tokens = COALESCE(daily_usage.completion_tokens, 0)
                 + EXCLUDED.completion_tokens,
               cache_creation_tokens = COALESCE(daily_usage.cache_creation_tokens, 0)
                 + EXCLUDED.cache_creation_tokens,
               cache_read_tokens = COALESCE(daily_usage.cache_read_tokens, 0)
                 + EXCLUDED.cache_read_tokens,
               total_tokens = COALESCE(daily_usage.total_tokens, 0) + EXCLUDED.total_tokens,
               cost_nanousd = daily_usage.cost_nanousd + EXCLUDED.cost_nanousd,
               cost_usd = (daily_usage.cost_nanousd + EXCLUDED.cost_nanousd)::float8
                 / 1000000000::float8",
        )?;
        for ((day, provider, model), s) in self.0.buckets() {
            tx.execute(
                &stmt,
                &[
                    &day,
                    &provider,
                    &model,
                    &s.requests,
                    &s.prompt,
                    &s.completion,
                    &s.cache_creation,
                    &s.cache_read,
                    &s.total,
                    &usd(s.cost_nanousd),
                    &s.cost_nanousd,
                ],
            )?;
        }
        Ok(())
    }
}
