//! `cargo xtask kernels`: the NVRTC check of every kernel family, on any machine.
//!
//! NVRTC comes from pinned pip wheels fetched into `target/nvrtc-wheels` (no toolkit, no GPU
//! needed), so CI checks with exactly the NVRTC the GPU machines' CUDA 13.0 runs. Each family is
//! compiled for `sm_80` (A100) and `sm_90a` (H100/H200) with ptxas's resource report, and for
//! `compute_80` to show the PTX that a newer GPU would JIT builds too. A compile error or any
//! register spill fails the command.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ragtune_compute::ComputeError;
use ragtune_compute::kernel_sources;
use ragtune_compute::nvrtc::{self, CompileOptions, ImageKind, ResourceUsage};

use crate::seconds;

/// The wheels, pinned: a newer NVRTC emits PTX that CUDA 13.0's ptxas and driver reject.
pub const WHEELS: &[&str] =
    &["nvidia-cuda-nvrtc==13.0.88", "nvidia-cuda-runtime==13.0.96", "nvidia-cuda-crt==13.0.88"];
/// Where the wheels go, relative to the workspace root (the compute crate looks there too).
pub const WHEELS_DIR: &str = nvrtc::WHEELS_DIR;
/// The architectures checked: real ones get a resource report, virtual ones give PTX.
pub const ARCHS: &[&str] = &["sm_80", "compute_80", "sm_90a"];

struct Row {
    family: &'static str,
    arch: &'static str,
    usage: ResourceUsage,
}

pub fn run(root: &Path) -> Result<()> {
    let start = Instant::now();
    use_wheels(root)?;
    let (major, minor) = nvrtc::nvrtc_status().context("loading NVRTC")?;
    println!(
        "NVRTC {major}.{minor} from {}",
        nvrtc::nvrtc_lib_dir().map_or("the system library path".into(), |d| d.display().to_string())
    );
    println!(
        "CUDA headers from {}",
        nvrtc::cuda_include_dir().map_or("(none found)".into(), |d| d.display().to_string())
    );

    let families = kernel_sources::families();
    if families.is_empty() {
        println!("no kernel families: kernels/*.cu is empty; nothing to check");
        return Ok(());
    }
    let opts = CompileOptions { resource_report: true, ..Default::default() };
    let mut rows = Vec::new();
    let mut ptx = Vec::new();
    let mut errors = Vec::new();
    let mut compile_time = Duration::ZERO;
    for kernel in families {
        for &arch in ARCHS {
            let t = Instant::now();
            let result = nvrtc::compile(kernel.family, kernel.source, arch, &opts);
            compile_time += t.elapsed();
            match result {
                Ok(out) if out.kind == ImageKind::Ptx => {
                    ptx.push((kernel.family, arch, out.image.len(), t.elapsed()))
                }
                Ok(out) => {
                    let usage = nvrtc::parse_resource_usage(&out.log);
                    if usage.is_empty() {
                        errors.push(format!(
                            "kernels/{}.cu ({arch}): ptxas reported no functions; does the file define a __global__ kernel? log:\n{}",
                            kernel.family, out.log
                        ));
                    }
                    rows.extend(usage.into_iter().map(|usage| Row { family: kernel.family, arch, usage }));
                }
                Err(ComputeError::Compile { log, .. }) => {
                    errors.push(format!("kernels/{}.cu does not compile for {arch}:\n{log}", kernel.family))
                }
                Err(e) => errors.push(format!("kernels/{}.cu ({arch}): {e}", kernel.family)),
            }
        }
    }

    // Families and kernels by name (ptxas reports a file's kernels in reverse order).
    let arch_rank = |arch: &str| ARCHS.iter().position(|a| *a == arch);
    rows.sort_by(|a, b| {
        (a.family, arch_rank(a.arch), &a.usage.function).cmp(&(
            b.family,
            arch_rank(b.arch),
            &b.usage.function,
        ))
    });
    print_table(&rows);
    for (family, arch, bytes, took) in &ptx {
        println!("{arch} PTX: kernels/{family}.cu, {bytes} bytes, {}", seconds(*took));
    }
    let spills: Vec<&Row> = rows.iter().filter(|r| r.usage.spills()).collect();
    for row in &spills {
        errors.push(format!(
            "{} (kernels/{}.cu, {}) spills registers: {} bytes stored, {} bytes loaded; cut live values or \
             raise __launch_bounds__'s register budget",
            row.usage.function, row.family, row.arch, row.usage.spill_store_bytes, row.usage.spill_load_bytes
        ));
    }
    println!(
        "{} families x {} architectures: NVRTC {}, whole check {}",
        families.len(),
        ARCHS.len(),
        seconds(compile_time),
        seconds(start.elapsed())
    );
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        bail!("kernel check failed: {} problem(s) above", errors.len());
    }
    println!("kernels ok: no compile errors, no spills");
    Ok(())
}

/// Fetches the pinned wheels (unless there) and points ragtune-compute at them, unless the user
/// chose another NVRTC. Call before NVRTC is first loaded.
fn use_wheels(root: &Path) -> Result<()> {
    let wheels = root.join(WHEELS_DIR);
    ensure_wheels(root)?;
    let lib_dir = wheels.join("nvidia/cu13/lib");
    let include_dir = wheels.join("nvidia/cu13/include");
    // SAFETY: xtask is single-threaded here (no thread has been spawned), so nothing reads the
    // environment concurrently.
    unsafe {
        if std::env::var_os(nvrtc::NVRTC_LIB_DIR_ENV).is_none() {
            std::env::set_var(nvrtc::NVRTC_LIB_DIR_ENV, &lib_dir);
        }
        if std::env::var_os(nvrtc::CUDA_INCLUDE_ENV).is_none() {
            std::env::set_var(nvrtc::CUDA_INCLUDE_ENV, &include_dir);
        }
    }
    Ok(())
}

/// Seconds NVRTC takes to compile every kernel family for `arch` (as a GPU machine does once per
/// bundle run: run.sh shares one kernel cache across the binaries), with the pinned wheels.
pub fn compile_time(root: &Path, arch: &str) -> Result<Duration> {
    use_wheels(root)?;
    let opts = CompileOptions::default();
    let start = Instant::now();
    for kernel in kernel_sources::families() {
        nvrtc::compile(kernel.family, kernel.source, arch, &opts)
            .with_context(|| format!("compiling kernels/{}.cu for {arch}", kernel.family))?;
    }
    Ok(start.elapsed())
}

/// Fetches the pinned wheels into `target/nvrtc-wheels` unless NVRTC is already there. One pip
/// command for all of them: a second `pip install --target` into the same folder skips `nvidia/`.
fn ensure_wheels(root: &Path) -> Result<()> {
    let dir = root.join(WHEELS_DIR);
    if dir.join("nvidia/cu13/lib").join(nvrtc::NVRTC_LIB_NAME).is_file()
        && dir.join("nvidia/cu13/include/cuda_fp16.h").is_file()
    {
        return Ok(());
    }
    println!("fetching NVRTC ({}) into {}", WHEELS.join(" "), dir.display());
    let t = Instant::now();
    // A half-filled folder from an interrupted run would make pip skip packages.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the incomplete {}", dir.display()))?;
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--target"])
        .arg(&dir)
        .args(WHEELS)
        .current_dir(root)
        .status()
        .context("running `python3 -m pip`: install Python 3 with pip")?;
    if !status.success() {
        bail!(
            "`python3 -m pip install --no-deps --target {} {}` failed ({status}); it needs network access to PyPI",
            dir.display(),
            WHEELS.join(" ")
        );
    }
    if !dir.join("nvidia/cu13/lib").join(nvrtc::NVRTC_LIB_NAME).is_file() {
        bail!("pip finished but {}/nvidia/cu13/lib/{} is missing", dir.display(), nvrtc::NVRTC_LIB_NAME);
    }
    println!("fetched in {}", seconds(t.elapsed()));
    Ok(())
}

fn print_table(rows: &[Row]) {
    let headers = ["kernel", "family", "arch", "regs", "smem B", "stack B", "spill st/ld B"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.usage.function.clone(),
                r.family.to_string(),
                r.arch.to_string(),
                r.usage.registers.to_string(),
                r.usage.shared_bytes.to_string(),
                r.usage.stack_frame_bytes.to_string(),
                format!("{}/{}", r.usage.spill_store_bytes, r.usage.spill_load_bytes),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| if i < 3 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(&headers);
    line(&widths.map(|w| "-".repeat(w)).iter().map(String::as_str).collect::<Vec<_>>());
    for row in &cells {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
