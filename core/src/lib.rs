//! The sans-IO core of agent-cli-proxy.
//!
//! Every decision the proxy makes lives here, with no IO, no clock reads, no threads and no
//! async runtime: time arrives as an argument ([`time::Instant`] for the monotonic clock,
//! [`time::UnixMillis`] for wall time), randomness from a seed, and lookups are answered by the
//! caller. Inputs are `handle_*` methods, outputs are `poll_*` methods drained in a documented
//! order. The runtime shells (`shell-tokio`, `shell-smol`) only move bytes, sleep until the
//! deadlines the core reports and talk to storage.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod errors;
pub mod head;
pub mod outcome;
pub mod secret;
pub mod time;

pub mod json_array;
pub mod ndjson;
pub mod sse;
pub mod usage;

pub mod event;
pub mod exchange;
pub mod proxy;

pub mod cost;
pub mod pricing;

pub mod auth;
pub mod breaker;
pub mod gate;
pub mod gemini;
pub mod identify;
pub mod limiter;
pub mod retry;
pub mod route;

pub(crate) mod base_url;
pub mod config;
pub mod config_issue;
pub mod headers;
pub mod http1;
pub mod json_edit;
pub mod limits;
pub mod provider;
pub mod transform;

pub mod admin;
pub mod dashboard;
pub mod metrics;
pub mod ready;
pub mod shutdown;
pub mod supervisor;

pub mod correlate;
pub mod quota;

#[cfg(any(test, feature = "_fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
