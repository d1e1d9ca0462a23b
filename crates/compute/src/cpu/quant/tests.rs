//! Checks of the quantized product against f64 references: every block type's integer dot
//! product against dequantize-then-f64 (within a bound computed from the 8-bit activation
//! rounding and the f32 summation), each SIMD path against the scalar one, and the f32-tile
//! path against f64. Weights are random bytes (every bit pattern is a valid block) with
//! realistic f16 scales written over the scale fields.

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gemm::{Path, qmatmul_on};
use super::{ActBits, Isa, QActs, QK, QMatrix, QuantKind};

const KINDS: [QuantKind; 5] =
    [QuantKind::Q8_0, QuantKind::Q4_0, QuantKind::Q4_1, QuantKind::Q4_K, QuantKind::Q6_K];

/// A random `[rows, cols]` matrix of `kind` blocks.
fn random_matrix(kind: QuantKind, rows: usize, cols: usize, seed: u64) -> QMatrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (per, size) = kind.block();
    let mut bytes = vec![0u8; rows * cols / per * size];
    rng.fill(&mut bytes[..]);
    let put =
        |b: &mut [u8], at: usize, v: f32| b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
    for b in bytes.chunks_exact_mut(size) {
        let (d, m) = (rng.random_range(0.002f32..0.05), rng.random_range(-0.4f32..0.4));
        match kind {
            QuantKind::Q8_0 | QuantKind::Q4_0 => put(b, 0, d),
            QuantKind::Q4_1 => {
                put(b, 0, d);
                put(b, 2, m);
            }
            QuantKind::Q4_K => {
                put(b, 0, d / 20.0);
                put(b, 2, m.abs() / 40.0);
            }
            QuantKind::Q6_K => put(b, 208, d / 40.0),
        }
    }
    QMatrix::from_gguf(kind, rows, cols, &bytes).unwrap()
}

/// Every quant type with a random `n`×`k` matrix (seed `seed` + the type's index) and `m` rows
/// of random activations (seed `seed` + 10 + the index).
fn random_cases(
    n: usize,
    k: usize,
    m: usize,
    seed: u64,
) -> impl Iterator<Item = (QuantKind, QMatrix, Vec<f32>)> {
    KINDS
        .into_iter()
        .zip(0u64..)
        .map(move |(kind, t)| (kind, random_matrix(kind, n, k, seed + t), random_x(m * k, seed + 10 + t)))
}

/// Every integer path on this CPU: both activation precisions on each available ISA.
fn integer_paths() -> impl Iterator<Item = (ActBits, Isa)> {
    [ActBits::I8, ActBits::Fine].into_iter().flat_map(|b| Isa::available().into_iter().map(move |i| (b, i)))
}

fn random_x(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// `x · Wᵀ` in f64 from the dequantized weights, and per output the error bound of the
/// integer path: Σ|w|·d_x·(step + 256ε) for rounding x (step ½ for 8 bits, 1/256 with the fine
/// residual; x/d is one f32 rounding away from the value rounded, checked in acts.rs), plus γ·Σ(|w| + 2|m|)(|x| + d_x) for the f32 scaling and summation of
/// 2·blocks + a few terms (γ = (2·blocks + 20)·ε; |m| enters because a `Nib` block sums d·q·x and
/// m·Σx separately).
/// Returns (y, bound, summation part of the bound).
fn reference(w: &QMatrix, x: &[f32], m: usize, bits: ActBits) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, k) = (w.rows, w.cols);
    let wf = w.dequantize();
    let acts = QActs::quantize(x, m, k, bits);
    let step = if bits == ActBits::I8 { 0.5 } else { 1.0 / 256.0 };
    let eps = f32::EPSILON as f64;
    let gamma = (2 * k / QK + 20) as f64 * eps;
    let (mut y, mut bound, mut sum_part) = (vec![0f64; m * n], vec![0f64; m * n], vec![0f64; m * n]);
    for r in 0..m {
        for j in 0..n {
            let (mut s, mut round, mut mag) = (0f64, 0f64, 0f64);
            for p in 0..k {
                let (wv, xv) = (wf[j * k + p] as f64, x[r * k + p] as f64);
                let dx = acts.d[r * k / QK + p / QK] as f64;
                let off = if w.m.is_empty() { 0.0 } else { w.m[j * k / QK + p / QK].abs() as f64 };
                s += wv * xv;
                round += wv.abs() * dx * (step + 256.0 * eps);
                mag += (wv.abs() + 2.0 * off) * (xv.abs() + dx);
            }
            y[r * n + j] = s;
            bound[r * n + j] = round + gamma * mag;
            sum_part[r * n + j] = gamma * mag;
        }
    }
    (y, bound, sum_part)
}

/// One integer path's product on one random case, with the f64 reference that judges it.
struct IntegerRun<'a> {
    kind: QuantKind,
    bits: ActBits,
    isa: Isa,
    w: &'a QMatrix,
    x: &'a [f32],
    /// [`reference`]'s `(y, bound, summation part of the bound)` for the case at `bits`.
    want: (Vec<f64>, Vec<f64>, Vec<f64>),
    /// The path's output.
    got: Vec<f32>,
}

/// Every integer path (see [`integer_paths`]) on every case of [`random_cases`]`(n, k, m,
/// seed)`, each run handed to `check`.
fn for_each_integer_run(n: usize, k: usize, m: usize, seed: u64, mut check: impl FnMut(IntegerRun)) {
    for (kind, w, x) in random_cases(n, k, m, seed) {
        for (bits, isa) in integer_paths() {
            let want = reference(&w, &x, m, bits);
            let got = qmatmul_on(Path::Integer(isa, bits), &x, m, &w);
            check(IntegerRun { kind, bits, isa, w: &w, x: &x, want, got });
        }
    }
}

#[test]
fn integer_dot_matches_dequantized_f64_for_every_type_and_isa() {
    let (n, k, m) = (7, 512, 3);
    for_each_integer_run(
        n,
        k,
        m,
        10,
        |IntegerRun { kind, isa, w, x, want: (want, bound, _), got, .. }| {
            let mut worst = 0f64;
            for i in 0..want.len() {
                let err = (got[i] as f64 - want[i]).abs();
                assert!(
                    err <= bound[i],
                    "{kind:?} {isa:?} out {i}: {} vs {} (err {err:.3e} > {:.3e})",
                    got[i],
                    want[i],
                    bound[i]
                );
                worst = worst.max(err);
            }
            // The activation rounding is real, and the bound is a small fraction of Σ|w·x| (so a
            // wrong block would break it; the exact-activation test below is the sharp one).
            assert!(worst > 0.0, "{kind:?} {isa:?}: no rounding at all?");
            let wf = w.dequantize();
            for (i, b) in bound.iter().enumerate() {
                let (r, j) = (i / n, i % n);
                let mag: f64 = (0..k).map(|p| (wf[j * k + p] as f64 * x[r * k + p] as f64).abs()).sum();
                assert!(*b < 0.05 * mag, "{kind:?}: bound {b:.3e} vs Σ|w·x| {mag:.3e}");
            }
        },
    );
}

/// Activations that are exactly 8-bit (each block's largest is 127·2⁻⁷, so d = 2⁻⁷ and every
/// value is d·q): only the f32 summation separates the integer path from f64.
#[test]
fn exactly_quantized_activations_leave_only_summation_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (n, k, m) = (5, 256, 2);
    let mut x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-127i32..=127) as f32 / 128.0).collect();
    for b in x.chunks_exact_mut(QK) {
        b[rng.random_range(0..QK)] = if rng.random_bool(0.5) { 127.0 } else { -127.0 } / 128.0;
    }
    for kind in KINDS {
        let w = random_matrix(kind, n, k, 40);
        let (want, _, _) = reference(&w, &x, m, ActBits::I8);
        let wf = w.dequantize();
        for (bits, isa) in integer_paths() {
            let got = qmatmul_on(Path::Integer(isa, bits), &x, m, &w);
            for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                let (r, j) = (i / n, i % n);
                let mag: f64 =
                    (0..k).map(|p| (wf[j * k + p] as f64).abs() * (x[r * k + p] as f64).abs()).sum();
                let off: f64 = if w.m.is_empty() {
                    0.0
                } else {
                    w.m[j * k / QK..(j + 1) * k / QK].iter().map(|v| v.abs() as f64).sum()
                };
                let tol = (2 * k / QK + 20) as f64 * f32::EPSILON as f64 * (mag + 2.0 * off);
                assert!(
                    (g as f64 - e).abs() <= tol,
                    "{kind:?} {isa:?} {bits:?} out {i}: {g} vs {e} (tol {tol:.2e})"
                );
            }
        }
    }
}

/// Each SIMD path against the scalar one: the integer block sums are exact on both, so they
/// differ only by f32 rounding of the scaled sums, within γ·Σ|terms|.
#[test]
fn simd_paths_agree_with_scalar() {
    let (n, k, m) = (33, 1024, 2);
    for_each_integer_run(n, k, m, 50, |IntegerRun { kind, bits, isa, w, x, want: (_, _, sum_part), got }| {
        let scalar = qmatmul_on(Path::Integer(Isa::Scalar, bits), x, m, w);
        for i in 0..got.len() {
            // Twice the summation part of the bound: each side rounds differently.
            assert!(
                (got[i] - scalar[i]).abs() as f64 <= 2.0 * sum_part[i],
                "{kind:?} {isa:?} {bits:?} out {i}: {} vs scalar {}",
                got[i],
                scalar[i]
            );
        }
    });
    println!("quant dot paths on this CPU: {:?}", Isa::available());
}

/// The prefill path (dequantized tiles through the f32 GEMM) against f64: no activation
/// rounding, only f32 summation over k.
#[test]
fn tile_path_matches_f64() {
    for kind in KINDS {
        let (n, k, m) = (150, 256, 9);
        let w = random_matrix(kind, n, k, 70);
        let x = random_x(m * k, 71);
        let wf = w.dequantize();
        let got = qmatmul_on(Path::F32Tiles, &x, m, &w);
        for r in 0..m {
            for j in 0..n {
                let (mut s, mut mag) = (0f64, 0f64);
                for p in 0..k {
                    let v = wf[j * k + p] as f64 * x[r * k + p] as f64;
                    s += v;
                    mag += v.abs();
                }
                let tol = 2.0 * k as f64 * f32::EPSILON as f64 * mag;
                assert!(
                    (got[r * n + j] as f64 - s).abs() <= tol,
                    "{kind:?} ({r}, {j}): {} vs {s}",
                    got[r * n + j]
                );
            }
        }
    }
}

#[test]
fn select_rows_moves_whole_rows_and_sizes_are_checked() {
    let w = random_matrix(QuantKind::Q4_1, 4, 64, 80);
    let s = w.select_rows(&[2, 0, 3, 1]).unwrap();
    let (a, b) = (w.dequantize(), s.dequantize());
    for (new, old) in [2, 0, 3, 1].into_iter().enumerate() {
        assert_eq!(&b[new * 64..new * 64 + 64], &a[old * 64..old * 64 + 64]);
    }
    assert!(w.select_rows(&[4]).unwrap_err().contains("row 4"));
    let err = QMatrix::from_gguf(QuantKind::Q4_K, 2, 64, &[0; 144]).unwrap_err();
    assert!(err.contains("not whole Q4_K blocks of 256"), "{err}");
    let err = QMatrix::from_gguf(QuantKind::Q8_0, 2, 64, &[0; 100]).unwrap_err();
    assert!(err.contains("136"), "{err}");
}
