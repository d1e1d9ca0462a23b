//! GPU benchmarks that travel in the GPU bundle: fused attention next to a naive unfused one in
//! the same run (TFLOP/s and speed-up), each output checked before it is timed. Without a GPU the
//! benchmark is skipped with the reason; its code runs on the kernel emulator at a tiny size, so
//! the bundle never carries a benchmark that was not executed somewhere.

use std::sync::Arc;

use ragtune_compute::{DType, Device};
use ragtune_kernel_emu::{EmuBackend, EmuOptions};
use ragtune_tests::attention_bench::{measure, table};
use ragtune_tests::gpu::cuda_or_skip;

#[test]
fn gpu_attention_fused_vs_naive() {
    let Some(device) = cuda_or_skip("gpu_attention_fused_vs_naive") else { return };
    let mut rows = Vec::new();
    for seq in [1024, 4096] {
        for dtype in [DType::BF16, DType::F16] {
            rows.push(measure(&device, 32, seq, 128, dtype, 10));
        }
    }
    rows.push(measure(&device, 64, 2048, 64, DType::BF16, 10));
    println!("{}", table(&device, &rows));
}

#[test]
fn attention_bench_code_runs_on_the_emulator() {
    let device = Device::from_backend(Arc::new(EmuBackend::new(EmuOptions::default())));
    let rows = vec![measure(&device, 2, 37, 32, DType::BF16, 1), measure(&device, 1, 20, 64, DType::F32, 1)];
    let t = table(&device, &rows);
    assert!(t.contains("| 2 | 37 | 32 | bf16 |") && t.contains("| 1 | 20 | 64 | f32 |"), "{t}");
    assert!(rows.iter().all(|r| r.fused_ms > 0.0 && r.naive_ms > 0.0 && r.fused_tflops.is_finite()));
}
