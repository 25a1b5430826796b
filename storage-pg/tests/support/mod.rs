//! Shared test support.
// One throw-away PostgreSQL harness for every suite that needs a server: the black-box
// tests crate owns it (its replica tests start the real daemons against it), this crate's
// tests compile the same file.
#[path = "../../../tests/src/support/pg.rs"]
pub mod pg;
