//! `gemm`: ragtune's CPU matmul (`ops::matmul`, the `gemm` crate underneath) against its peers in
//! the same run: the `gemm` crate called directly (what the op layer costs) and OpenBLAS through
//! NumPy (bench/openblas_sgemm.py; the bar: ≥ 95% of OpenBLAS on the same cores) and PyTorch's
//! `torch.matmul` (bench/torch_peer.py: MKL or oneDNN, whatever the wheel ships). Each product is
//! checked on sampled rows against an f64 product before it is timed; all of them are then timed
//! alternating, one call each per round.

use anyhow::Result;
use ragtune_compute::ops;
use ragtune_compute::{DType, Tensor};

use super::{Ctx, PyServer};
use crate::harness::{alternating_medians, check_close, gemm_crate_sgemm, time_once};
use crate::report::Row;
use crate::{gemm_flops, random_tensor};

/// Square sizes; quick runs stop below the ceiling's size.
fn sizes(quick: bool) -> &'static [usize] {
    if quick { &[256, 1024] } else { &[256, 1024, 2048] }
}

/// C rows `rows` of A·B in f64, and the same rows of `c`.
pub fn sampled_rows(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    k: usize,
    n: usize,
    rows: &[usize],
) -> (Vec<f32>, Vec<f64>) {
    let mut got = Vec::new();
    let mut want = Vec::new();
    for &i in rows {
        got.extend_from_slice(&c[i * n..(i + 1) * n]);
        for j in 0..n {
            want.push((0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum());
        }
    }
    (got, want)
}

/// 16 rows spread over `m`, first and last included.
pub fn spread(m: usize) -> Vec<usize> {
    let count = m.min(16);
    let mut rows: Vec<usize> = (0..count).map(|i| i * (m - 1) / (count - 1).max(1)).collect();
    rows.dedup();
    rows
}

pub fn run(ctx: &Ctx, notes: &mut Vec<String>) -> Result<Vec<Row>> {
    // OpenBLAS runs in a Python process that answers per call, so its timings alternate with
    // ragtune's and the gemm crate's round by round: the machine's load falls on all three alike.
    let mut blas = ctx.python_server("openblas_sgemm.py", notes)?;
    let blas_name = match &blas {
        Some(py) => {
            let name = py.header["blas"].as_str().unwrap_or("OpenBLAS").to_string();
            let core = py.header["core"].as_str().unwrap_or("unknown");
            let forced = std::env::var("OPENBLAS_CORETYPE")
                .map(|v| format!(", forced by OPENBLAS_CORETYPE={v}"))
                .unwrap_or_default();
            notes.push(format!(
                "{name} (NumPy {}) runs its {core} kernels{forced}, {} threads",
                py.header["numpy"].as_str().unwrap_or("?"),
                py.header["threads"]
            ));
            name
        }
        None => String::new(),
    };
    let mut torch = ctx.python_server(super::TORCH_PEER, notes)?;
    if let Some(py) = &torch {
        notes.push(super::torch_note(&py.header));
    }
    let mut rows = Vec::new();
    for &n in sizes(ctx.quick) {
        let a = random_tensor(2 * n as u64, &[n, n], DType::F32);
        let b = random_tensor(2 * n as u64 + 1, &[n, n], DType::F32);
        let (av, bv) = (a.to_vec_f32()?, b.to_vec_f32()?);
        let c = ops::matmul(&a, &b)?;
        let (got, want) = sampled_rows(&av, &bv, &c.to_vec_f32()?, n, n, &spread(n));
        let err = check_close(&format!("ops::matmul {n}³"), &got, &want, 1e-5)?;
        let mut direct = vec![0f32; n * n];
        gemm_crate_sgemm(n, n, n, &av, &bv, &mut direct);
        let (got, want) = sampled_rows(&av, &bv, &direct, n, n, &spread(n));
        check_close(&format!("gemm crate {n}³"), &got, &want, 1e-5)?;
        // The peers' own outputs are checked too: a wrong BLAS is no yardstick.
        let mut peers: Vec<(String, &mut PyServer)> = Vec::new();
        for (name, server, command) in [
            (blas_name.clone(), &mut blas, format!("shape {n},{n},{n}")),
            ("PyTorch".to_string(), &mut torch, format!("sgemm {n},{n},{n}")),
        ] {
            let Some(py) = server.as_mut() else { continue };
            let e = py.ask(&command)?["rel_err"].as_f64().unwrap_or(f64::INFINITY);
            if e > 1e-5 {
                notes.push(format!("{name} at {n}³ left out: its product differs from f64 by {e:.1e}"));
                continue;
            }
            peers.push((name, py));
        }
        let medians = alternating_medians(ctx.budget, 2 + peers.len(), |i| match i {
            0 => Ok(time_once(|| {
                std::hint::black_box(ops::matmul(&a, &b).expect("checked above"));
            })),
            1 => Ok(time_once(|| gemm_crate_sgemm(n, n, n, &av, &bv, &mut direct))),
            p => peers[p - 2].1.time_one(),
        })?;
        let (ours, reps) = medians[0];
        let flops = gemm_flops(n, n, n) as f64;
        let mut row = Row::new(
            "gemm",
            "sgemm",
            &format!("m=n=k={n} f32"),
            ours,
            reps,
            flops,
            12.0 * (n * n) as f64,
            &ctx.ceilings,
        )?
        .with_peer("gemm crate", medians[1].0)
        .with_check(format!("16 rows vs f64: rel err {err:.1e}"));
        for ((name, _), &(t, _)) in peers.iter().zip(&medians[2..]) {
            row = row.with_peer(name, t);
        }
        rows.push(row);
    }
    drop(torch);
    drop(blas);
    rows.push(linear(ctx)?);
    Ok(rows)
}

/// A SmolLM2-sized projection (576 → 1536 over 256 tokens) with bf16 weights: the widening cost.
fn linear(ctx: &Ctx) -> Result<Row> {
    let (m, k, n) = (256, 576, 1536);
    let x = random_tensor(3, &[m, k], DType::BF16);
    let w = random_tensor(4, &[n, k], DType::BF16);
    let y = ops::linear(&x, &w)?;
    // Reference: the same bf16 values, widened, multiplied in f64 (w is [n, k]: transpose).
    let (xv, wv) = (x.to_vec_f32()?, w.to_vec_f32()?);
    let wt: Vec<f32> = (0..k * n).map(|i| wv[(i % n) * k + i / n]).collect();
    let (got, want) = sampled_rows(&xv, &wt, &y.to_vec_f32()?, k, n, &spread(m));
    // The output is stored as bf16: ARCHITECTURE.md's bf16 tolerance.
    let err = check_close("ops::linear bf16", &got, &want, 1e-2)?;
    let f32_x: Tensor = ops::cast(&x, DType::F32)?;
    let f32_w: Tensor = ops::cast(&w, DType::F32)?;
    let medians = alternating_medians(ctx.budget, 2, |i| {
        let (x, w) = if i == 0 { (&x, &w) } else { (&f32_x, &f32_w) };
        Ok(time_once(|| {
            std::hint::black_box(ops::linear(x, w).expect("checked above"));
        }))
    })?;
    let ((ours, reps), (peer, _)) = (medians[0], medians[1]);
    let bytes = 2.0 * (m * k + n * k) as f64 + 4.0 * (m * n) as f64;
    Ok(Row::new(
        "gemm",
        "linear bf16",
        &format!("{m}x{k} · ({n}x{k})ᵀ"),
        ours,
        reps,
        gemm_flops(m, n, k) as f64,
        bytes,
        &ctx.ceilings,
    )?
    .with_peer("ragtune f32 weights", peer)
    .with_check(format!("16 rows vs f64: rel err {err:.1e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_rows_catch_a_wrong_product() {
        let (m, k, n) = (5, 3, 4);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 - 7.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
        let mut c = vec![0f32; m * n];
        gemm_crate_sgemm(m, n, k, &a, &b, &mut c);
        let rows = spread(m);
        assert_eq!(rows, [0, 1, 2, 3, 4]);
        let (got, want) = sampled_rows(&a, &b, &c, k, n, &rows);
        assert!(check_close("ok", &got, &want, 1e-7).is_ok());
        c[3 * n + 2] += 1.0;
        let (got, want) = sampled_rows(&a, &b, &c, k, n, &rows);
        assert!(check_close("broken", &got, &want, 1e-3).is_err());
        assert_eq!(spread(100).len(), 16);
        assert_eq!((spread(100)[0], *spread(100).last().unwrap()), (0, 99));
        assert_eq!(spread(1), [0]);
    }
}
