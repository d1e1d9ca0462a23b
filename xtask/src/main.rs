//! `cargo xtask`: the project's own commands, in Rust so they run the same everywhere.
//!
//! - `kernels`: compile every `kernels/*.cu` with NVRTC (pinned pip wheels, no GPU needed) for
//!   `sm_80`, `compute_80` and `sm_90a`, print the resource table, fail on an error or a spill.
//! - `ci`: everything CI checks, in order, stopping at the first failure (`.ci/run` calls it).
//! - `gpu-bundle`: the GPU test binaries plus `run.sh`, to copy to a GPU machine.
//! - `gpu-check`: on a machine with a GPU: `gpu-bundle`, then run it and write a report.
//! - `gpu-estimate`: the bundle's time on an H100, estimated on any machine (fails over 8 min).
//! - `bench index`: ragtune's exact CPU search against FAISS `IndexFlatIP` in one run.
//! - `bench all|gemm|attention|topk|lora|train|generate|embed`: ceilings, rows and peers in one run,
//!   written to `target/bench/<UTC timestamp>/report.{md,json}`; `--baseline` flags regressions.
//! - `profile KERNEL`: one kernel's GPU benchmark under Nsight Compute, summarised.
//! - `demo-base`: regenerate the built-in base model (crates/eval/assets/demo-base).
//! - `fuzz`: every file reader's mutation test at length (10,000+ cases each), release build.

mod bench_index;
mod bench_suite;
mod ci;
mod demo_base;
mod emu_profile;
mod fuzz;
mod gpu_bundle;
mod gpu_estimate;
mod kernels;
mod profile;
mod wheels;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "ragtune's project commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile every kernel family with NVRTC and print registers, shared memory and spills.
    Kernels,
    /// Run every CI check in order: fmt, clippy, tests, AddressSanitizer tests, kernels.
    Ci,
    /// Build the GPU test binaries into target/gpu-bundle with a run.sh that reports on them.
    GpuBundle,
    /// On a GPU machine: build the bundle, run it, and write target/gpu-check/report.{md,json}.
    GpuCheck,
    /// Estimate the GPU bundle's time on an H100 from this machine (NVRTC, host rates, rooflines).
    GpuEstimate,
    /// Benchmarks that compare ragtune with its peers in one run.
    #[command(subcommand)]
    Bench(Bench),
    /// Regenerate the built-in base model (crates/eval/assets/demo-base), release build.
    DemoBase(demo_base::DemoBaseArgs),
    /// Every file reader's mutation test at length (release build); non-zero exit on any panic.
    Fuzz(fuzz::FuzzArgs),
    /// One kernel family's GPU benchmark under Nsight Compute (ncu); exit 3 when ncu is absent.
    Profile(profile::ProfileArgs),
    /// Exact memory-access metrics of the kernel families on the CPU emulator (no GPU needed).
    EmuProfile(emu_profile::EmuProfileArgs),
}

#[derive(Subcommand)]
enum Bench {
    /// Exact CPU search: ragtune FlatIndex vs FAISS IndexFlatIP (pip faiss-cpu), QPS and recall.
    Index(bench_index::BenchIndexArgs),
    /// Every suite below, after the ceilings (SGEMM, memcpy); one report.
    All(bench_suite::BenchArgs),
    /// Matmul vs the gemm crate, OpenBLAS (NumPy) and torch.matmul.
    Gemm(bench_suite::BenchArgs),
    /// Fused attention vs naive unfused attention.
    Attention(bench_suite::BenchArgs),
    /// Exact top-k search vs FAISS IndexFlatIP.
    Topk(bench_suite::BenchArgs),
    /// LoRA layer vs the base GEMM alone and the unfused LoRA GEMMs.
    Lora(bench_suite::BenchArgs),
    /// LoRA and full training steps (LoRA vs PyTorch + peft), against the SGEMM ceiling.
    Train(bench_suite::BenchArgs),
    /// Prefill and decode vs transformers, against the memory-bandwidth floor.
    Generate(bench_suite::BenchArgs),
    /// all-MiniLM-L6-v2 embedding vs sentence-transformers.
    Embed(bench_suite::BenchArgs),
    /// A report (and --baseline comparison) from the GPU bundle's bench-rows.jsonl.
    GpuRows(bench_suite::GpuRowsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.command {
        Command::Kernels => kernels::run(&root),
        Command::Ci => ci::run(&root),
        Command::GpuBundle => gpu_bundle::build(&root).map(|_| ()),
        Command::GpuCheck => gpu_bundle::check(&root),
        Command::GpuEstimate => gpu_estimate::run(&root),
        Command::Bench(Bench::Index(args)) => bench_index::run(&root, args),
        Command::Bench(Bench::All(a)) => bench_suite::run(&root, "all", a),
        Command::Bench(Bench::Gemm(a)) => bench_suite::run(&root, "gemm", a),
        Command::Bench(Bench::Attention(a)) => bench_suite::run(&root, "attention", a),
        Command::Bench(Bench::Topk(a)) => bench_suite::run(&root, "topk", a),
        Command::Bench(Bench::Lora(a)) => bench_suite::run(&root, "lora", a),
        Command::Bench(Bench::Train(a)) => bench_suite::run(&root, "train", a),
        Command::Bench(Bench::Generate(a)) => bench_suite::run(&root, "generate", a),
        Command::Bench(Bench::Embed(a)) => bench_suite::run(&root, "embed", a),
        Command::Bench(Bench::GpuRows(a)) => bench_suite::gpu_rows(&root, a),
        Command::DemoBase(args) => demo_base::run(&root, args),
        Command::Fuzz(args) => fuzz::run(&root, args),
        Command::Profile(args) => profile::run(&root, args),
        Command::EmuProfile(args) => emu_profile::run(&root, args),
    }
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `12.3 s`, or `850 ms` below a second.
fn seconds(d: Duration) -> String {
    if d.as_secs_f64() < 1.0 { format!("{} ms", d.as_millis()) } else { format!("{:.1} s", d.as_secs_f64()) }
}
