//! The fused top-k's 64-query block needs ~161 KB of shared memory at k = 128, more than
//! sm_86/sm_89 GPUs give a block (99 KiB): on such a device the op must take the radix path
//! and return the CPU's answer, not fail at launch. Posed with the emulator behind a counted
//! device that reports the smaller limit.

use std::sync::Arc;

use ragtune_compute::ops::{self, Similarity, TopkSpec};
use ragtune_compute::{DType, Device, Tensor};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_tests::instrumented::Instrumented;
use ragtune_tests::{random_tensor, rng};

fn search(limit: Option<usize>, q: &Tensor, base: &Tensor, spec: TopkSpec) -> (Vec<i32>, Vec<&'static str>) {
    let mut counted =
        Instrumented::new(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward })));
    counted.max_shared = limit;
    let counted = Arc::new(counted);
    let device = Device::from_backend(counted.clone());
    let r =
        ops::topk_similarity(&q.to_device(&device).unwrap(), &base.to_device(&device).unwrap(), spec, None)
            .unwrap();
    (r.rows.to_vec::<i32>().unwrap(), counted.launched())
}

#[test]
fn large_k_on_a_small_shared_memory_gpu_takes_the_radix_path_with_the_same_answer() {
    let mut r = rng(61);
    let (q, _) = random_tensor(&mut r, &[12, 24], DType::F32, 1.0);
    let (base, _) = random_tensor(&mut r, &[300, 24], DType::F32, 1.0);
    let spec = TopkSpec { k: 100, similarity: Similarity::Dot };
    let want = ops::topk_similarity(&q, &base, spec, None).unwrap().rows.to_vec::<i32>().unwrap();
    // An A100/H100-sized limit: the fused block fits.
    let (rows, launched) = search(None, &q, &base, spec);
    assert_eq!(rows, want);
    assert!(launched.iter().any(|k| k.starts_with("topk_fused")), "{launched:?}");
    // 99 KiB a block (sm_86/sm_89): k = 100 (buffers of 128) does not fit; radix does the work.
    let (rows, launched) = search(Some(99 * 1024), &q, &base, spec);
    assert_eq!(rows, want);
    assert!(!launched.iter().any(|k| k.starts_with("topk_fused")), "{launched:?}");
    assert!(launched.iter().any(|k| k.starts_with("topk_radix")), "{launched:?}");
}
