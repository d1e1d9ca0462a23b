//! The kernel parity suite on a real GPU (CUDA through cudarc and NVRTC) against the CPU.
//! Skipped with a printed reason where no GPU is usable; fails then under RAGTUNE_REQUIRE_GPU=1.

use ragtune_tests::{gpu::cuda_or_skip, parity, rng};

#[test]
fn gpu_matmul_matches_cpu() {
    if let Some(d) = cuda_or_skip("gpu_matmul_matches_cpu") {
        parity::matmul(&d, &mut rng(11));
    }
}

#[test]
fn gpu_norms_match_cpu() {
    if let Some(d) = cuda_or_skip("gpu_norms_match_cpu") {
        parity::norms(&d, &mut rng(12));
    }
}

#[test]
fn gpu_l2_normalize_matches_cpu() {
    if let Some(d) = cuda_or_skip("gpu_l2_normalize_matches_cpu") {
        parity::l2_normalize(&d, &mut rng(16));
    }
}

#[test]
fn gpu_topk_matches_cpu() {
    if let Some(d) = cuda_or_skip("gpu_topk_matches_cpu") {
        parity::topk(&d, &mut rng(17));
    }
}

#[test]
fn gpu_kmeans_matches_cpu() {
    if let Some(d) = cuda_or_skip("gpu_kmeans_matches_cpu") {
        parity::kmeans(&d, &mut rng(18));
    }
}

#[test]
fn gpu_softmax_matches_cpu() {
    if let Some(d) = cuda_or_skip("gpu_softmax_matches_cpu") {
        parity::softmax(&d, &mut rng(13));
    }
}

#[test]
fn gpu_elementwise_matches_cpu() {
    if let Some(d) = cuda_or_skip("gpu_elementwise_matches_cpu") {
        parity::elementwise(&d, &mut rng(14));
    }
}

#[test]
fn gpu_cast_matches_cpu_exactly() {
    if let Some(d) = cuda_or_skip("gpu_cast_matches_cpu_exactly") {
        parity::cast(&d, &mut rng(15));
    }
}

#[test]
fn gpu_attention_matches_cpu() {
    if let Some(d) = cuda_or_skip("gpu_attention_matches_cpu") {
        parity::attention(&d, &mut rng(19));
    }
}

#[test]
fn gpu_rope_embed_swiglu_and_copy_match_cpu() {
    if let Some(d) = cuda_or_skip("gpu_rope_embed_swiglu_and_copy_match_cpu") {
        parity::rope(&d, &mut rng(20));
        parity::embedding(&d, &mut rng(21));
        parity::swiglu(&d, &mut rng(22));
        parity::copy_into(&d, &mut rng(23));
    }
}
