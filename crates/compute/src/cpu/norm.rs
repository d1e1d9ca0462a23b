//! Normalisations over the last dimension (family `norm`, kernels/norm.cu): RMSNorm (Llama) and
//! LayerNorm (BERT). Statistics accumulate in f32 across eight independent lanes, which keeps the
//! loop vectorisable and the rounding error near √n·ε. RMSNorm's backward (f32) sits beside it.

use rayon::prelude::*;

use super::attention::dot;
use super::rows_per_task;
use crate::dtype::FloatElement;

/// `Σ f(x[i])` with element `i` in lane `i mod 8`, the lanes added last. Walking the row eight
/// at a time lets the lanes live in one vector register; the sums are the same as one running
/// sum per lane in index order.
#[inline]
fn lanes_sum<T: FloatElement>(x: &[T], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] += f(c[l].to_f32());
        }
    }
    for (l, v) in tail.iter().enumerate() {
        acc[l] += f(v.to_f32());
    }
    acc.iter().sum()
}

/// `f(out_row, x_row)` for every row of `cols` elements, rows in parallel tasks.
fn each_row<T: FloatElement>(x: &[T], cols: usize, out: &mut [T], f: impl Fn(&mut [T], &[T]) + Sync) {
    if cols == 0 {
        return;
    }
    let chunk = rows_per_task(cols) * cols;
    out.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(o, x)| {
        for (o, x) in o.chunks_mut(cols).zip(x.chunks(cols)) {
            f(o, x);
        }
    });
}

/// `out = x / sqrt(mean(x²) + eps) · w`, row by row; rows are `w.len()` long.
pub fn rms_norm<T: FloatElement>(x: &[T], w: &[T], eps: f32, out: &mut [T]) {
    let cols = w.len();
    each_row(x, cols, out, |o, x| {
        let ms = lanes_sum(x, |v| v * v) / cols as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, v), w) in o.iter_mut().zip(x).zip(w) {
            *o = T::from_f32(v.to_f32() * inv * w.to_f32());
        }
    });
}

/// `out = (x − mean) / sqrt(var + eps) · w + b`, row by row (biased variance, as PyTorch).
pub fn layer_norm<T: FloatElement>(x: &[T], w: &[T], b: Option<&[T]>, eps: f32, out: &mut [T]) {
    each_row(x, w.len(), out, |o, x| layer_norm_row(x, o, w, b, eps));
}

/// [`layer_norm`] of `x + r` (a residual connection then its norm, as BERT's layers end): each
/// row's sum is rounded to `T` and normalised while it is in cache, the same values as the two
/// ops in turn without the sum's own pass over memory.
pub fn add_layer_norm<T: FloatElement>(x: &[T], r: &[T], w: &[T], b: Option<&[T]>, eps: f32, out: &mut [T]) {
    let cols = w.len();
    if cols == 0 {
        return;
    }
    let chunk = rows_per_task(cols) * cols;
    out.par_chunks_mut(chunk).zip(x.par_chunks(chunk).zip(r.par_chunks(chunk))).for_each(|(o, (x, r))| {
        // One row's sum at a time, in a buffer that stays in L1.
        let mut sum = vec![T::from_f32(0.0); cols];
        for (o, (x, r)) in o.chunks_mut(cols).zip(x.chunks(cols).zip(r.chunks(cols))) {
            sum.iter_mut().zip(x).zip(r).for_each(|((s, x), r)| *s = T::from_f32(x.to_f32() + r.to_f32()));
            layer_norm_row(&sum, o, w, b, eps);
        }
    });
}

/// One row of LayerNorm: `x` normalised into `o`.
#[inline]
fn layer_norm_row<T: FloatElement>(x: &[T], o: &mut [T], w: &[T], b: Option<&[T]>, eps: f32) {
    let cols = w.len();
    // Work with d = x − x[0]: for a row like 1e4 ± 0.1, x − mean computed in f32 would lose the
    // digits the spread lives in, while d is exact and d − mean(d) keeps them.
    let pivot = x[0].to_f32();
    let mean = lanes_sum(x, |v| v - pivot) / cols as f32;
    let centred = |v: f32| (v - pivot) - mean;
    let var = lanes_sum(x, |v| centred(v) * centred(v)) / cols as f32;
    let inv = 1.0 / (var + eps).sqrt();
    // The bias test hoisted out of the loop, so each loop vectorises.
    let scaled = |v: &T, w: &T| centred(v.to_f32()) * inv * w.to_f32();
    match b {
        Some(b) => o
            .iter_mut()
            .zip(x)
            .zip(w)
            .zip(b)
            .for_each(|(((o, v), w), b)| *o = T::from_f32(scaled(v, w) + b.to_f32())),
        None => o.iter_mut().zip(x).zip(w).for_each(|((o, v), w)| *o = T::from_f32(scaled(v, w))),
    }
}

/// `out = x / max(‖x‖, 1e-12)`, row by row (rows are `cols` long): unit vectors for cosine
/// similarity; an all-zero row stays zero instead of becoming NaN.
pub fn l2_normalize<T: FloatElement>(x: &[T], cols: usize, out: &mut [T]) {
    each_row(x, cols, out, |o, x| {
        let norm = lanes_sum(x, |v| v * v).sqrt();
        let inv = 1.0 / norm.max(1e-12);
        for (o, v) in o.iter_mut().zip(x) {
            *o = T::from_f32(v.to_f32() * inv);
        }
    });
}

/// Gradients of `y = x / sqrt(mean(x²) + eps) · w` over rows of `w.len()`: writes `dx` and
/// returns `dw` (summed over rows).
///
/// With `inv = 1/sqrt(mean(x²)+eps)` and `g = dy · w`: `dx = inv · g − inv³ / n · x · Σ(g · x)`.
pub fn rms_norm_backward(x: &[f32], w: &[f32], dy: &[f32], eps: f32, dx: &mut [f32]) -> Vec<f32> {
    let cols = w.len();
    if cols == 0 {
        return Vec::new();
    }
    let chunk = rows_per_task(cols) * cols;
    // Each task returns its partial dw; summing the partials keeps the result independent of
    // the thread count (the chunking is fixed by the shape).
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk).zip(dy.par_chunks(chunk)))
        .map(|(dx, (x, dy))| {
            let mut dw = vec![0f32; cols];
            for ((dx, x), dy) in dx.chunks_mut(cols).zip(x.chunks(cols)).zip(dy.chunks(cols)) {
                let ms = dot(x, x) / cols as f32;
                let inv = 1.0 / (ms + eps).sqrt();
                let mut gx = 0f32;
                for j in 0..cols {
                    gx += dy[j] * w[j] * x[j];
                    dw[j] += dy[j] * x[j] * inv;
                }
                let c = inv * inv * inv * gx / cols as f32;
                for j in 0..cols {
                    dx[j] = inv * dy[j] * w[j] - c * x[j];
                }
            }
            dw
        })
        .collect();
    let mut dw = vec![0f32; cols];
    for p in partials {
        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    dw
}
