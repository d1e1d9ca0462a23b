//! The attention backward on the CPU (training), beside its forward in `mod.rs`. Inputs and
//! outputs are f32 — training keeps activations and gradients in f32 — and every sum accumulates
//! in f32 as the forward does.

use rayon::prelude::*;

use super::{AttentionDims, Inputs};

/// Gradients of [`super::attention`] with the same layout, masking and GQA mapping,
/// recomputing the probabilities from q and k (nothing but the inputs is saved):
/// `ds = p ⊙ (dO·vᵀ − rowsum(p ⊙ dO·vᵀ))`, `dq = scale · ds · k`, `dk = scale · dsᵀ · q`,
/// `dv = pᵀ · dO`. Work is split by (batch, kv head): a unit owns its kv head's dk/dv rows, so
/// the sums over the query heads of a GQA group need no atomics. Within a unit, query positions
/// go in blocks of `BACKWARD_ROWS` (64) rows (positions × the group's heads); each block is five
/// GEMMs over the keys it sees (`S = Q Kᵀ`, `dP = dO Vᵀ`, `dQ = dS K`, `dK += dSᵀ Q`,
/// `dV += Pᵀ dO`, K and V read in place) with the softmax and `dS` between them — per-pair dot
/// products and rank-1 updates took a third of a LoRA step of a small model.
pub fn attention_backward(
    inputs: Inputs<f32>,
    dout: &[f32],
    key_lens: Option<&[i32]>,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let AttentionDims { batch, sq, skv, hq, hkv, d } = inputs.dims;
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
            let mut grads = (vec![0f32; sq * group * d], vec![0f32; skv * d], vec![0f32; skv * d]);
            let block = BACKWARD_ROWS.div_ceil(group).max(1);
            for i0 in (0..sq).step_by(block) {
                let at = AttentionAt { b, hk, len, positions: i0..(i0 + block).min(sq) };
                backward_block(&inputs, dout, &at, &mut grads);
            }
            grads
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

/// Query rows (positions × heads of a GQA group) per block of the attention backward: the
/// block's score rows over 2,048 keys are 512 KiB, and each of its GEMMs has enough rows to run
/// near the microkernel's speed.
pub const BACKWARD_ROWS: usize = 64;

/// Which rows one block of the attention backward covers.
struct AttentionAt {
    b: usize,
    hk: usize,
    /// Valid keys of batch `b`.
    len: usize,
    positions: std::ops::Range<usize>,
}

/// One block of [`attention_backward`]: adds its rows' share to `(dq, dk, dv)` of the unit.
fn backward_block(
    inputs: &Inputs<f32>,
    dout: &[f32],
    at: &AttentionAt,
    (gq, gk, gv): &mut (Vec<f32>, Vec<f32>, Vec<f32>),
) {
    use crate::cpu::matmul::gemm_strided;
    let Inputs { q, k, v, dims, mask, scale } = *inputs;
    let AttentionDims { sq, skv, hq, hkv, d, .. } = dims;
    let group = hq / hkv;
    let AttentionAt { b, hk, len, ref positions } = *at;
    let rows = positions.len() * group;
    // Row r = (position positions.start + r / group, query head hk·group + r % group).
    let visible: Vec<std::ops::Range<usize>> =
        (0..rows).map(|r| mask.visible(positions.start + r / group, sq, len)).collect();
    let Some(first) = visible.iter().filter(|r| !r.is_empty()).map(|r| r.start).min() else {
        return;
    };
    let keys = visible.iter().map(|r| r.end).max().unwrap_or(0);
    let n = keys - first;
    let (mut qb, mut ob) = (vec![0f32; rows * d], vec![0f32; rows * d]);
    for r in 0..rows {
        let src = ((b * sq + positions.start + r / group) * hq + hk * group + r % group) * d;
        qb[r * d..(r + 1) * d].copy_from_slice(&q[src..src + d]);
        ob[r * d..(r + 1) * d].copy_from_slice(&dout[src..src + d]);
    }
    // K and V rows of this kv head from key `first` on, `hkv · d` apart, read in place.
    let kv0 = ((b * skv + first) * hkv + hk) * d;
    let span = (n - 1) * hkv * d + d;
    let (kp, vp, stride) = (&k[kv0..kv0 + span], &v[kv0..kv0 + span], hkv * d);
    // S = scale · Q Kᵀ, then P row by row over its visible keys (0 elsewhere).
    let mut p = vec![0f32; rows * n];
    gemm_strided(rows, n, d, &mut p, n, false, &qb, d, 1, kp, 1, stride, scale);
    for (r, pr) in p.chunks_exact_mut(n).enumerate() {
        let (c0, c1) = (visible[r].start.max(first) - first, visible[r].end.saturating_sub(first).min(n));
        if c0 >= c1 {
            pr.fill(0.0);
            continue;
        }
        let m = pr[c0..c1].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let inv = 1.0 / crate::cpu::vexp::exp_sub_sum(&mut pr[c0..c1], m);
        pr[c0..c1].iter_mut().for_each(|x| *x *= inv);
        pr[..c0].fill(0.0);
        pr[c1..].fill(0.0);
    }
    // dP = dO Vᵀ; dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale, in place of dP.
    let mut ds = vec![0f32; rows * n];
    gemm_strided(rows, n, d, &mut ds, n, false, &ob, d, 1, vp, 1, stride, 1.0);
    for (pr, dr) in p.chunks_exact(n).zip(ds.chunks_exact_mut(n)) {
        let rowdot: f32 = pr.iter().zip(dr.iter()).map(|(p, dp)| p * dp).sum();
        dr.iter_mut().zip(pr).for_each(|(dp, &p)| *dp = p * (*dp - rowdot) * scale);
    }
    // dQ rows = dS K (rows of the unit's dq are [position][group][d], so the block's are contiguous).
    let q0 = positions.start * group * d;
    gemm_strided(rows, d, n, &mut gq[q0..q0 + rows * d], d, false, &ds, n, 1, kp, stride, 1, 1.0);
    // dK += dSᵀ Q, dV += Pᵀ dO over the keys the block saw.
    let (gk, gv) = (&mut gk[first * d..keys * d], &mut gv[first * d..keys * d]);
    gemm_strided(n, d, rows, gk, d, true, &ds, 1, n, &qb, d, 1, 1.0);
    gemm_strided(n, d, rows, gv, d, true, &p, 1, n, &ob, d, 1, 1.0);
}
