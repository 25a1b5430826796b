//! `/admin/*` on smol: the core parses and validates, the blocking pool runs the storage
//! queries, the core's in-memory state answers the rest.

use std::sync::Arc;

use agent_cli_proxy_core::head::{Reply, RequestHead};
use agent_cli_proxy_core::limits::MAX_ADMIN_BODY;

use crate::client::{BodyError, Client};
use crate::server::Shared;

/// Answers one admin request that passed the gate. `Err(None)`: the client went away.
pub async fn handle(
    shared: &Arc<Shared>,
    client: &mut Client,
    head: RequestHead,
) -> Result<Reply, Option<Reply>> {
    let body = match client
        .read_body(MAX_ADMIN_BODY, true, shared.limits.body_idle)
        .await
    {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return Ok(agent_cli_proxy_core::errors::body_too_large(MAX_ADMIN_BODY).closing());
        }
        Err(e) => return Err(e.reply(MAX_ADMIN_BODY)),
    };
    let s = Arc::clone(shared);
    Ok(blocking::unblock(move || {
        agent_cli_proxy_cli::daemon::admin::answer(&s.daemon, &head, &body)
    })
    .await)
}
