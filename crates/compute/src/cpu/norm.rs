//! Normalisations over the last dimension (family `norm`, kernels/norm.cu): RMSNorm (Llama) and
//! LayerNorm (BERT). Statistics accumulate in f32 across eight independent lanes, which keeps the
//! loop vectorisable and the rounding error near √n·ε. RMSNorm's backward (f32) sits beside it.

use rayon::prelude::*;

use super::attention::dot;
use super::rows_per_task;
use crate::dtype::FloatElement;

#[inline]
fn lanes_sum(row: impl Iterator<Item = f32>) -> f32 {
    let mut acc = [0f32; 8];
    for (i, v) in row.enumerate() {
        acc[i & 7] += v;
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
        let ms = lanes_sum(x.iter().map(|v| v.to_f32() * v.to_f32())) / cols as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, v), w) in o.iter_mut().zip(x).zip(w) {
            *o = T::from_f32(v.to_f32() * inv * w.to_f32());
        }
    });
}

/// `out = (x − mean) / sqrt(var + eps) · w + b`, row by row (biased variance, as PyTorch).
pub fn layer_norm<T: FloatElement>(x: &[T], w: &[T], b: Option<&[T]>, eps: f32, out: &mut [T]) {
    let cols = w.len();
    each_row(x, cols, out, |o, x| {
        // Work with d = x − x[0]: for a row like 1e4 ± 0.1, x − mean computed in f32 would
        // lose the digits the spread lives in, while d is exact and d − mean(d) keeps them.
        let pivot = x[0].to_f32();
        let mean = lanes_sum(x.iter().map(|v| v.to_f32() - pivot)) / cols as f32;
        let centred = |v: &T| (v.to_f32() - pivot) - mean;
        let var = lanes_sum(x.iter().map(|v| centred(v) * centred(v))) / cols as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (j, (o, v)) in o.iter_mut().zip(x).enumerate() {
            let bias = b.map_or(0.0, |b| b[j].to_f32());
            *o = T::from_f32(centred(v) * inv * w[j].to_f32() + bias);
        }
    });
}

/// `out = x / max(‖x‖, 1e-12)`, row by row (rows are `cols` long): unit vectors for cosine
/// similarity; an all-zero row stays zero instead of becoming NaN.
pub fn l2_normalize<T: FloatElement>(x: &[T], cols: usize, out: &mut [T]) {
    each_row(x, cols, out, |o, x| {
        let norm = lanes_sum(x.iter().map(|v| v.to_f32() * v.to_f32())).sqrt();
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
