//! `cargo xtask gpu-estimate`: how long the GPU bundle would hold an H100, on a machine without
//! one. Times NVRTC compiling every kernel family for `sm_90a` (the pinned wheels, as `cargo xtask
//! kernels` uses), then builds and runs `ragtune-bench`'s `gpu-estimate` in release, which measures
//! this machine's host rates and the checks' host time, counts their launches on the emulator,
//! models the benchmarks from their plan (bench/src/gpu/plan.rs) and prints the table. Fails when
//! the estimate is over the bundle's eight minutes.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{kernels, seconds};

pub fn run(root: &Path) -> Result<()> {
    let compile = kernels::compile_time(root, "sm_90a")?;
    println!("NVRTC, every kernel family for sm_90a: {}", seconds(compile));
    let status = Command::new("cargo")
        .args(["run", "--release", "-q", "-p", "ragtune-bench", "--bin", "gpu-estimate", "--", "--compile-s"])
        .arg(format!("{:.1}", compile.as_secs_f64()))
        .current_dir(root)
        .status()
        .context("running cargo")?;
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => bail!("the GPU bundle's estimate is over eight minutes (table above)"),
        _ => bail!("gpu-estimate failed ({status})"),
    }
}
