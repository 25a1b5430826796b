//! The pool of read-only connections (`control.md` §3.1) for admin queries, `/metrics` and
//! `/ready`. Its own module because it lends [`Store`]s, and `store` opens its connections
//! through `conn`: inside `conn`, the two imported each other.

use std::sync::{Arc, Condvar, Mutex};

use crate::conn::{ConnOptions, DbPath, MAX_READERS, open_read};
use crate::error::StorageError;
use crate::store::Store;

/// A pool of up to [`MAX_READERS`] read-only connections, opened on demand.
///
/// The mutex only guards the idle list: a query runs with no lock held, so up to four reads
/// proceed in parallel and none waits on the writer thread. Call it from blocking threads
/// (`spawn_blocking`, `blocking::unblock`).
#[derive(Clone)]
pub struct Readers {
    inner: Arc<ReadersInner>,
}

struct ReadersInner {
    path: DbPath,
    opts: ConnOptions,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Store>,
    open: usize,
}

impl Readers {
    /// A pool over `path`; no connection is opened until the first read.
    pub fn new(path: DbPath, opts: ConnOptions) -> Readers {
        Readers::with_capacity(path, opts, MAX_READERS)
    }

    /// A pool holding at most `max` connections (at least one).
    pub fn with_capacity(path: DbPath, opts: ConnOptions, max: usize) -> Readers {
        Readers {
            inner: Arc::new(ReadersInner {
                path,
                opts,
                max: max.max(1),
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
            }),
        }
    }

    /// Runs `f` on a read-only [`Store`], waiting for a free connection when all are busy.
    ///
    /// If `f` panics, the panic propagates and the connection is closed rather than returned
    /// (it may be mid-statement); its slot is freed, so the pool never shrinks.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        // Declared before the store so that, when `f` unwinds, the connection closes first
        // and only then is its slot freed.
        let mut slot = Slot {
            pool: self,
            held: false,
        };
        let mut store = self.checkout()?;
        slot.held = true;
        let result = f(&mut store);
        slot.held = false;
        self.checkin(store);
        result
    }

    /// Connections open now (idle or lent), for tests and metrics.
    pub fn open_connections(&self) -> usize {
        self.lock_state().open
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // The pool's own code never panics while holding the lock; a poisoned lock still
        // holds consistent counts.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn checkout(&self) -> Result<Store, StorageError> {
        let inner = &self.inner;
        let mut state = self.lock_state();
        loop {
            if let Some(store) = state.idle.pop() {
                return Ok(store);
            }
            if state.open < inner.max {
                state.open += 1;
                drop(state);
                let opened = open_read(&inner.path, inner.opts).map(Store::from_connection);
                if opened.is_err() {
                    let mut state = self.lock_state();
                    state.open -= 1;
                    inner.freed.notify_one();
                }
                return opened;
            }
            state = inner
                .freed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn checkin(&self, store: Store) {
        self.lock_state().idle.push(store);
        self.inner.freed.notify_one();
    }
}

/// The slot of a lent connection: if the borrower unwinds, the connection is dropped with
/// its stack frame and this frees the slot it held.
struct Slot<'a> {
    pool: &'a Readers,
    held: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.held {
            let mut state = self.pool.lock_state();
            state.open = state.open.saturating_sub(1);
            drop(state);
            self.pool.inner.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::open_write;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_panicking_reader_does_not_leak_its_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = DbPath::File(dir.path().join("acp.db"));
        drop(open_write(&path, ConnOptions::default()).expect("create"));
        let readers = Readers::with_capacity(path, ConnOptions::default(), 1);
        for _ in 0..3 {
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                let _ = readers.with(|_| -> Result<(), StorageError> { panic!("boom") });
            }));
            assert!(panicked.is_err());
            assert_eq!(readers.open_connections(), 0);
        }
        // With the only slot leaked, this read would wait forever.
        let (tx, rx) = mpsc::channel();
        let pool = readers.clone();
        std::thread::spawn(move || {
            let _ = tx.send(pool.with(|s| s.ping()));
        });
        let result = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the pool still lends a connection");
        assert!(result.is_ok());
        assert_eq!(readers.open_connections(), 1);
    }

    #[test]
    fn connections_are_reused_up_to_the_capacity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = DbPath::File(dir.path().join("acp.db"));
        drop(open_write(&path, ConnOptions::default()).expect("create"));
        let readers = Readers::with_capacity(path, ConnOptions::default(), 2);
        for _ in 0..5 {
            readers.with(|s| s.ping()).expect("ping");
        }
        assert_eq!(readers.open_connections(), 1);
        readers
            .with(|_| readers.with(|s| s.ping()))
            .expect("nested read");
        assert_eq!(readers.open_connections(), 2);
    }
}
