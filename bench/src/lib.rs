//! Shared pieces of ragtune's benchmarks: seeded inputs and FLOP counts by the conventions of
//! PERFORMANCE.md, so every bench reports rates the same way.

use ragtune_compute::{DType, Tensor, ops};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A host tensor of `dtype` with values uniform in [-1, 1), reproducible by `seed`.
pub fn random_tensor(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    ops::cast(&Tensor::from_slice(&v, shape).expect("shape"), dtype).expect("cast")
}

/// FLOPs of an `m × n × k` matrix product: 2·m·n·k.
pub fn gemm_flops(m: usize, n: usize, k: usize) -> u64 {
    2 * (m * n * k) as u64
}
