//! `cargo xtask profile KERNEL [--shape SHAPE]`: one kernel family's GPU benchmark under Nsight
//! Compute (`ncu`), summarised: achieved occupancy, DRAM throughput, tensor-pipe utilisation and
//! the top warp-stall reasons of every profiled kernel.
//!
//! The benchmark is the `gpu_profile_target` test of bench/tests/gpu_bench.rs (release build),
//! told what to run through `RAGTUNE_PROFILE_KERNEL` / `RAGTUNE_PROFILE_SHAPE`; ncu profiles the
//! kernels whose names match the family. Without a GPU the test skips and ncu profiles nothing,
//! which is reported as such.
//!
//! Exit codes: 0 profiled; 1 an error (build, ncu failed, nothing profiled); 3 `ncu` is not on
//! PATH (nothing was run; install Nsight Compute or add its folder to PATH).
//!
//! Not yet run on a GPU: the metric names follow Nsight Compute's documented `--metrics` names
//! for sm_80/sm_90 (the tensor pipe is the mma.sync `hmma` pipe; Hopper `wgmma` kernels would
//! need `sm__pipe_tensor_op_gmma_cycles_active` added).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::gpu_bundle::gpu_test_executables;

/// Exit code when ncu is missing.
pub const NO_NCU: i32 = 3;

const OCCUPANCY: &str = "sm__warps_active.avg.pct_of_peak_sustained_active";
const DRAM: &str = "dram__throughput.avg.pct_of_peak_sustained_elapsed";
const TENSOR: &str = "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active";
const DURATION: &str = "gpu__time_duration.sum";
/// Warp-stall reasons; each is `smsp__average_warps_issue_stalled_<reason>_per_issue_active.ratio`
/// (warps stalled for that reason per issued instruction).
const STALLS: &[&str] = &[
    "barrier",
    "branch_resolving",
    "dispatch_stall",
    "drain",
    "imc_miss",
    "lg_throttle",
    "long_scoreboard",
    "math_pipe_throttle",
    "membar",
    "mio_throttle",
    "misc",
    "no_instruction",
    "not_selected",
    "short_scoreboard",
    "sleeping",
    "tex_throttle",
    "wait",
];

/// Kernel families with a GPU benchmark, and the regex ncu selects their kernels by.
const FAMILIES: &[(&str, &str)] =
    &[("attention", "regex:attention"), ("topk", "regex:topk"), ("lora", "regex:lora")];

fn stall_metric(reason: &str) -> String {
    format!("smsp__average_warps_issue_stalled_{reason}_per_issue_active.ratio")
}

#[derive(Args)]
pub struct ProfileArgs {
    /// The kernel family: attention, topk or lora.
    kernel: String,
    /// The benchmark shape: attention `heads=32,seq=4096,d=128,dtype=bf16`, topk
    /// `n=1048576,d=384,nq=1024,k=10,dtype=bf16`, lora `rows=4096,in=4096,out=4096,r=16,adapters=1`
    /// (the defaults).
    #[arg(long)]
    shape: Option<String>,
}

pub fn run(root: &Path, a: ProfileArgs) -> Result<()> {
    let Some(&(_, filter)) = FAMILIES.iter().find(|(f, _)| *f == a.kernel) else {
        let known: Vec<&str> = FAMILIES.iter().map(|(f, _)| *f).collect();
        bail!("no GPU benchmark for kernel {:?}; profile one of: {}", a.kernel, known.join(", "));
    };
    let Some(ncu) = on_path("ncu") else {
        println!(
            "ncu (Nsight Compute) is not on PATH: nothing was profiled. Install Nsight Compute \
             (part of the CUDA toolkit) or add its folder to PATH, then re-run on a GPU machine."
        );
        std::process::exit(NO_NCU);
    };
    println!("building: cargo test -p ragtune-bench --test gpu_bench --release --no-run");
    let out = Command::new("cargo")
        .args([
            "test",
            "-p",
            "ragtune-bench",
            "--test",
            "gpu_bench",
            "--release",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !out.status.success() {
        bail!("cargo test -p ragtune-bench --test gpu_bench --release --no-run failed ({})", out.status);
    }
    let exes = gpu_test_executables(&String::from_utf8_lossy(&out.stdout));
    let Some((_, bench)) = exes.iter().find(|(n, _)| n == "gpu_bench") else {
        bail!("the build made no gpu_bench test binary (bench/tests/gpu_bench.rs)");
    };
    let mut metrics: Vec<String> = [DURATION, OCCUPANCY, DRAM, TENSOR].map(String::from).to_vec();
    metrics.extend(STALLS.iter().map(|r| stall_metric(r)));
    let mut cmd = Command::new(&ncu);
    cmd.args(["--csv", "--page", "raw", "--kernel-name", filter, "--metrics", &metrics.join(",")])
        .arg(bench)
        .args(["gpu_profile_target", "--exact", "--nocapture", "--test-threads=1"])
        .env("RAGTUNE_REQUIRE_GPU", "1")
        .env("RAGTUNE_PROFILE_KERNEL", &a.kernel)
        .current_dir(root);
    if let Some(s) = &a.shape {
        cmd.env("RAGTUNE_PROFILE_SHAPE", s);
    }
    println!("profiling: {} ... {} gpu_profile_target", ncu.display(), bench.display());
    let out = cmd.output().context("running ncu")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("ncu failed ({}):\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let kernels = parse_raw_csv(&stdout)?;
    if kernels.is_empty() {
        bail!(
            "ncu profiled no kernel matching {filter} (no usable GPU, or the test skipped):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{}", summary(&kernels));
    Ok(())
}

/// One profiled kernel launch: its name and metric values by name (numbers only).
#[derive(Debug, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub metrics: Vec<(String, f64)>,
}

impl Kernel {
    fn get(&self, metric: &str) -> Option<f64> {
        self.metrics.iter().find(|(m, _)| m == metric).map(|(_, v)| *v)
    }
}

/// ncu's `--csv --page raw` output: a header row of column names, a row of units, then one row
/// per kernel launch. Lines that are not CSV (ncu's `==PROF==` notes, the test's own output) are
/// skipped.
pub fn parse_raw_csv(text: &str) -> Result<Vec<Kernel>> {
    let mut rows = text.lines().filter(|l| l.starts_with('"')).map(split_csv);
    let Some(header) = rows.next() else { return Ok(Vec::new()) };
    let name_col = header
        .iter()
        .position(|h| h == "Kernel Name")
        .context("ncu's CSV has no \"Kernel Name\" column; is this `--page raw` output?")?;
    let mut kernels = Vec::new();
    for row in rows {
        // The units row: no kernel name.
        let Some(name) = row.get(name_col).filter(|n| !n.is_empty()) else { continue };
        let metrics = header
            .iter()
            .zip(&row)
            .filter(|(h, _)| h.contains("__"))
            .filter_map(|(h, v)| v.replace(',', "").parse::<f64>().ok().map(|v| (h.clone(), v)))
            .collect();
        kernels.push(Kernel { name: name.clone(), metrics });
    }
    Ok(kernels)
}

/// `"a","b,c",""` → [a, b,c, ""] (ncu quotes every field; `""` inside one is a quote).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// The printed summary: per kernel, the four headline numbers and the top three stall reasons.
pub fn summary(kernels: &[Kernel]) -> String {
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}%"));
    let mut s = String::from(
        "| kernel | time | achieved occupancy | DRAM throughput | tensor pipe | top warp stalls (warps per issue) |\n|---|---|---|---|---|---|\n",
    );
    for k in kernels {
        let mut stalls: Vec<(&str, f64)> =
            STALLS.iter().filter_map(|r| k.get(&stall_metric(r)).map(|v| (*r, v))).collect();
        stalls.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = stalls.iter().take(3).map(|(r, v)| format!("{r} {v:.2}")).collect();
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            k.name,
            k.get(DURATION).map_or("n/a".into(), |ns| format!("{:.1} µs", ns / 1e3)),
            pct(k.get(OCCUPANCY)),
            pct(k.get(DRAM)),
            pct(k.get(TENSOR)),
            if top.is_empty() { "n/a".into() } else { top.join(", ") }
        );
    }
    s
}

/// `name` in a folder of PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ncu_raw_csv_and_ranks_stalls() {
        let header = format!(
            "\"ID\",\"Kernel Name\",\"{DURATION}\",\"{OCCUPANCY}\",\"{DRAM}\",\"{TENSOR}\",\"{}\",\"{}\",\"{}\",\"{}\"",
            stall_metric("long_scoreboard"),
            stall_metric("barrier"),
            stall_metric("math_pipe_throttle"),
            stall_metric("wait")
        );
        let text = format!(
            "==PROF== Connected to process 1\nrunning 1 test\n{header}\n\"\",\"\",\"nsecond\",\"%\",\"%\",\"%\",\"\",\"\",\"\",\"\"\n\
             \"0\",\"attention_fwd<128, \"\"bf16\"\">\",\"1,234,567\",\"45.5\",\"80.25\",\"60\",\"2.5\",\"0.5\",\"1.25\",\"0.75\"\n\
             ==PROF== Disconnected\n"
        );
        let k = parse_raw_csv(&text).unwrap();
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].name, "attention_fwd<128, \"bf16\">");
        assert_eq!(k[0].get(DURATION), Some(1_234_567.0));
        let s = summary(&k);
        assert!(
            s.contains("| 1234.6 µs | 45.5% | 80.2% | 60.0% | long_scoreboard 2.50, math_pipe_throttle 1.25, wait 0.75 |"),
            "{s}"
        );
    }

    #[test]
    fn no_csv_means_no_kernels_and_a_header_without_names_is_an_error() {
        assert!(parse_raw_csv("==PROF== No kernels were profiled.\n").unwrap().is_empty());
        assert!(
            parse_raw_csv("\"ID\",\"x\"\n\"0\",\"1\"\n").unwrap_err().to_string().contains("Kernel Name")
        );
    }

    #[test]
    fn unknown_kernels_are_refused_with_the_list() {
        let root = Path::new(".");
        let e = run(root, ProfileArgs { kernel: "nope".into(), shape: None }).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("attention"), "{e}");
    }
}
