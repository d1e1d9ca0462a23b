//! Optimizer updates (family `optim`, kernels/optim.cu): AdamW and the squared
//! norm behind global-norm clipping.

use rayon::prelude::*;

use super::ELEMS_PER_TASK;

/// One AdamW update, in place, in PyTorch's order of operations (so a trajectory matches
/// `torch.optim.AdamW` to rounding): decay `p *= 1 − lr·wd`; `m += (1 − β1)(g − m)`;
/// `v = β2 v + (1 − β2) g²`; `p −= lr / bc1 · m / (sqrt(v) / sqrt(bc2) + eps)`.
#[allow(clippy::too_many_arguments)]
pub fn adamw(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
) {
    p.par_chunks_mut(ELEMS_PER_TASK)
        .zip(m.par_chunks_mut(ELEMS_PER_TASK).zip(v.par_chunks_mut(ELEMS_PER_TASK)))
        .zip(g.par_chunks(ELEMS_PER_TASK))
        .for_each(|((p, (m, v)), g)| {
            for i in 0..p.len() {
                p[i] *= 1.0 - lr * decay;
                m[i] += (1.0 - beta1) * (g[i] - m[i]);
                v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
                let denom = v[i].sqrt() / bc2_sqrt + eps;
                p[i] -= step_size * m[i] / denom;
            }
        });
}

/// Σ x² in f64 (a global norm over many tensors must not lose the small ones).
pub fn sum_squares(x: &[f32]) -> f64 {
    x.par_chunks(ELEMS_PER_TASK).map(|c| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()).sum()
}
