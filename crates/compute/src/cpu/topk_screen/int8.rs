//! The int8 format of the screen (AVX2, or AVX512-VNNI's `vpdpbusd` on 256-bit registers): every
//! vector scaled by its largest |element| and rounded to integer levels, the dot products of the
//! levels summed exactly in i32, then scaled back in f32.
//!
//! A base row x becomes `x̃ = s_x·l_x` with levels `l_x` in ±127 (i8) and `s_x = max|x|/127`; a
//! query becomes `q̃ = s_q·l_q` with levels in ±63, stored offset by 64 as bytes 1..=127:
//! `vpmaddubsw` multiplies unsigned bytes by signed ones and adds pairs into an i16, which two
//! products of at most 127·127 cannot overflow. The offset comes back out as `64·Σ l_x`, a
//! per-row constant. The integer sum `v = l_q·l_x` is exact, and `s̃ = (v·s_x)·s_q` takes three
//! f32 roundings.
//!
//! The bound: with `e_q = ‖q̃ − q‖` and `e_x = ‖x̃ − x‖` (measured while rounding),
//! `|q̃·x̃ − q·x| ≤ |(q̃ − q)·x̃| + |q·(x̃ − x)| ≤ e_q·‖x̃‖ + ‖q‖·e_x` (Cauchy–Schwarz twice), and
//! `‖x̃‖ ≤ ‖x‖ + e_x`. The three roundings of `s̃` (relative 2⁻²⁴ each, of `|q̃·x̃| ≤ ‖q̃‖·‖x̃‖`)
//! and the f32 re-scoring of `s*` (below `(d + 2)·2⁻²³·‖q‖·‖x‖` in any summation order) add
//! `c·Q·X` with `Q = ‖q‖ + e_q`, `X = ‖x‖ + e_x`, `c = (d + 2)·2⁻²³ + 4·2⁻²⁴`. So
//! `a_q = e_q + c·Q`, `u_x = X`, `b_q = ‖q‖`, `v_x = e_x`, `c_q = 0`, each rounded up. Vectors
//! whose largest |element| is below 2⁻⁵⁰ round to all-zero levels with scale 0 and error the
//! whole norm, so every product of scales stays a normal f32.

use super::super::topk::sqnorm;
use super::{Kernel, QG, Queries, R, RowTerms, bounded_norm, norm_from_sqnorm};

/// Query levels: ±63, so a level plus the offset fits in 1..=127.
const Q_LEVELS: f32 = 63.0;
/// The query bytes' offset: a level of 0 is the byte 64.
const OFFSET: i32 = 64;
/// Base-row levels: ±127.
const X_LEVELS: f32 = 127.0;
/// Below this largest |element|, a vector is rounded to zero.
const MIN_MAXABS: f32 = 1.0 / (1u64 << 50) as f32;
/// A relative nudge up for every term rounded to f32 (covers the f32 evaluation of the bound).
const UP: f64 = 1.0 + 1.0 / (1u64 << 20) as f64;

/// The query side: offset levels, scales and the bound's per-query terms; `None` when a norm is
/// not finite or too large.
pub(super) fn queries(q: &[f32], nq: usize, d: usize, groups: usize) -> Option<Queries> {
    let dw = d.div_ceil(4);
    let c = (d as f64 + 2.0) * 2f64.powi(-23) + 4.0 * 2f64.powi(-24);
    let neutral = u32::from_le_bytes([OFFSET as u8; 4]);
    let mut qs = Queries::zeroed(groups * QG, dw, neutral);
    for qi in 0..nq {
        let row = &q[qi * d..(qi + 1) * d];
        let norm = f64::from(bounded_norm(row)?);
        let maxabs = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (g, lane) = (qi / QG, qi % QG);
        let err = if maxabs < MIN_MAXABS {
            norm
        } else {
            let (scale, inv) = (maxabs / Q_LEVELS, Q_LEVELS / maxabs);
            let mut err = 0f64;
            for (p, chunk) in row.chunks(4).enumerate() {
                let mut bytes = [OFFSET as u8; 4];
                for (b, &v) in bytes.iter_mut().zip(chunk) {
                    let level = (v * inv).round_ties_even().clamp(-Q_LEVELS, Q_LEVELS);
                    *b = (level as i32 + OFFSET) as u8;
                    err += (f64::from(scale) * f64::from(level) - f64::from(v)).powi(2);
                }
                qs.packed[(g * dw + p) * QG + lane] = u32::from_le_bytes(bytes);
            }
            qs.scale[qi] = scale;
            err.sqrt() * UP
        };
        qs.a[qi] = ((err + c * (norm + err)) * UP) as f32;
        qs.b[qi] = (norm * UP) as f32;
        qs.sq[qi] = sqnorm(row);
    }
    Some(qs)
}

/// One base row `x` (f32 sum of squares `sq`) into `out`'s levels, four per word; `None` when
/// its norm cannot be bounded.
pub(super) fn convert_row(kernel: Kernel, x: &[f32], sq: f32, out: &mut [u32]) -> Option<RowTerms> {
    let d = x.len();
    let xn = f64::from(norm_from_sqnorm(sq, d)?);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
    let (scale, sum, err_sq) = quantize(kernel, x, bytes);
    // The computed differences carry one rounding each (relative 2⁻²⁴), hence the 2⁻²².
    let err =
        if scale == 0.0 { xn } else { f64::from(norm_from_sqnorm(err_sq, d)?) * (1.0 + 2f64.powi(-22)) };
    Some(RowTerms { u: ((xn + err) * UP) as f32, v: (err * UP) as f32, scale, bias: OFFSET * sum })
}

/// Levels of `x` into `out` (zero past its end): the scale, the sum of the levels, and the f32
/// sum of squared differences `s·l − x`.
fn quantize(kernel: Kernel, x: &[f32], out: &mut [u8]) -> (f32, i32, f32) {
    #[cfg(target_arch = "x86_64")]
    if matches!(kernel, Kernel::Avx2Int8 | Kernel::VnniInt8) {
        // SAFETY: both kernels are only chosen where the CPU has AVX2 + FMA.
        return unsafe { avx2::quantize(x, out) };
    }
    let _ = kernel;
    quantize_body(x, out)
}

/// [`quantize`]'s arithmetic in plain Rust, in lanes of 8 (element i in lane i mod 8), which the
/// AVX2 version repeats register by register.
#[inline(always)]
fn quantize_body(x: &[f32], out: &mut [u8]) -> (f32, i32, f32) {
    let maxabs = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if maxabs < MIN_MAXABS {
        out.fill(0);
        return (0.0, 0, 0.0);
    }
    // |v·inv| ≤ 127·(1 + 2⁻²⁴)², so the rounded level never leaves ±127.
    let (scale, inv) = (maxabs / X_LEVELS, X_LEVELS / maxabs);
    let (mut sums, mut errs) = ([0i32; 8], [0f32; 8]);
    let (xc, oc) = (x.chunks_exact(8), out.chunks_exact_mut(8));
    let xr = xc.remainder();
    for (xs, os) in xc.zip(oc) {
        for m in 0..8 {
            level_into(xs[m], (inv, scale), &mut os[m], &mut sums[m], &mut errs[m]);
        }
    }
    let tail = x.len() - xr.len();
    for (m, &v) in xr.iter().enumerate() {
        level_into(v, (inv, scale), &mut out[tail + m], &mut sums[m], &mut errs[m]);
    }
    out[x.len()..].fill(0);
    (scale, sums.iter().sum(), errs.iter().sum())
}

/// One value's level into `byte`, added to its lane's sum of levels and of squared differences.
#[inline(always)]
fn level_into(v: f32, (inv, scale): (f32, f32), byte: &mut u8, sum: &mut i32, err: &mut f32) {
    let level = (v * inv).round_ties_even();
    *byte = level as i8 as u8;
    *sum += level as i32;
    let diff = scale.mul_add(level, -v);
    *err = diff.mul_add(diff, *err);
}

/// `tile[j][l] = ((v·s_x)·s_q)` for base row `j` of `rows` (R rows × dw words) and query lane `l`
/// of the group `qp` (dw × QG words, scales `qscale`).
pub(super) fn score_tile(
    kernel: Kernel,
    qp: &[u32],
    qscale: &[f32],
    rows: &[u32],
    terms: &[RowTerms; R],
    dw: usize,
    tile: &mut [[f32; QG]; R],
) {
    assert!(qp.len() == dw * QG && rows.len() == R * dw && qscale.len() == QG);
    #[cfg(target_arch = "x86_64")]
    match kernel {
        Kernel::Avx2Int8 => {
            // SAFETY: chosen only where the CPU has AVX2 + FMA; lengths as asserted.
            unsafe { avx2::tile(qp, qscale, rows, terms, dw, tile) };
            return;
        }
        Kernel::VnniInt8 => {
            // SAFETY: chosen only where the CPU has AVX512-VNNI + VL (and AVX2); as asserted.
            unsafe { avx2::tile_vnni(qp, qscale, rows, terms, dw, tile) };
            return;
        }
        _ => {}
    }
    let _ = kernel;
    for (j, out) in tile.iter_mut().enumerate() {
        let x = &rows[j * dw..(j + 1) * dw];
        for (l, o) in out.iter_mut().enumerate() {
            let mut v = 0i32;
            for (p, &xw) in x.iter().enumerate() {
                let (qb, xb) = (qp[p * QG + l].to_le_bytes(), xw.to_le_bytes());
                v += (0..4).map(|m| i32::from(qb[m]) * i32::from(xb[m] as i8)).sum::<i32>();
            }
            *o = ((v - terms[j].bias) as f32 * terms[j].scale) * qscale[l];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::{QG, R, RowTerms};

    /// [`super::quantize_body`] 32 values at a time: the same levels, the same per-lane order
    /// of the squared differences (lane m takes elements m, m + 8, …), so the same results.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn quantize(x: &[f32], out: &mut [u8]) -> (f32, i32, f32) {
        let full = x.len() / 32 * 32;
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut mx = _mm256_setzero_ps();
        // SAFETY (all blocks below): offsets stay below `full` ≤ x.len() ≤ out.len().
        for i in (0..full).step_by(8) {
            mx = unsafe { _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(x.as_ptr().add(i)), abs_mask)) };
        }
        let mut lanes = [0f32; 8];
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), mx) };
        let maxabs = x[full..].iter().chain(&lanes).fold(0f32, |m, v| m.max(v.abs()));
        if maxabs < super::MIN_MAXABS {
            out.fill(0);
            return (0.0, 0, 0.0);
        }
        let (scale, inv) = (maxabs / super::X_LEVELS, super::X_LEVELS / maxabs);
        let (vs, vi) = (_mm256_set1_ps(scale), _mm256_set1_ps(inv));
        let (mut sums, mut errs) = (_mm256_setzero_si256(), _mm256_setzero_ps());
        // Undo the lane interleaving of the two packs.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for i in (0..full).step_by(32) {
            let mut ints = [_mm256_setzero_si256(); 4];
            for (c, int) in ints.iter_mut().enumerate() {
                let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i + 8 * c)) };
                let level = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(v, vi),
                );
                *int = _mm256_cvtps_epi32(level);
                sums = _mm256_add_epi32(sums, *int);
                let diff = _mm256_fmsub_ps(vs, level, v);
                errs = _mm256_fmadd_ps(diff, diff, errs);
            }
            let words = _mm256_packs_epi16(
                _mm256_packs_epi32(ints[0], ints[1]),
                _mm256_packs_epi32(ints[2], ints[3]),
            );
            let bytes = _mm256_permutevar8x32_epi32(words, order);
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), bytes) };
        }
        let (mut sum_lanes, mut err_lanes) = ([0i32; 8], [0f32; 8]);
        unsafe {
            _mm256_storeu_si256(sum_lanes.as_mut_ptr().cast(), sums);
            _mm256_storeu_ps(err_lanes.as_mut_ptr(), errs);
        }
        for (m, &v) in x[full..].iter().enumerate() {
            super::level_into(
                v,
                (inv, scale),
                &mut out[full + m],
                &mut sum_lanes[m % 8],
                &mut err_lanes[m % 8],
            );
        }
        out[x.len()..].fill(0);
        (scale, sum_lanes.iter().sum(), err_lanes.iter().sum())
    }

    /// The tile loop, with `$dot(acc, q, x)` adding each i32 lane's four u8 × i8 products of
    /// query bytes `q` and row bytes `x` to `acc`: written once, so the VNNI kernel runs the
    /// AVX2 kernel's code but for that one instruction.
    macro_rules! int8_tile {
        ($name:ident, $features:literal, $dot:ident) => {
            /// Two rows × 32 queries at a time: 8 accumulators, four query vectors (8 lanes × 4
            /// bytes) and two broadcast row words per step.
            #[target_feature(enable = $features)]
            pub unsafe fn $name(
                qp: &[u32],
                qscale: &[f32],
                rows: &[u32],
                terms: &[RowTerms; R],
                dw: usize,
                out: &mut [[f32; QG]; R],
            ) {
                for j0 in (0..R).step_by(2) {
                    let mut acc = [[_mm256_setzero_si256(); 4]; 2];
                    // SAFETY: p < dw; qp holds dw × 32 words and rows R × dw.
                    unsafe {
                        let (x0, x1) = (rows.as_ptr().add(j0 * dw), rows.as_ptr().add((j0 + 1) * dw));
                        for p in 0..dw {
                            let q = qp.as_ptr().add(p * QG).cast::<__m256i>();
                            let qv = [
                                _mm256_loadu_si256(q),
                                _mm256_loadu_si256(q.add(1)),
                                _mm256_loadu_si256(q.add(2)),
                                _mm256_loadu_si256(q.add(3)),
                            ];
                            let b0 = _mm256_set1_epi32(*x0.add(p) as i32);
                            let b1 = _mm256_set1_epi32(*x1.add(p) as i32);
                            for c in 0..4 {
                                acc[0][c] = $dot(acc[0][c], qv[c], b0);
                                acc[1][c] = $dot(acc[1][c], qv[c], b1);
                            }
                        }
                    }
                    for (r, row_acc) in acc.iter().enumerate() {
                        let t = &terms[j0 + r];
                        let (bias, scale) = (_mm256_set1_epi32(t.bias), _mm256_set1_ps(t.scale));
                        for (c, &a) in row_acc.iter().enumerate() {
                            // SAFETY: 32 query scales and 32 outputs per row.
                            unsafe {
                                let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(a, bias));
                                let s = _mm256_mul_ps(
                                    _mm256_mul_ps(v, scale),
                                    _mm256_loadu_ps(qscale.as_ptr().add(8 * c)),
                                );
                                _mm256_storeu_ps(out[j0 + r].as_mut_ptr().add(8 * c), s);
                            }
                        }
                    }
                }
            }
        };
    }

    /// `vpmaddubsw` into i16 pairs (no overflow: query bytes ≤ 127), `vpmaddwd` into i32.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn dot_avx2(acc: __m256i, q: __m256i, x: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), _mm256_set1_epi16(1)))
    }

    /// `vpdpbusd`: the same four products summed into i32 in one instruction (no saturation,
    /// and none needed), so the same integers as [`dot_avx2`].
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    fn dot_vnni(acc: __m256i, q: __m256i, x: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, q, x)
    }

    int8_tile!(tile, "avx2,fma", dot_avx2);
    int8_tile!(tile_vnni, "avx2,fma,avx512vnni,avx512vl", dot_vnni);
}
