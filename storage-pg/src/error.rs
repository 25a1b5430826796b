//! Errors of the PostgreSQL backend.

/// Why a PostgreSQL operation failed. The connection URL never appears in a message: it may
/// carry a password (`docs/replicas.md` §1).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server or the connection refused a statement.
    #[error("postgres: {}", describe(.0))]
    Postgres(#[from] postgres::Error),
    /// A named migration failed; it was rolled back as a whole.
    #[error("postgres migration {name} failed: {}", describe(.source))]
    Migration {
        /// The migration's name.
        name: &'static str,
        /// The server's answer.
        source: postgres::Error,
    },
    /// `DATABASE_URL` cannot be used (syntax, or a setting not supported yet).
    #[error("DATABASE_URL: {0}")]
    Config(String),
    /// A storage command this backend does not apply (yet); names it.
    #[error("{0} is not supported on PostgreSQL yet")]
    Unsupported(&'static str),
    /// `db copy` refused or found a difference (the target was left as it was).
    #[error("db copy: {0}")]
    Copy(String),
    /// The spool could not be opened or read.
    #[error("spool: {0}")]
    Spool(String),
    /// The schema lacks columns or indexes the queries rely on.
    #[error("postgres schema is missing {}", missing.join(", "))]
    SchemaAssertion {
        /// `table.column` or `index.name`, in check order.
        missing: Vec<String>,
    },
}

/// The server's message and SQLSTATE, or the client's error with its cause. The `DETAIL`
/// line is left out: it can quote row values.
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The daemon sees one error type whichever backend answers: a PostgreSQL failure becomes
/// [`StorageError::Server`](agent_cli_proxy_storage::StorageError::Server) with this
/// crate's message, which never carries the URL.
impl From<PgError> for agent_cli_proxy_storage::StorageError {
    fn from(e: PgError) -> Self {
        agent_cli_proxy_storage::StorageError::Server {
            message: e.to_string(),
        }
    }
}
