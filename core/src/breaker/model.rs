//! The reference model of the breaker (CI-4, fuzz target `breaker_ops`) and the checker that
//! runs an operation sequence through both the model and [`BreakerSet`], comparing every
//! answer and every snapshot and checking the invariants of §12.3 on the way.
//!
//! The model is written for reading, not speed: plain `u64` microseconds, states as small
//! integers, the rules of §12.3 one line each.

use std::collections::BTreeMap;

use super::{BreakerConfig, BreakerSet, BreakerSnapshot, BreakerState, OutcomeClass, Permit};
use crate::time::{Instant, UnixMillis};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF: u8 = 2;

#[derive(Debug, Clone, Copy)]
struct M {
    state: u8,
    failures: u32,
    opened: Option<u64>,
    last: u64,
    probe: Option<u64>,
}

/// The reference model: the §12.3 rules over `u64` microseconds.
#[derive(Debug, Clone)]
pub struct Model {
    cfg: BreakerConfig,
    now: u64,
    last_evict: Option<u64>,
    next: u64,
    map: BTreeMap<String, M>,
}

impl Model {
    /// An empty model.
    pub fn new(cfg: BreakerConfig) -> Self {
        Model {
            cfg,
            now: 0,
            last_evict: None,
            next: 0,
            map: BTreeMap::new(),
        }
    }

    /// Admission: `Ok(probe number)` or `Err(retry_after_secs)`.
    pub fn admit(&mut self, id: &str, now: u64) -> Result<Option<u64>, u64> {
        self.now = self.now.max(now);
        let (now, window, idle) = (
            self.now,
            self.cfg.half_open_after_ms * 1000,
            self.cfg.evict_after_ms * 1000,
        );
        if self.last_evict.is_none_or(|t| now - t >= 60_000_000) {
            self.last_evict = Some(now);
            self.map
                .retain(|_, b| !(b.state == CLOSED && b.failures == 0 && now - b.last >= idle));
        }
        let b = self.map.entry(id.to_owned()).or_insert(M {
            state: CLOSED,
            failures: 0,
            opened: None,
            last: now,
            probe: None,
        });
        let opened = b.opened.unwrap_or(0);
        if b.state == OPEN && now < opened + window {
            return Err((opened + window - now).div_ceil(1_000_000).max(1));
        }
        if b.state == CLOSED {
            return Ok(None);
        }
        b.state = HALF;
        if b.probe.is_some() {
            return Err(1);
        }
        self.next += 1;
        b.probe = Some(self.next);
        Ok(b.probe)
    }

    /// An outcome of the exchange admitted with `probe` (its probe number, if any).
    pub fn outcome(&mut self, id: &str, probe: Option<u64>, class: OutcomeClass, now: u64) {
        self.now = self.now.max(now);
        let now = self.now;
        if !self.map.contains_key(id) && class != OutcomeClass::Failure {
            return;
        }
        let b = self.map.entry(id.to_owned()).or_insert(M {
            state: CLOSED,
            failures: 0,
            opened: None,
            last: now,
            probe: None,
        });
        let was_probe = probe.is_some() && b.probe == probe;
        if was_probe {
            b.probe = None;
        }
        b.last = now;
        match class {
            OutcomeClass::Success => {
                *b = M {
                    state: CLOSED,
                    failures: 0,
                    opened: None,
                    last: now,
                    probe: None,
                }
            }
            OutcomeClass::Failure if was_probe => {
                (b.state, b.opened, b.failures) =
                    (OPEN, Some(now), self.cfg.open_after_failures.max(1))
            }
            OutcomeClass::Failure if b.state == CLOSED => {
                b.failures += 1;
                if b.failures >= self.cfg.open_after_failures.max(1) {
                    (b.state, b.opened) = (OPEN, Some(now));
                }
            }
            _ => {}
        }
    }

    /// Admin reset; false when unknown.
    pub fn reset(&mut self, id: &str, now: u64) -> bool {
        self.now = self.now.max(now);
        let now = self.now;
        self.map
            .get_mut(id)
            .map(|b| {
                *b = M {
                    state: CLOSED,
                    failures: 0,
                    opened: None,
                    last: now,
                    probe: None,
                }
            })
            .is_some()
    }

    /// The admin snapshot at `now`.
    pub fn snapshot(&self, now: u64, wall: u64) -> Vec<BreakerSnapshot> {
        let now = self.now.max(now);
        let epoch = |t: u64| wall.saturating_sub((now - t) / 1000);
        let window = self.cfg.half_open_after_ms * 1000;
        self.map
            .iter()
            .map(|(id, b)| BreakerSnapshot {
                provider_id: id.clone(),
                state: match b.state {
                    CLOSED => BreakerState::Closed,
                    OPEN if now < b.opened.unwrap_or(0) + window => BreakerState::Open,
                    _ => BreakerState::HalfOpen,
                },
                failures: b.failures,
                opened_at: b.opened.map_or(0, epoch),
                last_activity: epoch(b.last),
            })
            .collect()
    }
}

/// One step of a breaker scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Admit an exchange for provider `id % IDS.len()`.
    Admit(u8),
    /// Report an outcome for outstanding permit `slot % outstanding`.
    Outcome(u8, OutcomeClass),
    /// The client of outstanding permit `slot` disconnects (a neutral outcome).
    ClientAbort(u8),
    /// Advance the clock by this many microseconds.
    Advance(u64),
    /// Feed the next operation a `now` this many microseconds before the latest one.
    Stale(u64),
    /// Admin reset of provider `id`.
    Reset(u8),
}

/// Provider ids used by scenarios.
pub const IDS: [&str; 3] = ["anthropic", "codex", "ready-probe"];

/// Decodes fuzz bytes: three configuration bytes, then two bytes per operation.
pub fn decode(data: &[u8]) -> (BreakerConfig, Vec<Op>) {
    let byte = |i: usize| u64::from(data.get(i).copied().unwrap_or(0));
    let cfg = BreakerConfig {
        open_after_failures: 1 + (byte(0) % 5) as u32,
        half_open_after_ms: 1 + byte(1) * 250,
        evict_after_ms: 1 + byte(2) * 1_000,
    };
    let ops = data
        .get(3..)
        .unwrap_or(&[])
        .chunks(2)
        .map(|c| {
            let (k, a) = (
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            );
            let arg = u64::from(a);
            match k % 9 {
                0 | 1 => Op::Admit(a),
                2 => Op::Outcome(a, OutcomeClass::Success),
                3 => Op::Outcome(a, OutcomeClass::Failure),
                4 => Op::Outcome(a, OutcomeClass::Neutral),
                5 => Op::ClientAbort(a),
                6 => Op::Advance(arg * arg * 1_000 + arg),
                7 => Op::Stale(arg * 1_000),
                _ => Op::Reset(a),
            }
        })
        .collect();
    (cfg, ops)
}

struct Outstanding {
    permit: Permit,
    id: &'static str,
    model_probe: Option<u64>,
    /// The id's epoch at admission: a probe is live only while the epoch is unchanged.
    epoch: u64,
}

/// Runs `ops` through the model and a [`BreakerSet`]; the first disagreement or broken
/// invariant is returned as text.
pub fn check(cfg: BreakerConfig, ops: &[Op]) -> Result<(), String> {
    let mut set = BreakerSet::new(cfg);
    let mut model = Model::new(cfg);
    let mut clock = 0u64;
    let mut outstanding: Vec<Outstanding> = Vec::new();
    // Bumped when the breaker is closed (success or reset), which forgets its probe.
    let mut epochs = [0u64; IDS.len()];
    let wall0 = 1_700_000_000_000u64;
    let mut lag = 0u64;
    for (step, op) in ops.iter().enumerate() {
        // A `Stale` op makes the next input arrive with an older `now` than already seen.
        let now = clock.saturating_sub(std::mem::take(&mut lag));
        match *op {
            Op::Admit(i) => {
                let idx = usize::from(i) % IDS.len();
                let id = IDS[idx];
                let before = set.get(
                    id,
                    Instant::from_micros(now),
                    UnixMillis(wall0 + now / 1000),
                );
                let got = set.admit(id, Instant::from_micros(now));
                let want = model.admit(id, now);
                match (got, want) {
                    (Ok(permit), Ok(probe)) => {
                        if permit.is_probe() != probe.is_some() || permit.provider_id() != id {
                            return Err(format!(
                                "step {step}: admit {id}: probe {} vs model {probe:?}",
                                permit.is_probe()
                            ));
                        }
                        if before
                            .as_ref()
                            .is_some_and(|s| s.state == BreakerState::Open)
                        {
                            return Err(format!(
                                "step {step}: admitted while open before the window"
                            ));
                        }
                        let live = outstanding
                            .iter()
                            .filter(|o| o.id == id && o.permit.is_probe() && o.epoch == epochs[idx])
                            .count();
                        if permit.is_probe() && live > 0 {
                            return Err(format!("step {step}: two probes in flight for {id}"));
                        }
                        outstanding.push(Outstanding {
                            permit,
                            id,
                            model_probe: probe,
                            epoch: epochs[idx],
                        });
                    }
                    (Err(r), Err(secs)) if r.retry_after_secs == secs => {}
                    (got, want) => {
                        return Err(format!(
                            "step {step}: admit {id}: {got:?} vs model {want:?}"
                        ));
                    }
                }
            }
            Op::Outcome(slot, _) | Op::ClientAbort(slot) if !outstanding.is_empty() => {
                let class = match *op {
                    Op::Outcome(_, class) => class,
                    _ => OutcomeClass::Neutral,
                };
                let o = outstanding.remove(usize::from(slot) % outstanding.len());
                let idx = IDS.iter().position(|x| *x == o.id).unwrap_or(0);
                let was_live_probe = o.permit.is_probe() && o.epoch == epochs[idx];
                set.handle_outcome(o.permit, class, Instant::from_micros(now));
                model.outcome(o.id, o.model_probe, class, now);
                if class == OutcomeClass::Success {
                    epochs[idx] += 1;
                }
                // The probe slot is always released: a fresh admission is not refused as
                // "probe in flight" once the live probe reported, whatever the outcome.
                let snap = set.get(
                    o.id,
                    Instant::from_micros(now),
                    UnixMillis(wall0 + now / 1000),
                );
                if was_live_probe && snap.is_some_and(|s| s.state == BreakerState::HalfOpen) {
                    let got = set.admit(o.id, Instant::from_micros(now));
                    let want = model.admit(o.id, now);
                    let Ok(permit) = got else {
                        return Err(format!("step {step}: probe slot not released ({got:?})"));
                    };
                    let Ok(model_probe) = want else {
                        return Err(format!("step {step}: model refused after probe release"));
                    };
                    outstanding.push(Outstanding {
                        permit,
                        id: o.id,
                        model_probe,
                        epoch: epochs[idx],
                    });
                }
            }
            Op::Outcome(..) | Op::ClientAbort(_) => {}
            Op::Advance(us) => clock = clock.saturating_add(us),
            Op::Stale(us) => lag = us,
            Op::Reset(i) => {
                let idx = usize::from(i) % IDS.len();
                let got = set.reset(IDS[idx], Instant::from_micros(now));
                if got != model.reset(IDS[idx], now) {
                    return Err(format!("step {step}: reset {} disagrees", IDS[idx]));
                }
                epochs[idx] += 1;
            }
        }
        let wall = UnixMillis(wall0 + clock / 1000);
        let got = set.snapshot(Instant::from_micros(clock), wall);
        let want = model.snapshot(clock, wall.0);
        if got != want {
            return Err(format!(
                "step {step} ({op:?}): snapshot {got:?} vs model {want:?}"
            ));
        }
        // Opens exactly at N failures: a closed breaker never holds N failures.
        if let Some(s) = got.iter().find(|s| {
            s.state == BreakerState::Closed && s.failures >= cfg.open_after_failures.max(1)
        }) {
            return Err(format!(
                "step {step}: {} closed with {} failures",
                s.provider_id, s.failures
            ));
        }
    }
    Ok(())
}
