//! A proxied request (`/v1/*`, `/api/*`): the managed-key lookup, the head checks, reading
//! the body under its limits, then the exchange, driven on the connection's own task (the
//! drive loop writes the response itself, so there is no hand-off of the head).

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use agent_cli_proxy_core::errors;
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::head::RequestHead;
use agent_cli_proxy_core::http1::BodyFraming;
use agent_cli_proxy_core::proxy::{Core, InboundRequest, KeyLookup, StartAction};
use bytes::{Bytes, BytesMut};
use futures_lite::FutureExt;
use serde_json::json;

use crate::client::{After, BodyError, Client};
use crate::drive::{BudgetCharge, drive};
use crate::server::Shared;

/// Handles one proxied request to the end of its response.
pub async fn handle(
    shared: &Arc<Shared>,
    client: &mut Client,
    head: RequestHead,
    peer: IpAddr,
    secure: bool,
) -> After {
    let d = &shared.daemon;
    let stall = shared.limits.write_stall;
    let key = match Core::credential_hash(&head) {
        None => KeyLookup::NoCredential,
        Some(hash) => {
            let s = Arc::clone(shared);
            blocking::unblock(move || s.daemon.lookup_key(Some(&hash))).await
        }
    };
    let checked = d.core().check_proxy_head(&head, &key);
    let limit = match checked {
        Ok(limit) => limit,
        Err(reply) => {
            if reply.status == http::StatusCode::UNAUTHORIZED {
                d.logger.event(
                    Level::Warn,
                    "proxy.auth.rejected",
                    "proxy authentication rejected",
                    vec![("path", json!(head.path))],
                );
            }
            return client.send_reply(reply, secure, stall).await;
        }
    };
    let (body, charge) = match read_body(shared, client, limit).await {
        Ok(b) => b,
        Err(Some(reply)) => return client.send_reply(reply, secure, stall).await,
        Err(None) => return After::Close,
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let start = d.core().start(
        InboundRequest {
            head,
            body,
            peer,
            request_id,
            key,
        },
        d.now(),
        d.wall(),
    );
    for ev in start.events {
        d.handle_event(ev);
    }
    if let Some((id, at)) = start.touch_key {
        d.touch_key(id, at);
    }
    let exchange = match start.action {
        StartAction::Reply(reply) => return client.send_reply(reply, secure, stall).await,
        StartAction::Exchange(ex) => ex,
    };
    let request_id = exchange.request_id().to_owned();
    let run = AssertUnwindSafe(drive(shared, exchange, &mut *client, secure, charge))
        .catch_unwind()
        .await;
    match run {
        Ok(after) => after,
        Err(panic) => {
            crate::server::report_panic(shared, &request_id, &*panic);
            // O15 answers E22 when no response byte was sent; otherwise the response is cut.
            if client.responded {
                After::Close
            } else {
                let reply = errors::internal_error().closing();
                client.send_reply(reply, secure, stall).await
            }
        }
    }
}

/// Reads the whole body, counting against the per-request limit and the global budget, with
/// the body idle timeout (`datapath.md` §5, §1). `Err(None)`: the client went away.
async fn read_body(
    shared: &Arc<Shared>,
    client: &mut Client,
    limit: u64,
) -> Result<(Bytes, BudgetCharge), Option<agent_cli_proxy_core::head::Reply>> {
    let d = &shared.daemon;
    let declared = match client.decoder.current().map(|c| c.framing) {
        Some(BodyFraming::Length(n)) => Some(n),
        _ => None,
    };
    let mut charge = BudgetCharge {
        shared: Arc::clone(shared),
        bytes: 0,
    };
    if let Some(len) = declared {
        if !d.charge_body(len) {
            return Err(Some(errors::body_budget().closing()));
        }
        charge.bytes = len;
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    loop {
        let chunk = match client.next_body_chunk(shared.limits.body_idle).await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(BodyError::Gone) => return Err(None),
            Err(e) => return Err(e.reply(limit)),
        };
        let total = buf.len() as u64 + chunk.len() as u64;
        if total > limit {
            return Err(Some(errors::body_too_large(limit).closing()));
        }
        if declared.is_none() {
            if !d.charge_body(chunk.len() as u64) {
                return Err(Some(errors::body_budget().closing()));
            }
            charge.bytes += chunk.len() as u64;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), charge))
}
