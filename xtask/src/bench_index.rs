//! `cargo xtask bench index`: ragtune's exact CPU search against FAISS's `IndexFlatIP`, on the
//! same data, in one run, with the same number of threads.
//!
//! 1. Generates `n × dim` base vectors and `nq` queries (uniform in [-1, 1), seeded) and saves them
//!    as `.npy` under `target/bench-index/`.
//! 2. Builds the release `ragtune` binary and runs `ragtune index build --kind flat --metric ip`
//!    and `ragtune index search --k K --json` (RAYON_NUM_THREADS = threads) `repeats` times; the
//!    search time is measured inside the binary, after the index is loaded; the median counts.
//! 3. Installs the pinned `faiss-cpu` and `numpy` wheels into `target/faiss-py` (once) and runs
//!    `bench/faiss_flat.py` (OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = threads): FAISS's median
//!    QPS, its ids, and the exact top-k computed in float64 by NumPy.
//! 4. Prints QPS of both, the ratio, and each engine's recall@k against the exact result.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use ragtune_index::npy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The pinned wheels; installed together in one pip call (a second `--target` install into
/// the same folder can silently skip packages).
const WHEELS: &[&str] = &["faiss-cpu==1.15.1", "numpy==2.2.6"];

#[derive(Args)]
pub struct BenchIndexArgs {
    /// Base vectors.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Queries per search.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Threads for both engines (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed searches per engine; the median counts.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Skip FAISS (no Python needed).
    #[arg(long)]
    skip_faiss: bool,
}

pub fn run(root: &Path, a: BenchIndexArgs) -> Result<()> {
    let threads =
        a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let dir = root.join("target/bench-index");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (base, queries, index) = (dir.join("base.npy"), dir.join("queries.npy"), dir.join("flat-ip.rtx"));
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut random =
        |rows: usize| (0..rows * a.dim).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    npy::write_f32(&base, &[a.n, a.dim], &random(a.n))?;
    npy::write_f32(&queries, &[a.queries, a.dim], &random(a.queries))?;
    println!(
        "data: {} × {} base, {} queries, k = {}, {threads} threads -> {}",
        a.n,
        a.dim,
        a.queries,
        a.k,
        dir.display()
    );

    let status = Command::new("cargo")
        .args(["build", "--release", "-q", "-p", "ragtune"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("cargo build --release -p ragtune failed");
    }
    // Cargo puts the binary under CARGO_TARGET_DIR when set (relative to the workspace root).
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(|d| root.join(d)).unwrap_or_else(|| root.join("target"));
    let bin = target.join("release/ragtune");
    let p = |x: &Path| x.to_string_lossy().into_owned();
    run_json(
        &bin,
        threads,
        &["index", "build", "--vectors", &p(&base), "--metric", "ip", "--kind", "flat"],
        &["--device", "cpu", "--out", &p(&index), "--json"],
    )?;
    let ours_ids = dir.join("ragtune_ids.npy");
    let mut qps: Vec<f64> = Vec::new();
    for _ in 0..a.repeats.max(1) {
        let k = a.k.to_string();
        let v = run_json(
            &bin,
            threads,
            &["index", "search", "--index", &p(&index), "--queries", &p(&queries)],
            &[
                "--k",
                &k,
                "--device",
                "cpu",
                "--out-ids",
                &p(&ours_ids),
                "--out-scores",
                &p(&dir.join("ragtune_scores.npy")),
                "--json",
            ],
        )?;
        qps.push(v["qps"].as_f64().context("search printed no qps")?);
    }
    qps.sort_by(f64::total_cmp);
    let ours = qps[qps.len() / 2];
    println!("ragtune FlatIndex (cpu, f32, ip): {ours:.0} QPS (median of {}: {qps:.0?})", qps.len());
    if a.skip_faiss {
        return Ok(());
    }

    let py = install_faiss(root)?;
    let out = Command::new("python3")
        .arg(root.join("bench/faiss_flat.py"))
        .args([p(&base), p(&queries), a.k.to_string(), p(&dir), a.repeats.max(1).to_string()])
        .env("PYTHONPATH", &py)
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("OPENBLAS_NUM_THREADS", threads.to_string())
        .output()
        .context("running python3 bench/faiss_flat.py")?;
    if !out.status.success() {
        bail!("bench/faiss_flat.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("faiss_flat.py printed no JSON")?;
    let theirs = v["qps"].as_f64().context("faiss_flat.py printed no qps")?;
    let exact = read_ids(&dir.join("exact_ids.npy"))?;
    let recall = |ids: &[i64]| {
        let hit: usize = ids
            .chunks(a.k)
            .zip(exact.chunks(a.k))
            .map(|(g, e)| g.iter().filter(|i| e.contains(i)).count())
            .sum();
        hit as f64 / exact.len() as f64
    };
    let (r_ours, r_theirs) = (recall(&read_ids(&ours_ids)?), recall(&read_ids(&dir.join("faiss_ids.npy"))?));
    println!(
        "FAISS {} IndexFlatIP: {theirs:.0} QPS (OMP threads {})",
        v["faiss"].as_str().unwrap_or("?"),
        v["threads"]
    );
    println!("\n| engine | QPS | recall@{} vs exact (f64) |\n|---|---|---|", a.k);
    println!("| ragtune FlatIndex | {ours:.0} | {r_ours:.4} |");
    println!("| FAISS IndexFlatIP | {theirs:.0} | {r_theirs:.4} |");
    println!(
        "\nragtune / FAISS = {:.2}× ({threads} threads, {} × {}, {} queries, k = {})",
        ours / theirs,
        a.n,
        a.dim,
        a.queries,
        a.k
    );
    Ok(())
}

/// Run the ragtune binary with `RAYON_NUM_THREADS` and parse its `--json` line.
fn run_json(bin: &Path, threads: usize, args: &[&str], more: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(bin)
        .args(args)
        .args(more)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("ragtune {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("ragtune {} printed no JSON", args.join(" ")))
}

/// `target/faiss-py` with the pinned wheels, installed once.
pub(crate) fn install_faiss(root: &Path) -> Result<std::path::PathBuf> {
    crate::wheels::install_once(root, "faiss-py", WHEELS, "")
}

fn read_ids(path: &Path) -> Result<Vec<i64>> {
    let a = npy::read(path)?;
    Ok(bytemuck::pod_collect_to_vec(&a.data))
}
