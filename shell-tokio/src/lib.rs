//! agent-cli-proxy on tokio + hyper.
