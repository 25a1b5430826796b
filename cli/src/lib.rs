//! The command line of agent-cli-proxy: every command but the server loop itself.
#![forbid(unsafe_code)]

pub mod daemon;
