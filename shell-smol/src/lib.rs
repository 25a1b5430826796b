//! agent-cli-proxy on smol + async-io.
