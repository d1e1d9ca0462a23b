//! Fused attention against a naive unfused attention (QKᵀ GEMM → causal softmax → PV GEMM, the
//! scores round-tripping through device memory) on one device, in the same run: checked first,
//! then timed. TFLOP/s by docs/PERFORMANCE.md's convention, 4·b·h·s²·d, halved when causal.
//!
//! Heads are folded into the batch (layout `[b·h, s, 1, d]`) so the naive path needs no
//! transposes and both paths do the same arithmetic. Each timed repeat follows an L2 flush; rows
//! also come out in `cargo xtask bench`'s JSON row format ([`AttentionRow::json_row`]).

use ragtune_compute::ops::{self, AttentionSpec, MatmulSpec, SoftmaxSpec};
use ragtune_compute::{DType, Device, Tensor};

use crate::gpu::rows::{json_row, markdown_table};
use crate::gpu::timing::{L2Flush, median_ms_flushed};
use crate::random_tensor;
use crate::report::Ceilings;
use ragtune_tests::rel_err;

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

/// Check, then time, causal attention over `heads` sequences of `seq` tokens, flushing L2
/// before every timed repeat.
pub fn measure(
    device: &Device,
    heads: usize,
    seq: usize,
    head_dim: usize,
    dtype: DType,
    repeats: usize,
    flush: &mut L2Flush,
) -> AttentionRow {
    let shape = [heads, seq, 1, head_dim];
    let [q, k, v] = [7, 8, 9].map(|seed| random_tensor(seed, &shape, dtype).to_device(device).unwrap());
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
    let fused_ms = median_ms_flushed(device, repeats, flush, || {
        ops::attention(&q, &k, &v, spec, None).unwrap();
    });
    let naive_ms = median_ms_flushed(device, repeats, flush, || {
        naive(&q, &k, &v, heads, seq, head_dim);
    });
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

impl AttentionRow {
    /// The row in `cargo xtask bench`'s JSON format, the naive path as its peer.
    pub fn json_row(&self, ceilings: &Ceilings, repeats: usize) -> String {
        let flops = 4.0 * self.heads as f64 * (self.seq as f64).powi(2) * self.head_dim as f64 / 2.0;
        let bytes = 4.0 * (self.heads * self.seq * self.head_dim * self.dtype.size()) as f64;
        json_row(
            "attention",
            "fused causal forward",
            &format!("b·h={} s={} d={} {}", self.heads, self.seq, self.head_dim, self.dtype),
            (self.fused_ms / 1e3, repeats),
            (flops, bytes),
            ceilings,
            &[("naive unfused", self.naive_ms / 1e3)],
            &format!("vs naive: rel err {:.1e}", self.rel_err),
        )
    }
}

/// A Markdown table of rows, with the fused/naive speed-up.
pub fn table(device: &Device, rows: &[AttentionRow]) -> String {
    let header = "| b·h | seq | d | dtype | fused ms | fused TFLOP/s | naive ms | naive TFLOP/s | speed-up | rel err |";
    let lines = rows.iter().map(|r| {
        let AttentionRow { heads, seq, head_dim, dtype, fused_ms, naive_ms, fused_tflops, naive_tflops, rel_err, .. } =
            r;
        let speedup = naive_ms / fused_ms;
        format!(
            "| {heads} | {seq} | {head_dim} | {dtype} | {fused_ms:.3} | {fused_tflops:.2} | {naive_ms:.3} | {naive_tflops:.2} | {speedup:.2}× | {rel_err:.1e} |"
        )
    });
    markdown_table(&format!("causal attention on {device}"), header, lines)
}
