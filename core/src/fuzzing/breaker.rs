//! Fuzz bodies of the `breaker` module's targets.

/// Fuzz body of `breaker_ops` (placeholder until the module lands: accepts anything).
pub fn breaker_ops(_data: &[u8]) {}
