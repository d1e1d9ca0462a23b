//! `gpu-estimate --compile-s S`: the GPU bundle's time on an H100, estimated on this machine
//! (see `ragtune_bench::gpu::estimate` for the model). `cargo xtask gpu-estimate` builds it in
//! release, measures the NVRTC compile and calls it. Prints the rates measured, a table of the
//! bundle's parts and the total; exits 1 when the total is over the eight-minute bar.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ragtune_bench::gpu::estimate::{self, BUDGET_S, H100, HostRates, Term};
use ragtune_bench::{random_tensor, smollm2_config};
use ragtune_compute::ops::{self, Similarity, TopkSpec};
use ragtune_compute::{DType, Device};
use ragtune_kernel_emu::{EmuBackend, EmuOptions};
use ragtune_tests::instrumented::Instrumented;
use ragtune_tests::suites::SUITES;
use ragtune_tests::{device_checks, memory, rng};

/// A check of the bundle: its name and what it runs on a device.
type Check = (String, Box<dyn Fn(&Device)>);

macro_rules! device_check_list {
    ($(($group:ident, $name:ident, $check:ident $(, $arg:expr)*)),* $(,)?) => {
        paste::paste! {
            vec![$((
                format!("gpu_{}_{}", stringify!($group), stringify!($name)),
                Box::new(|d: &Device| device_checks::[<$group _ $name>](d)) as Box<dyn Fn(&Device)>,
            )),*]
        }
    };
}

/// Seconds one call of `f` takes: the mean over as many calls as fill half a second (one at least).
fn seconds_of(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    let mut n = 0;
    while n == 0 || t.elapsed().as_secs_f64() < 0.5 {
        f();
        n += 1;
    }
    t.elapsed().as_secs_f64() / n as f64
}

fn host_rates() -> HostRates {
    let n = 1 << 24;
    let random = seconds_of(|| {
        random_tensor(1, &[n], DType::BF16);
    });
    let m = 1024;
    let (a, b) = (random_tensor(2, &[m, m], DType::BF16), random_tensor(3, &[m, m], DType::BF16));
    let gemm = seconds_of(|| {
        ops::matmul(&a, &b).unwrap();
    });
    let (nq, base, d) = (64, 1 << 16, 384);
    let (q, x) = (random_tensor(4, &[nq, d], DType::BF16), random_tensor(5, &[base, d], DType::BF16));
    let spec = TopkSpec { k: 10, similarity: Similarity::Dot };
    let topk = seconds_of(|| {
        ops::topk_similarity(&q, &x, spec, None).unwrap();
    });
    // As timing.rs checks the GEMM ceiling: a row of A·B as a sum of B's rows, in f64.
    let (k, cols) = (1024, 8192);
    let (av, bv) = (vec![0.5f32; k], vec![0.25f32; k * cols]);
    let f64_loop = seconds_of(|| {
        let mut row = vec![0f64; cols];
        for (p, &aip) in av.iter().enumerate() {
            for (w, &bpj) in row.iter_mut().zip(&bv[p * cols..(p + 1) * cols]) {
                *w += aip as f64 * bpj as f64;
            }
        }
        assert!(row[cols - 1] > 0.0);
    });
    HostRates {
        random_elements_per_s: n as f64 / random,
        cpu_gemm_flops: 2.0 * (m * m * m) as f64 / gemm,
        cpu_topk_flops: 2.0 * (nq * base * d) as f64 / topk,
        f64_loop_flops: 2.0 * (k * cols) as f64 / f64_loop,
    }
}

/// Host seconds and emulator launches of `checks`: each run once with the CPU as the device
/// (the host's share plus a CPU stand-in for the device's) and once on the counted emulator.
/// A check that cannot run with the CPU as its device is timed on the emulator instead, whose
/// wall time also bounds the host's share.
fn run_checks(checks: &[Check]) -> Result<(f64, usize)> {
    let (mut host_s, mut launches) = (0.0, 0);
    for (name, check) in checks {
        let (counted, emulated) = Instrumented::device(Arc::new(EmuBackend::new(EmuOptions::default())));
        let t = Instant::now();
        catch_unwind(AssertUnwindSafe(|| check(&emulated)))
            .map_err(|_| anyhow::anyhow!("{name} failed on the kernel emulator"))?;
        let emulated_s = t.elapsed().as_secs_f64();
        let n = counted.launches.load(std::sync::atomic::Ordering::Relaxed);
        // A check that needs a kernel device panics on the CPU: expected, so not printed.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let t = Instant::now();
        let cpu = catch_unwind(AssertUnwindSafe(|| check(&Device::Cpu)));
        std::panic::set_hook(hook);
        let s = if cpu.is_ok() { t.elapsed().as_secs_f64() } else { emulated_s };
        eprintln!(
            "{name}: {n} launches; host {s:.2} s{}",
            if cpu.is_ok() {
                ""
            } else {
                " (timed on the emulator: it does not run with the CPU as its device)"
            }
        );
        host_s += s;
        launches += n;
    }
    Ok((host_s, launches))
}

fn run() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let compile_s: f64 = match args.as_slice() {
        [flag, s] if flag == "--compile-s" => {
            s.parse().with_context(|| format!("--compile-s {s}: write the seconds as a number"))?
        }
        _ => bail!("usage: gpu-estimate --compile-s SECONDS (cargo xtask gpu-estimate measures them)"),
    };
    let rates = host_rates();
    println!(
        "host rates (this machine): random {:.1} M elements/s; CPU bf16 GEMM {:.1} GFLOP/s; CPU bf16 top-k \
         {:.1} GFLOP/s; f64 loop {:.2} GFLOP/s",
        rates.random_elements_per_s / 1e6,
        rates.cpu_gemm_flops / 1e9,
        rates.cpu_topk_flops / 1e9,
        rates.f64_loop_flops / 1e9
    );
    let parity: Vec<Check> = SUITES
        .iter()
        .map(|s| {
            let check = s.check;
            let seed = s.seed;
            (
                format!("gpu_{}_{}", s.family, s.name),
                Box::new(move |d: &Device| check(d, &mut rng(seed))) as _,
            )
        })
        .collect();
    let (ops_s, ops_launches) = run_checks(&parity)?;
    let mut checks: Vec<Check> = ragtune_tests::for_each_device_check!(device_check_list);
    checks.push(("gpu_memory_meter_counts_tensors".into(), Box::new(memory::meter_counts_tensors)));
    let (dev_s, dev_launches) = run_checks(&checks)?;
    let mut terms: Vec<Term> = estimate::fixed_terms(compile_s, &H100);
    terms.push(estimate::checks_term(
        &format!("gpu_ops: {} parity suites, {ops_launches} launches", parity.len()),
        ops_s,
        ops_launches,
        &H100,
    ));
    terms.push(estimate::checks_term(
        &format!("gpu_device_checks + gpu_memory: {} checks, {dev_launches} launches", checks.len()),
        dev_s,
        dev_launches,
        &H100,
    ));
    terms.extend(estimate::benchmark_terms(&rates, &H100, &smollm2_config()));
    println!("{}", estimate::table(&terms));
    let total: f64 = terms.iter().map(Term::seconds).sum();
    Ok(total <= BUDGET_S)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("the estimate is over the {BUDGET_S:.0} s bar");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
