//! The bf16 format of the screen (AVX512_BF16): each value rounded to bf16, pairs multiplied
//! exactly and summed in f32 by `vdpbf16ps`.
//!
//! The bound's terms: `a_q = ε·‖q‖ + f`, `u_x = ‖x‖`, `b_q = 0`, `c_q = f·(1 + ‖q‖)` with
//! `f = d·2⁻¹²⁵`. ε = 2⁻⁷ + 2⁻¹⁶ + (d + 2)·2⁻²² covers rounding both vectors to bf16 (8
//! significant bits, so relative 2⁻⁸ each, and Cauchy–Schwarz over the products), the f32
//! accumulation of both passes (`d·2⁻²⁴` each) and the rounding of the bound itself; the `f`
//! terms cover the denormals `vdpbf16ps` flushes to zero.

use super::super::topk::sqnorm;
use super::{Kernel, QG, Queries, R, RowTerms, bounded_norm, norm_from_sqnorm};
use crate::dtype::{DType, FloatElement};

/// f32 → bf16 bits, round to nearest even (NaN is excluded by the callers).
#[inline]
fn bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// The query side: bf16 pairs and the bound's per-query terms; `None` when a norm is not finite
/// or too large.
pub(super) fn queries(q: &[f32], nq: usize, d: usize, groups: usize) -> Option<Queries> {
    let dp = d.div_ceil(2);
    let eps = 2f64.powi(-7) + 2f64.powi(-16) + (d as f64 + 2.0) * 2f64.powi(-22);
    let flush_unit = d as f64 * 2f64.powi(-125);
    let mut qs = Queries::zeroed(groups * QG, dp, 0);
    for qi in 0..nq {
        let row = &q[qi * d..(qi + 1) * d];
        let norm = f64::from(bounded_norm(row)?);
        qs.sq[qi] = sqnorm(row);
        qs.a[qi] = ((eps * norm + flush_unit) * (1.0 + 2f64.powi(-20))) as f32;
        qs.c[qi] = (flush_unit * (1.0 + norm) * (1.0 + 2f64.powi(-20))) as f32;
        let (g, lane) = (qi / QG, qi % QG);
        for p in 0..dp {
            qs.packed[(g * dp + p) * QG + lane] = pair(row, p);
        }
    }
    Some(qs)
}

/// One base row (`stored`, widened to `x`, with f32 sum of squares `sq`) into `out`'s bf16
/// pairs; `None` when its norm cannot be bounded.
pub(super) fn convert_row<T: FloatElement>(
    kernel: Kernel,
    stored: &[T],
    x: &[f32],
    sq: f32,
    out: &mut [u32],
) -> Option<RowTerms> {
    let xn = norm_from_sqnorm(sq, x.len())?;
    if T::DTYPE == DType::BF16 && x.len().is_multiple_of(2) {
        // bf16 rows are already pairs of bf16, element 2p in the low half.
        out.copy_from_slice(bytemuck::cast_slice(stored));
    } else {
        to_bf16_pairs(kernel, x, out);
    }
    Some(RowTerms { u: xn, ..RowTerms::default() })
}

/// Elements `2p` and `2p + 1` of `row` as bf16, the first in the low half (0 past the end).
#[inline]
fn pair(row: &[f32], p: usize) -> u32 {
    let lo = bf16_bits(row[2 * p]) as u32;
    let hi = row.get(2 * p + 1).map_or(0, |&v| bf16_bits(v) as u32);
    lo | (hi << 16)
}

/// One row of f32 → bf16 pairs (round to nearest even; zero past the end).
fn to_bf16_pairs(kernel: Kernel, x: &[f32], out: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx512Bf16 && x.len().is_multiple_of(32) {
        // SAFETY: the kernel is only chosen when the CPU has AVX512F + AVX512_BF16; x holds
        // out.len() pairs exactly (len multiple of 32 → pairs multiple of 16).
        unsafe { avx512::convert_row(x, out) };
        return;
    }
    let _ = kernel;
    for (p, o) in out.iter_mut().enumerate() {
        *o = pair(x, p);
    }
}

/// `tile[j][l]` = approximate dot of base row `j` (of `rows`: R rows × dp pairs) and query lane
/// `l` of the group `qp` (dp × QG pairs).
pub(super) fn score_tile(kernel: Kernel, qp: &[u32], rows: &[u32], dp: usize, tile: &mut [[f32; QG]; R]) {
    debug_assert!(qp.len() == dp * QG && rows.len() == R * dp);
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx512Bf16 {
        // SAFETY: chosen only when the CPU has AVX512F + AVX512_BF16; lengths as asserted.
        unsafe { avx512::tile(qp, rows, dp, tile) };
        return;
    }
    let _ = kernel;
    portable_tile(qp, rows, dp, tile);
}

/// The bf16 value in the low (`hi == false`) or high half of a pair, as f32.
#[inline]
fn half_of(p: u32, hi: bool) -> f32 {
    f32::from_bits(if hi { p & 0xffff_0000 } else { p << 16 })
}

/// `vdpbf16ps`'s arithmetic in plain Rust: per pair, the two exact products summed and added to
/// the f32 accumulator (denormals are kept here, which only makes the error smaller).
fn portable_tile(qp: &[u32], rows: &[u32], dp: usize, tile: &mut [[f32; QG]; R]) {
    for (j, out) in tile.iter_mut().enumerate() {
        let x = &rows[j * dp..(j + 1) * dp];
        for (l, o) in out.iter_mut().enumerate() {
            let mut acc = 0f32;
            for (p, &xp) in x.iter().enumerate() {
                let qv = qp[p * QG + l];
                acc += half_of(qv, false) * half_of(xp, false) + half_of(qv, true) * half_of(xp, true);
            }
            *o = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{QG, R};

    /// `x` (a multiple of 32 floats) → bf16 pairs with `vcvtneps2bf16` (round to nearest even).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn convert_row(x: &[f32], out: &mut [u32]) {
        for (xs, os) in x.chunks_exact(32).zip(out.chunks_exact_mut(16)) {
            // SAFETY: 32 floats in, 16 pairs out.
            unsafe {
                let lo = _mm512_loadu_ps(xs.as_ptr());
                let hi = _mm512_loadu_ps(xs.as_ptr().add(16));
                // cvtne2ps puts the second operand in the low half.
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(os.as_mut_ptr().cast(), v);
            }
        }
    }

    /// The 8-row × 32-query register tile: 16 accumulators, per pair two query vectors and eight
    /// broadcast row pairs.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn tile(qp: &[u32], rows: &[u32], dp: usize, out: &mut [[f32; QG]; R]) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (q, x) = (qp.as_ptr(), rows.as_ptr());
        for p in 0..dp {
            // SAFETY: p < dp; qp holds dp × 32 pairs and rows R × dp pairs.
            unsafe {
                let q0: __m512bh = std::mem::transmute(_mm512_loadu_si512(q.add(p * QG).cast()));
                let q1: __m512bh = std::mem::transmute(_mm512_loadu_si512(q.add(p * QG + 16).cast()));
                for (j, a) in acc.iter_mut().enumerate() {
                    let b: __m512bh = std::mem::transmute(_mm512_set1_epi32(*x.add(j * dp + p) as i32));
                    a[0] = _mm512_dpbf16_ps(a[0], q0, b);
                    a[1] = _mm512_dpbf16_ps(a[1], q1, b);
                }
            }
        }
        for (a, o) in acc.iter().zip(out.iter_mut()) {
            // SAFETY: each output row holds 32 floats.
            unsafe {
                _mm512_storeu_ps(o.as_mut_ptr(), a[0]);
                _mm512_storeu_ps(o.as_mut_ptr().add(16), a[1]);
            }
        }
    }
}
