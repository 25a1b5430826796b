//! Fuzz bodies of the `http1` module's targets.

/// Fuzz body of `http1_codec` (placeholder until the module lands: accepts anything).
pub fn http1_codec(_data: &[u8]) {}
