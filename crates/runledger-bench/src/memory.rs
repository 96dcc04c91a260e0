//! The process's peak memory (`VmHWM`), as the benches report it, and its reset between phases.

use anyhow::Context;

/// Resets this process's peak RSS to its current RSS, so the next [`peak_rss_kib`] is the peak
/// of what runs in between, not of the whole bench.
pub(crate) fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0 and later); where it cannot, the peak
    // stays the process's, which overstates and never hides a peak.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` of this process, in KiB.
pub(crate) fn peak_rss_kib() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}
