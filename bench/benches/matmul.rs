//! CPU matrix products through the op layer (the `gemm` crate underneath): GFLOP/s for square
//! SGEMMs up to a large one, a transposed-weight linear layer, bf16 operands, and batched small
//! products like attention heads. Each product is checked against a plain f64 loop on a few
//! entries before it is timed.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ragtune_bench::{gemm_flops, random_tensor};
use ragtune_compute::ops::{self, MatmulSpec};
use ragtune_compute::{DType, Tensor};

/// Spot-check C = A·op(B) at a few entries in f64 before timing.
fn check(a: &Tensor, b: &Tensor, c: &Tensor, trans_b: bool) {
    let (m, k) = (a.shape()[a.rank() - 2], a.last_dim());
    let n = c.last_dim();
    let (av, bv, cv) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap(), c.to_vec_f32().unwrap());
    for &(i, j) in &[(0, 0), (m - 1, n - 1), (m / 2, n / 3)] {
        let want: f64 = (0..k)
            .map(|p| av[i * k + p] as f64 * if trans_b { bv[j * k + p] } else { bv[p * n + j] } as f64)
            .sum();
        let got = cv[i * n + j] as f64;
        assert!((got - want).abs() <= 1e-2 * (1.0 + want.abs()), "C[{i},{j}] = {got}, expected {want}");
    }
}

fn square_sgemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("sgemm");
    g.sample_size(10);
    for n in [128usize, 512, 1024, 2048] {
        let a = random_tensor(1, &[n, n], DType::F32);
        let b = random_tensor(2, &[n, n], DType::F32);
        check(&a, &b, &ops::matmul(&a, &b).unwrap(), false);
        g.throughput(Throughput::Elements(gemm_flops(n, n, n)));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| ops::matmul(&a, &b).unwrap())
        });
    }
    g.finish();
}

fn linear_layers(c: &mut Criterion) {
    let mut g = c.benchmark_group("linear");
    g.sample_size(10);
    // A SmolLM2-sized projection (576 -> 1536) over 256 tokens, f32 and bf16 weights.
    for dtype in [DType::F32, DType::BF16] {
        let x = random_tensor(3, &[256, 576], dtype);
        let w = random_tensor(4, &[1536, 576], dtype);
        check(&x, &w, &ops::linear(&x, &w).unwrap(), true);
        g.throughput(Throughput::Elements(gemm_flops(256, 1536, 576)));
        g.bench_function(BenchmarkId::new("256x576x1536", dtype), |bench| {
            bench.iter(|| ops::linear(&x, &w).unwrap())
        });
    }
    g.finish();
}

fn batched_heads(c: &mut Criterion) {
    let mut g = c.benchmark_group("batched");
    g.sample_size(10);
    // Attention scores of 9 heads, 128 queries x 128 keys, head_dim 64.
    let q = random_tensor(5, &[9, 128, 64], DType::F32);
    let k = random_tensor(6, &[9, 128, 64], DType::F32);
    let spec = MatmulSpec { trans_b: true, ..Default::default() };
    g.throughput(Throughput::Elements(9 * gemm_flops(128, 128, 64)));
    g.bench_function("9x128x128x64", |bench| bench.iter(|| ops::matmul_ex(&q, &k, spec).unwrap()));
    g.finish();
}

criterion_group!(benches, square_sgemm, linear_layers, batched_heads);
criterion_main!(benches);
