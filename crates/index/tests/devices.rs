//! The index on a kernel device — the CPU emulation of `kernels/*.cu`, standing in for a GPU on
//! machines without one — gives the CPU index's results, and a file saved on one device loads on
//! the other (GPU → CPU and CPU → GPU) with the same results. On a machine with a GPU the same
//! checks run on CUDA too.

use std::sync::Arc;

use ragtune_compute::{DType, Device, Tensor};
use ragtune_index::{Filter, FlatIndex, IvfFlatIndex, IvfParams, Metric, SearchResult};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn devices() -> Vec<(String, Device)> {
    let mut out = vec![(
        "emulated".to_string(),
        Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Random(3) }))),
    )];
    match Device::cuda(0) {
        Ok(d) => out.push(("cuda".into(), d)),
        Err(e) => println!("no GPU for the CUDA half of this test: {e}"),
    }
    out
}

/// Small integer-valued vectors: every dot product and distance is exact in f32 on any path, so
/// results must agree to the bit, ties included.
fn integer_vectors(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Tensor {
    let v: Vec<f32> = (0..n * d).map(|_| rng.random_range(-3i32..=3) as f32).collect();
    Tensor::from_slice(&v, &[n, d]).unwrap()
}

fn ids(n: usize, rng: &mut ChaCha8Rng) -> Vec<u64> {
    let mut ids: Vec<u64> = (0..n as u64).map(|i| i * 7 + rng.random_range(0..5)).collect();
    ids.dedup();
    ids
}

fn same(what: &str, a: &[SearchResult], b: &[SearchResult]) {
    assert_eq!(a.len(), b.len(), "{what}: query count");
    for (q, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.ids, y.ids, "{what}: ids of query {q}");
        assert_eq!(x.scores, y.scores, "{what}: scores of query {q}");
    }
}

#[test]
fn flat_index_on_a_kernel_device_matches_the_cpu_and_files_cross_devices() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let (n, d) = (389, 24);
    let base = integer_vectors(&mut rng, n, d);
    let ids = ids(n, &mut rng);
    let base = base.reshape(&[n, d]).unwrap();
    let queries = integer_vectors(&mut rng, 9, d);
    let dir = std::env::temp_dir().join(format!("ragtune-index-devices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, dev) in devices() {
        for metric in [Metric::InnerProduct, Metric::L2] {
            for dtype in [DType::F32, DType::BF16] {
                let what = format!("{name} {metric:?} {dtype}");
                let mut cpu = FlatIndex::new(d, metric, dtype, &Device::cpu()).unwrap();
                cpu.add(&base, &ids).unwrap();
                let mut gpu = FlatIndex::new(d, metric, dtype, &dev).unwrap();
                gpu.add(&base, &ids).unwrap();
                let allow: Vec<u64> = ids.iter().copied().step_by(3).collect();
                for (k, filter) in [(1, None), (10, None), (n + 3, None), (7, Some(Filter::Ids(&allow)))] {
                    let want = cpu.search(&queries, k, filter.as_ref()).unwrap();
                    same(&format!("{what} k={k}"), &gpu.search(&queries, k, filter.as_ref()).unwrap(), &want);
                }
                // Saved from the device, loaded on the CPU, and the reverse.
                let want = cpu.search(&queries, 10, None).unwrap();
                let path = dir.join(format!("{name}-{metric:?}-{dtype}.rtx"));
                gpu.save(&path).unwrap();
                same(
                    &format!("{what} device->cpu"),
                    &FlatIndex::load(&path, &Device::cpu()).unwrap().search(&queries, 10, None).unwrap(),
                    &want,
                );
                cpu.save(&path).unwrap();
                same(
                    &format!("{what} cpu->device"),
                    &FlatIndex::load(&path, &dev).unwrap().search(&queries, 10, None).unwrap(),
                    &want,
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ivf_index_trains_and_searches_on_a_kernel_device_like_on_the_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (n, d) = (600, 16);
    let base = integer_vectors(&mut rng, n, d);
    let ids: Vec<u64> = (0..n as u64).collect();
    let queries = integer_vectors(&mut rng, 5, d);
    for (name, dev) in devices() {
        let mut params = IvfParams::new(8);
        params.nprobe = 8; // every list: results must equal exact search
        let cpu = IvfFlatIndex::build(&base, &ids, Metric::L2, DType::F32, &Device::cpu(), params).unwrap();
        let gpu = IvfFlatIndex::build(&base, &ids, Metric::L2, DType::F32, &dev, params).unwrap();
        let mut flat = FlatIndex::new(d, Metric::L2, DType::F32, &Device::cpu()).unwrap();
        flat.add(&base, &ids).unwrap();
        let want = flat.search(&queries, 10, None).unwrap();
        same(&format!("{name} ivf (all lists) vs flat"), &gpu.search(&queries, 10, None).unwrap(), &want);
        same("cpu ivf (all lists) vs flat", &cpu.search(&queries, 10, None).unwrap(), &want);
    }
}
