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
