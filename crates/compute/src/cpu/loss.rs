//! Fused log-softmax + negative log-likelihood (family `loss`, kernels/loss.cu).

use rayon::prelude::*;

use super::rows_per_task;

/// Cross-entropy of `logits` rows (`vocab` long) against `targets`, skipping targets equal to
/// `ignore_index`: returns the loss summed over counted rows (in f64, so the mean does not depend
/// on how rows were split) and writes `dlogits = (softmax − onehot) · grad_scale` for counted
/// rows and zeros for ignored ones. The op has checked every counted target lies in `0..vocab`.
pub fn cross_entropy(
    logits: &[f32],
    targets: &[i32],
    vocab: usize,
    ignore_index: i32,
    grad_scale: f32,
    dlogits: &mut [f32],
) -> f64 {
    if vocab == 0 {
        return 0.0;
    }
    let rows = rows_per_task(vocab);
    dlogits
        .par_chunks_mut(rows * vocab)
        .zip(logits.par_chunks(rows * vocab).zip(targets.par_chunks(rows)))
        .map(|(dl, (x, t))| {
            let mut total = 0f64;
            for ((dl, x), &t) in dl.chunks_mut(vocab).zip(x.chunks(vocab)).zip(t) {
                if t == ignore_index {
                    dl.fill(0.0);
                    continue;
                }
                let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                dl.copy_from_slice(x);
                let sum = crate::cpu::vexp::exp_sub_sum(dl, m);
                let lse = m + sum.ln();
                total += f64::from(lse - x[t as usize]);
                let inv = grad_scale / sum;
                dl.iter_mut().for_each(|g| *g *= inv);
                dl[t as usize] -= grad_scale;
            }
            total
        })
        .sum()
}
