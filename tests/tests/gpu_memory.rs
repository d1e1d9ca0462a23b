//! The device memory meter on a real GPU (a binary of its own: no other test moves the counts).
//! Skipped with a printed reason where no GPU is usable; fails then under RAGTUNE_REQUIRE_GPU=1.

use ragtune_tests::{gpu::cuda_or_skip, memory};

#[test]
fn gpu_memory_meter_counts_tensors() {
    if let Some(d) = cuda_or_skip("gpu_memory_meter_counts_tensors") {
        memory::meter_counts_tensors(&d);
    }
}
