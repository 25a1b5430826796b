//! `/admin/*` on tokio: the core parses and validates, the blocking pool runs the storage
//! queries, the core's in-memory state answers the rest.

use std::sync::Arc;

use agent_cli_proxy_core::head::{Reply, RequestHead};
use agent_cli_proxy_core::limits::MAX_ADMIN_BODY;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::server::Shared;

/// Answers one admin request that passed the gate.
pub async fn handle(shared: &Arc<Shared>, head: RequestHead, body: Incoming) -> Reply {
    let limited = http_body_util::Limited::new(body, MAX_ADMIN_BODY as usize);
    let body: Bytes = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        // The rest of the body is never read, so the connection cannot carry another
        // request: close it, as the smol shell does.
        Err(_) => return agent_cli_proxy_core::errors::body_too_large(MAX_ADMIN_BODY).closing(),
    };
    let s = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        agent_cli_proxy_cli::daemon::admin::answer(&s.daemon, &head, &body)
    })
    .await
    .unwrap_or_else(|_| agent_cli_proxy_core::admin::internal_error())
}
