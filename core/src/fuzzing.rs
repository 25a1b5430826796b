//! Fuzz bodies, compiled behind the private `_fuzzing` feature (and in tests). Each target in
//! `fuzz/fuzz_targets/` is a shim over one function here; the committed corpus in
//! `fuzz/corpus/<target>/` replays through the same functions in `cargo test` (CI-10).
//! Every body panics only when its oracle is violated.

pub mod breaker;
pub mod env_config;
pub mod exchange;
pub mod http1;
pub mod identify;
pub mod json_array;
pub mod json_edit;
pub mod pricing;
pub mod provider_config;
pub mod sse;
pub mod usage;

/// A fuzz body: panics only when its oracle is violated.
pub type FuzzBody = fn(&[u8]);

/// Every fuzz target by name, for the corpus replay.
pub const TARGETS: &[(&str, FuzzBody)] = &[
    ("sse_scan", sse::sse_scan),
    ("usage_anthropic", usage::usage_anthropic),
    ("usage_openai_chat", usage::usage_openai_chat),
    ("usage_responses", usage::usage_responses),
    ("usage_ndjson", usage::usage_ndjson),
    ("json_array_scan", json_array::json_array_scan),
    ("json_edit", json_edit::json_edit),
    ("identify_route", identify::identify_route),
    ("provider_config", provider_config::provider_config),
    ("env_config", env_config::env_config),
    ("pricing_load", pricing::pricing_load),
    ("breaker_ops", breaker::breaker_ops),
    ("http1_codec", http1::http1_codec),
    ("exchange_ops", exchange::exchange_ops),
];
