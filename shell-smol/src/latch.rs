//! A one-way broadcast flag: fired once, every current and later waiter sees it. Used for
//! "stop accepting", "close idle connections", "abort live exchanges" and "stop the
//! loops", where tokio's shell uses `watch` channels.

use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

/// A flag that is set once and wakes everyone waiting on it.
#[derive(Default)]
pub struct Latch {
    fired: AtomicBool,
    event: Event,
}

impl Latch {
    /// Sets the flag and wakes every waiter.
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.event.notify(usize::MAX);
    }

    /// True once fired.
    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Completes once the flag is set (at once if it already is).
    pub async fn wait(&self) {
        loop {
            if self.is_fired() {
                return;
            }
            // Listen before the second check, so a fire in between is not missed.
            let listener = self.event.listen();
            if self.is_fired() {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_returns_after_fire_and_at_once_when_already_fired() {
        let latch = std::sync::Arc::new(Latch::default());
        assert!(!latch.is_fired());
        let l = std::sync::Arc::clone(&latch);
        let t = std::thread::spawn(move || futures_lite::future::block_on(l.wait()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        latch.fire();
        t.join().unwrap();
        futures_lite::future::block_on(latch.wait());
        assert!(latch.is_fired());
    }
}
