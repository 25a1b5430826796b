//! The per-request exchange (`style.md` §3): the state machine that drives one request from
//! its head to its finalized row.
//!
//! [`relay`] is the response-side piece: the accounting tee over SSE and NDJSON bodies, the
//! terminal hold and usage-chunk removal (`datapath.md` §13.4, §13.5).

pub mod relay;
