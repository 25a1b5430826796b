//! Harness components of `reliability.md` §3.
//!
//! | Module | Role |
//! |---|---|
//! | [`upstream`] | [`upstream::FakeUpstream`], a scriptable HTTP/1.1 upstream driven by `x-fake-*` request headers |
//! | [`ledger`] | what the fake upstream received and how far each response got; RQ-D3 reconciliation with the database |
//! | [`mgmt`] | [`mgmt::FakeManagement`], a scriptable CLIProxyAPI management API (usage queue and legacy usage) |
//! | [`fault`] | [`fault::FaultProxy`], a TCP proxy that injects latency, slicing, cuts and resets |
//! | [`client`] | SSE client, raw-socket client, one-shot requests, slow reader, latency figures |
//! | [`proc`] | [`proc::ProxyProcess`], the proxy as a child process of the test binary |
//! | [`shells`] | [`shells::Shell`] and the [`both_shells!`](crate::both_shells) macro |
//! | [`db`] | rows of the proxy's database as JSON, polling for finalized rows |
//! | [`checks`] | security headers, `/metrics` samples, the canary request |
//! | [`memory`] | RSS, peak RSS and open fds of a process, from `/proc` |
//! | [`pg`] | [`pg::TestPg`], a throw-away PostgreSQL server (`initdb` + `pg_ctl`); `storage-pg`'s tests compile the same file |
//!
//! The servers ([`upstream::FakeUpstream`], [`fault::FaultProxy`]) own a small tokio runtime
//! on background threads, so they work the same from plain `#[test]` functions and from
//! `#[tokio::test]` ones, and dropping them never blocks the caller's runtime.

pub mod checks;
pub mod client;
pub mod db;
pub mod fault;
pub mod ledger;
pub mod memory;
pub mod mgmt;
pub mod pg;
pub mod proc;
pub mod shells;
pub mod upstream;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`, the form every hash in the harness uses.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `tests/fixtures/`, the golden corpus directory of this package.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A seed for harness randomness: `ACP_TEST_SEED` when set (to replay a failure), else
/// fresh from `fastrand`. Printed so a failing run can be repeated.
pub fn seed(label: &str) -> u64 {
    let seed = std::env::var("ACP_TEST_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("SEED {label} {seed} (set ACP_TEST_SEED={seed} to replay)");
    seed
}

/// Builds a one-worker tokio runtime for a harness server. One worker is enough for a
/// loopback test server and keeps the 2-core machine free for the proxy under test.
pub(crate) fn server_runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
}
