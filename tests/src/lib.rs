//! Test harness of agent-cli-proxy (`reliability.md` §3).
