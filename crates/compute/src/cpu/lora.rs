//! The multi-adapter LoRA path (family `lora`, kernels/lora.cu) on the CPU: shrink
//! `u = x · A[id]ᵀ` and expand `y += scale[id] · u · B[id]ᵀ`, an adapter id per row (−1 =
//! none), f32 accumulation.
//!
//! Rows come in runs of one adapter (a batch of one adapter is a single run; a mixed batch groups
//! its sequences' rows), so each run — cut into blocks of `ROWS_PER_TASK` for the threads — is
//! one small GEMM with that adapter's matrices (the `gemm` crate): the rank-r products stay a few
//! percent of the base GEMM's time instead of dominating it as per-row dot products did.

use rayon::prelude::*;

use crate::cpu::matmul::{gemm_strided, widen};
use crate::dtype::{DType, FloatElement};

/// Rows per task: a block of rows is one GEMM of `ROWS_PER_TASK × r × in` (or `× out`).
const ROWS_PER_TASK: usize = 64;

/// `(first row, end row, id)` of each block: maximal runs of equal ids, cut every
/// `ROWS_PER_TASK` rows.
fn blocks(ids: &[i32]) -> Vec<(usize, usize, i32)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=ids.len() {
        if i == ids.len() || ids[i] != ids[start] || i - start == ROWS_PER_TASK {
            out.push((start, i, ids[start]));
            start = i;
        }
    }
    out
}

/// Splits `buf` (rows of `width`) into the disjoint row ranges of `blocks`, in order.
fn split_rows<'a, T>(mut buf: &'a mut [T], width: usize, blocks: &[(usize, usize, i32)]) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(blocks.len());
    for &(s, e, _) in blocks {
        let (head, tail) = std::mem::take(&mut buf).split_at_mut((e - s) * width);
        parts.push(head);
        buf = tail;
    }
    parts
}

/// `u[i] = x[i] · A[ids[i]]ᵀ` (zeros where the id is −1); A is `[adapters, r, in]`.
pub fn lora_shrink<T: FloatElement>(x: &[T], a: &[T], ids: &[i32], inp: usize, r: usize, u: &mut [f32]) {
    if r == 0 || ids.is_empty() {
        return;
    }
    let a = widen(a);
    let blocks = blocks(ids);
    let parts = split_rows(u, r, &blocks);
    parts.into_par_iter().zip(blocks.par_iter()).for_each(|(ub, &(s, e, id))| {
        if id < 0 || inp == 0 {
            ub.fill(0.0);
            return;
        }
        let xb = widen(&x[s * inp..e * inp]);
        let ab = &a[id as usize * r * inp..(id as usize + 1) * r * inp];
        // u (m × r) = x (m × in) · Aᵀ, Aᵀ[p][j] = A[j][p].
        gemm_strided(e - s, r, inp, ub, r, false, &xb, inp, 1, ab, 1, inp, 1.0);
    });
}

/// `y[i] += scales[ids[i]] · u[i] · B[ids[i]]ᵀ` (rows with id −1 unchanged); B is
/// `[adapters, out, r]`.
pub fn lora_expand<T: FloatElement>(
    u: &[f32],
    b: &[T],
    ids: &[i32],
    scales: &[f32],
    out: usize,
    r: usize,
    y: &mut [T],
) {
    if out == 0 || r == 0 || ids.is_empty() {
        return;
    }
    let b = widen(b);
    let blocks = blocks(ids);
    let parts = split_rows(y, out, &blocks);
    parts.into_par_iter().zip(blocks.par_iter()).for_each(|(yb, &(s, e, id))| {
        if id < 0 {
            return;
        }
        let m = e - s;
        let ub = &u[s * r..e * r];
        let bb = &b[id as usize * out * r..(id as usize + 1) * out * r];
        let scale = scales[id as usize];
        // y (m × out) += scale · u (m × r) · Bᵀ, Bᵀ[p][o] = B[o][p].
        if T::DTYPE == DType::F32 {
            let yf: &mut [f32] = bytemuck::cast_slice_mut(yb);
            gemm_strided(m, out, r, yf, out, true, ub, r, 1, bb, 1, r, scale);
        } else {
            let mut acc = vec![0f32; m * out];
            gemm_strided(m, out, r, &mut acc, out, false, ub, r, 1, bb, 1, r, scale);
            for (yo, a) in yb.iter_mut().zip(&acc) {
                *yo = T::from_f32(yo.to_f32() + a);
            }
        }
    });
}

/// The gradients of shrink + expand for a batch that mixes adapters: `x`, `mask` (optional, the
/// dropout mask: the forward shrank `x ⊙ mask`) `[rows, in]`, `dy` `[rows, out]`, the saved `u`
/// f32 `[rows, r]`, A `[adapters, r, in]`, B `[adapters, out, r]`.
pub struct LoraBackwardInputs<'a, T> {
    pub x: &'a [T],
    pub mask: Option<&'a [T]>,
    pub dy: &'a [T],
    pub u: &'a [f32],
    pub a: &'a [T],
    pub b: &'a [T],
    pub ids: &'a [i32],
    pub scales: &'a [f32],
    pub inp: usize,
    pub out: usize,
    pub r: usize,
}

/// `dx += mask ⊙ (du A[id])` in place, with `du = scale · dy B[id]`; returns `(dA, dB)` f32
/// `[adapters, r, in]` and `[adapters, out, r]`: `dA[id] = Σ duᵀ (x ⊙ mask)`,
/// `dB[id] = scale · Σ dyᵀ u` over the rows of each adapter. Each product is a GEMM per block of
/// rows; the weight gradients are cut by columns across threads and sum the blocks in order, so
/// the result does not depend on the thread count.
pub fn lora_backward<T: FloatElement>(t: &LoraBackwardInputs<T>, dx: &mut [T]) -> (Vec<f32>, Vec<f32>) {
    let (rows, inp, out, r) = (t.ids.len(), t.inp, t.out, t.r);
    let adapters = t.scales.len();
    let (mut da, mut db) = (vec![0f32; adapters * r * inp], vec![0f32; adapters * out * r]);
    if rows == 0 || r == 0 {
        return (da, db);
    }
    let blocks = blocks(t.ids);
    let (a, b, dy) = (widen(t.a), widen(t.b), widen(t.dy));
    // x' = x ⊙ mask, the rows the forward shrank.
    let xm: std::borrow::Cow<[f32]> = match t.mask {
        Some(m) => {
            t.x.par_iter().zip(m.par_iter()).map(|(x, m)| x.to_f32() * m.to_f32()).collect::<Vec<_>>().into()
        }
        None => widen(t.x),
    };
    // du (m × r) = scale · dy (m × out) · B[id] (out × r), B[id][o][j] at o·r + j.
    let mut du = vec![0f32; rows * r];
    split_rows(&mut du, r, &blocks).into_par_iter().zip(blocks.par_iter()).for_each(|(dub, &(s, e, id))| {
        if id >= 0 && out > 0 {
            let bb = &b[id as usize * out * r..(id as usize + 1) * out * r];
            gemm_strided(
                e - s,
                r,
                out,
                dub,
                r,
                false,
                &dy[s * out..e * out],
                out,
                1,
                bb,
                r,
                1,
                t.scales[id as usize],
            );
        }
    });
    // dx (m × in) += mask ⊙ (du (m × r) · A[id] (r × in)).
    if inp > 0 {
        split_rows(dx, inp, &blocks).into_par_iter().zip(blocks.par_iter()).for_each(|(dxb, &(s, e, id))| {
            if id < 0 {
                return;
            }
            let m = e - s;
            let ab = &a[id as usize * r * inp..(id as usize + 1) * r * inp];
            let mut acc = vec![0f32; m * inp];
            gemm_strided(m, inp, r, &mut acc, inp, false, &du[s * r..e * r], r, 1, ab, inp, 1, 1.0);
            if let Some(mask) = t.mask {
                for (v, mk) in acc.iter_mut().zip(&mask[s * inp..e * inp]) {
                    *v *= mk.to_f32();
                }
            }
            for (d, v) in dxb.iter_mut().zip(&acc) {
                *d = T::from_f32(d.to_f32() + v);
            }
        });
    }
    // dA[id] (r × in) = Σ_blocks du_blkᵀ (r × m) · x'_blk (m × in), by column ranges.
    outer_by_columns(&blocks, &du, &xm, r, inp, &[], true, &mut da);
    // dB[id] (out × r) = scale · Σ_blocks dy_blkᵀ (out × m) · u_blk (m × r), by row ranges of dB.
    outer_by_columns(&blocks, t.u, &dy, r, out, t.scales, false, &mut db);
    (da, db)
}

/// Columns of the weight gradients per task.
const COLUMNS_PER_TASK: usize = 64;

/// `g[id] = scale[id] · Σ_blocks q_blkᵀ p_blk` with q `[rows, r]` and p `[rows, cols]`, stored
/// `[adapters, r, cols]` when `r_major`, else `[adapters, cols, r]`. Tasks own column ranges and
/// add the blocks in order; no scales means 1.
#[allow(clippy::too_many_arguments)]
fn outer_by_columns(
    blocks: &[(usize, usize, i32)],
    q: &[f32],
    p: &[f32],
    r: usize,
    cols: usize,
    scales: &[f32],
    r_major: bool,
    g: &mut [f32],
) {
    let adapters = g.len() / (r * cols).max(1);
    if cols == 0 || adapters == 0 {
        return;
    }
    let ranges: Vec<(usize, usize)> =
        (0..cols).step_by(COLUMNS_PER_TASK).map(|c0| (c0, (c0 + COLUMNS_PER_TASK).min(cols))).collect();
    // Each task: [adapters, r, w] for its columns c0..c1.
    let parts: Vec<Vec<f32>> = ranges
        .par_iter()
        .map(|&(c0, c1)| {
            let w = c1 - c0;
            let mut part = vec![0f32; adapters * r * w];
            let mut seen = vec![false; adapters];
            for &(s, e, id) in blocks {
                if id < 0 {
                    continue;
                }
                let id = id as usize;
                let dst = &mut part[id * r * w..(id + 1) * r * w];
                // dst (r × w) [+]= q_blkᵀ (r × m) · p_blk[:, c0..c1] (m × w).
                let (qb, pb) = (&q[s * r..e * r], &p[s * cols + c0..]);
                gemm_strided(r, w, e - s, dst, w, seen[id], qb, 1, r, pb, cols, 1, 1.0);
                seen[id] = true;
            }
            part
        })
        .collect();
    for (&(c0, c1), part) in ranges.iter().zip(&parts) {
        let w = c1 - c0;
        for id in 0..adapters {
            let scale = scales.get(id).copied().unwrap_or(1.0);
            for j in 0..r {
                for (c, &v) in (c0..c1).zip(&part[(id * r + j) * w..(id * r + j + 1) * w]) {
                    let at = if r_major { (id * r + j) * cols + c } else { (id * cols + c) * r + j };
                    g[at] = scale * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_runs_of_one_id_cut_at_the_task_size() {
        assert_eq!(blocks(&[0, 0, 1, -1, -1, 1]), [(0, 2, 0), (2, 3, 1), (3, 5, -1), (5, 6, 1)]);
        let long = vec![2; 2 * ROWS_PER_TASK + 5];
        assert_eq!(
            blocks(&long),
            [
                (0, ROWS_PER_TASK, 2),
                (ROWS_PER_TASK, 2 * ROWS_PER_TASK, 2),
                (2 * ROWS_PER_TASK, long.len(), 2)
            ]
        );
        assert!(blocks(&[]).is_empty());
    }
}
