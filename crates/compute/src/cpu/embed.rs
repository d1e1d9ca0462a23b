//! Embedding lookup (family `embed`, kernels/embed.cu): row `ids[i]` of a `[vocab, d]` table, and
//! its backward, a scatter-add of the output gradient into the table's gradient.

use rayon::prelude::*;

use super::rows_per_task;
use crate::dtype::Element;

/// `out[i] = table[ids[i]]`. The op has checked every id against the vocabulary.
pub fn embedding<T: Element>(table: &[T], ids: &[i32], d: usize, out: &mut [T]) {
    if d == 0 {
        return;
    }
    let rows = rows_per_task(d);
    out.par_chunks_mut(rows * d).zip(ids.par_chunks(rows)).for_each(|(o, ids)| {
        for (o, &id) in o.chunks_exact_mut(d).zip(ids) {
            let at = id as usize * d;
            o.copy_from_slice(&table[at..at + d]);
        }
    });
}

/// The first position whose id lies outside `[0, vocab)`, if any.
pub fn first_bad_id(ids: &[i32], vocab: usize) -> Option<usize> {
    ids.iter().position(|&id| id < 0 || id as usize >= vocab)
}

/// `dtable[ids[i]] += dy[i]` over a `[vocab, d]` table (the op has checked every id). Rows are
/// split by vocabulary range across tasks, so no two tasks touch the same row.
pub fn embedding_backward(ids: &[i32], dy: &[f32], d: usize, dtable: &mut [f32]) {
    if d == 0 {
        return;
    }
    let rows = rows_per_task(d);
    dtable.par_chunks_mut(rows * d).enumerate().for_each(|(c, block)| {
        let (lo, hi) = (c * rows, c * rows + block.len() / d);
        for (i, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= lo && id < hi {
                let dst = &mut block[(id - lo) * d..(id - lo + 1) * d];
                dst.iter_mut().zip(&dy[i * d..(i + 1) * d]).for_each(|(a, b)| *a += b);
            }
        }
    });
}
