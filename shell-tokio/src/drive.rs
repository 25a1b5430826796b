//! The drive loop (`style.md` §4): feeds one exchange its inputs and performs its outputs.
//! It decides nothing: every status, header, retry, usage figure and row field comes from
//! the core.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_core::exchange::{
    Downstream, Exchange, ExchangeEvent, StorageFailure, StorageOp, UpstreamFailure, UpstreamOp,
};
use agent_cli_proxy_core::http1::ResponseEvent;
use agent_cli_proxy_core::time::Instant;
use agent_cli_proxy_storage::Reply as StoreReply;
use agent_cli_proxy_storage::from_core::op_from_exchange;
use agent_cli_proxy_storage::{PendingReply, StorageError};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::body::{Cut, Item, RespBody};
use crate::server::Shared;
use crate::service::{Outgoing, response_head, response_of_reply};
use crate::upconn::UpConn;

type SendFuture = Pin<Box<dyn Future<Output = Result<UpConn, UpstreamFailure>> + Send>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Awaited {
    PreLog,
    Finalize,
}

/// Releases a request's share of the global body budget when dropped.
pub struct BudgetCharge {
    pub(crate) shared: Arc<Shared>,
    pub(crate) bytes: u64,
}

impl Drop for BudgetCharge {
    fn drop(&mut self) {
        self.shared.daemon.release_body(self.bytes);
    }
}

/// Where the response head goes: the service future waiting for it.
pub type HeadSender = oneshot::Sender<Outgoing>;

/// Runs `ex` to its end.
pub async fn drive(
    shared: Arc<Shared>,
    mut ex: Box<Exchange>,
    head_tx: HeadSender,
    secure: bool,
    charge: BudgetCharge,
) {
    let d = &shared.daemon;
    // A streaming exchange outlives its service future: the shutdown drain counts it too.
    shared
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let _in_flight = Running(&shared);
    let mut head_tx = Some(head_tx);
    let mut body_tx: Option<mpsc::Sender<Item>> = None;
    let mut awaited: Option<(Awaited, PendingReply)> = None;
    let mut sending: Option<SendFuture> = None;
    // The connection the response is read from, once the request is written, and whether
    // its head has arrived (the head is read even when the exchange wants no body yet).
    let mut reading: Option<UpConn> = None;
    let mut head_seen = false;
    let mut charge = Some(charge);
    let mut shutdown = shared.abort_exchanges.subscribe();
    let mut shutdown_seen = *shutdown.borrow();
    if shutdown_seen {
        ex.handle_shutdown(d.now());
    }
    loop {
        // Drain in the documented order; inputs discovered while draining are fed after.
        let mut client_gone = false;
        let mut stalled = false;
        let mut storage_errors: Vec<(Awaited, StorageFailure)> = Vec::new();
        while let Some(op) = ex.poll_storage() {
            let kind = match &op {
                StorageOp::CheckpointUsage { .. } => {
                    // Fire-and-forget: a full queue drops it (boot recovery costs from input).
                    let _ = d.writer.try_send(op_from_exchange(op));
                    continue;
                }
                StorageOp::PreLog(_) => Awaited::PreLog,
                StorageOp::Finalize(_) | StorageOp::FinalizeFallback { .. } => Awaited::Finalize,
            };
            match d.writer.submit(op_from_exchange(op)).await {
                Ok(pending) => awaited = Some((kind, pending)),
                Err(e) => storage_errors.push((kind, failure(&e))),
            }
        }
        while let Some(op) = ex.poll_upstream() {
            match op {
                UpstreamOp::Send { request, .. } => {
                    let client = shared.upclient.clone();
                    sending = Some(Box::pin(client.send(request)));
                    reading = None;
                }
                UpstreamOp::Cancel => {
                    sending = None;
                    reading = None;
                }
            }
        }
        while let Some(out) = ex.poll_downstream() {
            match out {
                Downstream::Reply(reply) => {
                    if let Some(tx) = head_tx.take() {
                        let _ = tx.send(Outgoing::Response(response_of_reply(reply, secure)));
                    }
                }
                Downstream::Head {
                    status,
                    headers,
                    content_length,
                } => {
                    if let Some(tx) = head_tx.take() {
                        let (btx, body) = RespBody::channel();
                        let resp = response_head(status, headers, content_length, body, secure);
                        if tx.send(Outgoing::Response(resp)).is_err() {
                            client_gone = true;
                        } else {
                            body_tx = Some(btx);
                        }
                    }
                }
                Downstream::Body(bytes) => {
                    if let Some(tx) = &body_tx {
                        match send_frame(tx, bytes, shared.limits.write_stall).await {
                            Delivery::Sent => {}
                            Delivery::Gone => client_gone = true,
                            Delivery::Stalled => stalled = true,
                        }
                    }
                }
                Downstream::End => body_tx = None,
                Downstream::Abort => {
                    if let Some(tx) = body_tx.take() {
                        let _ = tx.try_send(Err(Cut));
                    } else if let Some(tx) = head_tx.take() {
                        let _ = tx.send(Outgoing::Close);
                    }
                }
            }
        }
        let mut finished = false;
        while let Some(ev) = ex.poll_event() {
            match ev {
                ExchangeEvent::Finished => finished = true,
                other => d.handle_event(other),
            }
        }
        if finished {
            return;
        }
        let now = d.now();
        if let Some((kind, f)) = storage_errors.pop() {
            feed_storage(&mut ex, kind, Err(f), now);
            continue;
        }
        if stalled {
            ex.handle_client_stalled(now);
            continue;
        }
        if client_gone {
            ex.handle_client_gone(now);
            continue;
        }

        let deadline = ex.poll_timeout().map(|(t, _)| shared.tokio_instant(t));
        let wants_body = ex.wants_upstream_body();
        tokio::select! {
            biased;
            changed = shutdown.changed(), if !shutdown_seen => {
                shutdown_seen = true;
                if changed.is_ok() {
                    ex.handle_shutdown(d.now());
                }
            }
            reply = wait_awaited(&mut awaited), if awaited.is_some() => {
                awaited = None;
                if let Some((kind, res)) = reply {
                    feed_storage(&mut ex, kind, res, d.now());
                }
            }
            res = wait_send(&mut sending), if sending.is_some() => {
                sending = None;
                match res {
                    Some(Ok(conn)) => {
                        reading = Some(conn);
                        head_seen = false;
                        ex.handle_upstream_written(d.now());
                    }
                    Some(Err(f)) => ex.handle_upstream_error(f, d.now()),
                    None => {}
                }
            }
            event = next_event(&mut reading), if reading.is_some() && (!head_seen || wants_body) => {
                match event {
                    Ok(ResponseEvent::Head(head, _)) => {
                        head_seen = true;
                        // The exchange keeps the request body only until a head arrives.
                        charge.take();
                        ex.handle_upstream_head(head, d.now());
                    }
                    Ok(ResponseEvent::Body(data)) => ex.handle_upstream_body(data, d.now()),
                    Ok(ResponseEvent::End) => {
                        if let Some(conn) = reading.take() {
                            conn.finish();
                        }
                        ex.handle_upstream_end(d.now());
                    }
                    Err(f) => {
                        reading = None;
                        ex.handle_upstream_error(f, d.now());
                    }
                }
            }
            _ = closed_head(&mut head_tx), if head_tx.is_some() => {
                head_tx = None;
                ex.handle_client_gone(d.now());
            }
            _ = closed_body(&body_tx), if body_tx.is_some() => {
                body_tx = None;
                ex.handle_client_gone(d.now());
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                ex.handle_timeout(d.now());
            }
        }
    }
}

struct Running<'a>(&'a Shared);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0.drained.notify_waiters();
    }
}

enum Delivery {
    Sent,
    Gone,
    Stalled,
}

async fn send_frame(tx: &mpsc::Sender<Item>, bytes: Bytes, stall: Duration) -> Delivery {
    match tokio::time::timeout(stall, tx.send(Ok(bytes))).await {
        Ok(Ok(())) => Delivery::Sent,
        Ok(Err(_)) => Delivery::Gone,
        Err(_) => Delivery::Stalled,
    }
}

fn feed_storage(
    ex: &mut Exchange,
    kind: Awaited,
    res: Result<StoreReply, StorageFailure>,
    now: Instant,
) {
    match kind {
        Awaited::PreLog => {
            let res = res.and_then(|r| match r {
                StoreReply::RowId(id) => Ok(id),
                other => Err(StorageFailure {
                    message: format!("unexpected reply {other:?}"),
                }),
            });
            ex.handle_prelog(res, now);
        }
        Awaited::Finalize => ex.handle_finalized(res.map(|_| ()), now),
    }
}

fn failure(e: &StorageError) -> StorageFailure {
    StorageFailure {
        message: e.to_string(),
    }
}

// Polls the reply in place: a branch that loses the select must not lose the reply.
async fn wait_awaited(
    awaited: &mut Option<(Awaited, PendingReply)>,
) -> Option<(Awaited, Result<StoreReply, StorageFailure>)> {
    match awaited.as_mut() {
        Some((kind, pending)) => Some((*kind, pending.await.map_err(|e| failure(&e)))),
        None => std::future::pending().await,
    }
}

async fn wait_send(sending: &mut Option<SendFuture>) -> Option<Result<UpConn, UpstreamFailure>> {
    match sending.as_mut() {
        Some(fut) => Some(fut.await),
        None => std::future::pending().await,
    }
}

// Cancel-safe: a read that loses the select leaves its bytes in the connection's buffer.
async fn next_event(reading: &mut Option<UpConn>) -> Result<ResponseEvent, UpstreamFailure> {
    match reading.as_mut() {
        Some(conn) => conn.next_event().await,
        None => std::future::pending().await,
    }
}

async fn closed_head(tx: &mut Option<HeadSender>) {
    match tx.as_mut() {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}

async fn closed_body(tx: &Option<mpsc::Sender<Item>>) {
    match tx {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
