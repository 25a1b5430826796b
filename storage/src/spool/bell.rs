//! Wakes the writer thread from any thread without blocking the caller: a flag under a mutex
//! and a condition variable. Ringing an already rung bell costs one uncontended lock.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

/// The writer thread's wake-up.
#[derive(Debug, Default)]
pub struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Doorbell {
    /// Wakes the waiting thread (or makes its next wait return at once).
    pub fn ring(&self) {
        let mut rung = self.rung.lock().unwrap_or_else(PoisonError::into_inner);
        if !*rung {
            *rung = true;
            self.cv.notify_one();
        }
    }

    /// Waits until rung or until `deadline`; consumes the ring.
    pub fn wait(&self, deadline: Option<Instant>) {
        let mut rung = self.rung.lock().unwrap_or_else(PoisonError::into_inner);
        while !*rung {
            match deadline {
                None => rung = self.cv.wait(rung).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    rung = self
                        .cv
                        .wait_timeout(rung, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        *rung = false;
    }
}
