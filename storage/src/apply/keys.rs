//! Managed proxy API keys (`control.md` §6.7): only the SHA-256 hex and the 8-character
//! prefix of a key are stored.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::error::StorageError;
use crate::op::{CreatedApiKey, ListUpdate, NewApiKey};

/// Lowercase hex SHA-256 of the key's UTF-8 bytes: the stored `key_hash`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Trims, drops empty strings and duplicates (first occurrence kept); `None` when nothing
/// is left, which is stored as NULL (unrestricted).
pub fn normalize_list(items: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let trimmed = item.trim();
        if !trimmed.is_empty() && !out.iter().any(|o| o == trimmed) {
            out.push(trimmed.to_owned());
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

/// Reads a stored list: unparseable, non-array or empty values read as `None`.
pub fn parse_list(stored: Option<&str>) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_str(stored?).ok()?;
    let items = value
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect::<Vec<_>>();
    normalize_list(&items)
}

fn list_text(list: Option<&Vec<String>>) -> Option<String> {
    let normalized = normalize_list(list?)?;
    serde_json::to_string(&normalized).ok()
}

pub(super) fn create(conn: &Connection, k: &NewApiKey) -> Result<CreatedApiKey, StorageError> {
    let key = k.key.expose();
    let prefix: String = key.chars().take(8).collect();
    let accounts = list_text(k.allowed_accounts.as_ref());
    let providers = list_text(k.allowed_providers.as_ref());
    let (id, created_at) = conn
        .prepare_cached(
            "INSERT INTO api_keys (key_hash, key_prefix, name, allowed_accounts,
               allowed_providers) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id, created_at",
        )?
        .query_row(
            params![hash_key(key), prefix, k.name, accounts, providers],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )?;
    Ok(CreatedApiKey {
        id,
        key_prefix: prefix,
        created_at,
        allowed_accounts: parse_list(accounts.as_deref()),
        allowed_providers: parse_list(providers.as_deref()),
    })
}

pub(super) fn update(
    conn: &Connection,
    id: i64,
    accounts: &ListUpdate,
    providers: &ListUpdate,
) -> Result<bool, StorageError> {
    let changed = conn
        .prepare_cached(
            "UPDATE api_keys SET
               allowed_accounts = CASE WHEN ?2 THEN ?3 ELSE allowed_accounts END,
               allowed_providers = CASE WHEN ?4 THEN ?5 ELSE allowed_providers END
             WHERE id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![
            id,
            accounts.is_some(),
            accounts.as_ref().and_then(|l| list_text(l.as_ref())),
            providers.is_some(),
            providers.as_ref().and_then(|l| list_text(l.as_ref())),
        ])?;
    Ok(changed == 1)
}

pub(super) fn revoke(
    conn: &Connection,
    id: i64,
    now: &str,
) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1
             RETURNING revoked_at",
        )?
        .query_row(params![id, now], |r| r.get(0))
        .optional()?)
}

pub(super) fn touch(conn: &Connection, id: i64, at: &str) -> Result<(), StorageError> {
    conn.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, at])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_trimmed_deduplicated_and_empty_is_none() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalize_list(&l(&[" a ", "b", "a", "", "  "])),
            Some(l(&["a", "b"]))
        );
        assert_eq!(normalize_list(&l(&["", " "])), None);
        assert_eq!(parse_list(Some("not json")), None);
        assert_eq!(parse_list(Some("[]")), None);
        assert_eq!(parse_list(Some(r#"["x"]"#)), Some(l(&["x"])));
    }

    #[test]
    fn hash_is_lowercase_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
