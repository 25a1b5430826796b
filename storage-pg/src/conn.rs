//! Opening a connection from `DATABASE_URL` (`docs/replicas.md` §1).
//!
//! TLS goes through rustls (ring), like the rest of the product. `sslmode`:
//!
//! * `disable`, `prefer` (the default): no TLS. `prefer` does not try TLS: an attempt that
//!   verifies nothing would protect nothing, and one that verifies would break servers that
//!   libpq's `prefer` accepts. Ask for `require` or `verify-full` to get TLS.
//! * `require`, `verify-full`: TLS, and the server's certificate is verified against the
//!   platform's roots plus `sslrootcert` (a PEM file), host name included. Unlike libpq,
//!   `require` verifies too: unverified TLS is not offered.
//! * `verify-ca` (chain without host name) is refused: use `verify-full`.
//!
//! The `postgres` crate knows neither `verify-full` nor `sslrootcert`, so both are taken out
//! of the URL here before it parses the rest.

use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::PgError;

/// How long opening a session may take when `DATABASE_URL` sets no `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// True when `url` names PostgreSQL (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// A parsed `DATABASE_URL`: the driver's settings and the TLS to use.
#[derive(Clone)]
pub struct Target {
    config: Config,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config's own Debug redacts the password; the hosts and names are not secret.
        f.debug_struct("Target")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// Opens a session.
    pub fn connect(&self) -> Result<Client, PgError> {
        Ok(match &self.tls {
            None => self.config.connect(NoTls)?,
            Some(tls) => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    (**tls).clone(),
                ))?,
        })
    }

    /// True when sessions use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Parses `url` (libpq URL or key=value syntax) and builds its TLS settings; the messages
/// never quote the URL, which may hold a password.
pub fn parse(url: &str) -> Result<Target, PgError> {
    let (rest, mode, rootcert) = take_tls_options(url)?;
    let mut config: Config = rest
        .parse()
        .map_err(|e: postgres::Error| PgError::Config(e.to_string()))?;
    // Without a bound the driver waits as long as the OS does for an unreachable host, and
    // `/ready` or a pooled read would hang with it; a URL's own `connect_timeout` wins.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let tls = match mode.as_deref() {
        None | Some("disable") | Some("prefer") => {
            config.ssl_mode(SslMode::Disable);
            None
        }
        Some("require") | Some("verify-full") => {
            config.ssl_mode(SslMode::Require);
            Some(Arc::new(tls_config(rootcert.as_deref())?))
        }
        Some("verify-ca") => {
            return Err(PgError::Config(
                "sslmode=verify-ca is not supported: use sslmode=verify-full".to_owned(),
            ));
        }
        Some(other) => {
            return Err(PgError::Config(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-full"
            )));
        }
    };
    Ok(Target { config, tls })
}

/// Connects to `url`.
pub fn connect(url: &str) -> Result<Client, PgError> {
    parse(url)?.connect()
}

fn tls_config(rootcert: Option<&str>) -> Result<rustls::ClientConfig, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    // An unreadable platform store leaves only `sslrootcert`; the handshake then says which
    // certificate it could not verify.
    let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = rootcert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| PgError::Config(format!("sslrootcert {path}: {e}")))?;
        if certs.is_empty() {
            return Err(PgError::Config(format!(
                "sslrootcert {path}: no certificate in the file"
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| PgError::Config(format!("sslrootcert {path}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Config(format!("TLS: {e}")))?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Splits `sslmode` and `sslrootcert` off `url`; returns the rest for the driver.
fn take_tls_options(url: &str) -> Result<(String, Option<String>, Option<String>), PgError> {
    let mut mode = None;
    let mut rootcert = None;
    if is_postgres_url(url) {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = Some(percent_decode(v)?),
                Some(("sslrootcert", v)) => rootcert = Some(percent_decode(v)?),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, mode, rootcert));
    }
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => mode = Some(unquoted(v)?),
            Some(("sslrootcert", v)) => rootcert = Some(unquoted(v)?),
            _ => kept.push(word),
        }
    }
    Ok((kept.join(" "), mode, rootcert))
}

fn unquoted(v: &str) -> Result<String, PgError> {
    if v.contains(['\'', '\\']) {
        return Err(PgError::Config(
            "quoted sslmode or sslrootcert values are not supported; write them bare".to_owned(),
        ));
    }
    Ok(v.to_owned())
}

fn percent_decode(v: &str) -> Result<String, PgError> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgError::Config("bad percent escape in an ssl option".to_owned()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgError::Config("ssl option is not UTF-8".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_taken_out_of_both_syntaxes() {
        let (rest, mode, root) = take_tls_options(
            "postgres://u:pw@db:5432/app?application_name=acp&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:pw@db:5432/app?application_name=acp");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (rest, mode, root) =
            take_tls_options("host=/run/postgresql dbname=app sslmode=require").unwrap();
        assert_eq!(rest, "host=/run/postgresql dbname=app");
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(root, None);
        let (rest, mode, _) = take_tls_options("postgresql://h/db").unwrap();
        assert_eq!((rest.as_str(), mode), ("postgresql://h/db", None));
    }

    #[test]
    fn connecting_is_bounded_unless_the_url_says_otherwise() {
        let target = parse("postgres://h/db").unwrap();
        assert_eq!(target.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let target = parse("postgres://h/db?connect_timeout=2").unwrap();
        assert_eq!(
            target.config.get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
    }

    #[test]
    fn modes_map_to_tls_or_not() {
        assert!(!parse("postgres://h/db").unwrap().uses_tls());
        assert!(!parse("postgres://h/db?sslmode=prefer").unwrap().uses_tls());
        assert!(parse("postgres://h/db?sslmode=require").unwrap().uses_tls());
        assert!(parse("host=h sslmode=verify-full").unwrap().uses_tls());
        for bad in ["verify-ca", "allow", "bogus"] {
            let err = parse(&format!("postgres://u:hunter2@h/db?sslmode={bad}")).unwrap_err();
            assert!(matches!(err, PgError::Config(_)), "{err:?}");
            assert!(!err.to_string().contains("hunter2"));
        }
        let err =
            parse("postgres://h/db?sslmode=require&sslrootcert=/nonexistent.pem").unwrap_err();
        assert!(err.to_string().contains("/nonexistent.pem"), "{err}");
    }
}
