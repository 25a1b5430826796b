//! One client connection: the request loop over the core's decoder with the connection
//! timers of `datapath.md` §1, and the routing of each request to health, readiness,
//! metrics, admin or the proxy.
//!
//! Timers, by what the decoder waits for ([`Waiting`]):
//! * `Idle` on a new connection: the header read timeout (a connection that never sends a
//!   byte is not "between requests", and holding it for the keep-alive idle time would
//!   make idle sockets cheap to pile up). `Idle` after a response: the keep-alive idle
//!   time. Either closes silently; so does the shutdown's "stop".
//! * `Head`: the header read timeout from the moment part of a head is buffered; closes
//!   silently, with no response.
//! * `Body`: the body idle time, reset by every body byte; 408 (E23) and close.
//!
//! A framing error answers its E24 reply and closes; pipelined requests are answered one
//! after another because the decoder releases the next head only after the response.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use agent_cli_proxy_cli::daemon::pipeline::{BodyUse, Handler, MAX_IGNORED_BODY, Plan, Respond};
use agent_cli_proxy_core::head::{Reply, RequestHead};
use agent_cli_proxy_core::http1::{RequestEvent, Waiting};
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::future;

use crate::downstream::{After, BodyError, Client};
use crate::proxy;
use crate::shared::Shared;

/// Serves one connection until it closes.
pub async fn serve(shared: Arc<Shared>, stream: Async<TcpStream>, peer: SocketAddr) {
    let limits = &shared.limits;
    let mut client = Client::new(stream, peer, limits.codec());
    let mut served_one = false;
    let mut head_deadline: Option<Instant> = None;
    loop {
        match client.decoder.decode(&mut client.buf) {
            Err(e) => {
                let reply = Respond::NO_REQUEST.framing_error(e.reply());
                if client.send_reply(reply, limits.write_stall).await == After::Close {
                    client.linger_close().await;
                }
                return;
            }
            Ok(Some(RequestEvent::Head(head, _framing))) => {
                head_deadline = None;
                served_one = true;
                if handle(&shared, &mut client, head).await == After::Close {
                    client.linger_close().await;
                    return;
                }
                client.response_done();
                if shared.stop_conns.is_fired() {
                    return;
                }
                continue;
            }
            // Body events are consumed by the request handlers; one here means the decoder
            // and this loop disagree, and the connection is not trusted further.
            Ok(Some(RequestEvent::Body(_) | RequestEvent::End)) => return,
            Ok(None) => {}
        }
        let (deadline, stoppable) = match client.decoder.waiting() {
            Waiting::Idle => {
                head_deadline = None;
                if shared.stop_conns.is_fired() {
                    return;
                }
                let wait = if served_one {
                    limits.keep_alive_idle
                } else {
                    limits.header_read_timeout
                };
                (Instant::now() + wait, true)
            }
            Waiting::Head => (
                *head_deadline.get_or_insert_with(|| Instant::now() + limits.header_read_timeout),
                false,
            ),
            Waiting::Body | Waiting::Response | Waiting::Closed => return,
        };
        let read = future::or(async { Some(client.fill().await) }, async {
            let stop = async {
                if stoppable {
                    shared.stop_conns.wait().await;
                } else {
                    future::pending::<()>().await;
                }
            };
            future::or(stop, async {
                Timer::at(deadline).await;
            })
            .await;
            None
        })
        .await;
        match read {
            Some(Ok(_)) => {}
            // Timed out, stopped, or the socket failed: close without a response.
            Some(Err(_)) | None => return,
        }
    }
}

/// Counts a request as in flight for the shutdown drain while alive.
pub struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    /// Starts counting.
    pub fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Handles one request to the end of its response.
async fn handle(shared: &Arc<Shared>, client: &mut Client, head: RequestHead) -> After {
    let _in_flight = InFlight::new(&shared.in_flight);
    let limits = &shared.limits;
    let peer = client.peer.ip();
    let (plan, respond) = shared.daemon.plan(head, peer);
    let reply = match plan {
        Plan::Proxy(head) => return proxy::handle(shared, client, head, peer, respond).await,
        Plan::Reply(r) => ignore_body(client, limits, respond).await.map(|()| r),
        Plan::Ready(ready) => match ignore_body(client, limits, respond).await {
            Ok(()) => Ok(ready
                .answer(&shared.ready, &shared.daemon, &shared.upstream)
                .await),
            Err(r) => Err(r),
        },
        Plan::Handler(h) => answer(shared, client, h, respond).await,
    };
    match reply {
        Ok(r) | Err(Some(r)) => client.send_reply(r, limits.write_stall).await,
        Err(None) => After::Close,
    }
}

/// Reads the body a handler wants, then answers on the blocking pool.
async fn answer(
    shared: &Arc<Shared>,
    client: &mut Client,
    handler: Handler,
    respond: Respond,
) -> Result<Reply, Option<Reply>> {
    let body = match handler.body {
        BodyUse::Ignore => {
            ignore_body(client, &shared.limits, respond).await?;
            Bytes::new()
        }
        BodyUse::Read(limit) => {
            match client.read_body(limit, true, shared.limits.body_idle).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => return Ok(handler.too_large()),
                Err(e) => return Err(e.reply(respond, limit)),
            }
        }
    };
    let s = Arc::clone(shared);
    Ok(blocking::unblock(move || handler.answer(&s.daemon, &body)).await)
}

/// Reads and drops a body nobody needs, so the connection can be kept alive. A body over
/// [`MAX_IGNORED_BODY`] is not read further: the response then closes the connection.
async fn ignore_body(
    client: &mut Client,
    limits: &crate::shared::Limits,
    respond: Respond,
) -> Result<(), Option<Reply>> {
    match client
        .read_body(MAX_IGNORED_BODY, false, limits.body_idle)
        .await
    {
        Ok(_) => Ok(()),
        Err(crate::downstream::BodyError::TooLarge) => Ok(()),
        Err(e) => Err(e.reply(respond, MAX_IGNORED_BODY)),
    }
}
