//! The drive loop (`style.md` §4): feeds one exchange its inputs and performs its outputs,
//! in the order and with the inputs of `shell-tokio/src/drive.rs`. It decides nothing:
//! every status, header, retry, usage figure and row field comes from the core.
//!
//! Unlike the tokio shell, the loop runs on the connection's own task and writes the
//! response itself with the core's encoder, so "the client can take more" is simply "the
//! previous write finished": upstream bytes are read only between writes, one chunk (at
//! most 16 KiB) at a time, and a flush is forced once 64 KiB are queued, which keeps the
//! relay within the 64 KiB of `datapath.md` §13.4. Writes are bounded by the write-stall
//! limit (O12). While waiting, the loop watches the client's read side, so a client that
//! goes away is noticed at once (`datapath.md` §13.7).
//!
//! Both shells report `handle_upstream_written` once the whole request is on the wire, so a
//! `POST` body is dropped then (`datapath.md` §5).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use agent_cli_proxy_cli::daemon::pipeline::BudgetCharge;
use agent_cli_proxy_cli::upstream::{Attempt, AttemptInput};
use agent_cli_proxy_core::exchange::{Downstream, Exchange};
use agent_cli_proxy_core::http1::{BodyFraming, encode_body, encode_end, encode_reply};
use async_io::Timer;
use bytes::BytesMut;
use futures_lite::future;

use crate::downstream::{After, Client, WriteError};
use crate::shared::Shared;
use crate::upstream::SmolNet;

/// Queued response bytes that force a write before the next upstream read.
const FLUSH_AT: usize = 64 * 1024;

/// Where the client response stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resp {
    NotStarted,
    Streaming { framing: BodyFraming, close: bool },
    Done { close: bool },
    Cut,
}

enum Input {
    Shutdown,
    Upstream(AttemptInput<SmolNet>),
    ClientGone,
    Timeout,
}

/// Runs `ex` to its end, writing its response to `client`. Returns whether the connection
/// can serve another request.
pub async fn drive(
    shared: &Arc<Shared>,
    mut ex: Box<Exchange>,
    client: &mut Client,
    charge: BudgetCharge,
) -> After {
    let d = &shared.daemon;
    let stall = shared.limits.write_stall;
    // Counted for the shutdown drain by the request's own `InFlight` (`conn::handle`), which
    // lives until this loop returns: a second count here made one stream count as two.
    let mut resp = Resp::NotStarted;
    let mut client_dead = false;
    let mut out = BytesMut::new();
    let mut up = Attempt::new(charge);
    let mut shutdown = Box::pin(shared.abort_exchanges.wait());
    let mut timer = Timer::never();
    let fired = shared.abort_exchanges.is_fired();
    let mut shutdown_seen = d.begin_drive(&mut ex, fired);
    loop {
        // The documented drain order; what it discovers is fed after.
        up.turn(d, &mut ex, &shared.upstream);
        let mut client_gone = false;
        let mut stalled = false;
        while let Some(output) = ex.poll_downstream() {
            queue(client, &mut resp, &mut out, output);
            if out.len() >= FLUSH_AT && !(client_dead || client_gone || stalled) {
                flush(client, &mut out, stall, &mut client_gone, &mut stalled).await;
            }
        }
        let writable = !(client_dead || client_gone || stalled);
        // Response bytes that arrived with what is queued go out in the same write (a
        // streamed response's head and its first events: one `send` instead of two). Only
        // what is already read is taken; nothing waits for more.
        if writable
            && !out.is_empty()
            && out.len() < FLUSH_AT
            && let Some(more) = up.buffered_input(ex.wants_upstream_body())
        {
            up.feed(&mut ex, more, d.now());
            continue;
        }
        if writable && !out.is_empty() {
            flush(client, &mut out, stall, &mut client_gone, &mut stalled).await;
        }
        out.clear();
        client_dead |= client_gone || stalled;
        if d.drain_events(&mut ex) {
            return match resp {
                Resp::Done { close: false } if !client_dead => After::Keep,
                _ => After::Close,
            };
        }
        if ex.handle_client_after_flush(stalled, client_gone, d.now()) {
            continue;
        }

        let deadline = ex.poll_timeout().map(|(t, _)| shared.instant(t));
        match deadline {
            Some(t) => timer.set_at(t),
            None => timer = Timer::never(),
        }
        let wants_body = ex.wants_upstream_body();
        let watch_client = !client_dead && !matches!(resp, Resp::Cut);
        let input = future::poll_fn(|cx| {
            if !shutdown_seen && shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Input::Shutdown);
            }
            if let Poll::Ready(input) = up.poll_input(cx, wants_body) {
                return Poll::Ready(Input::Upstream(input));
            }
            if watch_client && client.poll_closed(cx).is_ready() {
                return Poll::Ready(Input::ClientGone);
            }
            if deadline.is_some() && Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Input::Timeout);
            }
            Poll::Pending
        })
        .await;
        match input {
            Input::Shutdown => {
                shutdown_seen = true;
                ex.handle_shutdown(d.now());
            }
            Input::Upstream(input) => up.feed(&mut ex, input, d.now()),
            Input::ClientGone => {
                client_dead = true;
                ex.handle_client_gone(d.now());
            }
            Input::Timeout => ex.handle_timeout(d.now()),
        }
    }
}

/// Encodes one downstream output into `out`, tracking where the response stands.
fn queue(client: &mut Client, resp: &mut Resp, out: &mut BytesMut, output: Downstream) {
    match output {
        Downstream::Reply(reply) => {
            if *resp == Resp::NotStarted {
                let encoded = encode_reply(&reply, client.decoder.current());
                out.extend_from_slice(&encoded.bytes);
                client.responded = true;
                *resp = Resp::Done {
                    close: encoded.close,
                };
            }
        }
        Downstream::Head {
            status,
            headers,
            content_length,
        } => {
            if *resp != Resp::NotStarted {
                return;
            }
            let Some(info) = client.decoder.current() else {
                *resp = Resp::Cut;
                return;
            };
            let start = info.start_response(status, &headers, content_length, false);
            out.extend_from_slice(&start.head);
            client.responded = true;
            *resp = Resp::Streaming {
                framing: start.framing,
                close: start.close,
            };
        }
        Downstream::Body(bytes) => {
            if let Resp::Streaming { framing, .. } = *resp {
                out.extend_from_slice(&encode_body(framing, bytes));
            }
        }
        Downstream::End => {
            if let Resp::Streaming { framing, close } = *resp {
                out.extend_from_slice(&encode_end(framing));
                *resp = Resp::Done { close };
            }
        }
        Downstream::Abort => {
            // Bytes already released still go out; the end-of-body marker never does.
            *resp = Resp::Cut;
        }
    }
}

async fn flush(
    client: &mut Client,
    out: &mut BytesMut,
    stall: std::time::Duration,
    client_gone: &mut bool,
    stalled: &mut bool,
) {
    match client.write_all(out, stall).await {
        Ok(()) => {}
        Err(WriteError::Gone) => *client_gone = true,
        Err(WriteError::Stalled) => *stalled = true,
    }
    out.clear();
}
