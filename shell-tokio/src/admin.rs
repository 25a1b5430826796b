//! `/admin/*` on tokio: the core parses and validates, the blocking pool runs the storage
//! queries, the core's in-memory state answers the rest.

use std::sync::Arc;

use agent_cli_proxy_core::head::{Reply, RequestHead};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::server::Shared;

/// Largest admin request body accepted (key names and lists are tiny).
const MAX_ADMIN_BODY: usize = 1_048_576;

/// Answers one admin request from `peer` that passed the gate.
pub async fn handle(
    shared: &Arc<Shared>,
    head: RequestHead,
    body: Incoming,
    peer: std::net::IpAddr,
) -> Reply {
    let limited = http_body_util::Limited::new(body, MAX_ADMIN_BODY);
    let body: Bytes = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return agent_cli_proxy_core::errors::body_too_large(MAX_ADMIN_BODY as u64),
    };
    let s = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        agent_cli_proxy_cli::daemon::admin::answer(&s.daemon, &head, &body, peer)
    })
    .await
    .unwrap_or_else(|_| agent_cli_proxy_core::admin::internal_error())
}
