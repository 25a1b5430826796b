//! The TLS client configuration of both shells' upstream clients: rustls with the ring
//! provider, the platform's root certificates and HTTP/1.1 by ALPN.

use std::sync::{Arc, OnceLock};

/// The process's one client configuration, loaded on the first `https` request, which keeps
/// an `http`-only daemon's memory small.
pub fn shared() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| Arc::new(client_config())))
}

/// Loads the platform root store (slow: call once, on the first `https` request). A root
/// store that cannot be read leaves it empty, and `https` upstreams then fail their handshake
/// with a certificate error rather than the daemon failing to start.
pub fn client_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
        Err(_) => rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_only_http11_by_alpn() {
        assert_eq!(client_config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
