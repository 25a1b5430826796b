//! Test harness of agent-cli-proxy (`reliability.md` §3).
//!
//! Everything a black-box suite needs lives under [`support`]: a scriptable fake upstream
//! with a request ledger, a TCP fault proxy, raw-socket clients, control of proxy child
//! processes and the macro that runs one case against both shells.
#![warn(missing_docs)]

pub mod support;
