//! The control-plane HTTP client: `/ready`'s upstream probe, `doctor`, the pricing fetch
//! (following at most 5 redirects) and the correlator's and quota probes' calls. hyper over
//! tokio TCP (keep-alive pooled, TCP_NODELAY), rustls with the platform's root certificates
//! for `https`. Proxied calls go through `upconn.rs` instead, which holds less memory per
//! open stream.

use agent_cli_proxy_cli::daemon::correlator::Hop;
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The shared upstream client.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Upstream {
    /// Builds the client. Falls back to plain HTTP only when the platform has no usable root
    /// store (then `https` upstreams fail their handshake with a TLS error).
    pub fn new() -> Upstream {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let https = match builder.with_native_roots() {
            Ok(b) => b.https_or_http().enable_http1().wrap_connector(http),
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(
                    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .with_safe_default_protocol_versions()
                    .map(|b| {
                        b.with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth()
                    })
                    .unwrap_or_else(|_| {
                        rustls::ClientConfig::builder()
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth()
                    }),
                )
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(https);
        Upstream { client }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::new()
    }
}

fn chain_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Upstream {
    /// A bodiless probe (`/ready`'s `HEAD <url>/health`, `doctor`): the status or the error.
    pub async fn probe(&self, method: http::Method, url: &str) -> Result<u16, String> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(request)
            .await
            .map_err(|e| chain_text(&e))?;
        Ok(resp.status().as_u16())
    }
}

/// Largest management or quota answer read (the legacy usage snapshot can be large).
const MAX_LOOP_BODY: usize = 33_554_432;

impl agent_cli_proxy_cli::daemon::correlator::HttpGet for Upstream {
    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: std::time::Duration,
    ) -> agent_cli_proxy_cli::daemon::correlator::BoxFuture<'_, Result<(u16, Vec<u8>), String>>
    {
        let mut builder = hyper::Request::builder().method(http::Method::GET).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("invalid request: {e}"));
        Box::pin(async move {
            let request = request?;
            let call = async {
                let resp = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| chain_text(&e))?;
                let status = resp.status().as_u16();
                // Error bodies are drained too (and never logged), so the connection is
                // reusable.
                let limited = http_body_util::Limited::new(resp.into_body(), MAX_LOOP_BODY);
                let body = http_body_util::BodyExt::collect(limited)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((status, body.to_bytes().to_vec()))
            };
            tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| format!("timed out after {}ms", timeout.as_millis()))?
        })
    }

    fn get_hop(
        &self,
        url: &str,
        max: usize,
        timeout: std::time::Duration,
    ) -> agent_cli_proxy_cli::daemon::correlator::BoxFuture<'_, Result<Hop, String>> {
        let request = hyper::Request::builder()
            .uri(url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string());
        Box::pin(async move {
            let request = request?;
            let call = async {
                let resp = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| chain_text(&e))?;
                let status = resp.status();
                if status.is_redirection() {
                    let location = resp
                        .headers()
                        .get(http::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    return Ok(Hop::Redirect { status, location });
                }
                if !status.is_success() {
                    return Ok(Hop::Status(status));
                }
                let limited = http_body_util::Limited::new(resp.into_body(), max);
                let body = http_body_util::BodyExt::collect(limited)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Hop::Body(body.to_bytes().to_vec()))
            };
            tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| format!("timed out after {}ms", timeout.as_millis()))?
        })
    }

    fn run_blocking(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> agent_cli_proxy_cli::daemon::correlator::BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(job).await;
        })
    }
}
