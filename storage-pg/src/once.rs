//! Work that must run on one replica at a time (`docs/replicas.md` §5): the correlator,
//! quota refresh, quota retention and cost backfill. Each loop holds a dedicated session
//! and takes `pg_try_advisory_lock(<loop key>)` before a tick; a replica that does not get
//! it skips the tick (`standby`). The lock lives as long as the session, so when the holder
//! dies its session ends, the server releases the lock, and another replica takes the loop
//! at its next tick.

use postgres::Client;

use crate::conn::Target;

use crate::error::PgError;

/// Advisory-lock keys of the loops: ASCII tags, fixed forever so that replicas of different
/// versions exclude each other (and distinct from the migration key).
pub mod keys {
    /// The CLIProxyAPI correlator (its queue read is destructive).
    pub const CORRELATOR: i64 = 0x0061_6370_636f_7272;
    /// Quota refresh.
    pub const QUOTA_REFRESH: i64 = 0x0061_6370_7172_6566;
    /// Quota retention.
    pub const QUOTA_RETENTION: i64 = 0x0061_6370_7172_6574;
    /// Cost backfill.
    pub const BACKFILL: i64 = 0x0061_6370_6266_696c;
}

/// A loop's claim on its lock, over its own session.
pub struct LoopLock {
    target: Target,
    client: Option<Client>,
    key: i64,
    held: bool,
}

impl std::fmt::Debug for LoopLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopLock")
            .field("key", &self.key)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl LoopLock {
    /// A claim on `key` over a session to `url`, opened lazily at the first tick.
    pub fn new(url: &str, key: i64) -> Result<LoopLock, PgError> {
        Ok(LoopLock {
            target: crate::conn::parse(url)?,
            client: None,
            key,
            held: false,
        })
    }

    /// Called before each tick: true when this replica holds the loop (taking it if free).
    /// A lost session means a lost lock: the next call reconnects and tries again, since
    /// another replica may have taken the loop meanwhile.
    pub fn try_acquire(&mut self) -> Result<bool, PgError> {
        if let Some(client) = &mut self.client
            && (client.is_closed() || client.simple_query("").is_err())
        {
            self.client = None;
            self.held = false;
        }
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(self.target.connect()?),
        };
        if self.held {
            return Ok(true);
        }
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.key])?
            .try_get(0)?;
        self.held = got;
        Ok(got)
    }

    /// True when the last [`try_acquire`](Self::try_acquire) found this replica the holder.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Gives the loop up (shutdown); closing the session would release it too.
    pub fn release(&mut self) -> Result<(), PgError> {
        if self.held
            && let Some(client) = &mut self.client
        {
            client.execute("SELECT pg_advisory_unlock($1)", &[&self.key])?;
        }
        self.held = false;
        Ok(())
    }
}
