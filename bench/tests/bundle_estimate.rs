//! The GPU bundle's time estimate (`ragtune_bench::gpu::estimate`): its model counts what the
//! benchmarks do (checked against hand counts of the plan), and the plan fits the bundle's eight
//! minutes at the slowest host rates seen on the 2-core build machine. (Named without the
//! `gpu_` prefix: it is not a GPU test, and the bundle takes every `gpu_*` test binary.)

use ragtune_bench::gpu::estimate::{self, BINARIES, BUDGET_S, Gpu, H100, HostRates, Term};
use ragtune_bench::gpu::plan;
use ragtune_bench::smollm2_config;

/// Rates where only the random draw costs anything (one element a microsecond).
const ONLY_RANDOM: HostRates = HostRates {
    random_elements_per_s: 1e6,
    cpu_gemm_flops: 1e30,
    cpu_topk_flops: 1e30,
    f64_loop_flops: 1e30,
};
/// A GPU whose links are free.
const FREE_LINK: Gpu = Gpu { link_bytes_per_s: 1e30, ..H100 };

fn term<'a>(terms: &'a [Term], starts: &str) -> &'a Term {
    terms.iter().find(|t| t.part.starts_with(starts)).unwrap_or_else(|| panic!("no term {starts}: {terms:?}"))
}

#[test]
fn top_k_draws_each_base_once_and_checks_the_first_queries() {
    let terms = estimate::benchmark_terms(&ONLY_RANDOM, &FREE_LINK, &smollm2_config());
    let t = term(&terms, "gpu_bench: top-k");
    // Two bases (f32 and bf16) of 2^20 × 384, and each row's queries.
    let queries: usize = plan::TOPK.iter().map(|r| r.0 * plan::TOPK_DIM).sum();
    let want = (2 * (1usize << 20) * 384 + queries) as f64 / 1e6;
    assert!((t.host_s - want).abs() < 1e-6 * want, "{} vs {want}", t.host_s);

    let only_topk = HostRates { random_elements_per_s: 1e30, cpu_topk_flops: 1e9, ..ONLY_RANDOM };
    let terms = estimate::benchmark_terms(&only_topk, &FREE_LINK, &smollm2_config());
    // The CPU answers min(nq, 128) queries over the base: 1 + 128 + 128 + 64 of them.
    let want = 2.0 * (1 + 128 + 128 + 64) as f64 * (1u64 << 20) as f64 * 384.0 / 1e9;
    let got = term(&terms, "gpu_bench: top-k").host_s;
    assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
}

#[test]
fn lora_checks_the_first_rows_on_the_cpu() {
    let only_gemm = HostRates { random_elements_per_s: 1e30, cpu_gemm_flops: 1e9, ..ONLY_RANDOM };
    let terms = estimate::benchmark_terms(&only_gemm, &FREE_LINK, &smollm2_config());
    // 256 rows of each layer: forward 2·256·in·out + 2·256·r·(in+out); backward the same with
    // the rank products twice.
    let want: f64 = plan::LORA
        .iter()
        .map(|&(_, i, o, r, _)| {
            let (i, o, r) = (i as f64, o as f64, r as f64);
            2.0 * (2.0 * 256.0 * i * o) + 3.0 * (2.0 * 256.0 * r * (i + o))
        })
        .sum::<f64>()
        / 1e9;
    let got = term(&terms, "gpu_bench: LoRA").host_s;
    assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
}

#[test]
fn device_time_is_the_roofline_over_the_efficiency() {
    // Free host, the H100's roofline at half efficiency: the ceilings' GEMM alone is 23 calls
    // of 2·8192³ FLOPs at 989 TFLOP/s, doubled.
    let free = HostRates { random_elements_per_s: 1e30, ..ONLY_RANDOM };
    let terms = estimate::benchmark_terms(&free, &FREE_LINK, &smollm2_config());
    let gemm = 23.0 * 2.0 * 8192f64.powi(3) / 989e12 / 0.5;
    let t = term(&terms, "gpu_train_bench");
    assert!(t.device_s > gemm && t.host_s < 1e-6, "{t:?}");
    let slower = Gpu { efficiency: 0.25, ..FREE_LINK };
    let t2 = term(&estimate::benchmark_terms(&free, &slower, &smollm2_config()), "gpu_train_bench").device_s;
    assert!((t2 - 2.0 * t.device_s).abs() < 1e-9 * t2, "{t2} vs 2 × {}", t.device_s);
}

#[test]
fn the_bundle_fits_eight_minutes_at_the_slowest_rates_seen_here() {
    // `cargo xtask gpu-estimate` on the 2-core AMD EPYC (Zen 1) build machine while a CI run
    // compiled beside it, 2026-12-05: the slowest rates and the longest NVRTC time seen.
    let slow = HostRates {
        random_elements_per_s: 66.5e6,
        cpu_gemm_flops: 24.8e9,
        cpu_topk_flops: 25.0e9,
        f64_loop_flops: 1.65e9,
    };
    let mut terms = estimate::fixed_terms(65.6, &H100);
    terms.push(estimate::checks_term("gpu_ops", 5.2, 1735, &H100));
    terms.push(estimate::checks_term("gpu_device_checks", 0.9, 3328, &H100));
    terms.extend(estimate::benchmark_terms(&slow, &H100, &smollm2_config()));
    let total: f64 = terms.iter().map(Term::seconds).sum();
    assert!(total <= BUDGET_S, "{total:.0} s > {BUDGET_S} s:\n{}", estimate::table(&terms));
    // The sanitizer's cap is the largest part; the benchmarks must leave it room.
    let benches: f64 = terms.iter().filter(|t| t.part.contains("bench")).map(Term::seconds).sum();
    assert!(benches < 120.0, "benchmarks {benches:.0} s:\n{}", estimate::table(&terms));
}

#[test]
fn the_estimate_counts_every_binary_the_bundle_takes() {
    // The bundle takes the `gpu_*` test targets of ragtune-tests and ragtune-bench.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names: Vec<String> = ["tests/tests", "bench/tests"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gpu_") && n.ends_with(".rs"))
        .collect();
    names.sort();
    assert_eq!(names.len(), BINARIES, "{names:?}");
}
