//! Peak resident host memory per arm, from Linux's `/proc/self/status` (`VmHWM`). Writing `5`
//! to `/proc/self/clear_refs` resets the high-water mark to the current size, so each arm's
//! peak is its own; where the reset is refused (some containers), the peak is the process's
//! since it started, and [`PeakMemory::reset`] says so.

use std::fs;

/// The process's resident-memory high-water mark in bytes, if the platform reports one.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Tracks the peak since the last reset.
pub struct PeakMemory {
    resettable: bool,
}

impl PeakMemory {
    pub fn new() -> PeakMemory {
        PeakMemory { resettable: fs::write("/proc/self/clear_refs", "5").is_ok() }
    }

    /// Start a new measurement; false when the peak could not be reset (it then includes
    /// everything before).
    pub fn reset(&self) -> bool {
        self.resettable && fs::write("/proc/self/clear_refs", "5").is_ok()
    }

    /// Bytes at the high-water mark (0 where the platform does not report it).
    pub fn peak(&self) -> u64 {
        peak_rss_bytes().unwrap_or(0)
    }
}

impl Default for PeakMemory {
    fn default() -> Self {
        PeakMemory::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_covers_a_fresh_allocation() {
        let m = PeakMemory::new();
        m.reset();
        let before = m.peak();
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let after = m.peak();
        if cfg!(target_os = "linux") {
            assert!(after >= before + (60 << 20), "peak {before} -> {after} after touching 64 MiB");
        }
    }
}
