//! The device self-test (`ragtune_compute::selftest`) on the kernel emulator: the kernels pass it,
//! a device whose GEMM or kernels compute wrongly fails it with the check named, and `gate`
//! remembers a pass so the second call launches nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ragtune_compute::backend::{DeviceMemory, GemmCall, GpuBackend};
use ragtune_compute::launch::KernelCall;
use ragtune_compute::{ComputeError, Device, MemoryStats, selftest};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};

/// The emulator with a fault injected: `gemm_alpha` scales every GEMM (1.0: none), and every
/// launch of a kernel whose name contains `skip_kernel` is dropped (its output stays as
/// allocated). Counts launches and GEMMs.
#[derive(Debug)]
struct Faulty {
    inner: EmuBackend,
    gemm_alpha: f32,
    skip_kernel: Option<&'static str>,
    work: AtomicUsize,
}

impl Faulty {
    fn new(gemm_alpha: f32, skip_kernel: Option<&'static str>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner: EmuBackend::new(EmuOptions { schedule: Schedule::Random(7) }),
            gemm_alpha,
            skip_kernel,
            work: AtomicUsize::new(0),
        })
    }
}

impl GpuBackend for Faulty {
    fn describe(&self) -> String {
        // Each fault is a different "device" for the gate's key.
        format!("{} (gemm × {}, skipping {:?})", self.inner.describe(), self.gemm_alpha, self.skip_kernel)
    }
    fn alloc(&self, bytes: usize) -> Result<Arc<dyn DeviceMemory>, ComputeError> {
        self.inner.alloc(bytes)
    }
    fn upload(&self, src: &[u8]) -> Result<Arc<dyn DeviceMemory>, ComputeError> {
        self.inner.upload(src)
    }
    fn download(&self, src: &dyn DeviceMemory, dst: &mut [u8]) -> Result<(), ComputeError> {
        self.inner.download(src, dst)
    }
    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<(), ComputeError> {
        self.inner.copy(src, dst, bytes)
    }
    fn launch(&self, call: &KernelCall) -> Result<(), ComputeError> {
        self.work.fetch_add(1, Ordering::Relaxed);
        if self.skip_kernel.is_some_and(|k| call.function.contains(k)) {
            return Ok(());
        }
        self.inner.launch(call)
    }
    fn gemm(&self, call: &GemmCall) -> Result<(), ComputeError> {
        self.work.fetch_add(1, Ordering::Relaxed);
        self.inner.gemm(&GemmCall { alpha: call.alpha * self.gemm_alpha, ..*call })
    }
    fn synchronize(&self) -> Result<(), ComputeError> {
        self.inner.synchronize()
    }
    fn memory_stats(&self) -> MemoryStats {
        self.inner.memory_stats()
    }
    fn reset_peak_memory(&self) {
        self.inner.reset_peak_memory()
    }
}

#[test]
fn the_emulated_kernels_pass_the_self_test() {
    let device =
        Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Random(3) })));
    let report = selftest::run(&device).unwrap();
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.checks.len(), 12);
    // Not a comparison of the CPU with itself: the emulator's f64 GEMM and the kernels' own
    // reduction orders differ from the CPU's in the last bits somewhere.
    assert!(report.checks.iter().any(|c| c.max_err > 0.0), "{report:#?}");
}

#[test]
fn a_wrong_gemm_or_a_kernel_that_never_ran_fails_with_its_check_named() {
    let gemm = Faulty::new(1.001, None);
    let report = selftest::run(&Device::from_backend(gemm)).unwrap();
    assert!(!report.passed());
    let why = report.failure().unwrap();
    assert!(why.contains("matmul f32 (cuBLAS)"), "{why}");

    let skipped = Faulty::new(1.0, Some("rms_norm"));
    let report = selftest::run(&Device::from_backend(skipped)).unwrap();
    let failed: Vec<&str> = report.checks.iter().filter(|c| !c.passed()).map(|c| c.name).collect();
    assert_eq!(failed, ["rms_norm"], "{report:#?}");
}

#[test]
fn gate_runs_once_then_remembers_the_pass_and_refuses_a_failing_device() {
    let cache = std::env::temp_dir().join(format!("ragtune-selftest-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    // SAFETY: the only test in this binary that reads or writes the environment.
    unsafe { std::env::set_var(ragtune_compute::kernel_cache::CACHE_DIR_ENV, &cache) };

    let good = Faulty::new(1.0, None);
    let device = Device::from_backend(good.clone());
    selftest::gate(&device, "driver 13.0").unwrap();
    let first = good.work.load(Ordering::Relaxed);
    assert!(first > 10, "the first gate ran the test ({first} launches)");
    let markers = std::fs::read_dir(cache.join("selftest")).unwrap().count();
    assert_eq!(markers, 1);
    selftest::gate(&device, "driver 13.0").unwrap();
    assert_eq!(good.work.load(Ordering::Relaxed), first, "the second gate launched nothing");
    // A new driver version is a new key: the test runs again.
    selftest::gate(&device, "driver 13.1").unwrap();
    assert!(good.work.load(Ordering::Relaxed) > first);

    let bad = Device::from_backend(Faulty::new(1.0, Some("softmax")));
    let why = selftest::gate(&bad, "driver 13.0").unwrap_err();
    assert!(why.contains("softmax") && why.contains("ragtune doctor"), "{why}");
    // No pass was recorded for the failing device.
    assert_eq!(std::fs::read_dir(cache.join("selftest")).unwrap().count(), 2);
    let _ = std::fs::remove_dir_all(&cache);
}
