//! Opening a connection from `DATABASE_URL` (`docs/replicas.md` §1).

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};

use crate::error::PgError;

/// True when `url` names PostgreSQL (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Connects without TLS. `sslmode=require` is refused with a clear error rather than
/// silently downgraded: TLS through rustls is not wired yet (`docs/replicas.md`, Status).
pub fn connect(url: &str) -> Result<Client, PgError> {
    Ok(parse(url)?.connect(NoTls)?)
}

/// Parses and checks `url` without connecting.
pub fn parse(url: &str) -> Result<Config, PgError> {
    // The parser's messages name the bad option, never the value, so the password stays out.
    let config: Config = url
        .parse()
        .map_err(|e: postgres::Error| PgError::Config(e.to_string()))?;
    match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer => {}
        _ => {
            return Err(PgError::Config(
                "sslmode=require is not supported yet; use sslmode=disable or prefer \
                 (TLS to PostgreSQL is planned, docs/replicas.md Status)"
                    .to_owned(),
            ));
        }
    }
    Ok(config)
}
