//! Fuzz bodies of the `sse` module's targets.

/// Fuzz body of `sse_scan` (placeholder until the module lands: accepts anything).
pub fn sse_scan(_data: &[u8]) {}
