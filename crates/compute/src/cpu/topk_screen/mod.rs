//! Exact top-k for f32 vectors at low-precision speed: a screening pass in bf16 or int8 with a
//! proven error bound, then exact f32 re-scoring of the few rows the bound cannot rule out.
//!
//! The flat search is a GEMM, and both ragtune's f32 path and FAISS's `IndexFlatIP` run it at the
//! FMA peak, so neither can pull ahead on FLOP efficiency. Narrower products run at twice that
//! rate: AVX512_BF16's `vdpbf16ps` does two multiply-adds per f32 lane per instruction
//! (`bf16.rs`), and on AVX2 `vpmaddubsw` + `vpmaddwd` do 32 byte multiply-adds per two
//! instructions where `vfmadd` does 8 (`int8.rs`). Their scores are approximate; the screen makes
//! them safe:
//!
//! - every approximate dot product `s̃` of query q and row x is within a bound of the f32 dot
//!   product `s*` that re-scoring computes. The bound is `a_q·u_x + b_q·v_x + c_q`: per-query
//!   constants times per-row ones, each format deriving its own (its module says how), so a
//!   pair costs two multiply-adds to check. For squared L2 the key is `‖q‖² + ‖x‖² − 2 q·x`, so
//!   the bound doubles, plus `2⁻²⁰·(‖q‖² + ‖x‖²)` for forming the key in f32;
//! - per query, `T` is the k-th best lower bound `s̃ − bound` seen so far: at least k rows score
//!   `≥ T` exactly, so a row whose upper bound `s̃ + bound` is below `T` cannot be in the top k
//!   (nor tie into it). `T` only grows, so a row dropped early would be dropped at the end too;
//! - the survivors (on ordinary data, k plus a handful) are re-scored exactly in f32 and the top
//!   k taken with the op's tie rule. The result is exactly the top k of the re-scored keys over
//!   all rows — the screen never changes an answer, only how many rows are scored exactly
//!   (tested on data built so that thousands of rows fall within the bound).
//!
//! Work is split by base slices across rayon tasks; each task converts 64-row blocks to the
//! format and scores them against every group of 32 queries with an 8-row × 32-query tile. f16
//! and bf16 storage go the same way (rows widened to f32 first; re-scoring uses the stored
//! values). Used for searches with at least 32 queries where the CPU has AVX512_BF16 (bf16),
//! AVX512-VNNI without it (int8 with `vpdpbusd`) or AVX2 + FMA without AVX-512 (int8);
//! `RAGTUNE_TOPK_SCREEN=0` turns it off. Portable Rust
//! kernels with the same arithmetic run the same logic in tests on any CPU.

mod bf16;
mod int8;

use rayon::prelude::*;

use super::topk::{Selector, pack, sqnorm, unpack_key, unpack_row};
use crate::dtype::{DType, FloatElement};
use crate::ops::Similarity;

/// Queries per group.
const QG: usize = 32;
/// Base rows per tile.
const R: usize = 8;
/// Base rows converted at a time, at most: 64 × 384 × 2 bytes = 48 KiB in bf16, in L1/L2.
const ROW_BLOCK: usize = 64;
/// Norms above this could overflow the bound's products: such data takes the plain path.
const MAX_NORM: f64 = 1e15;

/// Which kernel scores the tiles, in which format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// bf16 with `vdpbf16ps` (x86-64 with AVX512_BF16).
    Avx512Bf16,
    /// bf16 in plain Rust with the same rounding of the inputs.
    PortableBf16,
    /// int8 with `vpmaddubsw` (x86-64 with AVX2 + FMA).
    Avx2Int8,
    /// int8 with `vpdpbusd` (AVX512-VNNI + VL): the AVX2 kernel's code with one instruction for
    /// its three per 32 products, the same integers.
    VnniInt8,
    /// int8 in plain Rust, the same integer arithmetic and scaling.
    PortableInt8,
}

impl Kernel {
    /// Every kernel, for tests.
    pub const ALL: [Kernel; 5] =
        [Kernel::Avx512Bf16, Kernel::PortableBf16, Kernel::Avx2Int8, Kernel::VnniInt8, Kernel::PortableInt8];

    /// Whether this CPU runs the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::PortableBf16 | Kernel::PortableInt8 => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Bf16 => {
                is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Int8 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Kernel::VnniInt8 => {
                Kernel::Avx2Int8.available()
                    && is_x86_feature_detected!("avx512vnni")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Whether it screens in int8 (else bf16).
    pub fn is_int8(self) -> bool {
        matches!(self, Kernel::Avx2Int8 | Kernel::VnniInt8 | Kernel::PortableInt8)
    }

    /// Base rows converted at a time. int8 takes 32: a block (12 KiB at d = 384) and a query
    /// group (12 KiB) then share a 32 KiB L1 as every group sweeps the block (measured on a
    /// Zen 3, 100k × 384, 1,000 queries: 430 ms with 64 rows, 349 ms with 32, 480-570 with 16).
    fn row_block(self) -> usize {
        if self.is_int8() { 32 } else { ROW_BLOCK }
    }

    /// 32-bit words per row: two bf16 or four int8 values each.
    fn words(self, d: usize) -> usize {
        if self.is_int8() { d.div_ceil(4) } else { d.div_ceil(2) }
    }
}

/// The fast kernel for this CPU, unless `RAGTUNE_TOPK_SCREEN` is `0`: bf16 where AVX512_BF16
/// exists; int8 with `vpdpbusd` on an AVX-512 CPU with VNNI but no bf16 (Intel Cascade Lake, Ice
/// Lake: 32 products per instruction against a 512-bit f32 FMA's 16); int8 with `vpmaddubsw`
/// where the widest vector set is AVX2. An AVX-512 CPU with neither keeps the f32 path, whose
/// 512-bit FMAs match the int8 rate of `vpmaddubsw` on 256-bit registers.
pub fn fast_kernel() -> Option<Kernel> {
    use super::gemv_simd::Isa;
    if std::env::var("RAGTUNE_TOPK_SCREEN").is_ok_and(|v| v == "0") {
        return None;
    }
    if Kernel::Avx512Bf16.available() {
        return Some(Kernel::Avx512Bf16);
    }
    match Isa::detected() {
        Isa::Avx512 if Kernel::VnniInt8.available() => Some(Kernel::VnniInt8),
        Isa::Avx2 if Kernel::Avx2Int8.available() => Some(Kernel::Avx2Int8),
        _ => None,
    }
}

/// Whether screening with `kernel` pays off: enough queries to fill a group (two for int8,
/// whose conversion of the base costs more: on a Zen 3, 100k × 384, it ran at 0.96–1.2× the f32
/// path's time with 32 queries, 0.84–0.97× with 64 and 0.77× with 128), a base worth screening,
/// a k small enough that the survivors stay few, and a width whose int8 sums fit an i32.
pub fn worthwhile(kernel: Kernel, nq: usize, n: usize, d: usize, k: usize) -> bool {
    let min_queries = if kernel.is_int8() { 2 * QG } else { QG };
    nq >= min_queries && n >= 4096 && (16..=65_536).contains(&d) && k <= 256
}

/// Per-query constants of one search, in either format.
struct Queries {
    /// `[groups][words][QG]` format words; padding lanes score zero.
    packed: Vec<u32>,
    /// The bound's per-query terms: `|s̃ − s*| ≤ a·u_x + b·v_x + c` (0 for padding).
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    /// The int8 format's dequantisation scale (unused by bf16).
    scale: Vec<f32>,
    /// ‖q‖² in f32 as [`sqnorm`] computes it (L2 keys).
    sq: Vec<f32>,
}

impl Queries {
    fn zeroed(lanes: usize, words: usize, fill: u32) -> Queries {
        Queries {
            packed: vec![fill; words * lanes],
            a: vec![0.0; lanes],
            b: vec![0.0; lanes],
            c: vec![0.0; lanes],
            scale: vec![0.0; lanes],
            sq: vec![0.0; lanes],
        }
    }
}

/// One converted base row's terms of the bound and its int8 dequantisation.
#[derive(Clone, Copy, Default)]
struct RowTerms {
    u: f32,
    v: f32,
    /// int8: the row's scale, and the query offset times the row's sum of levels.
    scale: f32,
    bias: i32,
}

/// A block of converted base rows.
struct Block {
    words: Vec<u32>,
    terms: [RowTerms; ROW_BLOCK],
    /// ‖x‖² in f32 as [`sqnorm`] computes it.
    sq: [f32; ROW_BLOCK],
}

impl Block {
    fn new(dw: usize) -> Block {
        Block {
            words: vec![0u32; ROW_BLOCK * dw],
            terms: [RowTerms::default(); ROW_BLOCK],
            sq: [0.0; ROW_BLOCK],
        }
    }

    /// The words and terms of the R rows from `j0` (`dw` words per row).
    fn tile(&self, j0: usize, dw: usize) -> (&[u32], &[RowTerms; R]) {
        (&self.words[j0 * dw..(j0 + R) * dw], self.terms[j0..j0 + R].try_into().expect("R terms"))
    }
}

/// The query side of `kernel`'s format.
fn queries(kernel: Kernel, q: &[f32], nq: usize, d: usize, groups: usize) -> Option<Queries> {
    if kernel.is_int8() { int8::queries(q, nq, d, groups) } else { bf16::queries(q, nq, d, groups) }
}

/// Search `base` (`n × d`, f32, bf16 or f16) for the best `k` rows of each of the `nq` queries;
/// `None` when the data's norms are not finite or too large to bound (the caller then runs the
/// plain path). Candidates come back sorted, as [`super::topk::search`] returns them.
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
    let dw = kernel.words(d);
    let groups = nq.div_ceil(QG);
    let qs = queries(kernel, q, nq, d, groups)?;

    let threads = rayon::current_num_threads();
    let rb = kernel.row_block();
    let blocks = n.div_ceil(rb);
    let per_slice = blocks.div_ceil(2 * threads).max(1);
    let slices = blocks.div_ceil(per_slice);
    // The portable kernels keep the portable checks, so tests run both.
    let avx2 = matches!(kernel, Kernel::Avx2Int8 | Kernel::VnniInt8 | Kernel::Avx512Bf16)
        && Kernel::Avx2Int8.available();
    let ctx = Ctx { kernel, qs: &qs, base, d, dw, groups, nq, k, similarity, allow, avx2 };
    let parts: Vec<Option<Part>> = (0..slices)
        .into_par_iter()
        .map(|s| ctx.scan_rows(s * per_slice * rb, ((s + 1) * per_slice * rb).min(n)))
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

/// ‖row‖ rounded up (an f64 sum, then a relative 2⁻²⁰ upward nudge), or `None` when it is not
/// finite or too large for the bound's products.
fn bounded_norm(row: &[f32]) -> Option<f32> {
    let n = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
    (n.is_finite() && n < MAX_NORM).then(|| (n * (1.0 + 2f64.powi(-20))) as f32)
}

/// An upper bound on the norm of a vector from its f32 sum of squares (d products summed in f32
/// in any order, so relative error below (d + 2)·2⁻²⁴, doubled for safety), or `None` when not
/// finite or too large for the bound's products. One multiply per row, where an f64 pass over
/// the row would cost as much as a tenth of the search.
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
    dw: usize,
    groups: usize,
    nq: usize,
    k: usize,
    similarity: Similarity,
    allow: Option<&'a [u32]>,
    /// Whether the bound checks may use AVX2.
    avx2: bool,
}

impl<T: FloatElement> Ctx<'_, T> {
    /// Convert rows `b0..b0 + rows` into `block`; `None` when a row's norm cannot be bounded.
    fn convert(&self, b0: usize, rows: usize, block: &mut Block, scratch: &mut Vec<f32>) -> Option<()> {
        let (d, dw) = (self.d, self.dw);
        for j in 0..rows {
            let stored = &self.base[(b0 + j) * d..(b0 + j + 1) * d];
            let x = row_f32(stored, scratch);
            block.sq[j] = sqnorm(x);
            let words = &mut block.words[j * dw..(j + 1) * dw];
            block.terms[j] = if self.kernel.is_int8() {
                int8::convert_row(self.kernel, x, block.sq[j], words)?
            } else {
                bf16::convert_row(self.kernel, stored, x, block.sq[j], words)?
            };
        }
        // Zero the rest of the last tile only: a block may hold fewer rows than it has room for.
        let end = rows.next_multiple_of(R);
        block.words[rows * dw..end * dw].fill(0);
        block.terms[rows..end].fill(RowTerms::default());
        Some(())
    }

    /// The approximate dot products of R converted rows and query group `g`.
    fn score_tile(&self, g: usize, rows_words: &[u32], terms: &[RowTerms; R], tile: &mut [[f32; QG]; R]) {
        let dw = self.dw;
        let qp = &self.qs.packed[g * dw * QG..(g + 1) * dw * QG];
        if self.kernel.is_int8() {
            let qscale = &self.qs.scale[g * QG..(g + 1) * QG];
            int8::score_tile(self.kernel, qp, qscale, rows_words, terms, dw, tile);
        } else {
            bf16::score_tile(self.kernel, qp, rows_words, dw, tile);
        }
    }

    fn scan_rows(&self, r0: usize, r1: usize) -> Option<Part> {
        let (dw, lanes) = (self.dw, self.groups * QG);
        let mut lower: Vec<Selector> = (0..lanes).map(|_| Selector::new(self.k)).collect();
        let mut cands: Vec<Vec<u64>> = vec![Vec::new(); lanes];
        // The running threshold per lane; padding lanes never admit anything.
        let mut thr: Vec<f32> =
            (0..lanes).map(|l| if l < self.nq { f32::NEG_INFINITY } else { f32::INFINITY }).collect();
        let mut block = Block::new(dw);
        let mut tile = [[0f32; QG]; R];
        let mut scratch = Vec::new();
        let prune_at = 8 * self.k + 1024;
        let l2 = self.similarity == Similarity::L2;
        let mut b0 = r0;
        while b0 < r1 {
            let rows = self.kernel.row_block().min(r1 - b0);
            self.convert(b0, rows, &mut block, &mut scratch)?;
            for g in 0..self.groups {
                let lane0 = g * QG;
                let lanes = lane0..lane0 + QG;
                let bounds = Bounds::of_group(self.qs, g, l2, self.avx2);
                let t: &mut [f32; QG] = (&mut thr[lanes.clone()]).try_into().expect("QG lanes");
                for j0 in (0..rows).step_by(R) {
                    let (rows_words, terms) = block.tile(j0, dw);
                    self.score_tile(g, rows_words, terms, &mut tile);
                    for (j, scores) in tile.iter().enumerate().take(rows - j0) {
                        let row = b0 + j0 + j;
                        if self.allow.is_some_and(|a| (a[row >> 5] >> (row & 31)) & 1 == 0) {
                            continue;
                        }
                        let x = RowBound { u: terms[j].u, v: terms[j].v, sq: block.sq[j0 + j] };
                        // Lanes whose upper bound reaches their threshold; a lane's threshold
                        // moves only when that lane is handled, so the mask stays right.
                        let mut reaching = bounds.reaching(scores, t, x);
                        while reaching != 0 {
                            let l = reaching.trailing_zeros() as usize;
                            reaching &= reaching - 1;
                            let (key, bound) = bounds.key_and_bound(scores[l], l, x);
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

/// The bound's per-query terms of one group of queries.
struct Bounds<'a> {
    a: &'a [f32; QG],
    b: &'a [f32; QG],
    c: &'a [f32; QG],
    q_sq: &'a [f32; QG],
    l2: bool,
    avx2: bool,
}

/// One base row's terms of the bound, and its squared norm.
#[derive(Clone, Copy)]
struct RowBound {
    u: f32,
    v: f32,
    sq: f32,
}

impl<'a> Bounds<'a> {
    fn of_group(qs: &'a Queries, g: usize, l2: bool, avx2: bool) -> Self {
        let lanes = g * QG..(g + 1) * QG;
        let arr = |v: &'a [f32]| -> &'a [f32; QG] { v[lanes.clone()].try_into().expect("QG lanes") };
        Bounds { a: arr(&qs.a), b: arr(&qs.b), c: arr(&qs.c), q_sq: arr(&qs.sq), l2, avx2 }
    }

    /// The bound on |s̃ − s*| of lane `l` and row `x`.
    #[inline(always)]
    fn dot_bound(&self, l: usize, x: RowBound) -> f32 {
        self.a[l] * x.u + self.b[l] * x.v + self.c[l]
    }

    /// The approximate key of lane `l` and its bound.
    #[inline(always)]
    fn key_and_bound(&self, s: f32, l: usize, x: RowBound) -> (f32, f32) {
        let dot_bound = self.dot_bound(l, x);
        if self.l2 {
            let sq = self.q_sq[l] + x.sq;
            // Clamped like the exact key, so the bound holds for the clamped values too.
            (-(sq - 2.0 * s).max(0.0), 2.0 * dot_bound + sq * (1.0 / 1_048_576.0))
        } else {
            (s, dot_bound)
        }
    }

    /// Bit `l` set where lane `l`'s upper bound reaches its threshold.
    #[inline]
    fn reaching(&self, scores: &[f32; QG], t: &[f32; QG], x: RowBound) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only where the CPU has AVX2.
            return unsafe { self.reaching_avx2(scores, t, x) };
        }
        let mut mask = 0;
        for l in 0..QG {
            let (key, bound) = self.key_and_bound(scores[l], l, x);
            mask |= u32::from(key + bound >= t[l]) << l;
        }
        mask
    }

    /// [`Self::reaching`] eight lanes at a time, with the same operations in the same order.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn reaching_avx2(&self, scores: &[f32; QG], t: &[f32; QG], x: RowBound) -> u32 {
        use std::arch::x86_64::*;
        let (u, v, x_sq) = (_mm256_set1_ps(x.u), _mm256_set1_ps(x.v), _mm256_set1_ps(x.sq));
        let (zero, two, tiny) = (_mm256_setzero_ps(), _mm256_set1_ps(2.0), _mm256_set1_ps(1.0 / 1_048_576.0));
        let mut mask = 0;
        for c in 0..QG / 8 {
            // SAFETY: 8·c + 8 ≤ QG.
            let ld = |a: &[f32; QG]| unsafe { _mm256_loadu_ps(a.as_ptr().add(8 * c)) };
            let ab = _mm256_add_ps(_mm256_mul_ps(ld(self.a), u), _mm256_mul_ps(ld(self.b), v));
            let dot_bound = _mm256_add_ps(ab, ld(self.c));
            let s = ld(scores);
            let reach = if self.l2 {
                let sq = _mm256_add_ps(ld(self.q_sq), x_sq);
                // max_ps returns its second operand for NaN, as f32::max(NaN, 0) returns 0.
                let key = _mm256_sub_ps(zero, _mm256_max_ps(_mm256_sub_ps(sq, _mm256_mul_ps(two, s)), zero));
                _mm256_add_ps(key, _mm256_add_ps(_mm256_mul_ps(two, dot_bound), _mm256_mul_ps(sq, tiny)))
            } else {
                _mm256_add_ps(s, dot_bound)
            };
            let ge = _mm256_cmp_ps::<_CMP_GE_OQ>(reach, ld(t));
            mask |= (_mm256_movemask_ps(ge) as u32) << (8 * c);
        }
        mask
    }
}

/// For tests of the bound itself: every query's approximate dot product with every row and the
/// bound the screen puts on its distance from the f32 dot product (`[nq][n]` pairs); `None` as
/// for [`search`].
#[doc(hidden)]
pub fn scores_and_bounds(kernel: Kernel, q: &[f32], base: &[f32], d: usize) -> Option<Vec<Vec<(f32, f32)>>> {
    let (nq, n) = (q.len() / d, base.len() / d);
    let dw = kernel.words(d);
    let groups = nq.div_ceil(QG);
    let qs = queries(kernel, q, nq, d, groups)?;
    let ctx = Ctx {
        kernel,
        qs: &qs,
        base,
        d,
        dw,
        groups,
        nq,
        k: 1,
        similarity: Similarity::Dot,
        allow: None,
        avx2: false,
    };
    let mut block = Block::new(dw);
    let mut out = vec![Vec::with_capacity(n); nq];
    let mut tile = [[0f32; QG]; R];
    let mut scratch = Vec::new();
    for b0 in (0..n).step_by(ROW_BLOCK) {
        let rows = ROW_BLOCK.min(n - b0);
        ctx.convert(b0, rows, &mut block, &mut scratch)?;
        for j0 in (0..rows).step_by(R) {
            for g in 0..groups {
                let (rows_words, terms) = block.tile(j0, dw);
                ctx.score_tile(g, rows_words, terms, &mut tile);
                let bounds = Bounds::of_group(&qs, g, false, false);
                for (j, scores) in tile.iter().enumerate().take(rows - j0) {
                    for (l, &s) in scores.iter().enumerate() {
                        let qi = g * QG + l;
                        if qi < nq {
                            let x = RowBound { u: terms[j].u, v: terms[j].v, sq: 0.0 };
                            out[qi].push((s, bounds.dot_bound(l, x)));
                        }
                    }
                }
            }
        }
    }
    Some(out)
}
