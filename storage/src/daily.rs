//! `daily_usage` additions summed per bucket (day, provider, model), for a backend to write
//! once per bucket at the end of a transaction instead of one upsert per call. The sums are
//! those the per-call upserts would add: request +1 and the five token sums per call, the
//! exact cost summed. Buckets iterate in key order, so two writers touching the same buckets
//! lock them in the same order.

use std::collections::BTreeMap;

use agent_cli_proxy_core::usage::TokenColumns;

use crate::apply::sql_int;

/// A bucket's key: the day (the first ten characters of `started_at`, as SQL's
/// `substr(started_at, 1, 10)` takes it), the provider and the model.
pub type DailyKey = (String, String, String);

/// What a bucket gains.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DailySums {
    /// Calls.
    pub requests: i64,
    /// `prompt_tokens`.
    pub prompt: i64,
    /// `completion_tokens`.
    pub completion: i64,
    /// `cache_creation_tokens`.
    pub cache_creation: i64,
    /// `cache_read_tokens`.
    pub cache_read: i64,
    /// `total_tokens`.
    pub total: i64,
    /// `cost_nanousd`.
    pub cost_nanousd: i64,
}

impl DailySums {
    /// What one call adds.
    pub fn of_one(t: &TokenColumns, cost_nanousd: i64) -> DailySums {
        let mut sums = DailySums::default();
        sums.add(t, cost_nanousd);
        sums
    }

    fn add(&mut self, t: &TokenColumns, cost_nanousd: i64) {
        self.requests += 1;
        self.prompt = self.prompt.saturating_add(sql_int(t.prompt_tokens));
        self.completion = self.completion.saturating_add(sql_int(t.completion_tokens));
        self.cache_creation = self
            .cache_creation
            .saturating_add(sql_int(t.cache_creation_tokens));
        self.cache_read = self.cache_read.saturating_add(sql_int(t.cache_read_tokens));
        self.total = self.total.saturating_add(sql_int(t.total_tokens));
        self.cost_nanousd = self.cost_nanousd.saturating_add(cost_nanousd);
    }

    fn merge(&mut self, o: &DailySums) {
        self.requests += o.requests;
        self.prompt = self.prompt.saturating_add(o.prompt);
        self.completion = self.completion.saturating_add(o.completion);
        self.cache_creation = self.cache_creation.saturating_add(o.cache_creation);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.total = self.total.saturating_add(o.total);
        self.cost_nanousd = self.cost_nanousd.saturating_add(o.cost_nanousd);
    }
}

/// Pending `daily_usage` additions.
#[derive(Debug, Default)]
pub struct DailyTotals(BTreeMap<DailyKey, DailySums>);

impl DailyTotals {
    /// One more call in its bucket.
    pub fn add(
        &mut self,
        started_at: &str,
        provider: &str,
        model: &str,
        t: &TokenColumns,
        cost: i64,
    ) {
        let day: String = started_at.chars().take(10).collect();
        self.0
            .entry((day, provider.to_owned(), model.to_owned()))
            .or_default()
            .add(t, cost);
    }

    /// Takes over `other`'s additions (a record applied under its own savepoint).
    pub fn merge(&mut self, other: DailyTotals) {
        for (key, o) in other.0 {
            self.0.entry(key).or_default().merge(&o);
        }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every bucket with its sums, in key order.
    pub fn buckets(&self) -> impl Iterator<Item = (&DailyKey, &DailySums)> {
        self.0.iter()
    }
}
