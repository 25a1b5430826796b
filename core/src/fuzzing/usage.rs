//! Fuzz bodies of the `usage` module's targets.

/// Fuzz body of `usage_anthropic` (placeholder until the module lands: accepts anything).
pub fn usage_anthropic(_data: &[u8]) {}

/// Fuzz body of `usage_openai_chat` (placeholder until the module lands: accepts anything).
pub fn usage_openai_chat(_data: &[u8]) {}

/// Fuzz body of `usage_responses` (placeholder until the module lands: accepts anything).
pub fn usage_responses(_data: &[u8]) {}

/// Fuzz body of `usage_ndjson` (placeholder until the module lands: accepts anything).
pub fn usage_ndjson(_data: &[u8]) {}
