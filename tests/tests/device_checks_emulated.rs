//! The device checks on the kernel emulator (`ragtune-kernel-emu`, the CPU emulation of CUDA)
//! against the CPU, from the one list the GPU bundle runs too (`ragtune_tests::device_checks`):
//! tiny random models, the indexes and training steps, named `emulated_<group>_<name>`. They
//! prove in `cargo test` that every check of the bundle's `gpu_device_checks` runs and passes on
//! a correct device. One random thread schedule each: the parity suites already run every
//! kernel under several, and these checks are about what the crates do with the kernels.

use std::sync::Arc;

use ragtune_compute::Device;
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_tests::device_checks;

fn emulated() -> Device {
    Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Random(0xd1ce) })))
}

macro_rules! emulated_checks {
    ($(($group:ident, $name:ident, $check:ident $(, $arg:expr)*)),* $(,)?) => {
        paste::paste! { $(
            #[test]
            fn [<emulated_ $group _ $name>]() {
                device_checks::[<$group _ $name>](&emulated());
            }
        )* }
    };
}

ragtune_tests::for_each_device_check!(emulated_checks);

/// A flat index on a device changes without its stored rows crossing to the host: an append, an
/// add whose ids interleave with the stored ones and a removal each download a few bytes (the
/// gather's bad-id flag), never the store — and give the rows the CPU index gives.
#[test]
fn flat_index_changes_keep_the_rows_on_the_device() {
    use ragtune_compute::{DType, Tensor};
    use ragtune_index::{FlatIndex, Metric};
    use ragtune_tests::instrumented::Instrumented;

    let (counter, device) =
        Instrumented::device(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward })));
    let (n, dim) = (600usize, 16usize);
    let rows = |first: usize, count: usize| {
        let v: Vec<f32> =
            (first * dim..(first + count) * dim).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        Tensor::from_slice(&v, &[count, dim]).unwrap()
    };
    let mut on_device = FlatIndex::new(dim, Metric::InnerProduct, DType::F32, &device).unwrap();
    let mut on_cpu = FlatIndex::new(dim, Metric::InnerProduct, DType::F32, &Device::Cpu).unwrap();
    let even: Vec<u64> = (0..n as u64).map(|i| 2 * i).collect();
    let odd: Vec<u64> = (0..40u64).map(|i| 2 * i + 1).collect();
    let late: Vec<u64> = (0..10u64).map(|i| 10_000 + i).collect();
    for index in [&mut on_device, &mut on_cpu] {
        index.add(&rows(0, n), &even).unwrap();
    }
    let before = counter.downloaded();
    let store_bytes = n * dim * 4;
    for index in [&mut on_device, &mut on_cpu] {
        index.add(&rows(n, late.len()), &late).unwrap();
        index.add(&rows(n + late.len(), odd.len()), &odd).unwrap();
        assert_eq!(index.remove(&[0, 3, 10_005]).unwrap(), 3);
    }
    let moved = counter.downloaded() - before;
    assert!(moved < store_bytes / 100, "the changes downloaded {moved} bytes; the store is {store_bytes}");
    let queries = rows(7, 5);
    let (a, b) = (on_device.search(&queries, 30, None).unwrap(), on_cpu.search(&queries, 30, None).unwrap());
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "device and CPU indexes disagree after the changes");
}
