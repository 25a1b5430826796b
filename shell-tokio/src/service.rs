//! One HTTP request: carries out the shared pipeline's plan for it
//! (`agent_cli_proxy_cli::daemon::pipeline`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use agent_cli_proxy_cli::daemon::pipeline::{BodyUse, Handler, Plan};
use agent_cli_proxy_core::head::{Reply, RequestHead};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{Cut, RespBody};
use crate::proxy;
use crate::respond::{Outgoing, response_of_reply};
use crate::shared::Shared;

/// Handles one request. `Err` makes hyper close the connection without a response.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<RespBody>, Cut> {
    shared.in_flight.fetch_add(1, Ordering::AcqRel);
    let _guard = InFlight(&shared);
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let head = RequestHead::new(parts.method, &target, parts.headers);
    let (plan, respond) = shared.daemon.plan(head, peer.ip());
    let outgoing = match plan {
        // hyper reads and drops a body nobody took.
        Plan::Reply(r) => reply(r),
        Plan::Ready(r) => reply(
            r.answer(&shared.ready, &shared.daemon, &shared.upstream)
                .await,
        ),
        Plan::Handler(h) => reply(answer(&shared, h, body).await),
        Plan::Proxy(head) => proxy::handle(&shared, head, body, peer.ip(), respond).await,
    };
    match outgoing {
        Outgoing::Response(r) => Ok(r),
        Outgoing::Close => Err(Cut),
    }
}

/// Reads the body a handler wants, then answers on the blocking pool.
async fn answer(shared: &Arc<Shared>, handler: Handler, body: Incoming) -> Reply {
    let body = match handler.body {
        BodyUse::Ignore => Bytes::new(),
        BodyUse::Read(limit) => {
            match http_body_util::Limited::new(body, limit as usize)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => return handler.too_large(),
            }
        }
    };
    let failed = handler.failed();
    let s = Arc::clone(shared);
    tokio::task::spawn_blocking(move || handler.answer(&s.daemon, &body))
        .await
        .unwrap_or(failed)
}

struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.drained.notify_waiters();
    }
}

fn reply(r: Reply) -> Outgoing {
    Outgoing::Response(response_of_reply(r))
}
