//! Support for ragtune's cross-crate tests: seeded random inputs, f64 reference implementations
//! of the ops, the relative-error measure and tolerances of ARCHITECTURE.md, and the parity
//! suite that runs every op on a kernel device (the CPU emulation, or a real GPU) against the CPU.

pub mod gpu;
pub mod parity;
pub mod reference;

use ragtune_compute::{DType, Tensor, ops};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A batched matmul case: (batch dims of a, batch dims of b, m, n, k).
pub type MatmulCase = (&'static [usize], &'static [usize], usize, usize, usize);

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` values uniform in [-scale, scale).
pub fn random_vec(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// A host tensor of `dtype` with random values; returns it and the values it really holds
/// (after rounding to `dtype`), in f64, for references.
pub fn random_tensor(rng: &mut ChaCha8Rng, shape: &[usize], dtype: DType, scale: f32) -> (Tensor, Vec<f64>) {
    let n = shape.iter().product();
    let v = random_vec(rng, n, scale);
    let t = ops::cast(&Tensor::from_slice(&v, shape).expect("shape fits"), dtype).expect("cast");
    let held = t.to_vec_f32().expect("host").into_iter().map(f64::from).collect();
    (t, held)
}

/// ‖out − ref‖ / ‖ref‖; infinite when `out` holds a NaN or the lengths differ.
pub fn rel_err(out: &[f32], reference: &[f64]) -> f64 {
    if out.len() != reference.len() || out.iter().any(|v| v.is_nan()) {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (&o, &r) in out.iter().zip(reference) {
        num += (o as f64 - r).powi(2);
        den += r * r;
    }
    if den == 0.0 { num.sqrt() } else { (num / den).sqrt() }
}

/// The parity tolerance of ARCHITECTURE.md for results stored as `dtype`.
pub fn tolerance(dtype: DType, reduction: bool) -> f64 {
    match dtype {
        DType::F32 if reduction => 1e-4,
        DType::F32 => 1e-5,
        _ => 1e-2,
    }
}

/// Assert `rel_err(out, reference) <= tol` with a message that names the case.
#[track_caller]
pub fn assert_close(what: &str, out: &[f32], reference: &[f64], tol: f64) {
    let err = rel_err(out, reference);
    assert!(err <= tol, "{what}: relative error {err:.3e} exceeds {tol:.1e} (n = {})", out.len());
}
