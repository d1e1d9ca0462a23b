//! Peak memory per arm. Host: the resident set's high-water mark from Linux's
//! `/proc/self/status` (`VmHWM`); writing `5` to `/proc/self/clear_refs` resets it to the current
//! size, so each arm's peak is its own; where the reset is refused (some containers), the peak is
//! the process's since it started, and [`PeakMemory::reset`] says so. Device: the meter of
//! ragtune's allocations on the model's device ([`ragtune_compute::MemoryMeter`]), reset with
//! the host's; none on the CPU.

use std::fs;

use ragtune_compute::Device;

/// The process's resident-memory high-water mark in bytes, if the platform reports one.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Tracks the host and device peaks since the last reset.
pub struct PeakMemory {
    resettable: bool,
    device: Device,
}

impl PeakMemory {
    /// Peaks of this process's resident memory and of `device`'s allocations.
    pub fn new(device: &Device) -> PeakMemory {
        PeakMemory { resettable: fs::write("/proc/self/clear_refs", "5").is_ok(), device: device.clone() }
    }

    /// Start a new measurement; false when the host peak could not be reset (it then includes
    /// everything before). The device peak always resets.
    pub fn reset(&self) -> bool {
        self.device.reset_peak_memory();
        self.resettable && fs::write("/proc/self/clear_refs", "5").is_ok()
    }

    /// Host bytes at the high-water mark (0 where the platform does not report it).
    pub fn peak(&self) -> u64 {
        peak_rss_bytes().unwrap_or(0)
    }

    /// Device bytes at the peak of ragtune's allocations; `None` on the CPU.
    pub fn device_peak(&self) -> Option<u64> {
        self.device.memory_stats().map(|s| s.peak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The host peak's test is tests/peak_memory.rs: a process of its own, since the peak is the
    // whole process's and tests in this binary allocate in parallel threads.

    #[test]
    fn the_device_peak_covers_a_tensor_and_resets() {
        use ragtune_compute::Tensor;
        let device = Device::from_backend(std::sync::Arc::new(ragtune_kernel_emu::EmuBackend::default()));
        let m = PeakMemory::new(&device);
        m.reset();
        assert_eq!(m.device_peak(), Some(0));
        let t = Tensor::from_slice(&vec![1.0f32; 1 << 16], &[1 << 16]).unwrap().to_device(&device).unwrap();
        drop(t);
        assert_eq!(m.device_peak(), Some(4 << 16), "the peak keeps the dropped tensor's 256 KiB");
        m.reset();
        assert_eq!(m.device_peak(), Some(0));
    }
}
