//! The device self-test (`ragtune_compute::selftest`) on the kernel emulator: the kernels pass it,
//! a device whose GEMM or kernels compute wrongly fails it with the check named, and `gate`
//! remembers a pass so the second call launches nothing.

use std::sync::Arc;

use ragtune_compute::{Device, selftest};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_tests::instrumented::Instrumented;

fn emulator() -> Arc<EmuBackend> {
    Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Random(7) }))
}

fn faulty(gemm_alpha: f32, skip_kernel: Option<&'static str>) -> Arc<Instrumented> {
    Arc::new(Instrumented::faulty(emulator(), gemm_alpha, skip_kernel))
}

#[test]
fn the_emulated_kernels_pass_the_self_test() {
    let device = Device::from_backend(emulator());
    let report = selftest::run(&device).unwrap();
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.checks.len(), 12);
    // Not a comparison of the CPU with itself: the emulator's f64 GEMM and the kernels' own
    // reduction orders differ from the CPU's in the last bits somewhere.
    assert!(report.checks.iter().any(|c| c.max_err > 0.0), "{report:#?}");
}

#[test]
fn a_wrong_gemm_or_a_kernel_that_never_ran_fails_with_its_check_named() {
    let report = selftest::run(&Device::from_backend(faulty(1.001, None))).unwrap();
    assert!(!report.passed());
    let why = report.failure().unwrap();
    assert!(why.contains("matmul f32 (cuBLAS)"), "{why}");

    let report = selftest::run(&Device::from_backend(faulty(1.0, Some("rms_norm")))).unwrap();
    let failed: Vec<&str> = report.checks.iter().filter(|c| !c.passed()).map(|c| c.name).collect();
    assert_eq!(failed, ["rms_norm"], "{report:#?}");
}

#[test]
fn gate_runs_once_then_remembers_the_pass_and_refuses_a_failing_device() {
    let cache = std::env::temp_dir().join(format!("ragtune-selftest-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    // SAFETY: the only test in this binary that reads or writes the environment.
    unsafe { std::env::set_var(ragtune_compute::kernel_cache::CACHE_DIR_ENV, &cache) };

    let good = faulty(1.0, None);
    let device = Device::from_backend(good.clone());
    selftest::gate(&device, "driver 13.0").unwrap();
    let first = good.work();
    assert!(first > 10, "the first gate ran the test ({first} launches)");
    let markers = std::fs::read_dir(cache.join("selftest")).unwrap().count();
    assert_eq!(markers, 1);
    selftest::gate(&device, "driver 13.0").unwrap();
    assert_eq!(good.work(), first, "the second gate launched nothing");
    // A new driver version is a new key: the test runs again.
    selftest::gate(&device, "driver 13.1").unwrap();
    assert!(good.work() > first);

    let bad = Device::from_backend(faulty(1.0, Some("softmax")));
    let why = selftest::gate(&bad, "driver 13.0").unwrap_err();
    assert!(why.contains("softmax") && why.contains("ragtune doctor"), "{why}");
    // No pass was recorded for the failing device.
    assert_eq!(std::fs::read_dir(cache.join("selftest")).unwrap().count(), 2);
    let _ = std::fs::remove_dir_all(&cache);
}
