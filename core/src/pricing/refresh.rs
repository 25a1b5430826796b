//! The decisions of `refresh(force)` (`accounting.md` §4.5), as pure functions. The shell
//! performs the IO (reading the cache file, fetching `PRICING_URL`, writing the file
//! atomically) and keeps the single-flight state; the core says what to do.
//!
//! Ages are `now − fetchedAt`, saturating: a `fetchedAt` in the future (the wall clock went
//! back) counts as age 0, i.e. fresh, rather than forcing a fetch on every call.

use crate::time::UnixMillis;

/// Default `PRICING_CACHE_TTL_MS`.
pub const DEFAULT_CACHE_TTL_MS: u64 = 3_600_000;
/// Default `PRICING_REFRESH_INTERVAL_MS`.
pub const DEFAULT_REFRESH_INTERVAL_MS: u64 = 21_600_000;
/// Log event of a failed fetch (field `err`).
pub const FETCH_FAILED_EVENT: &str = "pricing.fetch_failed";
/// Message of a failed fetch.
pub const FETCH_FAILED_MESSAGE: &str = "pricing fetch failed, using cached data";

/// What a refresh does first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshAction {
    /// The in-memory table is fresh: nothing to do.
    KeepMemory,
    /// The cache file is fresh: load it into memory.
    LoadFile,
    /// Fetch `PRICING_URL`; on success replace the table and the file.
    Fetch,
}

/// What to serve after a failed fetch (warn [`FETCH_FAILED_MESSAGE`] in every case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFallback {
    /// Keep the in-memory table.
    KeepMemory,
    /// Load the cache file, whatever its age.
    LoadFile,
    /// Use an empty table with `fetchedAt = 0`.
    Empty,
}

/// The first step of `refresh(force)`. `memory_fetched_at` is `None` when no table is
/// loaded; `file_fetched_at` is the readable cache file's `fetchedAt`, `None` when there is
/// no usable file.
pub fn refresh_action(
    force: bool,
    now: UnixMillis,
    ttl_ms: u64,
    memory_fetched_at: Option<UnixMillis>,
    file_fetched_at: Option<UnixMillis>,
) -> RefreshAction {
    let fresh = |at: Option<UnixMillis>| at.is_some_and(|at| now.0.saturating_sub(at.0) < ttl_ms);
    if force {
        RefreshAction::Fetch
    } else if fresh(memory_fetched_at) {
        RefreshAction::KeepMemory
    } else if fresh(file_fetched_at) {
        RefreshAction::LoadFile
    } else {
        RefreshAction::Fetch
    }
}

/// What to keep when the fetch failed: the in-memory table, else the file of any age, else
/// an empty table.
pub fn on_fetch_failure(memory_loaded: bool, file_readable: bool) -> FetchFallback {
    if memory_loaded {
        FetchFallback::KeepMemory
    } else if file_readable {
        FetchFallback::LoadFile
    } else {
        FetchFallback::Empty
    }
}

/// Single-flight: a caller that joined a refresh already in flight needs exactly one
/// follow-up forced fetch when it asked for `force` but the shared refresh did not fetch.
pub fn needs_forced_follow_up(joined_with_force: bool, shared: RefreshAction) -> bool {
    joined_with_force && shared != RefreshAction::Fetch
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = DEFAULT_CACHE_TTL_MS;
    const NOW: UnixMillis = UnixMillis(10_000_000);

    fn at(age: u64) -> Option<UnixMillis> {
        Some(UnixMillis(NOW.0 - age))
    }

    #[test]
    fn unforced_refresh_keeps_a_young_table_then_loads_a_young_file_then_fetches() {
        use RefreshAction::*;
        assert_eq!(
            refresh_action(false, NOW, TTL, at(TTL - 1), None),
            KeepMemory
        );
        assert_eq!(
            refresh_action(false, NOW, TTL, at(TTL), at(TTL - 1)),
            LoadFile
        );
        assert_eq!(refresh_action(false, NOW, TTL, None, at(0)), LoadFile);
        assert_eq!(refresh_action(false, NOW, TTL, at(TTL), at(TTL)), Fetch);
        assert_eq!(refresh_action(false, NOW, TTL, None, None), Fetch);
        assert_eq!(
            refresh_action(false, NOW, TTL, Some(UnixMillis(NOW.0 + 5)), None),
            KeepMemory
        );
    }

    #[test]
    fn forced_refresh_always_fetches() {
        assert_eq!(
            refresh_action(true, NOW, TTL, at(0), at(0)),
            RefreshAction::Fetch
        );
    }

    #[test]
    fn failure_keeps_memory_else_any_file_else_empty() {
        assert_eq!(on_fetch_failure(true, true), FetchFallback::KeepMemory);
        assert_eq!(on_fetch_failure(false, true), FetchFallback::LoadFile);
        assert_eq!(on_fetch_failure(false, false), FetchFallback::Empty);
    }

    #[test]
    fn forced_joiner_of_a_file_served_refresh_fetches_once_more() {
        assert!(needs_forced_follow_up(true, RefreshAction::LoadFile));
        assert!(!needs_forced_follow_up(true, RefreshAction::Fetch));
        assert!(!needs_forced_follow_up(false, RefreshAction::LoadFile));
    }
}
