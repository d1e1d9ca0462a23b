//! Scratch: where ops::matmul's time goes next to the bare gemm crate (alternating rounds).
use ragtune_bench::harness::{Budget, alternating_medians, gemm_crate_sgemm, time_once};
use ragtune_bench::random_tensor;
use ragtune_compute::{DType, ops};

fn main() -> anyhow::Result<()> {
    let budget = Budget { min_repeats: 20, max_repeats: 400, min_seconds: 1.5 };
    for n in [128usize, 256, 512, 1024] {
        let a = random_tensor(1, &[n, n], DType::F32);
        let b = random_tensor(2, &[n, n], DType::F32);
        let (av, bv) = (a.to_vec_f32()?, b.to_vec_f32()?);
        let mut reuse = vec![0f32; n * n];
        let m = alternating_medians(budget, 3, |i| {
            Ok(match i {
                0 => time_once(|| {
                    std::hint::black_box(ops::matmul(&a, &b).unwrap());
                }),
                1 => time_once(|| gemm_crate_sgemm(n, n, n, &av, &bv, &mut reuse)),
                _ => time_once(|| {
                    let mut fresh = vec![0f32; n * n];
                    gemm_crate_sgemm(n, n, n, &av, &bv, &mut fresh);
                    std::hint::black_box(fresh);
                }),
            })
        })?;
        println!(
            "n={n}: ops::matmul {:.1} µs, gemm reused buf {:.1} µs ({:.2}×), gemm fresh buf {:.1} µs ({:.2}×)",
            m[0].0 * 1e6,
            m[1].0 * 1e6,
            m[0].0 / m[1].0,
            m[2].0 * 1e6,
            m[0].0 / m[2].0
        );
    }
    Ok(())
}
