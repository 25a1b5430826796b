//! Resource figures of a process read from `/proc` (Linux): resident memory, its peak, and
//! open file descriptors, for the RSS and fd figures of `reliability.md` §1.
//!
//! Each reader returns `None` when the figure cannot be read (the process is gone, or the
//! system has no `/proc`), so a caller decides whether that fails its case.

use std::time::{Duration, Instant};

/// `VmRSS` of `pid` in KiB: the resident set now.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// `VmHWM` of `pid` in KiB: the peak resident set since the process started.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

/// Number of open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> Option<u64> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(entries.filter(Result::is_ok).count() as u64)
}

/// The largest `VmRSS` seen while sampling `pid` every `every` for `window`.
pub fn max_rss_over(pid: u32, window: Duration, every: Duration) -> Option<u64> {
    let deadline = Instant::now() + window;
    let mut max = rss_kib(pid)?;
    while Instant::now() < deadline {
        std::thread::sleep(every);
        max = max.max(rss_kib(pid).unwrap_or(0));
    }
    Some(max)
}

/// KiB as MiB, for printing.
pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures_are_readable_and_consistent() {
        let pid = std::process::id();
        let rss = rss_kib(pid).expect("VmRSS");
        let peak = peak_rss_kib(pid).expect("VmHWM");
        assert!(rss > 0 && peak >= rss, "rss {rss} KiB, peak {peak} KiB");
        assert!(
            open_fds(pid).expect("fds") >= 3,
            "stdin, stdout and stderr at least"
        );
        assert_eq!(rss_kib(u32::MAX), None, "no such process");
    }
}
