//! `ragtune-bench`: the runner behind `cargo xtask bench` (which builds it in release and calls
//! it; run it directly only to skip the build). Measures the ceilings, runs the suites, writes
//! `OUT_ROOT/<UTC timestamp>/report.{md,json}`, and compares with `--baseline`.
//!
//! Exit codes: 0 all rows measured (and no regression); 1 a suite failed (an output check or an
//! error; the report still lists what was measured); 2 bad arguments or an unreadable baseline;
//! 3 a row is more than 5% slower than in the baseline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ragtune_bench::baseline::{REGRESSION_THRESHOLD, compare};
use ragtune_bench::harness::{Budget, machine, measure_ceilings, threads, utc_now};
use ragtune_bench::report::{Report, SCHEMA, duration};
use ragtune_bench::suites::{self, ALL, Ctx};

#[derive(Parser)]
#[command(name = "ragtune-bench", about = "ragtune's CPU benchmarks against ceilings and peers")]
struct Args {
    /// all, or one of: gemm, attention, topk, lora, generate, train; or gpu-rows (a report from
    /// the GPU bundle's rows, `--rows FILE`).
    suite: String,
    /// With `gpu-rows`: the bundle's bench-rows.jsonl.
    #[arg(long)]
    rows: Option<PathBuf>,
    /// Small sizes and short budgets (`all --quick` fits in minutes on 2 cores).
    #[arg(long)]
    quick: bool,
    /// A previous report.json: rows more than 5% slower are flagged and the exit code is 3.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Where the timestamped report folder goes.
    #[arg(long, default_value = "target/bench")]
    out_root: PathBuf,
    /// The workspace root (for bench/*.py).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// PYTHONPATH with the faiss-cpu and numpy wheels (cargo xtask bench installs them).
    #[arg(long)]
    python_path: Option<PathBuf>,
    /// PYTHONPATH with the PyTorch stack's wheels and the MiniLM model package (cargo xtask
    /// bench installs them).
    #[arg(long)]
    torch_path: Option<PathBuf>,
    /// Skip the Python peers (FAISS, OpenBLAS through NumPy, the PyTorch stack).
    #[arg(long)]
    no_python: bool,
    /// Seconds the release build took (recorded in the report by cargo xtask bench).
    #[arg(long)]
    build_seconds: Option<f64>,
}

fn main() -> ExitCode {
    // As the `ragtune` CLI does: what users run is what is timed.
    ragtune_compute::cpu::alloc::keep_freed_memory();
    let args = Args::parse();
    // As the CLI does: every suite on the CPU pool's workers (ragtune_compute::cpu::pool).
    match ragtune_compute::cpu::pool::in_pool(|| run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    if args.suite == "gpu-rows" {
        return gpu_rows(&args);
    }
    let names: Vec<&str> = match args.suite.as_str() {
        "all" => ALL.to_vec(),
        s if ALL.contains(&s) => vec![s],
        s => bail!("unknown suite {s:?}: use all, gpu-rows or one of {}", ALL.join(", ")),
    };
    // Read the baseline before minutes of benchmarking, so a bad path fails at once.
    let baseline = match &args.baseline {
        Some(p) => Some((p.clone(), Report::read(p)?)),
        None => None,
    };
    let start = Instant::now();
    let (folder, started_utc) = utc_now();
    let dir = args.out_root.join(&folder);
    println!(
        "ragtune-bench {} ({}), {} threads -> {}",
        args.suite,
        if args.quick { "quick" } else { "full" },
        threads(),
        dir.display()
    );
    let ceilings = measure_ceilings();
    println!(
        "ceilings: {:.1} GFLOP/s ({}); {:.2} GB/s ({})",
        ceilings.compute_flops / 1e9,
        ceilings.compute_name,
        ceilings.bandwidth_bytes / 1e9,
        ceilings.bandwidth_name
    );
    let ctx = Ctx {
        quick: args.quick,
        budget: if args.quick { Budget::QUICK } else { Budget::FULL },
        ceilings: ceilings.clone(),
        root: args.root.clone(),
        scratch: dir.join("scratch"),
        python_path: args.python_path.clone(),
        torch_path: args.torch_path.clone(),
        no_python: args.no_python,
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    // A busy machine explains noisy rows (and OpenMP peers suffer most from oversubscription).
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let l: Vec<&str> = load.split_whitespace().take(3).collect();
        notes.push(format!("load average at the start (1, 5, 15 min): {}", l.join(", ")));
    }
    if let Some(b) = args.build_seconds {
        notes.push(format!("release build before the run: {b:.0} s"));
    }
    let mut failed = false;
    for name in &names {
        let t = Instant::now();
        println!("== {name}");
        match suites::run(name, &ctx, &mut notes) {
            Ok(new) => {
                for r in &new {
                    let peers: Vec<String> =
                        r.peers.iter().map(|p| format!("{} {:.2}×", p.name, p.time_ratio)).collect();
                    println!(
                        "   {} [{}]: {} {:.2} {} ({:.0}% of ceiling){}{}",
                        r.name,
                        r.shape,
                        duration(r.median_s),
                        r.throughput,
                        r.unit,
                        100.0 * r.ceiling_fraction,
                        if peers.is_empty() { "" } else { "; ragtune/peer " },
                        peers.join(", ")
                    );
                }
                rows.extend(new);
            }
            Err(e) => {
                failed = true;
                eprintln!("   {name} FAILED: {e:#}");
                notes.push(format!("suite {name} failed: {e:#}"));
            }
        }
        println!("   ({name}: {:.0} s)", t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&ctx.scratch);
    // Measured again at the end and the best kept: a busy moment at the start must not make
    // every row look closer to the hardware than it is.
    let ceilings = ceilings.best(&measure_ceilings());
    for r in &mut rows {
        r.judge(&ceilings);
    }
    let report = Report {
        schema: SCHEMA.into(),
        started_utc,
        machine: machine(),
        threads: threads(),
        quick: args.quick,
        suites: names.iter().map(|s| s.to_string()).collect(),
        wall_s: start.elapsed().as_secs_f64(),
        ceilings,
        rows,
        notes,
    };
    finish(&report, &dir, baseline.as_ref(), failed)
}

/// `gpu-rows`: the GPU bundle's rows as a report, compared with `--baseline` like any run.
fn gpu_rows(args: &Args) -> Result<ExitCode> {
    let Some(path) = &args.rows else { bail!("gpu-rows needs --rows FILE (the bundle's bench-rows.jsonl)") };
    let baseline = match &args.baseline {
        Some(p) => Some((p.clone(), Report::read(p)?)),
        None => None,
    };
    let (folder, started_utc) = utc_now();
    let report = ragtune_bench::gpu::rows::report_from_rows(path, &started_utc)?;
    finish(&report, &args.out_root.join(format!("{folder}-gpu")), baseline.as_ref(), false)
}

/// Writes the report (with the baseline comparison), prints it, and picks the exit code.
fn finish(
    report: &Report,
    dir: &std::path::Path,
    baseline: Option<&(PathBuf, Report)>,
    failed: bool,
) -> Result<ExitCode> {
    let comparison = baseline.map(|(path, base)| {
        let cmp = compare(base, report, REGRESSION_THRESHOLD);
        let md = cmp.to_markdown(&path.display().to_string(), base);
        (cmp, md)
    });
    report.write(dir, comparison.as_ref().map(|(_, md)| md.as_str())).context("writing the report")?;
    println!("\n{}", report.to_markdown(comparison.as_ref().map(|(_, md)| md.as_str())));
    println!("report: {}/report.md and report.json ({:.0} s)", dir.display(), report.wall_s);
    if failed {
        return Ok(ExitCode::from(1));
    }
    if let Some((cmp, _)) = &comparison
        && cmp.has_regressions()
    {
        eprintln!(
            "{} row(s) regressed by more than {:.0}% against the baseline",
            cmp.regressions.len(),
            100.0 * REGRESSION_THRESHOLD
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
