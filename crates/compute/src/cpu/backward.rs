//! Backward passes on the CPU (training): RMSNorm, attention, SwiGLU and the embedding
//! scatter-add. Inputs and outputs are f32 — training keeps activations and gradients in f32 —
//! and every sum accumulates in f32 as the forward passes do. The kernels of a GPU side
//! (`kernels/lora.cu`, `loss.cu`, `optim.cu`) are a later step; `ops` routes device tensors
//! through the host meanwhile.

use rayon::prelude::*;

use super::attention::{AttentionDims, KeyMask, dot};
use super::{ELEMS_PER_TASK, rows_per_task};

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

/// Gradients of `silu(gate) · up`: `dgate = dy · up · σ(g)(1 + g(1 − σ(g)))`, `dup = dy · silu(g)`.
pub fn swiglu_backward(gate: &[f32], up: &[f32], dy: &[f32], dgate: &mut [f32], dup: &mut [f32]) {
    dgate.par_chunks_mut(ELEMS_PER_TASK).zip(dup.par_chunks_mut(ELEMS_PER_TASK)).enumerate().for_each(
        |(c, (dg, du))| {
            let at = c * ELEMS_PER_TASK;
            for i in 0..dg.len() {
                let (g, u, d) = (gate[at + i], up[at + i], dy[at + i]);
                let s = 1.0 / (1.0 + (-g).exp());
                dg[i] = d * u * s * (1.0 + g * (1.0 - s));
                du[i] = d * g * s;
            }
        },
    );
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

/// Gradients of [`super::attention::attention`] with the same layout, masking and GQA mapping,
/// recomputing the probabilities from q and k (nothing but the inputs is saved):
/// `ds = p ⊙ (dO·vᵀ − rowsum(p ⊙ dO·vᵀ))`, `dq = scale · ds · k`, `dk = scale · dsᵀ · q`,
/// `dv = pᵀ · dO`. Work is split by (batch, kv head): a unit owns its kv head's dk/dv rows, so
/// the sums over the query heads of a GQA group need no atomics.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dout: &[f32],
    dims: AttentionDims,
    mask: KeyMask,
    scale: f32,
    key_lens: Option<&[i32]>,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let AttentionDims { batch, sq, skv, hq, hkv, d } = dims;
    if batch == 0 || hq == 0 || d == 0 {
        return;
    }
    let group = hq / hkv;
    // Per unit: dq rows [sq][group][d], dk and dv rows [skv][d].
    let units: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..batch * hkv)
        .into_par_iter()
        .map(|u| {
            let (b, hk) = (u / hkv, u % hkv);
            let len = key_lens.map_or(skv, |l| l[b] as usize);
            let (mut gq, mut gk, mut gv) =
                (vec![0f32; sq * group * d], vec![0f32; skv * d], vec![0f32; skv * d]);
            let kv_at = |j: usize| ((b * skv + j) * hkv + hk) * d;
            let (mut p, mut dp) = (vec![0f32; len], vec![0f32; len]);
            for i in 0..sq {
                let seen = mask.visible(i, sq, len);
                if seen.is_empty() {
                    continue;
                }
                for g in 0..group {
                    let qa = ((b * sq + i) * hq + hk * group + g) * d;
                    let (qi, doi) = (&q[qa..qa + d], &dout[qa..qa + d]);
                    let mut m = f32::NEG_INFINITY;
                    for j in seen.clone() {
                        p[j] = scale * dot(qi, &k[kv_at(j)..kv_at(j) + d]);
                        m = m.max(p[j]);
                    }
                    let mut sum = 0f32;
                    for pj in &mut p[seen.clone()] {
                        *pj = (*pj - m).exp();
                        sum += *pj;
                    }
                    let mut rowdot = 0f32;
                    for j in seen.clone() {
                        p[j] /= sum;
                        dp[j] = dot(doi, &v[kv_at(j)..kv_at(j) + d]);
                        rowdot += p[j] * dp[j];
                    }
                    let gqi = &mut gq[(i * group + g) * d..(i * group + g + 1) * d];
                    for j in seen.clone() {
                        let ds = p[j] * (dp[j] - rowdot) * scale;
                        let kj = &k[kv_at(j)..kv_at(j) + d];
                        let (gkj, gvj) = (&mut gk[j * d..(j + 1) * d], &mut gv[j * d..(j + 1) * d]);
                        for t in 0..d {
                            gqi[t] += ds * kj[t];
                            gkj[t] += ds * qi[t];
                            gvj[t] += p[j] * doi[t];
                        }
                    }
                }
            }
            (gq, gk, gv)
        })
        .collect();
    for (u, (gq, gk, gv)) in units.into_iter().enumerate() {
        let (b, hk) = (u / hkv, u % hkv);
        for i in 0..sq {
            let at = ((b * sq + i) * hq + hk * group) * d;
            dq[at..at + group * d].copy_from_slice(&gq[i * group * d..(i + 1) * group * d]);
        }
        for j in 0..skv {
            let at = ((b * skv + j) * hkv + hk) * d;
            dk[at..at + d].copy_from_slice(&gk[j * d..(j + 1) * d]);
            dv[at..at + d].copy_from_slice(&gv[j * d..(j + 1) * d]);
        }
    }
}
