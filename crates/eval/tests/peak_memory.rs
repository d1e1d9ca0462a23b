//! The host side of `PeakMemory`, alone in its own test binary: the peak it reads is the whole
//! process's (`VmHWM`), so tests allocating in parallel threads of the same binary would move it.

use ragtune_compute::Device;
use ragtune_eval::run::memory::PeakMemory;

#[test]
fn the_peak_covers_a_fresh_allocation() {
    let m = PeakMemory::new(&Device::cpu());
    m.reset();
    assert_eq!(m.device_peak(), None, "the CPU has no device memory");
    let before = m.peak();
    let big = vec![1u8; 64 << 20];
    std::hint::black_box(&big);
    let after = m.peak();
    if cfg!(target_os = "linux") {
        assert!(after >= before + (60 << 20), "peak {before} -> {after} after touching 64 MiB");
    }
}
