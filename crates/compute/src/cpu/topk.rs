//! Similarity search with top-k selection on the CPU (family `topk`, kernels/topk.cu).
//!
//! Scores are never all materialised, let alone sorted. The base is cut into blocks of
//! `BASE_BLOCK` rows; for a block of up to `QUERY_BLOCK` queries the scores of the whole
//! tile come from one single-threaded SGEMM (the `gemm` crate), and each query then scans its
//! row of the tile against the threshold of its running top-k ([`Selector`]): a candidate is kept
//! only when it beats the k-th best seen so far, which after the first few blocks is almost never,
//! so the scan costs one vectorised compare per score. rayon runs (query block × base slice)
//! tasks; with few queries the base is split into slices whose partial top-ks are merged.
//! Searches of many queries on a CPU with AVX512_BF16, or with AVX2 and no AVX-512, go through
//! [`topk_screen`] instead: a bf16 or int8 pass with a proven error bound, then exact re-scoring —
//! the same answers, about half the work.
//!
//! Ranking uses one total order everywhere (CPU, kernels, merges): a candidate is the `u64`
//! `ordered(key) << 32 | (u32::MAX − row)`, where `key` is the score made "larger is better"
//! (the dot product, or minus the squared distance) and `ordered` maps f32 to u32 monotonically.
//! A larger packed value is a better candidate, and equal keys fall to the smaller row — the
//! tie rule of the op, with no comparator to get wrong.

use rayon::prelude::*;

use super::topk_screen;
use crate::dtype::FloatElement;
use crate::ops::Similarity;

/// Queries per tile: the tile's SGEMM reuses each packed base block this many times. Measured
/// on 100k × 384, 1000 queries, 2 threads (min of interleaved runs): 128 → 2,760 QPS,
/// 256 → 3,170, 512 → 3,220; larger blocks amortise the packing of each base block.
const QUERY_BLOCK: usize = 512;
/// Base rows per tile: a 512 × 512 f32 tile (1 MiB) stays in a core's L2 while it is scanned.
const BASE_BLOCK: usize = 512;

/// f32 → u32 preserving order: negative floats reversed below the positive ones. NaN counts as
/// −∞ (never better than a real score) and −0 as +0, so equal scores compare equal.
#[inline]
pub fn ordered_key(key: f32) -> u32 {
    let key = if key.is_nan() { f32::NEG_INFINITY } else { key + 0.0 };
    let bits = key.to_bits();
    if bits & 0x8000_0000 != 0 { !bits } else { bits | 0x8000_0000 }
}

/// The inverse of [`ordered_key`].
#[inline]
pub fn key_from_ordered(u: u32) -> f32 {
    f32::from_bits(if u & 0x8000_0000 != 0 { u & 0x7fff_ffff } else { !u })
}

/// A candidate as one integer: larger = better; equal keys rank the smaller row first.
#[inline]
pub fn pack(key: f32, row: usize) -> u64 {
    ((ordered_key(key) as u64) << 32) | (u32::MAX - row as u32) as u64
}

/// The row of a packed candidate.
#[inline]
pub fn unpack_row(p: u64) -> usize {
    (u32::MAX - p as u32) as usize
}

/// The key of a packed candidate.
#[inline]
pub fn unpack_key(p: u64) -> f32 {
    key_from_ordered((p >> 32) as u32)
}

/// The score reported to users for a key: the dot product itself, or the squared distance
/// (`0 − key` rather than `−key`, so a zero distance is +0).
#[inline]
pub fn score_of_key(key: f32, similarity: Similarity) -> f32 {
    match similarity {
        Similarity::Dot => key,
        Similarity::L2 => 0.0 - key,
    }
}

/// The score of the padding after the last real result: the worst possible score.
pub fn pad_score(similarity: Similarity) -> f32 {
    match similarity {
        Similarity::Dot => f32::NEG_INFINITY,
        Similarity::L2 => f32::INFINITY,
    }
}

/// The running top-k of one query: an unsorted buffer of up to 2k candidates, cut back to the
/// best k (a linear-time selection) when it fills. After the first cut `threshold` is the k-th
/// best candidate, and anything not better is rejected without touching the buffer. Amortised
/// O(1) per kept candidate, for any k.
pub struct Selector {
    k: usize,
    buf: Vec<u64>,
    /// 0 until the first cut: every real candidate packs to a value > 0.
    threshold: u64,
}

impl Selector {
    pub fn new(k: usize) -> Self {
        Selector { k, buf: Vec::with_capacity(2 * k.max(16)), threshold: 0 }
    }

    /// Whether only candidates with a key strictly above [`Self::threshold_key`] can still get
    /// in. Rows arrive in increasing order within one selector, so an equal key loses the tie.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.threshold != 0
    }

    #[inline]
    pub fn threshold_key(&self) -> f32 {
        unpack_key(self.threshold)
    }

    #[inline]
    pub fn push(&mut self, candidate: u64) {
        if candidate > self.threshold {
            self.buf.push(candidate);
            if self.buf.len() >= 2 * self.k.max(16) {
                self.cut();
            }
        }
    }

    fn cut(&mut self) {
        let k = self.k;
        if self.buf.len() > k {
            self.buf.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
            self.buf.truncate(k);
            self.threshold = *self.buf.iter().min().expect("k >= 1");
        }
    }

    /// The best min(k, pushed) candidates, best first.
    pub fn into_sorted(mut self) -> Vec<u64> {
        self.cut();
        self.buf.sort_unstable_by(|a, b| b.cmp(a));
        self.buf
    }

    /// Candidates gathered elsewhere (other base slices), merged in.
    pub fn extend(&mut self, candidates: &[u64]) {
        for &c in candidates {
            self.push(c);
        }
    }
}

/// Whether row `r` may be returned under the bitmap `allow`.
#[inline]
fn allowed(allow: Option<&[u32]>, r: usize) -> bool {
    allow.is_none_or(|a| (a[r >> 5] >> (r & 31)) & 1 != 0)
}

/// Feed one query's keys for base rows `row0..row0 + keys.len()` to its selector. Once the
/// selector is full, chunks of 16 keys are first tested against the threshold as a whole (a
/// branch-free, vectorised compare); only chunks holding a better key are looked at one by one.
#[inline]
fn scan(sel: &mut Selector, keys: &[f32], row0: usize, allow: Option<&[u32]>) {
    let mut j = 0;
    while j < keys.len() {
        let end = (j + 16).min(keys.len());
        let chunk = &keys[j..end];
        if sel.is_full() {
            let t = sel.threshold_key();
            if !chunk.iter().fold(false, |any, &v| any | (v > t)) {
                j = end;
                continue;
            }
        }
        for (i, &v) in chunk.iter().enumerate() {
            let r = row0 + j + i;
            if allowed(allow, r) {
                sel.push(pack(v, r));
            }
        }
        j = end;
    }
}

/// Sums of squares of the `rows` rows of `x` (`d` wide), in f32.
pub fn row_sqnorms(x: &[f32], rows: usize, d: usize) -> Vec<f32> {
    if d == 0 {
        return vec![0.0; rows];
    }
    x.par_chunks(d).map(sqnorm).collect()
}

/// The sum of squares of one row, in f32 (8 interleaved partial sums): every path that needs a
/// row's squared norm uses this, so L2 keys agree bit for bit between them.
#[inline]
pub fn sqnorm(r: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (i, v) in r.iter().enumerate() {
        acc[i & 7] += v * v;
    }
    acc.iter().sum()
}

/// `tile[i][j] = q[i] · b[j]` for `q` `[m, d]` and `b` `[n, d]`, single-threaded: the callers
/// already run one tile per rayon task, so splitting a tile again would only add overhead.
fn dot_tile(q: &[f32], b: &[f32], m: usize, n: usize, d: usize, tile: &mut [f32]) {
    if d == 0 {
        tile[..m * n].fill(0.0);
        return;
    }
    // SAFETY: q holds m rows of d, b holds n rows of d, tile holds m·n; strides below index
    // exactly those (tile row-major m × n; q row-major; b read transposed as a d × n matrix).
    unsafe {
        gemm::gemm(
            m,
            n,
            d,
            tile.as_mut_ptr(),
            1,
            n as isize,
            false,
            q.as_ptr(),
            1,
            d as isize,
            b.as_ptr(),
            d as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// The sorted candidates of every query (at most k each); `[nq, n, d]`: queries, base rows and
/// their width.
pub fn search<T: FloatElement>(
    queries: &[T],
    base: &[T],
    [nq, n, d]: [usize; 3],
    k: usize,
    similarity: Similarity,
    allow: Option<&[u32]>,
) -> Vec<Vec<u64>> {
    if nq == 0 || n == 0 {
        return vec![Vec::new(); nq];
    }
    if let Some(kernel) = topk_screen::fast_kernel()
        && topk_screen::worthwhile(kernel, nq, n, d, k)
        && let q = crate::cpu::matmul::widen(queries)
        && let Some(found) = topk_screen::search(kernel, &q, base, nq, n, d, k, similarity, allow)
    {
        return found;
    }
    let q = crate::cpu::matmul::widen(queries);
    let q: &[f32] = &q;
    let l2 = similarity == Similarity::L2;
    let q_norms = if l2 { row_sqnorms(q, nq, d) } else { Vec::new() };
    // Base norms once for all query blocks (n floats), widening block by block as we go.
    let base_norms: Vec<f32> = if l2 && d > 0 {
        base.par_chunks(d * BASE_BLOCK)
            .flat_map_iter(|blk| row_sqnorms(&crate::cpu::matmul::widen(blk), blk.len() / d, d))
            .collect()
    } else if l2 {
        vec![0.0; n]
    } else {
        Vec::new()
    };

    // Tasks: query blocks × base slices. Enough slices that every thread has work even for a
    // single query; whole base blocks per slice so tiles stay full.
    let qblock = QUERY_BLOCK.min(nq);
    let qblocks = nq.div_ceil(qblock);
    let bblocks = n.div_ceil(BASE_BLOCK);
    let threads = rayon::current_num_threads();
    let slices = if qblocks >= 2 * threads { 1 } else { (2 * threads).div_ceil(qblocks).min(bblocks) };
    let blocks_per_slice = bblocks.div_ceil(slices);
    let slices = bblocks.div_ceil(blocks_per_slice);

    let partial: Vec<Vec<Vec<u64>>> = (0..qblocks * slices)
        .into_par_iter()
        .map(|task| {
            let (qb, slice) = (task / slices, task % slices);
            let (q0, q1) = (qb * qblock, ((qb + 1) * qblock).min(nq));
            let m = q1 - q0;
            let mut sels: Vec<Selector> = (0..m).map(|_| Selector::new(k)).collect();
            let mut tile = vec![0f32; m * BASE_BLOCK];
            let first = slice * blocks_per_slice;
            for blk in first..(first + blocks_per_slice).min(bblocks) {
                let (r0, r1) = (blk * BASE_BLOCK, ((blk + 1) * BASE_BLOCK).min(n));
                let w = r1 - r0;
                let b = crate::cpu::matmul::widen(&base[r0 * d..r1 * d]);
                let tile = &mut tile[..m * w];
                dot_tile(&q[q0 * d..q1 * d], &b, m, w, d, tile);
                for (i, (row, sel)) in tile.chunks_mut(w).zip(&mut sels).enumerate() {
                    if l2 {
                        // key = −max(‖q‖² + ‖b‖² − 2 q·b, 0): the distance itself, clamped
                        // where cancellation would make it negative.
                        let qn = q_norms[q0 + i];
                        for (v, &bn) in row.iter_mut().zip(&base_norms[r0..r1]) {
                            *v = -(qn + bn - 2.0 * *v).max(0.0);
                        }
                    }
                    scan(sel, row, r0, allow);
                }
            }
            sels.into_iter().map(Selector::into_sorted).collect()
        })
        .collect();

    // Merge the slices of each query block (a no-op with one slice).
    (0..nq)
        .into_par_iter()
        .map(|qi| {
            let (qb, i) = (qi / qblock, qi % qblock);
            if slices == 1 {
                return partial[qb][i].clone();
            }
            let mut sel = Selector::new(k);
            for s in 0..slices {
                sel.extend(&partial[qb * slices + s][i]);
            }
            sel.into_sorted()
        })
        .collect()
}

/// The sorted candidates of every query over the lists it probes (`topk_ivf`): list `l` is base
/// rows `offsets[l]..offsets[l + 1]`, `probes` `[nq, nprobe]` names each query's lists (entries
/// outside `0..nlist` probe nothing). The queries that probe a list are searched against it
/// together by [`search`] (one tiled pass per list, the same keys and selection as a whole-base
/// search), and each query's per-list candidates, renumbered to base rows, are merged.
#[allow(clippy::too_many_arguments)]
pub fn search_ivf<T: FloatElement>(
    queries: &[T],
    base: &[T],
    [nq, n, d]: [usize; 3],
    offsets: &[usize],
    probes: &[i32],
    k: usize,
    similarity: Similarity,
    allow: Option<&[u32]>,
) -> Vec<Vec<u64>> {
    let nlist = offsets.len().saturating_sub(1);
    if nq == 0 || n == 0 || nlist == 0 {
        return vec![Vec::new(); nq];
    }
    let nprobe = probes.len() / nq;
    let mut queries_of: Vec<Vec<usize>> = vec![Vec::new(); nlist];
    for (i, &l) in probes.iter().enumerate() {
        if let Some(qs) = usize::try_from(l).ok().and_then(|l| queries_of.get_mut(l)) {
            qs.push(i / nprobe);
        }
    }
    let per_list: Vec<(usize, Vec<Vec<u64>>)> = queries_of
        .par_iter()
        .enumerate()
        .filter(|(l, qs)| !qs.is_empty() && offsets[l + 1] > offsets[*l])
        .map(|(l, qs)| {
            let (r0, r1) = (offsets[l], offsets[l + 1]);
            let mut sub = Vec::with_capacity(qs.len() * d);
            for &q in qs {
                sub.extend_from_slice(&queries[q * d..(q + 1) * d]);
            }
            // The list's slice of the bitmap, shifted to start at its first row.
            let mask: Option<Vec<u32>> = allow.map(|a| {
                let mut words = vec![0u32; (r1 - r0).div_ceil(32)];
                for r in r0..r1 {
                    if allowed(Some(a), r) {
                        words[(r - r0) >> 5] |= 1 << ((r - r0) & 31);
                    }
                }
                words
            });
            let found =
                search(&sub, &base[r0 * d..r1 * d], [qs.len(), r1 - r0, d], k, similarity, mask.as_deref());
            let found = found
                .into_iter()
                .map(|c| c.into_iter().map(|p| pack(unpack_key(p), unpack_row(p) + r0)).collect())
                .collect();
            (l, found)
        })
        .collect();
    let mut sels: Vec<Selector> = (0..nq).map(|_| Selector::new(k)).collect();
    for (l, found) in &per_list {
        for (&q, c) in queries_of[*l].iter().zip(found) {
            sels[q].extend(c);
        }
    }
    sels.into_par_iter().map(Selector::into_sorted).collect()
}

/// Sorted candidates → the op's `[nq, kk]` rows and scores, padded.
pub fn write_results(
    results: &[Vec<u64>],
    kk: usize,
    similarity: Similarity,
    rows_out: &mut [i32],
    scores_out: &mut [f32],
) {
    if kk == 0 {
        return;
    }
    rows_out.par_chunks_mut(kk).zip(scores_out.par_chunks_mut(kk)).zip(results).for_each(|((r, s), c)| {
        for j in 0..kk {
            match c.get(j) {
                Some(&p) => {
                    r[j] = unpack_row(p) as i32;
                    s[j] = score_of_key(unpack_key(p), similarity);
                }
                None => {
                    r[j] = -1;
                    s[j] = pad_score(similarity);
                }
            }
        }
    });
}
