//! A proxied request (`/v1/*`, `/api/*`): the managed-key lookup, the head checks, reading
//! the body under its limits, then the exchange on its own task.

use std::net::IpAddr;
use std::sync::Arc;

use agent_cli_proxy_cli::daemon::KeyStep;
use agent_cli_proxy_cli::daemon::pipeline::{BodyFailure, BodyIntake, BudgetCharge, Respond};
use agent_cli_proxy_core::errors;
use agent_cli_proxy_core::head::{Reply, RequestHead, header_str};
use agent_cli_proxy_core::proxy::{KeyLookup, StartAction};
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::drive::drive;
use crate::respond::{Outgoing, response_of_reply};
use crate::shared::Shared;

/// Handles one proxied request to its response head (the body may still be streaming).
pub async fn handle(
    shared: &Arc<Shared>,
    head: RequestHead,
    body: Incoming,
    peer: IpAddr,
    respond: Respond,
) -> Outgoing {
    let d = &shared.daemon;
    let key = match d.key_step(&head) {
        KeyStep::Known(key) => key,
        KeyStep::Lookup(hash) => {
            let s = Arc::clone(shared);
            tokio::task::spawn_blocking(move || s.daemon.lookup_key(Some(&hash)))
                .await
                .unwrap_or(KeyLookup::Unknown)
        }
    };
    let limit = match d.check_proxy_head(&head, &key) {
        Ok(limit) => limit,
        Err(reply) => return Outgoing::Response(response_of_reply(reply)),
    };
    let (body, charge) = match read_body(shared, &head, body, respond, limit).await {
        Ok(b) => b,
        Err(reply) => return Outgoing::Response(response_of_reply(reply)),
    };
    let exchange = match d.start_exchange(head, body, peer, key) {
        StartAction::Reply(reply) => return Outgoing::Response(response_of_reply(reply)),
        StartAction::Exchange(ex) => ex,
    };
    let (head_tx, head_rx) = oneshot::channel();
    let task_shared = Arc::clone(shared);
    let request_id = exchange.request_id().to_owned();
    let task = tokio::spawn(async move {
        let run = std::panic::AssertUnwindSafe(drive(
            Arc::clone(&task_shared),
            exchange,
            head_tx,
            charge,
        ))
        .catch_unwind()
        .await;
        if let Err(panic) = run {
            task_shared.daemon.report_panic(&request_id, &*panic);
        }
    });
    drop(task);
    match head_rx.await {
        Ok(out) => out,
        // The task ended without a head: it panicked (O15 answers E22 when no head was sent).
        Err(_) => Outgoing::Response(response_of_reply(respond.internal_error())),
    }
}

/// Reads the whole body under its limits (`datapath.md` §5) with the body idle timeout
/// (§1).
async fn read_body(
    shared: &Arc<Shared>,
    head: &RequestHead,
    mut body: Incoming,
    respond: Respond,
    limit: u64,
) -> Result<(Bytes, BudgetCharge), Reply> {
    let declared = header_str(&head.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    let mut intake = BodyIntake::start(shared, respond, declared, limit)?;
    loop {
        let frame = tokio::time::timeout(shared.limits.body_idle, body.frame()).await;
        let frame = match frame {
            Err(_) => return Err(respond.body_failure(BodyFailure::Timeout, limit)),
            Ok(None) => break,
            // A framing error or a client that went away mid-body.
            Ok(Some(Err(_))) => {
                let reply = errors::framing(http::StatusCode::BAD_REQUEST);
                return Err(respond.body_failure(BodyFailure::Framing(reply), limit));
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            intake.push(&data)?;
        }
    }
    Ok(intake.finish())
}
