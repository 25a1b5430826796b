//! Managed key queries (`control.md` §6.7, `datapath.md` §4.3).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::apply::{hash_key, parse_list, usd};
use crate::error::StorageError;
use crate::store::Store;

/// One entry of `/admin/api-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    /// Key id.
    pub id: i64,
    /// First 8 characters.
    pub key_prefix: String,
    /// Name.
    pub name: String,
    /// `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
    /// Revocation time.
    pub revoked_at: Option<String>,
    /// Last use.
    pub last_used_at: Option<String>,
    /// Rows attributed to the key.
    pub request_count: i64,
    /// Allowed accounts, `null` = unrestricted.
    pub allowed_accounts: Option<Vec<String>>,
    /// Allowed providers, `null` = unrestricted.
    pub allowed_providers: Option<Vec<String>>,
}

/// `/admin/api-keys/:id/usage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyUsage {
    /// Key id.
    pub id: i64,
    /// Rows.
    pub request_count: i64,
    /// Σ total tokens.
    pub total_tokens: i64,
    /// Σ cost in USD.
    pub total_cost_usd: f64,
    /// Σ exact cost.
    pub total_cost_nanousd: i64,
}

/// A valid managed key, as the data path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyGrant {
    /// Key id.
    pub id: i64,
    /// Allowed accounts (stored, not enforced).
    pub allowed_accounts: Option<Vec<String>>,
    /// Allowed providers.
    pub allowed_providers: Option<Vec<String>>,
}

impl Store {
    /// `/admin/api-keys`: ordered `created_at` descending, then `id` descending.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyInfo>, StorageError> {
        let mut stmt = self.connection().prepare_cached(
            "SELECT k.id, k.key_prefix, k.name, k.created_at, k.revoked_at, k.last_used_at,
               (SELECT COUNT(*) FROM request_logs r WHERE r.proxy_api_key_id = k.id),
               k.allowed_accounts, k.allowed_providers
             FROM api_keys k ORDER BY k.created_at DESC, k.id DESC",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ApiKeyInfo {
                    id: r.get(0)?,
                    key_prefix: r.get(1)?,
                    name: r.get(2)?,
                    created_at: r.get(3)?,
                    revoked_at: r.get(4)?,
                    last_used_at: r.get(5)?,
                    request_count: r.get(6)?,
                    allowed_accounts: parse_list(r.get::<_, Option<String>>(7)?.as_deref()),
                    allowed_providers: parse_list(r.get::<_, Option<String>>(8)?.as_deref()),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `/admin/api-keys/:id/usage`; `None` for an unknown key.
    pub fn api_key_usage(&self, id: i64) -> Result<Option<ApiKeyUsage>, StorageError> {
        let exists = self
            .connection()
            .prepare_cached("SELECT 1 FROM api_keys WHERE id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let usage = self
            .connection()
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_nanousd), 0)
                 FROM request_logs WHERE proxy_api_key_id = ?1",
            )?
            .query_row(params![id], |r| {
                let nano: i64 = r.get(2)?;
                Ok(ApiKeyUsage {
                    id,
                    request_count: r.get(0)?,
                    total_tokens: r.get(1)?,
                    total_cost_usd: usd(nano),
                    total_cost_nanousd: nano,
                })
            })?;
        Ok(Some(usage))
    }

    /// The live key whose `key_hash` is `hash` (`revoked_at IS NULL`).
    pub fn verify_api_key_hash(&self, hash: &str) -> Result<Option<ApiKeyGrant>, StorageError> {
        Ok(self
            .connection()
            .prepare_cached(
                "SELECT id, allowed_accounts, allowed_providers FROM api_keys
                 WHERE key_hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([hash], |r| {
                Ok(ApiKeyGrant {
                    id: r.get(0)?,
                    allowed_accounts: parse_list(r.get::<_, Option<String>>(1)?.as_deref()),
                    allowed_providers: parse_list(r.get::<_, Option<String>>(2)?.as_deref()),
                })
            })
            .optional()?)
    }

    /// [`Store::verify_api_key_hash`] of the SHA-256 of `credential`.
    pub fn verify_api_key(&self, credential: &str) -> Result<Option<ApiKeyGrant>, StorageError> {
        self.verify_api_key_hash(&hash_key(credential))
    }
}
