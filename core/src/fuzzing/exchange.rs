//! Fuzz bodies of the `exchange` module's targets.

/// Fuzz body of `exchange_ops` (placeholder until the module lands: accepts anything).
pub fn exchange_ops(_data: &[u8]) {}
