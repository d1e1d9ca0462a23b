//! The fused similarity + top-k kernel against the unfused way of doing the same search on the
//! same device, in one run: the score GEMM alone (cuBLAS through `ops::matmul_ex`, scores written
//! to device memory — the unfused path's first half, so the peer is a lower bound on it). Checked
//! first against the CPU op on the same data, then timed with L2 flushes.
//!
//! FLOPs 2·nq·n·d; bytes = the base and queries read once plus the results, so one query is
//! judged against bandwidth and a batch against the GEMM ceiling.

use ragtune_compute::ops::{self, MatmulSpec, Similarity, TopkSpec};
use ragtune_compute::{DType, Device, Tensor};

use crate::gpu::rows::{json_row, markdown_table};
use crate::gpu::timing::{L2Flush, median_ms_flushed};
use crate::report::Ceilings;
use ragtune_tests::{random_tensor, rng};

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

/// Check, then time, inner-product top-k of `nq` queries over `n` rows.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    device: &Device,
    n: usize,
    d: usize,
    nq: usize,
    k: usize,
    dtype: DType,
    repeats: usize,
    flush: &mut L2Flush,
) -> TopkRow {
    let mut r = rng(8);
    let (base, _) = random_tensor(&mut r, &[n, d], dtype, 1.0);
    let (queries, _) = random_tensor(&mut r, &[nq, d], dtype, 1.0);
    let spec = TopkSpec { k, similarity: Similarity::Dot };
    let want = ops::topk_similarity(&queries, &base, spec, None).unwrap();
    let (base, queries) = (base.to_device(device).unwrap(), queries.to_device(device).unwrap());
    let got = ops::topk_similarity(&queries, &base, spec, None).unwrap();
    let agreement = agreement(&got.rows, &want.rows, &got.scores, &want.scores);
    assert!(
        agreement >= 0.99,
        "fused top-k agrees with the CPU op in only {:.2}% of slots",
        100.0 * agreement
    );
    let fused_ms = median_ms_flushed(device, repeats, flush, || {
        ops::topk_similarity(&queries, &base, spec, None).unwrap();
    });
    let gemm_ms = median_ms_flushed(device, repeats, flush, || {
        ops::matmul_ex(&queries, &base, MatmulSpec { trans_b: true, ..Default::default() }).unwrap();
    });
    TopkRow { n, d, nq, k, dtype, fused_ms, gemm_ms, agreement }
}

/// Share of slots with the same row, after checking every score against the CPU's (scores of
/// both are f32 accumulations of the same products: they agree to a relative 1e-3).
fn agreement(rows: &Tensor, want_rows: &Tensor, scores: &Tensor, want_scores: &Tensor) -> f64 {
    let (a, b) = (rows.to_vec::<i32>().unwrap(), want_rows.to_vec::<i32>().unwrap());
    let (s, t) = (scores.to_vec::<f32>().unwrap(), want_scores.to_vec::<f32>().unwrap());
    assert_eq!((a.len(), s.len()), (b.len(), t.len()), "result shapes differ from the CPU op's");
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
