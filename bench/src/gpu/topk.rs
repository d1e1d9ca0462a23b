//! The fused similarity + top-k kernel against the unfused way of doing the same search on the
//! same device, in one run: the score GEMM alone (cuBLAS through `ops::matmul_ex`, scores written
//! to device memory — the unfused path's first half, so the peer is a lower bound on it). Checked
//! first against the CPU op on the same data, then timed with L2 flushes.
//!
//! FLOPs 2·nq·n·d; bytes = the base and queries read once plus the results, so one query is
//! judged against bandwidth and a batch against the GEMM ceiling.

use ragtune_compute::ops::{self, MatmulSpec, Similarity, TopkSpec};
use ragtune_compute::{DType, Device, Tensor};

use crate::gpu::plan::CHECK_QUERIES;
use crate::gpu::rows::{json_row, markdown_table};
use crate::gpu::timing::{L2Flush, median_ms_flushed};
use crate::random_tensor;
use crate::report::Ceilings;

/// One measured shape.
#[derive(Clone, Debug)]
pub struct TopkRow {
    pub n: usize,
    pub d: usize,
    pub nq: usize,
    pub k: usize,
    pub dtype: DType,
    pub fused_ms: f64,
    pub gemm_ms: f64,
    /// Share of (query, rank) slots whose row matches the CPU op's (ties and rounding of
    /// near-equal scores may order a few differently).
    pub agreement: f64,
}

impl TopkRow {
    pub fn flops(&self) -> f64 {
        2.0 * self.nq as f64 * self.n as f64 * self.d as f64
    }

    pub fn bytes(&self) -> f64 {
        ((self.n + self.nq) * self.d * self.dtype.size() + self.nq * self.k * 8) as f64
    }

    /// The row in `cargo xtask bench`'s JSON format, the score GEMM as its peer.
    pub fn json_row(&self, ceilings: &Ceilings, repeats: usize) -> String {
        json_row(
            "topk",
            "fused similarity + top-k (ip)",
            &format!("n={} d={} nq={} k={} {}", self.n, self.d, self.nq, self.k, self.dtype),
            (self.fused_ms / 1e3, repeats),
            (self.flops(), self.bytes()),
            ceilings,
            &[("score GEMM alone (unfused lower bound)", self.gemm_ms / 1e3)],
            &format!("rows agree with the CPU op in {:.2}% of slots", 100.0 * self.agreement),
        )
    }
}

/// A base the rows search: on the host (for the CPU's answers) and on the device.
pub struct Base {
    host: Tensor,
    device: Tensor,
}

impl Base {
    /// `n` seeded random rows of `d` in `dtype`, on the host and on `device`.
    pub fn random(device: &Device, n: usize, d: usize, dtype: DType) -> Base {
        let host = random_tensor(8, &[n, d], dtype);
        Base { device: host.to_device(device).unwrap(), host }
    }
}

/// Check, then time, `nq` queries for the top `k` over `base`: the device's answers for the first
/// [`CHECK_QUERIES`] queries against the CPU op's on the same data, then the fused op and the
/// score GEMM alone, each with L2 flushes.
pub fn measure(
    device: &Device,
    base: &Base,
    nq: usize,
    k: usize,
    repeats: usize,
    flush: &mut L2Flush,
) -> TopkRow {
    let (n, d, dtype) = (base.host.shape()[0], base.host.shape()[1], base.host.dtype());
    let queries = random_tensor(9, &[nq, d], dtype);
    let spec = TopkSpec { k, similarity: Similarity::Dot };
    let checked = nq.min(CHECK_QUERIES);
    let head = Tensor::from_slice(&queries.to_vec_f32().unwrap()[..checked * d], &[checked, d]).unwrap();
    let want = ops::topk_similarity(&ops::cast(&head, dtype).unwrap(), &base.host, spec, None).unwrap();
    let queries = queries.to_device(device).unwrap();
    let got = ops::topk_similarity(&queries, &base.device, spec, None).unwrap();
    let agreement = agreement(&got.rows, &want.rows, &got.scores, &want.scores);
    assert!(
        agreement >= 0.99,
        "fused top-k agrees with the CPU op in only {:.2}% of slots",
        100.0 * agreement
    );
    let fused_ms = median_ms_flushed(device, repeats, flush, || {
        ops::topk_similarity(&queries, &base.device, spec, None).unwrap();
    });
    let gemm_ms = median_ms_flushed(device, repeats, flush, || {
        ops::matmul_ex(&queries, &base.device, MatmulSpec { trans_b: true, ..Default::default() }).unwrap();
    });
    TopkRow { n, d, nq, k, dtype, fused_ms, gemm_ms, agreement }
}

/// Share of the CPU's slots (the first queries') where the device has the same row, after
/// checking every score against the CPU's (scores of both are f32 accumulations of the same
/// products: they agree to a relative 1e-3).
fn agreement(rows: &Tensor, want_rows: &Tensor, scores: &Tensor, want_scores: &Tensor) -> f64 {
    let (b, t) = (want_rows.to_vec::<i32>().unwrap(), want_scores.to_vec::<f32>().unwrap());
    let (mut a, mut s) = (rows.to_vec::<i32>().unwrap(), scores.to_vec::<f32>().unwrap());
    assert!(a.len() >= b.len() && s.len() >= t.len(), "the device returned fewer results than the CPU op");
    a.truncate(b.len());
    s.truncate(t.len());
    for (i, (x, y)) in s.iter().zip(&t).enumerate() {
        assert!((x - y).abs() <= 1e-3 * y.abs().max(1.0), "slot {i}: score {x} vs the CPU's {y}");
    }
    a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

/// A Markdown table of rows, with the GEMM-alone/fused ratio.
pub fn table(device: &Device, rows: &[TopkRow]) -> String {
    let header = "| n | d | nq | k | dtype | fused ms | TFLOP/s | GB/s | score GEMM ms | GEMM/fused |";
    let lines = rows.iter().map(|r| {
        let TopkRow { n, d, nq, k, dtype, fused_ms, gemm_ms, .. } = r;
        let (tflops, gbps, ratio) = (r.flops() / fused_ms / 1e9, r.bytes() / fused_ms / 1e6, gemm_ms / fused_ms);
        format!(
            "| {n} | {d} | {nq} | {k} | {dtype} | {fused_ms:.3} | {tflops:.1} | {gbps:.0} | {gemm_ms:.3} | {ratio:.2}× |"
        )
    });
    markdown_table(&format!("similarity + top-k on {device}"), header, lines)
}
