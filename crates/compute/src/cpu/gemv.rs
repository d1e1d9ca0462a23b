//! Matrix products with few rows on the left — the decode step of a language model, where one
//! token's activations meet every weight matrix. Such a product is bound by reading the weight
//! once, so it streams B in native precision (no widened copy of a bf16 weight, no packing) and
//! splits B's columns across threads; each thread keeps all of A's rows in registers/L1. The
//! dot products run on the widest vector unit the CPU has ([`super::gemv_simd`]).

use rayon::prelude::*;

use super::gemv_simd::{Isa, Stored, row_dots};
use crate::dtype::{DType, FloatElement};

/// The largest m (rows of A) this path serves; beyond it the blocked GEMM wins.
pub const MAX_ROWS: usize = 8;

/// Elements of B converted per step when B is not f32 (fits L1 next to A's rows).
const CHUNK: usize = 512;

/// `out = alpha · A · op(B)` for `mnk = [m, n, k]`, `A` `[m, k]` (already row-major f32, `m ≤ MAX_ROWS`) and `B`
/// `[n, k]` when `trans_b`, else `[k, n]`; `out` is `[m, n]` in f32.
pub fn gemv_rows<T: FloatElement>(
    a: &[f32],
    b: &[T],
    mnk: [usize; 3],
    trans_b: bool,
    alpha: f32,
    out: &mut [f32],
) {
    gemv_rows_on(Isa::detected(), a, b, mnk, trans_b, alpha, out)
}

/// [`gemv_rows`] on a chosen instruction set (tests run every one the CPU has). Falls back to
/// [`Isa::Scalar`] when `isa` is not available here.
pub fn gemv_rows_on<T: FloatElement>(
    isa: Isa,
    a: &[f32],
    b: &[T],
    [m, n, k]: [usize; 3],
    trans_b: bool,
    alpha: f32,
    out: &mut [f32],
) {
    assert!(a.len() >= m * k && out.len() >= m * n && b.len() >= n * k, "gemv_rows: short operand");
    let isa = if isa.available() { isa } else { Isa::Scalar };
    if trans_b {
        rows_dot(isa, a, b, m, n, k, alpha, out);
    } else {
        rows_axpy(a, b, m, n, k, alpha, out);
    }
}

/// Widen `src` into `dst[..src.len()]` (a vectorised conversion for bf16/f16).
#[inline]
fn widen_chunk<T: FloatElement>(src: &[T], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    match T::DTYPE {
        DType::BF16 => bytemuck::cast_slice::<T, half::bf16>(src).convert_to_f32_slice(&mut dst[..src.len()]),
        DType::F16 => bytemuck::cast_slice::<T, half::f16>(src).convert_to_f32_slice(&mut dst[..src.len()]),
        _ => dst[..src.len()].iter_mut().zip(src).for_each(|(d, s)| *d = s.to_f32()),
    }
}

/// Eight-lane dot product: independent partial sums keep the FMA pipes busy and let the loop
/// vectorise without reassociation flags.
#[inline]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (xc, xr) = x.split_at(x.len() / 8 * 8);
    let (yc, yr) = y.split_at(xc.len());
    for (xs, ys) in xc.chunks_exact(8).zip(yc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += xs[l] * ys[l];
        }
    }
    let tail: f32 = xr.iter().zip(yr).map(|(a, b)| a * b).sum();
    acc.iter().sum::<f32>() + tail
}

/// B rows are contiguous (`[n, k]`, a PyTorch weight): each output is a dot product of two rows.
#[allow(clippy::too_many_arguments)]
fn rows_dot<T: FloatElement>(
    isa: Isa,
    a: &[f32],
    b: &[T],
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    out: &mut [f32],
) {
    let stored = Stored::of::<T>();
    // Columns per task: enough work to amortise the task, enough tasks to balance.
    let cols = (64 * 1024 / k.max(1)).clamp(8, 1024);
    let mut cols_out = vec![0f32; m * n];
    cols_out.par_chunks_mut(cols * m).enumerate().for_each(|(t, block)| {
        let j0 = t * cols;
        let mut wide = [0f32; CHUNK];
        for (jj, res) in block.chunks_mut(m).enumerate() {
            let row = &b[(j0 + jj) * k..(j0 + jj + 1) * k];
            if isa != Isa::Scalar {
                // SAFETY: isa is available (checked by gemv_rows_on), `a` holds m rows of k and
                // `row` k elements of its dtype.
                unsafe { row_dots(isa, stored, a, m, k, row.as_ptr().cast(), res) };
            } else if T::DTYPE == DType::F32 {
                let row: &[f32] = bytemuck::cast_slice(row);
                for (i, r) in res.iter_mut().enumerate() {
                    *r = dot(&a[i * k..(i + 1) * k], row);
                }
            } else {
                res.fill(0.0);
                for (c, part) in row.chunks(CHUNK).enumerate() {
                    widen_chunk(part, &mut wide);
                    let p0 = c * CHUNK;
                    for (i, r) in res.iter_mut().enumerate() {
                        *r += dot(&a[i * k + p0..i * k + p0 + part.len()], &wide[..part.len()]);
                    }
                }
            }
        }
    });
    // cols_out is [n, m] (column-major C): transpose into row-major out with alpha.
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = alpha * cols_out[j * m + i];
        }
    }
}

/// B is `[k, n]`: each output row is a combination of B's rows; threads own column ranges.
fn rows_axpy<T: FloatElement>(a: &[f32], b: &[T], m: usize, n: usize, k: usize, alpha: f32, out: &mut [f32]) {
    let width = CHUNK.min(n.max(1));
    let blocks: Vec<Vec<f32>> = (0..n.div_ceil(width))
        .into_par_iter()
        .map(|blk| {
            let (c0, c1) = (blk * width, ((blk + 1) * width).min(n));
            let w = c1 - c0;
            let mut acc = vec![0f32; m * w];
            let mut wide = [0f32; CHUNK];
            for p in 0..k {
                let src = &b[p * n + c0..p * n + c1];
                let row: &[f32] = if T::DTYPE == DType::F32 {
                    bytemuck::cast_slice(src)
                } else {
                    widen_chunk(src, &mut wide);
                    &wide[..w]
                };
                for i in 0..m {
                    let s = a[i * k + p];
                    for (o, &v) in acc[i * w..(i + 1) * w].iter_mut().zip(row) {
                        *o += s * v;
                    }
                }
            }
            acc
        })
        .collect();
    for (blk, acc) in blocks.iter().enumerate() {
        let c0 = blk * width;
        let w = acc.len() / m.max(1);
        for i in 0..m {
            for (j, v) in acc[i * w..(i + 1) * w].iter().enumerate() {
                out[i * n + c0 + j] = alpha * v;
            }
        }
    }
}
