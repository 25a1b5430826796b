//! Managed proxy API key bodies and key material (`control.md` §6.7).
//!
//! Choices where the spec is silent: a missing or `null` `name` is "name is required" (the
//! same as a blank one); the stored name is the trimmed name, and the 200-character and
//! control-character rules apply to it; a PATCH body with neither list is
//! `Invalid request body`; unknown fields are ignored.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::AdminError;
use crate::secret::Secret;

/// Longest accepted key name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A validated `POST /admin/api-keys` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyCreate {
    /// Trimmed, non-blank, at most 200 characters, no control characters.
    pub name: String,
    /// Normalized account list; `None` is stored as NULL (absent, `null` or empty).
    pub allowed_accounts: Option<Vec<String>>,
    /// Normalized provider list; `None` is stored as NULL.
    pub allowed_providers: Option<Vec<String>>,
}

/// A validated `PATCH /admin/api-keys/:id` body. The outer `Option` says whether the field
/// was present (absent fields are left unchanged); the inner one is the new value, `None`
/// meaning NULL (`null` or a list that normalizes to empty). At least one field is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPatch {
    /// New account list, if the field was present.
    pub allowed_accounts: Option<Option<Vec<String>>>,
    /// New provider list, if the field was present.
    pub allowed_providers: Option<Option<Vec<String>>>,
}

/// Validates a create body.
pub fn parse_create(body: &[u8]) -> Result<ApiKeyCreate, AdminError> {
    let obj = parse_object(body)?;
    let name = match obj.get("name") {
        None | Some(Value::Null) => return Err(AdminError::NameRequired),
        Some(Value::String(name)) => name.trim(),
        Some(_) => return Err(AdminError::InvalidBody),
    };
    if name.is_empty() {
        return Err(AdminError::NameRequired);
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AdminError::InvalidBody);
    }
    Ok(ApiKeyCreate {
        name: name.to_owned(),
        allowed_accounts: list_field(&obj, "allowed_accounts")?.flatten(),
        allowed_providers: list_field(&obj, "allowed_providers")?.flatten(),
    })
}

/// Validates a patch body.
pub fn parse_patch(body: &[u8]) -> Result<ApiKeyPatch, AdminError> {
    let obj = parse_object(body)?;
    let patch = ApiKeyPatch {
        allowed_accounts: list_field(&obj, "allowed_accounts")?,
        allowed_providers: list_field(&obj, "allowed_providers")?,
    };
    if patch.allowed_accounts.is_none() && patch.allowed_providers.is_none() {
        return Err(AdminError::InvalidBody);
    }
    Ok(patch)
}

/// A normalized list as its column value: JSON text, or `None` (NULL).
pub fn list_column(list: Option<&[String]>) -> Option<String> {
    let list = list.filter(|l| !l.is_empty())?;
    serde_json::to_string(list).ok()
}

/// A new managed key: the key itself (shown once), its hash and prefix as stored.
#[derive(Debug, Clone)]
pub struct ApiKeyMaterial {
    /// 64 lowercase hex characters; never stored or logged.
    pub key: Secret,
    /// Lowercase hex SHA-256 of the key's UTF-8 bytes (`key_hash`).
    pub key_hash: String,
    /// The key's first 8 characters (`key_prefix`).
    pub key_prefix: String,
}

impl ApiKeyMaterial {
    /// Derives the key from 32 bytes the shell drew from the operating system's random
    /// source (the core has no randomness of its own).
    pub fn from_random(bytes: [u8; 32]) -> ApiKeyMaterial {
        let key = hex::encode(bytes);
        let key_hash = hex::encode(Sha256::digest(key.as_bytes()));
        let key_prefix = key.chars().take(crate::auth::KEY_PREFIX_LEN).collect();
        ApiKeyMaterial {
            key: Secret::new(key),
            key_hash,
            key_prefix,
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, AdminError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err(AdminError::InvalidBody),
    }
}

/// `None` when absent, `Some(None)` for `null` or an empty normalized list.
fn list_field(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<Option<Vec<String>>>, AdminError> {
    let items = match obj.get(field) {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(AdminError::InvalidBody),
    };
    // A set keeps de-duplication linear-logarithmic for hostile list sizes.
    let mut seen = BTreeSet::new();
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let Value::String(s) = item else {
            return Err(AdminError::InvalidBody);
        };
        let s = s.trim();
        if !s.is_empty() && seen.insert(s) {
            out.push(s.to_owned());
        }
    }
    Ok(Some((!out.is_empty()).then_some(out)))
}
