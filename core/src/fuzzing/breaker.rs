//! Fuzz bodies of the `breaker` module's targets.

use crate::breaker::model;

/// Longest operation sequence run per input, so one input stays fast.
const MAX_OPS: usize = 4_096;

/// Fuzz body of `breaker_ops`: three configuration bytes, then two bytes per operation
/// (admit, success, failure, neutral, client abort, advance time, stale time, reset), run
/// through [`crate::breaker::BreakerSet`] and the reference model. Panics on any disagreement
/// or broken invariant.
pub fn breaker_ops(data: &[u8]) {
    let (cfg, mut ops) = model::decode(data);
    ops.truncate(MAX_OPS);
    if let Err(e) = model::check(cfg, &ops) {
        panic!("breaker_ops: {e}");
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
mod tests {
    use super::*;

    #[test]
    fn corpus_and_random_sequences_agree_with_the_model() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/breaker_ops");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|f| f != ".keep") {
                breaker_ops(&std::fs::read(&path).unwrap());
                n += 1;
            }
        }
        assert!(n >= 3);
        let mut rng = fastrand::Rng::with_seed(5);
        for len in 0..300 {
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            breaker_ops(&data);
        }
    }
}
