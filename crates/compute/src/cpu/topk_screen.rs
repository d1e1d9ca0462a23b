//! Exact top-k for f32 vectors at bf16 speed: a screening pass in bf16 with a proven error bound,
//! then exact f32 re-scoring of the few rows the bound cannot rule out.
//!
//! The flat search is a GEMM, and both ragtune's f32 path and FAISS's `IndexFlatIP` run it at the
//! FMA peak, so neither can pull ahead on FLOP efficiency. AVX512_BF16's `vdpbf16ps` does two
//! multiply-adds per f32 lane per instruction — twice the f32 FMA rate — so scoring in bf16 halves
//! the work; the catch is that bf16 scores are approximate. The screen makes them safe:
//!
//! - every approximate score `s̃` is within `bound = ε·‖q‖·‖x‖ + a` of the f32 score `s*` that
//!   re-scoring computes, where `ε = 2⁻⁸ + 2⁻¹⁶ + (d + 2)·2⁻²²` covers rounding both vectors to
//!   bf16 (relative 2⁻⁹ each, Cauchy–Schwarz over the products), the f32 accumulation of both
//!   passes (`d·2⁻²⁴` each) and the rounding of the bound itself, and `a` covers the denormals
//!   `vdpbf16ps` flushes to zero. For squared L2 the key is `‖q‖² + ‖x‖² − 2 q·x`, so the bound
//!   doubles, plus `2⁻²⁰·(‖q‖² + ‖x‖²)` for forming the key in f32;
//! - per query, `T` is the k-th best lower bound `s̃ − bound` seen so far: at least k rows score
//!   `≥ T` exactly, so a row whose upper bound `s̃ + bound` is below `T` cannot be in the top k
//!   (nor tie into it). `T` only grows, so a row dropped early would be dropped at the end too;
//! - the survivors (on ordinary data, k plus a handful) are re-scored exactly in f32 and the top
//!   k taken with the op's tie rule. The result is exactly the top k of the re-scored keys over
//!   all rows — the screen never changes an answer, only how many rows are scored exactly
//!   (tested on data built so that thousands of rows fall within the bound).
//!
//! Work is split by base slices across rayon tasks; each task converts 64-row blocks to bf16
//! (`vcvtneps2bf16`) and scores them against every group of 32 queries with an 8-row × 32-query
//! register tile. f16 and bf16 storage go the same way (rows widened to f32 first: bf16 rows
//! round to themselves, f16 rows within the same bound; re-scoring uses the stored values).
//! Used for searches with at least 32 queries where the CPU has AVX512_BF16
//! (`RAGTUNE_TOPK_SCREEN=0` turns it off); a portable Rust kernel with the same arithmetic runs
//! the same logic in tests on any CPU.

use rayon::prelude::*;

use super::topk::{Selector, pack, sqnorm, unpack_key, unpack_row};
use crate::dtype::{DType, FloatElement};
use crate::ops::Similarity;

/// Queries per group: two 16-lane vectors.
const QG: usize = 32;
/// Base rows per register tile.
const R: usize = 8;
/// Base rows converted to bf16 at a time: 64 × 384 × 2 bytes = 48 KiB, in L1/L2.
const ROW_BLOCK: usize = 64;
/// Norms above this could overflow the bound's products: such data takes the plain path.
const MAX_NORM: f64 = 1e15;

/// Which kernel scores the bf16 tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `vdpbf16ps` (x86-64 with AVX512_BF16).
    Avx512Bf16,
    /// Plain Rust with the same rounding of the inputs (tests on any CPU).
    Portable,
}

/// The fast kernel when this CPU has it and `RAGTUNE_TOPK_SCREEN` is not `0`.
pub fn fast_kernel() -> Option<Kernel> {
    if std::env::var("RAGTUNE_TOPK_SCREEN").is_ok_and(|v| v == "0") {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
        return Some(Kernel::Avx512Bf16);
    }
    None
}

/// Whether screening pays off: enough queries to fill a group, a base worth screening, and a k
/// small enough that the survivors stay few.
pub fn worthwhile(nq: usize, n: usize, d: usize, k: usize) -> bool {
    nq >= QG && n >= 4096 && d >= 16 && k <= 256
}

/// f32 → bf16 bits, round to nearest even (NaN is excluded by the callers).
#[inline]
fn bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// Per-query constants of one search.
struct Queries {
    /// `[groups][dp][QG]` bf16 pairs (element 2p in the low half), zero for padding lanes.
    packed: Vec<u32>,
    /// ε·‖q‖ (0 for padding).
    eps_norm: Vec<f32>,
    /// The query's share of the flush-to-zero term: `d·2⁻¹²⁵·(1 + ‖q‖)`.
    flush: Vec<f32>,
    /// ‖q‖² in f32 as [`sqnorm`] computes it (L2 keys).
    sq: Vec<f32>,
}

/// Search `base` (`n × d`, f32, bf16 or f16) for the best `k` rows of each of the `nq` queries; `None` when the
/// data's norms are not finite or too large to bound (the caller then runs the plain path).
/// Candidates come back sorted, as [`super::topk::search`] returns them.
#[allow(clippy::too_many_arguments)]
pub fn search<T: FloatElement>(
    kernel: Kernel,
    q: &[f32],
    base: &[T],
    nq: usize,
    n: usize,
    d: usize,
    k: usize,
    similarity: Similarity,
    allow: Option<&[u32]>,
) -> Option<Vec<Vec<u64>>> {
    let dp = d.div_ceil(2);
    let groups = nq.div_ceil(QG);
    let eps = (2f64.powi(-8) + 2f64.powi(-16) + (d as f64 + 2.0) * 2f64.powi(-22)) as f32;
    let flush_unit = (d as f64 * 2f64.powi(-125)) as f32;
    let qs = queries(q, nq, d, dp, groups, eps, flush_unit)?;

    let threads = rayon::current_num_threads();
    let blocks = n.div_ceil(ROW_BLOCK);
    let per_slice = blocks.div_ceil(2 * threads).max(1);
    let slices = blocks.div_ceil(per_slice);
    let ctx = Ctx { kernel, qs: &qs, base, d, dp, groups, nq, k, flush_unit, similarity, allow };
    let parts: Vec<Option<Part>> = (0..slices)
        .into_par_iter()
        .map(|s| ctx.scan_rows(s * per_slice * ROW_BLOCK, ((s + 1) * per_slice * ROW_BLOCK).min(n)))
        .collect();
    let mut parts: Vec<Part> = parts.into_iter().collect::<Option<_>>()?;

    // Per query: the k-th best lower bound over all slices, then exact scores of every row whose
    // upper bound reaches it.
    let mut per_query: Vec<(Vec<Selector>, Vec<Vec<u64>>)> =
        (0..nq).map(|_| (Vec::new(), Vec::new())).collect();
    for part in &mut parts {
        for (qi, (sel, cands)) in part.lower.drain(..).zip(part.cands.drain(..)).enumerate().take(nq) {
            per_query[qi].0.push(sel);
            per_query[qi].1.push(cands);
        }
    }
    Some(
        per_query
            .into_par_iter()
            .enumerate()
            .map(|(qi, (sels, cands))| {
                let mut lower = Selector::new(k);
                for s in sels {
                    lower.extend(&s.into_sorted());
                }
                let lower = lower.into_sorted();
                let t = if lower.len() >= k { unpack_key(lower[k - 1]) } else { f32::NEG_INFINITY };
                let qrow = &q[qi * d..(qi + 1) * d];
                let mut exact = Selector::new(k);
                let mut scratch = Vec::new();
                for c in cands.iter().flatten().filter(|&&c| unpack_key(c) >= t) {
                    let r = unpack_row(*c);
                    let x = row_f32(&base[r * d..(r + 1) * d], &mut scratch);
                    exact.push(pack(exact_key(qrow, x, qs.sq[qi], similarity), r));
                }
                exact.into_sorted()
            })
            .collect(),
    )
}

/// A stored row as f32: the row itself for f32 storage, else widened into `scratch`.
fn row_f32<'a, T: FloatElement>(row: &'a [T], scratch: &'a mut Vec<f32>) -> &'a [f32] {
    if T::DTYPE == DType::F32 {
        return bytemuck::cast_slice(row);
    }
    scratch.clear();
    scratch.extend(row.iter().map(|v| v.to_f32()));
    scratch
}

/// The key re-scoring gives row `x` for query `q`: the f32 dot product, or minus the clamped
/// squared distance from f32 norms, as the plain path forms it.
pub fn exact_key(q: &[f32], x: &[f32], q_sq: f32, similarity: Similarity) -> f32 {
    let dot = dot_f32(q, x);
    match similarity {
        Similarity::Dot => dot,
        Similarity::L2 => -(q_sq + sqnorm(x) - 2.0 * dot).max(0.0),
    }
}

/// f32 dot product with 16 interleaved partial sums.
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ar.iter().zip(br).enumerate() {
        acc[i] += x * y;
    }
    acc.iter().sum()
}

fn queries(
    q: &[f32],
    nq: usize,
    d: usize,
    dp: usize,
    groups: usize,
    eps: f32,
    flush_unit: f32,
) -> Option<Queries> {
    let lanes = groups * QG;
    let (mut eps_norm, mut flush, mut sq) = (vec![0f32; lanes], vec![0f32; lanes], vec![0f32; lanes]);
    let mut packed = vec![0u32; groups * dp * QG];
    for qi in 0..nq {
        let row = &q[qi * d..(qi + 1) * d];
        let norm = bounded_norm(row)?;
        sq[qi] = sqnorm(row);
        eps_norm[qi] = eps * norm;
        flush[qi] = flush_unit * (1.0 + norm);
        let (g, lane) = (qi / QG, qi % QG);
        for p in 0..dp {
            packed[(g * dp + p) * QG + lane] = pair(row, p);
        }
    }
    Some(Queries { packed, eps_norm, flush, sq })
}

/// Elements `2p` and `2p + 1` of `row` as bf16, the first in the low half (0 past the end).
#[inline]
fn pair(row: &[f32], p: usize) -> u32 {
    let lo = bf16_bits(row[2 * p]) as u32;
    let hi = row.get(2 * p + 1).map_or(0, |&v| bf16_bits(v) as u32);
    lo | (hi << 16)
}

/// ‖row‖ rounded up (an f64 sum, then a relative 2⁻²⁰ upward nudge), or `None` when it is not
/// finite or too large for the bound's products.
fn bounded_norm(row: &[f32]) -> Option<f32> {
    let n = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
    (n.is_finite() && n < MAX_NORM).then(|| (n * (1.0 + 2f64.powi(-20))) as f32)
}

/// An upper bound on ‖x‖ from its f32 sum of squares ([`sqnorm`]: d products summed in f32, so
/// relative error below (d + 2)·2⁻²⁴, doubled for safety), or `None` when not finite or too large
/// for the bound's products. One multiply per row, where an f64 pass over the row would cost as
/// much as a tenth of the search.
fn norm_from_sqnorm(sq: f32, d: usize) -> Option<f32> {
    let sq = f64::from(sq);
    (sq.is_finite() && sq < MAX_NORM * MAX_NORM).then(|| {
        // Plus √d·2⁻⁷⁴ for squares that underflowed to zero (each below 2⁻¹⁴⁹).
        let n = (sq * (1.0 + (d as f64 + 2.0) * 2f64.powi(-23))).sqrt() + (d as f64).sqrt() * 2f64.powi(-74);
        (n * (1.0 + 2f64.powi(-20))) as f32
    })
}

/// One base slice's findings: per query lane, the best lower bounds and the candidates (packed
/// with their upper bound as the key).
struct Part {
    lower: Vec<Selector>,
    cands: Vec<Vec<u64>>,
}

/// What every slice task reads.
struct Ctx<'a, T> {
    kernel: Kernel,
    qs: &'a Queries,
    base: &'a [T],
    d: usize,
    dp: usize,
    groups: usize,
    nq: usize,
    k: usize,
    flush_unit: f32,
    similarity: Similarity,
    allow: Option<&'a [u32]>,
}

impl<T: FloatElement> Ctx<'_, T> {
    fn scan_rows(&self, r0: usize, r1: usize) -> Option<Part> {
        let (d, dp, lanes) = (self.d, self.dp, self.groups * QG);
        let mut lower: Vec<Selector> = (0..lanes).map(|_| Selector::new(self.k)).collect();
        let mut cands: Vec<Vec<u64>> = vec![Vec::new(); lanes];
        // The running threshold per lane; padding lanes never admit anything.
        let mut thr: Vec<f32> =
            (0..lanes).map(|l| if l < self.nq { f32::NEG_INFINITY } else { f32::INFINITY }).collect();
        let mut block = vec![0u32; ROW_BLOCK * dp];
        let (mut xn, mut xsq) = ([0f32; ROW_BLOCK], [0f32; ROW_BLOCK]);
        let mut tile = [[0f32; QG]; R];
        let mut scratch = Vec::new();
        let prune_at = 8 * self.k + 1024;
        let l2 = self.similarity == Similarity::L2;
        let mut b0 = r0;
        while b0 < r1 {
            let rows = ROW_BLOCK.min(r1 - b0);
            for j in 0..rows {
                let stored = &self.base[(b0 + j) * d..(b0 + j + 1) * d];
                let x = row_f32(stored, &mut scratch);
                xsq[j] = sqnorm(x);
                xn[j] = norm_from_sqnorm(xsq[j], d)?;
                let pairs = &mut block[j * dp..(j + 1) * dp];
                if T::DTYPE == DType::BF16 && d % 2 == 0 {
                    // bf16 rows are already pairs of bf16, element 2p in the low half.
                    pairs.copy_from_slice(bytemuck::cast_slice(stored));
                } else {
                    to_bf16_pairs(self.kernel, x, pairs);
                }
            }
            block[rows * dp..].fill(0);
            for g in 0..self.groups {
                let qp = &self.qs.packed[g * dp * QG..(g + 1) * dp * QG];
                let lane0 = g * QG;
                for j0 in (0..rows).step_by(R) {
                    score_tile(self.kernel, qp, &block[j0 * dp..(j0 + R) * dp], dp, &mut tile);
                    for (j, scores) in tile.iter().enumerate().take(rows - j0) {
                        let row = b0 + j0 + j;
                        if self.allow.is_some_and(|a| (a[row >> 5] >> (row & 31)) & 1 == 0) {
                            continue;
                        }
                        let (xnj, xsqj) = (xn[j0 + j], xsq[j0 + j]);
                        let bounds = Bounds {
                            eps_norm: &self.qs.eps_norm[lane0..lane0 + QG],
                            flush: &self.qs.flush[lane0..lane0 + QG],
                            q_sq: &self.qs.sq[lane0..lane0 + QG],
                            xn: xnj,
                            x_sq: xsqj,
                            flush_unit: self.flush_unit,
                            l2,
                        };
                        let t = &mut thr[lane0..lane0 + QG];
                        if !bounds.any_reaches(scores, t) {
                            continue;
                        }
                        for l in 0..QG {
                            let (key, bound) = bounds.key_and_bound(scores[l], l);
                            if key + bound < t[l] {
                                continue;
                            }
                            let qi = lane0 + l;
                            let c = &mut cands[qi];
                            c.push(pack(key + bound, row));
                            if c.len() > prune_at {
                                let tl = t[l];
                                c.retain(|&cand| unpack_key(cand) >= tl);
                            }
                            let sel = &mut lower[qi];
                            sel.push(pack(key - bound, row));
                            if sel.is_full() {
                                t[l] = sel.threshold_key();
                            }
                        }
                    }
                }
            }
            b0 += rows;
        }
        Some(Part { lower, cands })
    }
}

/// The error bound of one base row against one group of queries.
struct Bounds<'a> {
    eps_norm: &'a [f32],
    flush: &'a [f32],
    q_sq: &'a [f32],
    xn: f32,
    x_sq: f32,
    flush_unit: f32,
    l2: bool,
}

impl Bounds<'_> {
    /// The approximate key of lane `l` and its bound.
    #[inline]
    fn key_and_bound(&self, s: f32, l: usize) -> (f32, f32) {
        let dot_bound = self.eps_norm[l] * self.xn + self.flush[l] + self.flush_unit * self.xn;
        if self.l2 {
            let sq = self.q_sq[l] + self.x_sq;
            // Clamped like the exact key, so the bound holds for the clamped values too.
            (-(sq - 2.0 * s).max(0.0), 2.0 * dot_bound + sq * (1.0 / 1_048_576.0))
        } else {
            (s, dot_bound)
        }
    }

    /// Whether any lane's upper bound reaches its threshold (branch-free, vectorisable).
    #[inline]
    fn any_reaches(&self, scores: &[f32; QG], t: &[f32]) -> bool {
        let mut any = false;
        for l in 0..QG {
            let (key, bound) = self.key_and_bound(scores[l], l);
            any |= key + bound >= t[l];
        }
        any
    }
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
fn score_tile(kernel: Kernel, qp: &[u32], rows: &[u32], dp: usize, tile: &mut [[f32; QG]; R]) {
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
