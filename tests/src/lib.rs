//! Support for ragtune's cross-crate tests: seeded random inputs, f64 reference implementations
//! of the ops, the relative-error measure and tolerances of docs/ARCHITECTURE.md, the parity
//! suite that runs every op on a kernel device (the CPU emulation, or a real GPU) against the CPU,
//! and the device checks that do the same for whole models, indexes and training steps.

pub mod device_checks;
pub mod fuzz;
pub mod gpu;
pub mod instrumented;
pub mod kill;
pub mod memory;
pub mod parity;
pub mod reference;
pub mod suites;

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

/// Gaussian clusters: `n` points in `clusters` blobs (centres uniform in [-1, 1)^dim, σ =
/// `sigma` per coordinate), plus `nq` queries drawn from the same blobs. The indexes' tests and
/// their recall example share it, so the example measures the data the tests check.
pub fn clustered(
    rng: &mut ChaCha8Rng,
    n: usize,
    nq: usize,
    dim: usize,
    clusters: usize,
    sigma: f32,
) -> (Vec<f32>, Vec<f32>) {
    let centers: Vec<f32> = (0..clusters * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let point = |rng: &mut ChaCha8Rng| {
        let c = rng.random_range(0..clusters);
        (0..dim).map(|j| centers[c * dim + j] + sigma * gauss(rng)).collect::<Vec<f32>>()
    };
    let base = (0..n).flat_map(|_| point(rng)).collect();
    let queries = (0..nq).flat_map(|_| point(rng)).collect();
    (base, queries)
}

/// A standard normal draw (Box–Muller).
fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random_range(0.0..1.0));
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
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

/// ‖out − ref‖ / ‖ref‖; infinite when `out` holds a NaN or an infinity, or the lengths differ.
pub fn rel_err(out: &[f32], reference: &[f64]) -> f64 {
    if out.len() != reference.len() || out.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (&o, &r) in out.iter().zip(reference) {
        num += (o as f64 - r).powi(2);
        den += r * r;
    }
    if den == 0.0 { num.sqrt() } else { (num / den).sqrt() }
}

/// The parity tolerance of docs/ARCHITECTURE.md for results stored as `dtype`.
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

/// A host tensor of `dtype` holding small integers in `[-max, max]`: exactly representable in
/// every float dtype, and so are their dot products and squared distances for short rows — so
/// searches on every path must agree exactly, rows and ties included. Returns the values too.
pub fn integer_tensor(rng: &mut ChaCha8Rng, shape: &[usize], dtype: DType, max: i32) -> (Tensor, Vec<f64>) {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-max..=max) as f32).collect();
    let t = ops::cast(&Tensor::from_slice(&v, shape).expect("shape fits"), dtype).expect("cast");
    (t, v.into_iter().map(f64::from).collect())
}

/// A u32 row bitmap tensor (⌈n/32⌉ words) from per-row flags.
pub fn bitmap_tensor(allow: &[bool]) -> Tensor {
    let mut words = vec![0u32; allow.len().div_ceil(32)];
    for (r, _) in allow.iter().enumerate().filter(|(_, a)| **a) {
        words[r / 32] |= 1 << (r % 32);
    }
    Tensor::from_slice(&words, &[words.len()]).expect("1-D")
}

/// Queries `[nq, d]` and a base `[n, d]` for search tests, with ties planted: every 7th base
/// row repeats an earlier row, and every 3rd query is a copy of a base row. With `integer`, the
/// values are small integers (exact scores everywhere, see [`integer_tensor`]); otherwise
/// uniform in [-1, 1). Returns the tensors and the values they hold, in f64.
pub fn search_case(
    rng: &mut ChaCha8Rng,
    nq: usize,
    n: usize,
    d: usize,
    dtype: DType,
    integer: bool,
) -> (Tensor, Tensor, Vec<f64>, Vec<f64>) {
    let draw = |rng: &mut ChaCha8Rng, rows: usize| -> Vec<f32> {
        (0..rows * d)
            .map(
                |_| if integer { rng.random_range(-3i32..=3) as f32 } else { rng.random_range(-1.0f32..1.0) },
            )
            .collect()
    };
    let mut b = draw(rng, n);
    for r in (7..n).step_by(7) {
        let src = rng.random_range(0..r);
        b.copy_within(src * d..(src + 1) * d, r * d);
    }
    let mut q = draw(rng, nq);
    if n > 0 {
        for i in (0..nq).step_by(3) {
            let src = rng.random_range(0..n);
            q[i * d..(i + 1) * d].copy_from_slice(&b[src * d..(src + 1) * d]);
        }
    }
    let to = |v: &[f32], rows: usize| {
        let t = ops::cast(&Tensor::from_slice(v, &[rows, d]).expect("shape"), dtype).expect("cast");
        let held = t.to_vec_f32().expect("host").into_iter().map(f64::from).collect();
        (t, held)
    };
    let ((qt, qv), (bt, bv)) = (to(&q, nq), to(&b, n));
    (qt, bt, qv, bv)
}

/// The lists and probes of a `topk_ivf` test: list sizes `sizes` (their sum is the base's
/// rows), `nprobe` distinct lists per query (drawn at random), plus one −1 probe (searches
/// nothing) in every 4th query's last column when `nprobe` > 1. Returns the offsets (i32
/// `[nlist + 1]`) and probes (i32 `[nq, nprobe]`) as tensors and as vectors.
pub fn ivf_case(
    rng: &mut ChaCha8Rng,
    sizes: &[usize],
    nq: usize,
    nprobe: usize,
) -> (Tensor, Tensor, Vec<i32>, Vec<i32>) {
    let mut offsets = vec![0i32];
    for &s in sizes {
        offsets.push(offsets.last().unwrap() + s as i32);
    }
    let nlist = sizes.len();
    let mut probes = Vec::with_capacity(nq * nprobe);
    for q in 0..nq {
        let mut lists: Vec<i32> = (0..nlist as i32).collect();
        for i in 0..nprobe {
            let j = rng.random_range(i..nlist);
            lists.swap(i, j);
        }
        probes.extend_from_slice(&lists[..nprobe]);
        if nprobe > 1 && q % 4 == 0 {
            *probes.last_mut().unwrap() = -1;
        }
    }
    let ot = Tensor::from_slice(&offsets, &[nlist + 1]).expect("1-D");
    let pt = Tensor::from_slice(&probes, &[nq, nprobe]).expect("2-D");
    (ot, pt, offsets, probes)
}

/// The operands of [`ops::lora_backward`] from the tensors `[x, mask, dy, u, a, b, ids]`: the
/// dropout mask is passed only where `masked`.
pub fn lora_backward_args<'a>(
    [x, mask, dy, u, a, b, ids]: [&'a Tensor; 7],
    masked: bool,
    scales: &'a [f32],
) -> ops::LoraBackward<'a> {
    ops::LoraBackward { x, mask: masked.then_some(mask), dy, u, a, b, ids, scales }
}
