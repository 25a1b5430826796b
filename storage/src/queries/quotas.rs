//! Quota snapshot queries (`control.md` §6.4).

use std::collections::BTreeMap;

use rusqlite::{Row, params};
use serde::Serialize;

use super::{TimeSpan, iso_seconds};
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

/// One history bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaHistoryBucket {
    /// Bucket start, `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: String,
    /// Latest snapshot per (provider, account, quota_type, model) inside the bucket, in that
    /// key order.
    pub snapshots: Vec<QuotaHistoryEntry>,
}

/// `{"buckets":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaHistory {
    /// Every bucket of the span, empty ones included.
    pub buckets: Vec<QuotaHistoryBucket>,
}

type Key = (String, String, String, Option<String>);

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
        span: &TimeSpan,
        provider: Option<&str>,
        account: Option<&str>,
    ) -> Result<QuotaHistory, StorageError> {
        let starts = span.bucket_starts();
        let width = span.bucket_width_secs();
        let (Some(&first), Some(&last)) = (starts.first(), starts.last()) else {
            return Ok(QuotaHistory {
                buckets: Vec::new(),
            });
        };
        let mut stmt = self.connection().prepare_cached(
            "SELECT id, timestamp, provider, account, quota_type, model, used_pct, remaining,
               remaining_raw, resets_at, raw_json,
               CAST(strftime('%s', timestamp) AS INTEGER) / ?3 * ?3
             FROM quota_snapshots
             WHERE timestamp >= ?1 AND timestamp < ?2
               AND (?4 IS NULL OR provider = ?4) AND (?5 IS NULL OR account = ?5)
             ORDER BY timestamp, id",
        )?;
        let mut per_bucket: BTreeMap<i64, BTreeMap<Key, QuotaHistoryEntry>> = BTreeMap::new();
        let rows = stmt.query_map(
            params![
                iso_seconds(first),
                iso_seconds(last + width),
                width as i64,
                provider,
                account
            ],
            |r| Ok((snapshot(r)?, r.get::<_, Option<i64>>(11)?)),
        )?;
        for row in rows {
            let (s, bucket) = row?;
            let Some(bucket) = bucket else {
                continue;
            };
            let key = (
                s.provider.clone(),
                s.account.clone(),
                s.quota_type.clone(),
                s.model.clone(),
            );
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
        let buckets = starts
            .iter()
            .map(|&s| QuotaHistoryBucket {
                timestamp: iso_seconds(s),
                snapshots: per_bucket
                    .remove(&i64::try_from(s).unwrap_or(i64::MAX))
                    .map(|m| m.into_values().collect())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(QuotaHistory { buckets })
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
