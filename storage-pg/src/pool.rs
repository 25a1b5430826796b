//! [`PgReaders`]: the admin reads', `/metrics`' and `/ready`'s connections, the PostgreSQL
//! counterpart of the SQLite storage's `Readers`: at most `max` sessions over one URL,
//! opened on first use, lent to one caller at a time.
//!
//! * Nothing is connected by [`PgReaders::new`]: a daemon starts (and `/ready` says why not)
//!   while the server is away.
//! * At checkout a closed session is reopened, and one idle for [`IDLE_CHECK`] is pinged
//!   first: after a server restart a pooled session looks open until it is used, and without
//!   the ping every pooled session would fail one caller's read before being replaced.
//! * A session that is closed after the caller's read (the server went away during it) is
//!   dropped, not returned; its slot is freed for a new one.
//! * Opening is bounded by the connect timeout (`conn::CONNECT_TIMEOUT` unless the URL sets
//!   one), so a caller never waits forever for a server that does not answer.
//!
//! Blocking: call it from blocking threads, as the SQLite readers.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agent_cli_proxy_storage::StorageError;

use crate::PgStore;
use crate::conn::{self, Target};
use crate::error::PgError;

/// A session idle this long is pinged before it is lent.
pub const IDLE_CHECK: Duration = Duration::from_secs(2);

/// A cloneable pool of at most `max` [`PgStore`]s over one URL.
#[derive(Clone)]
pub struct PgReaders {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReaders")
            .field("max", &self.inner.max)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Holds the password: never printed (`Target`'s `Debug` leaves it out).
    target: Target,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    /// Sessions not lent, with when they were last returned.
    idle: Vec<(PgStore, Instant)>,
    /// Sessions open or being opened, lent or idle.
    open: usize,
}

impl PgReaders {
    /// A pool of at most `max` sessions (at least one) over `url`; the URL is parsed now
    /// (a bad one is refused here), sessions are opened on first use.
    pub fn new(url: &str, max: usize) -> Result<PgReaders, PgError> {
        Ok(PgReaders {
            inner: Arc::new(Inner {
                target: conn::parse(url)?,
                max: max.max(1),
                state: Mutex::new(State {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
            }),
        })
    }

    /// Runs `f` on a session, waiting for one when all `max` are lent. A session that cannot
    /// be opened answers [`StorageError::Server`] without running `f`.
    ///
    /// If `f` panics, the panic propagates and the session is closed rather than returned
    /// (it may be inside a transaction); its slot is freed.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut PgStore) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let mut lent = Lent {
            pool: self,
            store: None,
        };
        f(lent.store.insert(self.checkout()?))
    }

    /// Sessions open now (idle or lent), for tests and metrics.
    pub fn open_connections(&self) -> usize {
        self.lock().open
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The pool never panics while holding the lock; a poisoned lock still holds
        // consistent counts.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn checkout(&self) -> Result<PgStore, PgError> {
        let mut state = self.lock();
        loop {
            if let Some((store, since)) = state.idle.pop() {
                drop(state);
                return self.revive(store, since);
            }
            if state.open < self.inner.max {
                state.open += 1;
                drop(state);
                let opened = PgStore::connect_to(self.inner.target.clone());
                if opened.is_err() {
                    self.release_slot();
                }
                return opened;
            }
            state = self
                .inner
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// An idle session made usable: pinged when it has been idle a while, reopened when it
    /// is (or turned out) closed. On failure its slot is freed.
    fn revive(&self, mut store: PgStore, since: Instant) -> Result<PgStore, PgError> {
        match store.revive(since.elapsed()) {
            Ok(()) => Ok(store),
            Err(e) => {
                drop(store);
                self.release_slot();
                Err(e)
            }
        }
    }

    fn release_slot(&self) {
        self.lock().open -= 1;
        self.inner.freed.notify_one();
    }
}

/// A lent session; returns it to the pool (or frees its slot) when dropped, also when the
/// caller's closure unwinds.
struct Lent<'a> {
    pool: &'a PgReaders,
    store: Option<PgStore>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(mut store) = self.store.take() else {
            return;
        };
        if std::thread::panicking() || store.client().is_closed() {
            drop(store);
            self.pool.release_slot();
            return;
        }
        self.pool.lock().idle.push((store, Instant::now()));
        self.pool.inner.freed.notify_one();
    }
}
