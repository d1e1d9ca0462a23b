//! Row softmax (family `softmax`, kernels/softmax.cu) with an optional scale and causal mask.
//!
//! The input is a stack of `rows × cols` matrices. With the causal mask, row `i` sees columns
//! `j ≤ i + (cols − rows)`: the last row sees everything, which is what attention over a KV cache
//! of `cols − rows` earlier positions needs. Masked entries are 0; a row that sees nothing is 0.

use rayon::prelude::*;

use super::rows_per_task;
use super::vexp::{BLOCK, exp_sub_sum};
use crate::dtype::FloatElement;

pub fn softmax<T: FloatElement>(x: &[T], rows: usize, cols: usize, scale: f32, causal: bool, out: &mut [T]) {
    if cols == 0 || rows == 0 {
        return;
    }
    let chunk = rows_per_task(cols) * cols;
    out.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).enumerate().for_each(|(c, (o, x))| {
        let first_row = c * chunk / cols;
        for (r, (o, x)) in o.chunks_mut(cols).zip(x.chunks(cols)).enumerate() {
            let i = (first_row + r) % rows;
            let visible = if causal { (i + cols).saturating_sub(rows - 1).min(cols) } else { cols };
            softmax_row(&x[..visible], scale, &mut o[..visible]);
            o[visible..].fill(T::from_f32(0.0));
        }
    });
}

fn softmax_row<T: FloatElement>(x: &[T], scale: f32, out: &mut [T]) {
    if x.is_empty() {
        return;
    }
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(v.to_f32() * scale));
    let mut tmp = [0f32; BLOCK];
    let scaled = |x: &[T], t: &mut [f32]| t.iter_mut().zip(x).for_each(|(t, v)| *t = v.to_f32() * scale);
    // Exponentials are computed once for a short row (kept in the stack buffer), twice for a
    // long one (a block at a time: once for the sum, once for the output).
    if x.len() <= BLOCK {
        let t = &mut tmp[..x.len()];
        scaled(x, t);
        let inv = 1.0 / exp_sub_sum(t, max);
        out.iter_mut().zip(t.iter()).for_each(|(o, t)| *o = T::from_f32(t * inv));
    } else {
        let mut sum = 0f32;
        for b in x.chunks(BLOCK) {
            let t = &mut tmp[..b.len()];
            scaled(b, t);
            sum += exp_sub_sum(t, max);
        }
        let inv = 1.0 / sum;
        for (o, b) in out.chunks_mut(BLOCK).zip(x.chunks(BLOCK)) {
            let t = &mut tmp[..b.len()];
            scaled(b, t);
            exp_sub_sum(t, max);
            o.iter_mut().zip(t.iter()).for_each(|(o, t)| *o = T::from_f32(t * inv));
        }
    }
}
