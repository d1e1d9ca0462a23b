//! Rotary position embedding (family `rope`, kernels/rope.cu), Hugging Face's "rotate_half"
//! layout: within the first `rot = 2 · inv_freq.len()` dims of each head, dim `j < rot/2` pairs
//! with `j + rot/2`; the angle is `position · inv_freq[j]` (computed in f32, as transformers
//! does); dims from `rot` on pass through unchanged.

use rayon::prelude::*;

use crate::dtype::FloatElement;

/// `x` is `[rows = b · s, heads, d]`; `positions` has one entry per row.
pub fn rope<T: FloatElement>(
    x: &[T],
    positions: &[i32],
    inv_freq: &[f32],
    heads: usize,
    d: usize,
    out: &mut [T],
) {
    let half = inv_freq.len();
    let row = heads * d;
    if row == 0 {
        return;
    }
    out.par_chunks_mut(row).zip(x.par_chunks(row)).zip(positions.par_iter()).for_each(|((o, x), &p)| {
        // cos/sin once per position, shared by all heads.
        let (sin, cos): (Vec<f32>, Vec<f32>) = inv_freq.iter().map(|&f| (p as f32 * f).sin_cos()).unzip();
        for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            for j in 0..half {
                let (a, b) = (x[j].to_f32(), x[j + half].to_f32());
                o[j] = T::from_f32(a * cos[j] - b * sin[j]);
                o[j + half] = T::from_f32(b * cos[j] + a * sin[j]);
            }
            o[2 * half..].copy_from_slice(&x[2 * half..]);
        }
    });
}
