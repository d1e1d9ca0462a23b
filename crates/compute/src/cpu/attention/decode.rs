//! Attention for a decode step: few new positions per sequence — at most 8 query rows per kv
//! head, one position times a GQA group, or a few positions — over a KV cache.
//!
//! The blocked path's unit is (sequence, query block, kv head). For a decode step that is `hkv`
//! units of a handful of rows each (three for SmolLM2: uneven work for two threads), each
//! reading its head's `d` values out of every cache row, a strided walk, through two GEMM calls
//! per tile whose entry costs more than their arithmetic. Here a unit is a span of one
//! sequence's keys with every head: it reads the cache rows front to back
//! ([`few_rows`] handles every head of a key before the next key), the spans divide the keys
//! evenly among the threads, and their partial softmax states — each row's running max, sum and
//! unnormalised output — are merged at the end (the split of the keys FlashDecoding uses).
//!
//! Measured on a 2-core AMD EPYC (Zen 3), one query over a cache of 30 layers of the
//! SmolLM2-135M shape (9 query heads, 3 kv heads, d 64), medians against the blocked path in
//! alternating runs: 600 keys 2.2–2.6 ms per token against 4.9, 3,000 keys 11.3–11.9 against
//! 21.2; 9 heads without GQA over 2,048 keys 0.19–0.20 ms against 0.43–0.51.

use std::ops::Range;

use rayon::prelude::*;

use super::few_rows::{self, Tile};
use super::{AttentionDims, Inputs};
use crate::dtype::{DType, FloatElement};

/// Keys per tile: a tile's scores for every row stay in L1 (3 heads × 3 rows × 64 f32 for
/// SmolLM2), and so does a tile of the cache for the score and value passes.
const TILE: usize = 64;
/// The fewest keys a span gets: below that a span's fixed costs (copying q, the merge) outweigh
/// what splitting gains.
const MIN_SPAN: usize = 128;

/// Whether a step with `rows_per_head` query rows per kv head (positions × group) runs here.
pub fn serves(rows_per_head: usize) -> bool {
    few_rows::serves(rows_per_head)
}

/// [`super::attention`] for a step [`serves`] accepts.
pub fn attention<T: FloatElement>(inputs: &Inputs<T>, key_lens: Option<&[i32]>, out: &mut [T]) {
    let AttentionDims { batch, sq, skv, hq, hkv, d } = inputs.dims;
    let group = hq / hkv;
    // Query rows of a sequence, every kv head's (as in `State`).
    let all = hkv * sq * group;
    let lens: Vec<usize> = (0..batch).map(|b| key_lens.map_or(skv, |l| l[b] as usize)).collect();
    // The keys any query of a sequence sees, split into spans: two per thread over the batch,
    // none shorter than MIN_SPAN.
    let per_seq = (2 * rayon::current_num_threads()).div_ceil(batch).max(1);
    let units: Vec<(usize, Range<usize>)> = lens
        .iter()
        .enumerate()
        .flat_map(|(b, &len)| {
            let seen = (0..sq).map(|i| inputs.mask.visible(i, sq, len)).filter(|r| !r.is_empty());
            let (start, end) = seen.fold((usize::MAX, 0), |(s, e), r| (s.min(r.start), e.max(r.end)));
            let keys = start.min(end)..end;
            let parts = keys.len().div_ceil(MIN_SPAN).clamp(1, per_seq);
            let step = keys.len().div_ceil(parts);
            (0..parts).map(move |p| {
                let from = (keys.start + p * step).min(keys.end);
                (b, from..(from + step).min(keys.end))
            })
        })
        .collect();
    let states: Vec<State> =
        units.par_iter().map(|(b, keys)| span(inputs, *b, keys.clone(), lens[*b])).collect();

    // Merge each sequence's spans (they are adjacent in `units`) row by row.
    let mut merged = vec![0f32; d];
    let mut first = 0;
    for b in 0..batch {
        let count = units[first..].iter().take_while(|(ub, _)| *ub == b).count();
        let mine = &states[first..first + count];
        first += count;
        for row in 0..all {
            let (h, r) = (row / (sq * group), row % (sq * group));
            let at = ((b * sq + r / group) * hq + h * group + r % group) * d;
            let m = mine.iter().map(|s| s.max[row]).fold(f32::NEG_INFINITY, f32::max);
            merged.fill(0.0);
            let mut total = 0f32;
            if m > f32::NEG_INFINITY {
                for s in mine {
                    // exp(−∞) = 0 for a span that saw no key of this row.
                    let w = (s.max[row] - m).exp();
                    total += w * s.sum[row];
                    for (o, &a) in merged.iter_mut().zip(&s.acc[row * d..(row + 1) * d]) {
                        *o += w * a;
                    }
                }
            }
            // A row that saw no key has sum 0 and an all-zero accumulator: it stays zero.
            let inv = if total > 0.0 { 1.0 / total } else { 0.0 };
            for (o, &a) in out[at..at + d].iter_mut().zip(&merged) {
                *o = T::from_f32(a * inv);
            }
        }
    }
}

/// One span's softmax state per query row (row `h · rows + r`: kv head h, row r of its group's
/// positions × heads): the max score seen, the sum of exp(score − max), and Σ exp(score − max) · v.
struct State {
    max: Vec<f32>,
    sum: Vec<f32>,
    acc: Vec<f32>,
}

/// The keys `keys` of sequence `b` (which has `len` valid keys) against all its query rows.
fn span<T: FloatElement>(inputs: &Inputs<T>, b: usize, keys: Range<usize>, len: usize) -> State {
    let Inputs { q, k, v, dims, mask, scale } = *inputs;
    let AttentionDims { sq, skv, hq, hkv, d, .. } = dims;
    let group = hq / hkv;
    let rows = sq * group;
    let all = hkv * rows;
    // q as [hkv, rows, d]: row r of head h is position r / group, query head h·group + r % group;
    // pre-scaled, so a score is one dot product.
    let mut qf = vec![0f32; all * d];
    for (row, dst) in qf.chunks_exact_mut(d).enumerate() {
        let (h, r) = (row / rows, row % rows);
        let at = ((b * sq + r / group) * hq + h * group + r % group) * d;
        for (o, x) in dst.iter_mut().zip(&q[at..at + d]) {
            *o = x.to_f32() * scale;
        }
    }
    let visible: Vec<Range<usize>> = (0..rows).map(|r| mask.visible(r / group, sq, len)).collect();
    let mut st = State { max: vec![f32::NEG_INFINITY; all], sum: vec![0f32; all], acc: vec![0f32; all * d] };
    let stride = hkv * d;
    let mut s = vec![0f32; all * TILE];
    // f32 values are read in place; other dtypes widened a tile at a time (K is read as stored).
    let mut wide = if T::DTYPE == DType::F32 { Vec::new() } else { vec![0f32; TILE * stride] };
    for j0 in keys.clone().step_by(TILE) {
        let n = TILE.min(keys.end - j0);
        let tile = Tile { heads: hkv, rows, n, d, stride, ld: TILE };
        let cache = (b * skv + j0) * stride..(b * skv + j0 + n) * stride;
        few_rows::scores(tile, &mut s, &qf, &k[cache.clone()]);
        let mut any = false;
        for (row, sr) in s.chunks_exact_mut(TILE).enumerate() {
            // This row's keys within the tile: [c0, c).
            let seen = &visible[row % rows];
            let c = seen.end.saturating_sub(j0).min(n);
            let c0 = seen.start.saturating_sub(j0).min(c);
            if c0 == c {
                sr[..n].fill(0.0);
                continue;
            }
            any = true;
            let tile_max = sr[c0..c].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let m = st.max[row].max(tile_max);
            if m > st.max[row] {
                // exp(−∞) = 0 on a row's first tile: the empty accumulator stays empty.
                let correction = (st.max[row] - m).exp();
                st.sum[row] *= correction;
                st.acc[row * d..(row + 1) * d].iter_mut().for_each(|a| *a *= correction);
                st.max[row] = m;
            }
            sr[..c0].fill(0.0);
            sr[c..n].fill(0.0);
            st.sum[row] += crate::cpu::vexp::exp_sub_sum(&mut sr[c0..c], m);
        }
        if any {
            let values: &[f32] = if T::DTYPE == DType::F32 {
                bytemuck::cast_slice(&v[cache])
            } else {
                for (o, x) in wide.iter_mut().zip(&v[cache]) {
                    *o = x.to_f32();
                }
                &wide[..n * stride]
            };
            few_rows::accumulate(tile, &mut st.acc, &s, values);
        }
    }
    st
}
