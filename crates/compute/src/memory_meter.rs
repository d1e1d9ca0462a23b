//! [`MemoryMeter`]: the bytes a [`crate::backend::GpuBackend`] has handed out, now and at the
//! peak since the last reset — what a caller needs to report "peak device memory" of one phase
//! of work (the experiment's cost table, a benchmark's footprint).
//!
//! It counts ragtune's own allocations (every tensor, every scratch buffer of an op), by the
//! bytes asked for. It does not see what the driver and libraries keep beside them (the CUDA
//! context, cuBLAS's workspace, the caching of the stream-ordered allocator), so it is the
//! footprint of the work, not `nvidia-smi`'s number; [`MemoryStats`] says so where it is shown.

use std::sync::atomic::{AtomicU64, Ordering};

/// Device memory in use, and the most in use at once since the last [`MemoryMeter::reset_peak`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes in live allocations now.
    pub in_use: u64,
    /// The most bytes live at once since the last reset.
    pub peak: u64,
    /// Allocations made since the meter was created.
    pub allocations: u64,
}

/// Lock-free counters updated on every allocation and free.
#[derive(Debug, Default)]
pub struct MemoryMeter {
    in_use: AtomicU64,
    peak: AtomicU64,
    allocations: AtomicU64,
}

impl MemoryMeter {
    pub fn new() -> MemoryMeter {
        MemoryMeter::default()
    }

    /// Record an allocation of `bytes`.
    pub fn allocated(&self, bytes: usize) {
        let now = self.in_use.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        self.peak.fetch_max(now, Ordering::Relaxed);
        self.allocations.fetch_add(1, Ordering::Relaxed);
    }

    /// Record that an allocation of `bytes` was freed.
    pub fn freed(&self, bytes: usize) {
        // Saturating: a free can never be larger than what was counted, but a meter must not
        // wrap to 2^64 if a caller pairs calls wrongly.
        let _ = self
            .in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(bytes as u64)));
    }

    /// Start a new peak measurement from what is in use now.
    pub fn reset_peak(&self) {
        self.peak.store(self.in_use.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn stats(&self) -> MemoryStats {
        // Read the peak last: with concurrent allocations it is then never below `in_use`.
        let in_use = self.in_use.load(Ordering::Relaxed);
        let allocations = self.allocations.load(Ordering::Relaxed);
        let peak = self.peak.load(Ordering::Relaxed).max(in_use);
        MemoryStats { in_use, peak, allocations }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_most_live_at_once_and_resets_to_what_is_live() {
        let m = MemoryMeter::new();
        m.allocated(100);
        m.allocated(50);
        m.freed(100);
        m.allocated(30);
        assert_eq!(m.stats(), MemoryStats { in_use: 80, peak: 150, allocations: 3 });
        m.reset_peak();
        assert_eq!(m.stats().peak, 80);
        m.allocated(10);
        m.freed(10);
        assert_eq!(m.stats().peak, 90);
        m.freed(1000);
        assert_eq!(m.stats().in_use, 0, "an over-free saturates instead of wrapping");
    }

    #[test]
    fn concurrent_allocations_are_all_counted() {
        let m = MemoryMeter::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        m.allocated(8);
                        m.freed(8);
                    }
                });
            }
        });
        let st = m.stats();
        assert_eq!((st.in_use, st.allocations), (0, 4000));
        assert!((8..=32).contains(&st.peak), "peak {} outside 8..=32 for 4 threads × 8 bytes", st.peak);
    }
}
