//! The idle upstream connections both shells' clients keep for reuse, per authority. Only
//! the bookkeeping lives here; whether a connection is still usable is the shell's question
//! (a non-blocking peek on its socket).
//!
//! Limits (the values hyper's pool was given in the tokio build before its data path moved to
//! the core's codec): an idle connection is reused for at most 90 s, and at most 64 are kept
//! per authority; more are closed as they come back.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long an idle connection may be reused.
pub const POOL_IDLE: Duration = Duration::from_secs(90);
/// Most idle connections kept per authority.
pub const POOL_MAX_PER_KEY: usize = 64;

/// Idle connections of type `C`, keyed by scheme, host and port.
pub struct IdlePool<C> {
    idle: Mutex<BTreeMap<String, Vec<(Instant, C)>>>,
}

impl<C> Default for IdlePool<C> {
    fn default() -> Self {
        IdlePool {
            idle: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<C> IdlePool<C> {
    /// The most recently returned connection for `key` that is young enough and for which
    /// `usable` holds; the ones passed over are closed (dropped).
    pub fn checkout(&self, key: &str, usable: impl Fn(&C) -> bool) -> Option<C> {
        let mut idle = self.lock();
        let list = idle.get_mut(key)?;
        while let Some((since, conn)) = list.pop() {
            if since.elapsed() < POOL_IDLE && usable(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse, unless the authority already has its fill.
    pub fn checkin(&self, key: String, conn: C) {
        let mut idle = self.lock();
        let list = idle.entry(key).or_default();
        list.retain(|(since, _)| since.elapsed() < POOL_IDLE);
        if list.len() < POOL_MAX_PER_KEY {
            list.push((Instant::now(), conn));
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<(Instant, C)>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_latest_usable_connection_of_its_authority() {
        let pool = IdlePool::default();
        pool.checkin("http://a:80".to_owned(), 1);
        pool.checkin("http://a:80".to_owned(), 2);
        pool.checkin("http://b:80".to_owned(), 3);
        assert_eq!(pool.checkout("http://a:80", |_| true), Some(2));
        // A connection that is no longer usable is dropped and the next one tried.
        pool.checkin("http://a:80".to_owned(), 4);
        assert_eq!(pool.checkout("http://a:80", |c| *c != 4), Some(1));
        assert_eq!(pool.checkout("http://a:80", |_| true), None);
        assert_eq!(pool.checkout("http://c:80", |_| true), None);
        assert_eq!(pool.checkout("http://b:80", |_| true), Some(3));
    }

    #[test]
    fn keeps_at_most_its_fill_per_authority() {
        let pool = IdlePool::default();
        for i in 0..POOL_MAX_PER_KEY + 5 {
            pool.checkin("k".to_owned(), i);
        }
        let mut n = 0;
        while pool.checkout("k", |_| true).is_some() {
            n += 1;
        }
        assert_eq!(n, POOL_MAX_PER_KEY);
    }
}
