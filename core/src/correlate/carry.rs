//! What the correlator holds between ticks (`control.md` §8.3, "Carry-over"). The queue's
//! reads are destructive: once CLIProxyAPI has answered, the records exist nowhere else. So
//! every record the queue handed over stays here until a write confirms it, or until the
//! lookback has passed (then no row could take it any more).
//!
//! * `unassigned`: queue records no row has taken yet, in fetch order. A record whose row is
//!   not written yet (the router finished first) or a tick that stopped before matching
//!   leaves them here; the next tick offers them again.
//! * `unconfirmed`: pairings made but not confirmed by the writer (the database refused the
//!   write, or the tick stopped before the reply). The next tick writes the same pairing
//!   again. The write only touches a row whose account is still empty (§8.4), so a write
//!   that did commit before its reply was lost changes nothing the second time: a record is
//!   never applied twice, and never offered to another row.

use super::{Assignment, DetailKey, MAX_DETAILS, UpstreamDetail, parse_timestamp};
use crate::time::UnixMillis;

/// Records held between ticks; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Carry {
    unassigned: Vec<UpstreamDetail>,
    unconfirmed: Vec<(Assignment, UnixMillis)>,
}

/// Records the correlator holds and has not applied (for the shutdown log and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unapplied {
    /// Popped from the queue, not matched to a row yet.
    pub unmatched: u64,
    /// Matched to a row, the write not confirmed.
    pub unconfirmed: u64,
}

impl Unapplied {
    /// Both counts together.
    pub fn total(&self) -> u64 {
        self.unmatched + self.unconfirmed
    }
}

/// What [`Carry::expire`] forgot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expired {
    /// Unmatched records older than the lookback.
    pub unmatched: u64,
    /// Pairings no write confirmed within the lookback.
    pub unconfirmed: u64,
}

impl Carry {
    /// Holds records a queue call returned; returns how many of the oldest had to be let go
    /// because more than [`MAX_DETAILS`] would be held (the matcher would cut them anyway).
    pub fn keep(&mut self, records: Vec<UpstreamDetail>) -> u64 {
        self.unassigned.extend(records);
        let extra = self.unassigned.len().saturating_sub(MAX_DETAILS);
        self.unassigned.drain(..extra);
        extra as u64
    }

    /// Takes the unmatched records out for a matching pass.
    pub fn take_unassigned(&mut self) -> Vec<UpstreamDetail> {
        std::mem::take(&mut self.unassigned)
    }

    /// Puts back the records the matching pass left unused (fetch order kept).
    pub fn restore_unassigned(&mut self, records: Vec<UpstreamDetail>) {
        let newer = std::mem::replace(&mut self.unassigned, records);
        self.unassigned.extend(newer);
    }

    /// Remembers a pairing until a write confirms it or `until` passes.
    pub fn track(&mut self, assignment: Assignment, until: UnixMillis) {
        self.unconfirmed.push((assignment, until));
    }

    /// A write of the pairing (`row_id`, `key`) returned: the record is applied (or the row
    /// already had its account). False when no such pairing was held.
    pub fn confirm(&mut self, row_id: i64, key: &DetailKey) -> bool {
        let before = self.unconfirmed.len();
        self.unconfirmed
            .retain(|(a, _)| !(a.row_id == row_id && &a.key == key));
        self.unconfirmed.len() != before
    }

    /// Rows with an unconfirmed pairing.
    pub fn rows_waiting(&self) -> std::collections::BTreeSet<i64> {
        self.unconfirmed.iter().map(|(a, _)| a.row_id).collect()
    }

    /// The pairings to write again, oldest first.
    pub fn unconfirmed(&self) -> Vec<Assignment> {
        self.unconfirmed.iter().map(|(a, _)| a.clone()).collect()
    }

    /// Forgets unmatched records older than `oldest` (or without a readable time) and
    /// pairings whose time ran out at `now`.
    pub fn expire(&mut self, now: UnixMillis, oldest: UnixMillis) -> Expired {
        let (records, pairings) = (self.unassigned.len(), self.unconfirmed.len());
        self.unassigned
            .retain(|d| parse_timestamp(&d.timestamp).is_some_and(|t| t >= oldest));
        self.unconfirmed.retain(|(_, until)| *until > now);
        Expired {
            unmatched: (records - self.unassigned.len()) as u64,
            unconfirmed: (pairings - self.unconfirmed.len()) as u64,
        }
    }

    /// What is held and not applied.
    pub fn unapplied(&self) -> Unapplied {
        Unapplied {
            unmatched: self.unassigned.len() as u64,
            unconfirmed: self.unconfirmed.len() as u64,
        }
    }
}
