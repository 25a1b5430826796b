//! The drive loop (`style.md` §4): feeds one exchange its inputs and performs its outputs.
//! It decides nothing: every status, header, retry, usage figure and row field comes from
//! the core.

use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::pipeline::BudgetCharge;
use agent_cli_proxy_cli::upstream::Attempt;
use agent_cli_proxy_core::exchange::{Downstream, Exchange};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::body::{Cut, Item, RespBody};
use crate::respond::{Outgoing, response_head, response_of_reply};
use crate::shared::Shared;

/// Where the response head goes: the service future waiting for it.
pub type HeadSender = oneshot::Sender<Outgoing>;

/// Runs `ex` to its end.
pub async fn drive(
    shared: Arc<Shared>,
    mut ex: Box<Exchange>,
    head_tx: HeadSender,
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
    let mut up = Attempt::new(charge);
    let mut shutdown = shared.abort_exchanges.subscribe();
    let mut shutdown_seen = d.begin_drive(&mut ex, *shutdown.borrow());
    loop {
        up.turn(d, &mut ex, &shared.upstream);
        // Inputs discovered while draining are fed after the drain.
        let (mut client_gone, mut stalled) = (false, false);
        while let Some(out) = ex.poll_downstream() {
            match out {
                Downstream::Reply(reply) => {
                    if let Some(tx) = head_tx.take() {
                        let _ = tx.send(Outgoing::Response(response_of_reply(reply)));
                    }
                }
                Downstream::Head {
                    status,
                    headers,
                    content_length,
                } => {
                    if let Some(tx) = head_tx.take() {
                        let (btx, body) = RespBody::channel();
                        let resp = response_head(status, headers, content_length, body);
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
        if d.drain_events(&mut ex) {
            return;
        }
        if ex.handle_client_after_flush(stalled, client_gone, d.now()) {
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
            // Cancel-safe: a read that loses the select leaves its bytes in the decoder.
            input = std::future::poll_fn(|cx| up.poll_input(cx, wants_body)), if up.is_waiting(wants_body) => {
                up.feed(&mut ex, input, d.now());
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
