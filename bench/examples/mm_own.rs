//! ragtune's blocked SGEMM (`cpu::matmul::blocked`, this CPU's AVX2 or AVX-512 kernel) against the `gemm` crate at the shapes
//! a SmolLM2-135M training step and MiniLM multiply, both orientations of B, alternating, on the
//! rayon pool's threads. Results compared first.
//!     mm_own [M N K]
use ragtune_bench::harness::{Budget, alternating_medians, gemm_crate_sgemm_b, time_once};
use ragtune_compute::cpu::matmul::{blocked, pack::View};

fn main() -> anyhow::Result<()> {
    assert!(blocked::available(), "no AVX2 + FMA here");
    println!("kernel: {:?}", blocked::Kernel::for_this_cpu());
    let budget = Budget { min_repeats: 10, max_repeats: 200, min_seconds: 0.5 };
    let mut shapes: Vec<[usize; 3]> = vec![
        [256, 256, 256],
        [384, 384, 384],
        [160, 384, 384],
        [320, 384, 384],
        [512, 576, 576],
        [512, 192, 576],
        [512, 1536, 576],
        [512, 576, 1536],
        [512, 4096, 576],
        [700, 384, 384],
        [700, 1536, 384],
        [700, 384, 1536],
        [1024, 1024, 1024],
        [2048, 2048, 2048],
    ];
    // `mm_own M N K`: that shape alone.
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("M N K")).collect();
    if let [m, n, k] = args[..] {
        shapes = vec![[m, n, k]];
    }
    let threads = rayon::current_num_threads();
    for [m, n, k] in shapes {
        for trans_b in [false, true] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729 % 1000) as f32 - 500.0) / 500.0).collect();
            let (mut c0, mut c1) = (vec![0f32; m * n], vec![0f32; m * n]);
            let bv = if trans_b {
                View { ptr: b.as_ptr(), rs: 1, cs: k }
            } else {
                View { ptr: b.as_ptr(), rs: n, cs: 1 }
            };
            let own = |c: &mut [f32]| {
                let p = blocked::Problem {
                    m,
                    n,
                    k,
                    alpha: 1.0,
                    beta: 0.0,
                    a: View { ptr: a.as_ptr(), rs: k, cs: 1 },
                    b: bv,
                    packed_b: None,
                    epilogue: ragtune_compute::cpu::matmul::packed::Epilogue::NONE,
                    c: c.as_mut_ptr(),
                    ldc: n,
                };
                // SAFETY: AVX2 + FMA asserted above; a, b and c hold the m×k, k×n and m×n values
                // the views describe.
                unsafe { rayon::in_place_scope(|_| blocked::sgemm(&p, threads)) }
            };
            gemm_crate_sgemm_b(m, n, k, &a, &b, trans_b, &mut c0);
            own(&mut c1);
            let err = c0.iter().zip(&c1).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(err < 1e-2, "{m} {n} {k}: max diff {err}");
            let t = alternating_medians(budget, 2, |i| {
                Ok(time_once(|| match i {
                    0 => gemm_crate_sgemm_b(m, n, k, &a, &b, trans_b, &mut c0),
                    _ => own(&mut c1),
                }))
            })?;
            let gf = |s: f64| 2.0 * (m * n * k) as f64 / s / 1e9;
            println!(
                "m {m} n {n} k {k} b_t {trans_b}: crate {:.1} GFLOP/s, own {:.1} GFLOP/s, own/crate time {:.2}",
                gf(t[0].0),
                gf(t[1].0),
                t[1].0 / t[0].0
            );
        }
    }
    Ok(())
}
