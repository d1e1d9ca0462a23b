//! Fused attention (family `attention`, kernels/attention.cu) on the CPU: blocked, with an online
//! softmax, never materialising the `[sq, skv]` score matrix.
//!
//! Layout: q `[b, sq, hq, d]`, k/v `[b, skv, hkv, d]`, out `[b, sq, hq, d]` (the projections'
//! own layout, no transposes). Query head `h` reads kv head `h / (hq / hkv)` (GQA).
//!
//! Work is split into units of (batch, query block, kv head); a unit handles the query block for
//! all `hq / hkv` query heads that share the kv head, so every K/V tile serves `group × block`
//! query rows. Units run in parallel (rayon); each walks the keys in tiles of [`KEY_TILE`]: the
//! tile's scores come from one GEMM (`Q Kᵀ`, the `gemm` crate, K read in place for f32), each row
//! is masked to its visible keys and folded into its running (max, sum) — FlashAttention's
//! recurrence — and a second GEMM adds `P V` to the accumulator. Causal units stop at the last
//! key their last query can see; with a sliding window they also start at the first key their
//! first query sees, so a unit's work is proportional to the window, not the context.
//!
//! A decode step (at most 8 query rows per kv head) goes to `decode.rs` instead: its units are
//! spans of the cache, not heads.

mod backward;
mod decode;
mod few_rows;

pub use backward::attention_backward;
use rayon::prelude::*;

use crate::dtype::FloatElement;

/// Keys per tile: a K and a V tile of 128 × d f32 (64 KiB each at d = 128) stay in L2 while the
/// unit's two GEMMs pass over them. Measured (9 heads, 512 causal, d 64, 2 threads): 64 → 8.1 ms,
/// 128 → 4.9 ms, 256 → 4.7 ms; 128 keeps the causal diagonal's wasted half-tile smaller.
pub const KEY_TILE: usize = 128;
/// Query rows (query positions × heads of a GQA group) per unit: enough to amortise converting a
/// K/V tile, few enough to leave many units for the threads.
const ROWS_PER_UNIT: usize = 64;

/// The sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    pub batch: usize,
    /// Query positions.
    pub sq: usize,
    /// Key/value positions.
    pub skv: usize,
    /// Query heads.
    pub hq: usize,
    /// Key/value heads; divides `hq`.
    pub hkv: usize,
    /// Head dimension.
    pub d: usize,
}

/// Which keys a query sees besides the key length: causal, and a sliding window (which the op
/// only accepts with causal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyMask {
    pub causal: bool,
    pub window: Option<usize>,
}

impl KeyMask {
    /// The keys query `i` (0-based among `sq`) of a sequence with `len` valid keys sees: keys
    /// `j < len`; with `causal` also `j <= p` where `p = i + len − sq` is the query's absolute
    /// position (the last query aligns with the last valid key: prefill when `len == sq`, decode
    /// over a cache when `len > sq`); with a window `w` also `j > p − w` (transformers'
    /// `kv_idx > q_idx − sliding_window`). Empty when the query sees nothing (a padded row).
    #[inline]
    pub fn visible(&self, i: usize, sq: usize, len: usize) -> std::ops::Range<usize> {
        if !self.causal {
            return 0..len;
        }
        let end = (i + 1 + len).saturating_sub(sq).min(len);
        let start = self.window.map_or(0, |w| end.saturating_sub(w));
        start..end
    }
}

/// `out = softmax(scale · q kᵀ, masked) v` per (batch, head). `key_lens[b]` (checked by the op to
/// lie in `0..=skv`) masks keys at positions `>= key_lens[b]`; `inputs.mask` says which of the
/// rest each query sees ([`KeyMask::visible`]). A query that sees no key gets zeros.
pub fn attention<T: FloatElement>(inputs: Inputs<T>, key_lens: Option<&[i32]>, out: &mut [T]) {
    let dims = inputs.dims;
    let AttentionDims { batch, sq, hq, hkv, d, .. } = dims;
    if batch == 0 || sq == 0 || hq == 0 || d == 0 {
        return;
    }
    let group = hq / hkv;
    if decode::serves(sq * group) {
        return decode::attention(&inputs, key_lens, out);
    }
    let block = ROWS_PER_UNIT.div_ceil(group).max(1).min(sq);
    let blocks = sq.div_ceil(block);
    let units = batch * blocks * hkv;
    // Each unit returns its rows ([positions of the block][group][d], f32); the scatter below
    // places them. Units write interleaved parts of `out`, so they cannot own slices of it.
    let results: Vec<Vec<f32>> = (0..units)
        .into_par_iter()
        .map(|u| {
            let (b, rest) = (u / (blocks * hkv), u % (blocks * hkv));
            let (qb, hk) = (rest / hkv, rest % hkv);
            let i0 = qb * block;
            let i1 = (i0 + block).min(sq);
            let len = key_lens.map_or(dims.skv, |l| l[b] as usize);
            unit(&inputs, b, i0..i1, hk, len)
        })
        .collect();
    for (u, rows) in results.iter().enumerate() {
        let (b, rest) = (u / (blocks * hkv), u % (blocks * hkv));
        let (qb, hk) = (rest / hkv, rest % hkv);
        let i0 = qb * block;
        for (r, row) in rows.chunks_exact(group * d).enumerate() {
            let at = ((b * sq + i0 + r) * hq + hk * group) * d;
            for (o, &x) in out[at..at + group * d].iter_mut().zip(row) {
                *o = T::from_f32(x);
            }
        }
    }
}

/// What every unit of work reads: q, k, v in the projections' layout, their sizes, which keys
/// each query sees and the score scale. The forward and the backward take it.
#[derive(Clone, Copy)]
pub struct Inputs<'a, T> {
    /// `[batch, sq, hq, d]`.
    pub q: &'a [T],
    /// `[batch, skv, hkv, d]`.
    pub k: &'a [T],
    /// `[batch, skv, hkv, d]`.
    pub v: &'a [T],
    /// The sizes of q, k and v.
    pub dims: AttentionDims,
    /// Which keys each query sees (besides the key lengths).
    pub mask: KeyMask,
    /// Multiplies `q · k` before the softmax.
    pub scale: f32,
}

/// One unit: query positions `qs` of batch `b`, the query heads of kv head `hk`, `len` valid keys.
fn unit<T: FloatElement>(
    inputs: &Inputs<T>,
    b: usize,
    qs: std::ops::Range<usize>,
    hk: usize,
    len: usize,
) -> Vec<f32> {
    let Inputs { q, k, v, dims, mask, scale } = *inputs;
    let AttentionDims { sq, skv, hq, hkv, d, .. } = dims;
    let group = hq / hkv;
    let rows = qs.len() * group;
    // Row r = (position i0 + r / group, head hk·group + r % group); q is pre-scaled so a score
    // is one dot product.
    let mut qf = vec![0f32; rows * d];
    for (r, dst) in qf.chunks_exact_mut(d).enumerate() {
        let i = qs.start + r / group;
        let at = ((b * sq + i) * hq + hk * group + r % group) * d;
        for (o, x) in dst.iter_mut().zip(&q[at..at + d]) {
            *o = x.to_f32() * scale;
        }
    }
    let visible: Vec<std::ops::Range<usize>> =
        (0..rows).map(|r| mask.visible(qs.start + r / group, sq, len)).collect();
    // The keys any row of the unit sees: the tiles start at the first, end after the last.
    let first = visible.iter().filter(|r| !r.is_empty()).map(|r| r.start).min().unwrap_or(0);
    let keys = visible.iter().map(|r| r.end).max().unwrap_or(0);
    let mut acc = vec![0f32; rows * d];
    let mut max = vec![f32::NEG_INFINITY; rows];
    let mut sum = vec![0f32; rows];
    // f32 inputs are read in place (rows of one kv head are `hkv · d` apart); other dtypes are
    // widened a tile at a time into `kt`/`vt`.
    let in_place = T::DTYPE == crate::dtype::DType::F32;
    let (mut kt, mut vt) = if in_place {
        (Vec::new(), Vec::new())
    } else {
        (vec![0f32; KEY_TILE * d], vec![0f32; KEY_TILE * d])
    };
    let mut s = vec![0f32; rows * KEY_TILE];
    for j0 in (first..keys).step_by(KEY_TILE) {
        let n = KEY_TILE.min(keys - j0);
        let at = ((b * skv + j0) * hkv + hk) * d;
        let (kp, vp, stride): (&[f32], &[f32], usize) = if in_place {
            let span = (n - 1) * hkv * d + d;
            (bytemuck::cast_slice(&k[at..at + span]), bytemuck::cast_slice(&v[at..at + span]), hkv * d)
        } else {
            for j in 0..n {
                let src = at + j * hkv * d;
                for (o, x) in kt[j * d..(j + 1) * d].iter_mut().zip(&k[src..src + d]) {
                    *o = x.to_f32();
                }
                for (o, x) in vt[j * d..(j + 1) * d].iter_mut().zip(&v[src..src + d]) {
                    *o = x.to_f32();
                }
            }
            (&kt[..], &vt[..], d)
        };
        let s = &mut s[..rows * n];
        // S = Q Kᵀ for the whole tile, then each row masked to its visible keys.
        crate::cpu::matmul::gemm_strided(rows, n, d, s, n, false, &qf, d, 1, kp, 1, stride, 1.0);
        let mut any = false;
        for (r, sr) in s.chunks_exact_mut(n).enumerate() {
            // This row's keys within the tile: [c0, c).
            let c = visible[r].end.saturating_sub(j0).min(n);
            let c0 = visible[r].start.saturating_sub(j0).min(c);
            if c0 == c {
                sr.fill(0.0);
                continue;
            }
            any = true;
            let tile_max = sr[c0..c].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let m = max[r].max(tile_max);
            if m > max[r] {
                // exp(−∞) = 0 on a row's first tile: the empty accumulator stays empty.
                let correction = (max[r] - m).exp();
                sum[r] *= correction;
                acc[r * d..(r + 1) * d].iter_mut().for_each(|a| *a *= correction);
                max[r] = m;
            }
            sr[..c0].fill(0.0);
            sr[c..].fill(0.0);
            sum[r] += crate::cpu::vexp::exp_sub_sum(&mut sr[c0..c], m);
        }
        if any {
            // acc += P V.
            crate::cpu::matmul::gemm_strided(rows, d, n, &mut acc, d, true, s, n, 1, vp, stride, 1, 1.0);
        }
    }
    for (ar, &l) in acc.chunks_exact_mut(d).zip(&sum) {
        // A row that saw no key has sum 0 and an all-zero accumulator: it stays zero.
        let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
        ar.iter_mut().for_each(|a| *a *= inv);
    }
    acc
}

/// Dot product with eight independent partial sums, which the compiler keeps in one SIMD
/// register (a single running sum would serialise on the add latency and cannot vectorise).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut part = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            part[l] += x[l] * y[l];
        }
    }
    part.iter().sum::<f32>() + tail
}
