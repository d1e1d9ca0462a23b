//! Fused attention against a naive unfused attention (QKᵀ GEMM → causal softmax → PV GEMM, the
//! scores round-tripping through device memory) on one device, in the same run: checked first,
//! then timed. TFLOP/s by PERFORMANCE.md's convention, 4·b·h·s²·d, halved when causal.
//!
//! Heads are folded into the batch (layout `[b·h, s, 1, d]`) so the naive path needs no
//! transposes and both paths do the same arithmetic.

use std::time::Instant;

use ragtune_compute::ops::{self, AttentionSpec, MatmulSpec, SoftmaxSpec};
use ragtune_compute::{DType, Device, Tensor};

use crate::{random_tensor, rel_err, rng};

/// One measured shape.
#[derive(Clone, Debug)]
pub struct AttentionRow {
    pub heads: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub dtype: DType,
    pub fused_ms: f64,
    pub naive_ms: f64,
    pub fused_tflops: f64,
    pub naive_tflops: f64,
    /// ‖fused − naive‖ / ‖naive‖ of the checked outputs.
    pub rel_err: f64,
}

fn naive(q: &Tensor, k: &Tensor, v: &Tensor, bh: usize, s: usize, d: usize) -> Tensor {
    let (q, k, v) =
        (q.reshape(&[bh, s, d]).unwrap(), k.reshape(&[bh, s, d]).unwrap(), v.reshape(&[bh, s, d]).unwrap());
    let alpha = 1.0 / (d as f32).sqrt();
    let scores = ops::matmul_ex(&q, &k, MatmulSpec { trans_b: true, alpha, ..Default::default() }).unwrap();
    let p = ops::softmax(&scores, SoftmaxSpec { scale: 1.0, causal: true }).unwrap();
    ops::matmul(&p, &v).unwrap().reshape(&[bh, s, 1, d]).unwrap()
}

fn median_ms(device: &Device, repeats: usize, mut f: impl FnMut() -> Tensor) -> f64 {
    for _ in 0..2 {
        f();
    }
    device.synchronize().unwrap();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            let out = f();
            device.synchronize().unwrap();
            drop(out);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// Check, then time, causal attention over `heads` sequences of `seq` tokens.
pub fn measure(
    device: &Device,
    heads: usize,
    seq: usize,
    head_dim: usize,
    dtype: DType,
    repeats: usize,
) -> AttentionRow {
    let mut r = rng(7);
    let shape = [heads, seq, 1, head_dim];
    let [q, k, v] = [0, 1, 2].map(|_| random_tensor(&mut r, &shape, dtype, 1.0).0.to_device(device).unwrap());
    let spec = AttentionSpec::new(true, head_dim);
    let fused = ops::attention(&q, &k, &v, spec, None).unwrap();
    let reference = naive(&q, &k, &v, heads, seq, head_dim);
    let want: Vec<f64> = reference.to_vec_f32().unwrap().into_iter().map(f64::from).collect();
    let err = rel_err(&fused.to_vec_f32().unwrap(), &want);
    let tol = if dtype == DType::F32 { 1e-4 } else { 2e-2 };
    assert!(
        err <= tol,
        "fused attention differs from the naive one by {err:.2e} ({dtype}, s = {seq}, d = {head_dim})"
    );
    let fused_ms = median_ms(device, repeats, || ops::attention(&q, &k, &v, spec, None).unwrap());
    let naive_ms = median_ms(device, repeats, || naive(&q, &k, &v, heads, seq, head_dim));
    let flops = 4.0 * heads as f64 * (seq as f64).powi(2) * head_dim as f64 / 2.0;
    AttentionRow {
        heads,
        seq,
        head_dim,
        dtype,
        fused_ms,
        naive_ms,
        fused_tflops: flops / fused_ms / 1e9,
        naive_tflops: flops / naive_ms / 1e9,
        rel_err: err,
    }
}

/// A Markdown table of rows, with the fused/naive speed-up.
pub fn table(device: &Device, rows: &[AttentionRow]) -> String {
    let mut s = format!(
        "causal attention on {device}\n\n| b·h | seq | d | dtype | fused ms | fused TFLOP/s | naive ms | naive TFLOP/s | speed-up | rel err |\n|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {:.3} | {:.2} | {:.3} | {:.2} | {:.2}× | {:.1e} |\n",
            r.heads,
            r.seq,
            r.head_dim,
            r.dtype,
            r.fused_ms,
            r.fused_tflops,
            r.naive_ms,
            r.naive_tflops,
            r.naive_ms / r.fused_ms,
            r.rel_err
        );
    }
    s
}
