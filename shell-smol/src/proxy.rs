//! A proxied request (`/v1/*`, `/api/*`): the managed-key lookup, the head checks, reading
//! the body under its limits, then the exchange, driven on the connection's own task (the
//! drive loop writes the response itself, so there is no hand-off of the head).

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use agent_cli_proxy_cli::daemon::KeyStep;
use agent_cli_proxy_cli::daemon::pipeline::{BodyIntake, BudgetCharge, Respond};
use agent_cli_proxy_core::head::{Reply, RequestHead};
use agent_cli_proxy_core::http1::BodyFraming;
use agent_cli_proxy_core::proxy::StartAction;
use bytes::Bytes;
use futures_lite::FutureExt;

use crate::downstream::{After, BodyError, Client};
use crate::drive::drive;
use crate::shared::Shared;

/// Handles one proxied request to the end of its response.
pub async fn handle(
    shared: &Arc<Shared>,
    client: &mut Client,
    head: RequestHead,
    peer: IpAddr,
    respond: Respond,
) -> After {
    let d = &shared.daemon;
    let stall = shared.limits.write_stall;
    let key = match d.key_step(&head) {
        KeyStep::Known(key) => key,
        KeyStep::Lookup(hash) => {
            let s = Arc::clone(shared);
            blocking::unblock(move || s.daemon.lookup_key(Some(&hash))).await
        }
    };
    let limit = match d.check_proxy_head(&head, &key) {
        Ok(limit) => limit,
        Err(reply) => return client.send_reply(reply, stall).await,
    };
    let (body, charge) = match read_body(shared, client, respond, limit).await {
        Ok(b) => b,
        Err(Some(reply)) => return client.send_reply(reply, stall).await,
        Err(None) => return After::Close,
    };
    let exchange = match d.start_exchange(head, body, peer, key) {
        StartAction::Reply(reply) => return client.send_reply(reply, stall).await,
        StartAction::Exchange(ex) => ex,
    };
    let request_id = exchange.request_id().to_owned();
    let run = AssertUnwindSafe(drive(shared, exchange, &mut *client, charge))
        .catch_unwind()
        .await;
    match run {
        Ok(after) => after,
        Err(panic) => {
            shared.daemon.report_panic(&request_id, &*panic);
            // O15 answers E22 when no response byte was sent; otherwise the response is cut.
            if client.responded {
                After::Close
            } else {
                let reply = respond.internal_error().closing();
                client.send_reply(reply, stall).await
            }
        }
    }
}

/// Reads the whole body under its limits (`datapath.md` §5) with the body idle timeout
/// (§1). `Err(None)`: the client went away.
async fn read_body(
    shared: &Arc<Shared>,
    client: &mut Client,
    respond: Respond,
    limit: u64,
) -> Result<(Bytes, BudgetCharge), Option<Reply>> {
    let declared = match client.decoder.current().map(|c| c.framing) {
        Some(BodyFraming::Length(n)) => Some(n),
        _ => None,
    };
    let mut intake = BodyIntake::start(shared, respond, declared, limit).map_err(Some)?;
    loop {
        match client.next_body_chunk(shared.limits.body_idle).await {
            Ok(Some(chunk)) => intake.push(&chunk).map_err(Some)?,
            Ok(None) => break,
            Err(BodyError::Gone) => return Err(None),
            Err(e) => return Err(e.reply(respond, limit)),
        }
    }
    Ok(intake.finish())
}
