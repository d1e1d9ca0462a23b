//! Embedding lookup (family `embed`, kernels/embed.cu): row `ids[i]` of a `[vocab, d]` table.

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
