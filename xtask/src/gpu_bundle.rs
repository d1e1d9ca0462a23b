//! `cargo xtask gpu-bundle` and `cargo xtask gpu-check`.
//!
//! Most machines that build ragtune have no GPU, and the GPU machines may have no Rust. The
//! bundle bridges the two: the release-built GPU test binaries (`tests/tests/gpu_*.rs`, and the GPU
//! benchmarks `bench/tests/gpu_*.rs`) plus a
//! `run.sh` that runs each with `RAGTUNE_REQUIRE_GPU=1` (so a missing GPU fails instead of
//! skipping) and writes a Markdown + JSON report. The binaries embed the kernel sources and load
//! the driver, NVRTC and cuBLAS from the CUDA 13 toolkit at run time, so nothing else is copied.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::seconds;

/// What `run.sh` is: kept as a file beside this one so it reads (and lints) as bash.
const RUN_SH: &str = include_str!("run.sh");
/// The bundle must fit the upload limit of the GPU machines.
pub const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;
/// Test targets of `ragtune-tests` and `ragtune-bench` that go into the bundle.
pub const GPU_TEST_PREFIX: &str = "gpu_";
const BUILD_COMMAND: &[&str] =
    &["test", "-p", "ragtune-tests", "-p", "ragtune-bench", "--release", "--no-run", "--message-format=json"];

/// Builds `target/gpu-bundle` and returns its folder.
pub fn build(root: &Path) -> Result<PathBuf> {
    let start = Instant::now();
    println!("building: cargo {}", BUILD_COMMAND.join(" "));
    let output = Command::new("cargo")
        .args(BUILD_COMMAND)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !output.status.success() {
        bail!("`cargo {}` failed ({})", BUILD_COMMAND.join(" "), output.status);
    }
    let executables = gpu_test_executables(&String::from_utf8_lossy(&output.stdout));

    let bundle = root.join("target/gpu-bundle");
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle).with_context(|| format!("removing the old {}", bundle.display()))?;
    }
    let bin = bundle.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    if executables.is_empty() {
        println!(
            "warning: ragtune-tests and ragtune-bench have no test target named {GPU_TEST_PREFIX}* \
             (tests/tests/{GPU_TEST_PREFIX}*.rs, bench/tests/{GPU_TEST_PREFIX}*.rs); \
             the bundle holds no tests and run.sh will say so"
        );
    }
    for (name, exe) in &executables {
        let dest = bin.join(name);
        std::fs::copy(exe, &dest)
            .with_context(|| format!("copying {} to {}", exe.display(), dest.display()))?;
        strip_debug_info(&dest)?;
    }
    let run_sh = bundle.join("run.sh");
    std::fs::write(&run_sh, RUN_SH).with_context(|| format!("writing {}", run_sh.display()))?;
    make_executable(&run_sh)?;

    let mut total = 0u64;
    let mut listing = Vec::new();
    for entry in walk(&bundle)? {
        let size = entry.metadata().with_context(|| format!("reading {}", entry.display()))?.len();
        total += size;
        listing.push((entry.strip_prefix(&bundle).unwrap_or(&entry).display().to_string(), size));
    }
    listing.sort();
    for (name, size) in &listing {
        println!("  {name:<40} {:>8.1} MiB", *size as f64 / (1024.0 * 1024.0));
    }
    println!(
        "gpu bundle: {} test binaries, {:.1} MiB of {} MiB allowed, built in {}",
        executables.len(),
        total as f64 / (1024.0 * 1024.0),
        MAX_BUNDLE_BYTES / (1024 * 1024),
        seconds(start.elapsed())
    );
    if total > MAX_BUNDLE_BYTES {
        bail!(
            "the GPU bundle {} is {:.1} MiB, over the {} MiB limit: merge GPU test files or cut dependencies",
            bundle.display(),
            total as f64 / (1024.0 * 1024.0),
            MAX_BUNDLE_BYTES / (1024 * 1024)
        );
    }
    println!("run it on a GPU machine: {}/run.sh REPORT_DIR", bundle.display());
    Ok(bundle)
}

/// `gpu-bundle`, then `run.sh target/gpu-check`.
pub fn check(root: &Path) -> Result<()> {
    let bundle = build(root)?;
    let report_dir = root.join("target/gpu-check");
    let status = Command::new("bash")
        .arg(bundle.join("run.sh"))
        .arg(&report_dir)
        .current_dir(root)
        .status()
        .context("running bash")?;
    println!("report: {}/report.md (and report.json, one .log per test binary)", report_dir.display());
    if !status.success() {
        bail!("the GPU check failed ({status}); see {}/report.md", report_dir.display());
    }
    Ok(())
}

/// `(target name, executable)` of every test target named `gpu_*` in cargo's JSON messages.
pub(crate) fn gpu_test_executables(messages: &str) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let target = &message["target"];
        let Some(name) = target["name"].as_str() else { continue };
        let is_test = target["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "test"));
        if !is_test || !name.starts_with(GPU_TEST_PREFIX) {
            continue;
        }
        if let Some(exe) = message["executable"].as_str() {
            found.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Drops debug info (line tables) but keeps symbols, so a panic's backtrace still names
/// functions. A missing `objcopy`/`strip` leaves the binary as it is, with a warning.
fn strip_debug_info(path: &Path) -> Result<()> {
    for tool in ["objcopy", "strip"] {
        match Command::new(tool).arg("--strip-debug").arg(path).status() {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => bail!("`{tool} --strip-debug {}` failed ({status})", path.display()),
            Err(_) => continue,
        }
    }
    println!(
        "warning: neither objcopy nor strip found (install binutils); {} keeps its debug info",
        path.display()
    );
    Ok(())
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() { files.extend(walk(&path)?) } else { files.push(path) }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_gpu_test_executables_from_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"gpu_parity","kind":["test"]},"profile":{"test":true},"executable":"/t/release/deps/gpu_parity-1"}
{"reason":"compiler-artifact","target":{"name":"emu_parity","kind":["test"]},"profile":{"test":true},"executable":"/t/release/deps/emu_parity-1"}
{"reason":"compiler-artifact","target":{"name":"gpu_helpers","kind":["lib"]},"profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","target":{"name":"gpu_bench","kind":["test"]},"profile":{"test":true},"executable":"/t/release/deps/gpu_bench-2"}
{"reason":"build-finished","success":true}
not json"#;
        assert_eq!(
            gpu_test_executables(messages),
            vec![
                ("gpu_bench".into(), PathBuf::from("/t/release/deps/gpu_bench-2")),
                ("gpu_parity".into(), PathBuf::from("/t/release/deps/gpu_parity-1")),
            ]
        );
        assert!(gpu_test_executables("").is_empty());
    }
}
