//! Quota snapshot queries (`control.md` §6.4).

use std::collections::BTreeMap;

use rusqlite::{Row, params};
use serde::Serialize;

use agent_cli_proxy_core::admin::{HistoryBucket, Span, history_buckets};

use super::{bounded, iso_bound};
use crate::apply::sql_int;
use crate::error::StorageError;
use crate::store::Store;

/// One `quota_snapshots` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct QuotaSnapshot {
    pub id: i64,
    pub timestamp: String,
    pub provider: String,
    pub account: String,
    pub quota_type: String,
    pub model: Option<String>,
    pub used_pct: Option<f64>,
    pub remaining: Option<f64>,
    pub remaining_raw: Option<String>,
    pub resets_at: Option<String>,
    pub raw_json: Option<String>,
}

/// A snapshot inside a history bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct QuotaHistoryEntry {
    pub provider: String,
    pub account: String,
    pub quota_type: String,
    pub model: Option<String>,
    pub used_pct: Option<f64>,
    pub remaining: Option<f64>,
    pub resets_at: Option<String>,
}

/// `{"buckets":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaHistory {
    /// Every bucket of the span, empty ones included; inside a bucket the latest snapshot
    /// per (provider, account, quota_type, model), in that key order.
    pub buckets: Vec<HistoryBucket<QuotaHistoryEntry>>,
}

type Key = (String, String, String, Option<String>);

impl QuotaHistory {
    /// The history of `span` from `(bucket start, snapshot)` pairs in time order: per
    /// bucket, the latest snapshot of each (provider, account, quota_type, model). Both
    /// backends bucket in SQL and group here, so their answers cannot drift.
    pub fn from_snapshots(
        span: &Span,
        rows: impl IntoIterator<Item = (i64, QuotaSnapshot)>,
    ) -> QuotaHistory {
        let mut per_bucket: BTreeMap<i64, BTreeMap<Key, QuotaHistoryEntry>> = BTreeMap::new();
        for (bucket, s) in rows {
            let key = (
                s.provider.clone(),
                s.account.clone(),
                s.quota_type.clone(),
                s.model.clone(),
            );
            // Rows come oldest first, so the last insert per key is the latest snapshot.
            per_bucket.entry(bucket).or_default().insert(
                key,
                QuotaHistoryEntry {
                    provider: s.provider,
                    account: s.account,
                    quota_type: s.quota_type,
                    model: s.model,
                    used_pct: s.used_pct,
                    remaining: s.remaining,
                    resets_at: s.resets_at,
                },
            );
        }
        let slotted: Vec<(i64, QuotaHistoryEntry)> = per_bucket
            .into_iter()
            .flat_map(|(bucket, latest)| latest.into_values().map(move |e| (bucket, e)))
            .collect();
        QuotaHistory {
            buckets: history_buckets(span, &slotted),
        }
    }
}

impl Store {
    /// `/admin/quotas`: for each (provider, account, quota_type, model) the latest row with
    /// `timestamp >= since`, ordered provider, account, quota_type (then model).
    pub fn quotas_latest(&self, since: &str) -> Result<Vec<QuotaSnapshot>, StorageError> {
        let mut stmt = self.connection().prepare_cached(
            "SELECT id, timestamp, provider, account, quota_type, model, used_pct, remaining,
               remaining_raw, resets_at, raw_json
             FROM quota_snapshots WHERE timestamp >= ?1 ORDER BY timestamp, id",
        )?;
        let mut latest: BTreeMap<Key, QuotaSnapshot> = BTreeMap::new();
        for row in stmt.query_map([since], snapshot)? {
            let s = row?;
            let key = (
                s.provider.clone(),
                s.account.clone(),
                s.quota_type.clone(),
                s.model.clone(),
            );
            latest.insert(key, s);
        }
        Ok(latest.into_values().collect())
    }

    /// `/admin/quotas/history`: every bucket of `span`, each holding the latest snapshot per
    /// key inside it; optional exact `provider` and `account` filters.
    pub fn quota_history(
        &self,
        span: &Span,
        provider: Option<&str>,
        account: Option<&str>,
    ) -> Result<QuotaHistory, StorageError> {
        let Some(span) = bounded(span) else {
            return Ok(QuotaHistory {
                buckets: Vec::new(),
            });
        };
        let width = span.width_secs;
        let mut stmt = self.connection().prepare_cached(
            "SELECT id, timestamp, provider, account, quota_type, model, used_pct, remaining,
               remaining_raw, resets_at, raw_json,
               CAST(strftime('%s', timestamp) AS INTEGER) / ?3 * ?3
             FROM quota_snapshots
             WHERE timestamp >= ?1 AND timestamp < ?2
               AND (?4 IS NULL OR provider = ?4) AND (?5 IS NULL OR account = ?5)
             ORDER BY timestamp, id",
        )?;
        let rows = stmt.query_map(
            params![
                iso_bound(span.first_bucket_secs()),
                iso_bound(span.last_bucket_secs().saturating_add(width)),
                sql_int(width),
                provider,
                account
            ],
            |r| Ok((snapshot(r)?, r.get::<_, Option<i64>>(11)?)),
        )?;
        let mut slotted = Vec::new();
        for row in rows {
            // A timestamp SQLite cannot read has no bucket and is left out.
            if let (s, Some(bucket)) = row? {
                slotted.push((bucket, s));
            }
        }
        Ok(QuotaHistory::from_snapshots(&span, slotted))
    }
}

fn snapshot(r: &Row<'_>) -> rusqlite::Result<QuotaSnapshot> {
    Ok(QuotaSnapshot {
        id: r.get(0)?,
        timestamp: r.get(1)?,
        provider: r.get(2)?,
        account: r.get(3)?,
        quota_type: r.get(4)?,
        model: r.get(5)?,
        used_pct: r.get(6)?,
        remaining: r.get(7)?,
        remaining_raw: r.get(8)?,
        resets_at: r.get(9)?,
        raw_json: r.get(10)?,
    })
}
