//! CPU row-wise and elementwise ops: RMSNorm, LayerNorm, softmax, SiLU, GELU, casts. These are
//! memory-bound, so throughput is reported in bytes moved (each input read once, output written
//! once).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ragtune_bench::random_tensor;
use ragtune_compute::DType;
use ragtune_compute::ops::{self, SoftmaxSpec};

fn rowwise(c: &mut Criterion) {
    let mut g = c.benchmark_group("rowwise");
    g.sample_size(20);
    let (rows, cols) = (512usize, 2048usize);
    let bytes = (2 * rows * cols * 4) as u64;
    let x = random_tensor(1, &[rows, cols], DType::F32);
    let w = random_tensor(2, &[cols], DType::F32);
    assert!(ops::rms_norm(&x, &w, 1e-5).unwrap().to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("rms_norm 512x2048", |b| b.iter(|| ops::rms_norm(&x, &w, 1e-5).unwrap()));
    g.bench_function("layer_norm 512x2048", |b| b.iter(|| ops::layer_norm(&x, &w, Some(&w), 1e-5).unwrap()));
    let spec = SoftmaxSpec { scale: 0.125, causal: true };
    let s = ops::softmax(&x, spec).unwrap().to_vec::<f32>().unwrap();
    assert!((s[..cols].iter().sum::<f32>() - 1.0).abs() < 1e-4);
    g.bench_function("softmax causal 512x2048", |b| b.iter(|| ops::softmax(&x, spec).unwrap()));
    g.bench_function("silu 1M", |b| b.iter(|| ops::silu(&x).unwrap()));
    g.bench_function("gelu 1M", |b| b.iter(|| ops::gelu(&x).unwrap()));
    g.throughput(Throughput::Bytes((rows * cols * 6) as u64));
    g.bench_function("cast f32->bf16 1M", |b| b.iter(|| ops::cast(&x, DType::BF16).unwrap()));
    g.finish();
}

criterion_group!(benches, rowwise);
criterion_main!(benches);
