//! Fuzz bodies of the `provider_config` module's targets.

/// Fuzz body of `provider_config` (placeholder until the module lands: accepts anything).
pub fn provider_config(_data: &[u8]) {}
