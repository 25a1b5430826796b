//! SQLite storage of agent-cli-proxy (`control.md` §2–§4): schema and migrations, the writer
//! thread with group commit, read-only readers, boot recovery, queries and backup. No async
//! runtime: both shells link it unchanged.
//!
//! * [`Store`]: the synchronous API over one connection (open, [`Store::migrate`], every
//!   query, [`Store::execute`] of one command in its own transaction). The CLI and the tests
//!   use it directly.
//! * [`Writer::spawn`] starts the `acp-sqlite-writer` thread; [`WriterHandle::send`] awaits a
//!   command's reply (after `COMMIT`), [`WriterHandle::try_send`] fires and forgets.
//! * [`Readers`]: up to four read-only connections for admin queries, `/metrics`, `/ready`;
//!   call them from blocking threads.
//! * [`DbLock`]: the `<DB_PATH>.lock` advisory lock.
//! * [`backup()`]: `db backup`.
//! * Costing is the caller's: finalize commands carry computed costs; boot recovery,
//!   shutdown finalize and backfill re-cost rows through a [`Recoster`], in production the
//!   [`CoreRecoster`] over the core's pricer (held in a swappable [`SharedPricer`]).
//!
//! Timestamps written into rows are arguments (ISO-8601 strings the caller formats from its
//! wall clock); only SQLite column defaults (`created_at`, `calc_at`, `applied_at`) come from
//! SQLite's clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod apply;
pub mod backfill;
pub mod backup;
pub mod conn;
pub mod daily;
pub mod error;
pub mod from_core;
pub mod ingest;
pub mod lock;
pub mod op;
pub mod queries;
pub mod readers;
pub mod recost;
pub mod schema;
pub mod spool;
mod store;
pub mod writer;

pub use apply::lifecycle::usage_convention;
pub use apply::{hash_key, normalize_list, parse_list};
pub use backfill::{BackfillFlight, BackfillOptions, BackfillWalk, run_backfill};
pub use backup::{BackupError, BackupReport, backup};
pub use conn::{ConnOptions, DbPath, PragmaReport};
pub use error::{StorageError, StorageFailure};
pub use lock::{DbLock, LockError};
pub use op::{
    AuditInfo, BackfillChunk, BackfillCounts, ChunkOutcome, Correlation, CostStatus, CreatedApiKey,
    FailureOp, FinalizeRow, NewApiKey, Op, PreLogRow, QuotaSnapshotRow, RecostResult, RecostRow,
    Recoster, Reply, SharedRecoster, Terminal,
};
pub use queries::Queries;
pub use readers::Readers;
pub use recost::{CoreRecoster, SharedPricer};
pub use schema::{Layout, MigrationReport};
pub use store::Store;
pub use writer::{
    Command, CommandQueue, PendingReply, Spooled, Writer, WriterConfig, WriterHandle, WriterStats,
};
