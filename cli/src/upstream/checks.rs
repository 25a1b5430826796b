//! Expectations every shell's tests check against its own [`UpstreamIo`]: the client logic
//! is shared, but each runtime's sockets must report through it the same way.

use std::sync::Arc;

use agent_cli_proxy_core::errors::NetworkErrorName;
use agent_cli_proxy_core::exchange::{UpstreamFailure, UpstreamRequest};
use bytes::Bytes;
use http::{HeaderMap, Method};

use super::{UpstreamClient, UpstreamIo};

/// A request to a closed loopback port fails as a connect failure with nothing written (so
/// the core may retry it); `Err` says what happened instead.
pub async fn refused_connect<I: UpstreamIo>(client: Arc<UpstreamClient<I>>) -> Result<(), String> {
    // Port 9 on loopback is closed on any sane test machine.
    let req = UpstreamRequest {
        method: Method::POST,
        url: "http://127.0.0.1:9/v1/messages".to_owned(),
        headers: HeaderMap::new(),
        body: Bytes::from_static(b"{}"),
    };
    match client.send(req).await {
        Ok(_) => Err("connected to a closed port".to_owned()),
        Err(UpstreamFailure::Connect {
            name: NetworkErrorName::Connect,
            written: false,
            ..
        }) => Ok(()),
        Err(other) => Err(format!("unexpected {other:?}")),
    }
}
