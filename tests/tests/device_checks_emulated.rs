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

/// An IVF search on a device makes a fixed number of launches whatever the number of lists (the
/// probes stay on the device, one `topk_ivf` covers every probed list) and downloads only the
/// results; adds and removes keep the store on the device. Results equal the CPU index's.
#[test]
fn ivf_search_makes_no_per_list_round_trips() {
    use ragtune_compute::{DType, Tensor};
    use ragtune_index::{IvfFlatIndex, IvfParams, Metric};
    use ragtune_tests::instrumented::Instrumented;

    let (counter, device) =
        Instrumented::device(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward })));
    let (n, dim, nlist, nq, k) = (800usize, 16usize, 24usize, 6usize, 10usize);
    let rows = |first: usize, count: usize| {
        let v: Vec<f32> =
            (first * dim..(first + count) * dim).map(|i| (i as f32 * 0.618_034).sin()).collect();
        Tensor::from_slice(&v, &[count, dim]).unwrap()
    };
    let ids: Vec<u64> = (0..n as u64).map(|i| 3 * i).collect();
    let mut params = IvfParams::new(nlist);
    params.nprobe = 5;
    let build =
        |d: &Device| IvfFlatIndex::build(&rows(0, n), &ids, Metric::L2, DType::F32, d, params).unwrap();
    let (mut on_device, mut on_cpu) = (build(&device), build(&Device::Cpu));
    let before = counter.downloaded();
    let store_bytes = n * dim * 4;
    for index in [&mut on_device, &mut on_cpu] {
        index.add(&rows(n, 30), &(0..30u64).map(|i| 3 * i + 1).collect::<Vec<_>>()).unwrap();
        assert_eq!(index.remove(&[0, 4, 30]).unwrap(), 3);
    }
    let moved = counter.downloaded() - before;
    assert!(moved < store_bytes / 20, "the changes downloaded {moved} bytes; the store is {store_bytes}");
    let queries = rows(11, nq);
    let (work, down) = (counter.work(), counter.downloaded());
    let a = on_device.search(&queries, k, None).unwrap();
    let (work, down) = (counter.work() - work, counter.downloaded() - down);
    // Probes (norms, select, merge), then norms, topk_ivf and merge: no exact ties in this data,
    // so no second ask.
    assert!(work <= 8, "one search made {work} launches for {nlist} lists");
    // Rows and scores of k + 1 results per query (i32 + f32).
    assert_eq!(down, nq * (k + 1) * 8, "one search downloaded {down} bytes");
    assert!(counter.launched().contains(&"topk_ivf_f32"), "{:?}", counter.launched());
    let b = on_cpu.search(&queries, k, None).unwrap();
    // Same ids; scores equal up to f32 rounding (the kernel and the CPU sum in different orders).
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.ids, y.ids, "device and CPU IVF indexes disagree");
        assert!(x.scores.iter().zip(&y.scores).all(|(s, t)| (s - t).abs() < 1e-4), "{x:?} vs {y:?}");
    }
}
