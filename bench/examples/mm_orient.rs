//! Scratch: a linear layer's product `x · Wᵀ` through the `gemm` crate with W stored `[out, in]`
//! (PyTorch's layout), against the same product with W stored transposed `[in, out]`, and
//! against transposing W at every call; alternating, at the shapes of a SmolLM2-135M prefill and
//! training step, MiniLM and the lora suite. Results compared first. (What
//! `ragtune_runtime::prepared` is built on.)
//!     mm_orient
use ragtune_bench::harness::{Budget, alternating_medians, gemm_crate_sgemm_b, time_once};

/// Bᵀ of B `[n, k]` as `[k, n]` (a blocked copy on the rayon threads).
fn transpose(b: &[f32], n: usize, k: usize, out: &mut [f32]) {
    use rayon::prelude::*;
    const T: usize = 64;
    out.par_chunks_mut(T * n).enumerate().for_each(|(kb, rows)| {
        let k0 = kb * T;
        let kk = rows.len() / n;
        for j0 in (0..n).step_by(T) {
            for j in j0..(j0 + T).min(n) {
                for x in 0..kk {
                    rows[x * n + j] = b[j * k + k0 + x];
                }
            }
        }
    });
}

fn main() -> anyhow::Result<()> {
    let budget = Budget { min_repeats: 10, max_repeats: 200, min_seconds: 0.6 };
    let shapes: &[[usize; 3]] = &[
        [128, 576, 576],
        [128, 192, 576],
        [128, 1536, 576],
        [128, 576, 1536],
        [512, 576, 576],
        [512, 192, 576],
        [512, 1536, 576],
        [512, 576, 1536],
        [512, 49152, 576],
        [700, 384, 384],
        [700, 1536, 384],
        [700, 384, 1536],
        [256, 1024, 1024],
        [1024, 1024, 1024],
    ];
    for &[m, n, k] in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729 % 1000) as f32 - 500.0) / 500.0).collect();
        let mut bt = vec![0f32; k * n];
        transpose(&b, n, k, &mut bt);
        let (mut c0, mut c1) = (vec![0f32; m * n], vec![0f32; m * n]);
        gemm_crate_sgemm_b(m, n, k, &a, &b, true, &mut c0);
        gemm_crate_sgemm_b(m, n, k, &a, &bt, false, &mut c1);
        let err = c0.iter().zip(&c1).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(err < 1e-2, "{m} {n} {k}: max diff {err}");
        let mut scratch = vec![0f32; k * n];
        let t = alternating_medians(budget, 3, |i| {
            Ok(time_once(|| match i {
                0 => gemm_crate_sgemm_b(m, n, k, &a, &b, true, &mut c0),
                1 => gemm_crate_sgemm_b(m, n, k, &a, &bt, false, &mut c1),
                _ => {
                    transpose(&b, n, k, &mut scratch);
                    gemm_crate_sgemm_b(m, n, k, &a, &scratch, false, &mut c1)
                }
            }))
        })?;
        println!(
            "m {m} n {n} k {k}: x·Wᵀ {:.1} µs, x·(Wᵀ stored) {:.2}×, transpose per call {:.2}×",
            t[0].0 * 1e6,
            t[1].0 / t[0].0,
            t[2].0 / t[0].0,
        );
    }
    Ok(())
}
