//! Fuzz bodies, compiled behind the private `_fuzzing` feature. Each target in `fuzz/` is a
//! shim over one function here; the committed corpus replays through the same functions in
//! `cargo test`.
