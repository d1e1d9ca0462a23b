//! `ragtune doctor`: what this machine offers ragtune, and whether its GPU computes correctly.
//!
//! Prints the CPU (with the SIMD features detected at run time, which the CPU kernels dispatch
//! on), the CUDA driver, NVRTC and cuBLAS versions (or why each is missing), the device `auto`
//! picks and why, then — where NVRTC loads — compiles every kernel family (for the GPU's
//! architecture, or `sm_80` without one), and on a GPU runs the self-test against the CPU.
//! Exits non-zero when something present is broken (a kernel that does not compile, a GPU that
//! fails the self-test); a machine without a GPU is not broken.

use std::time::Instant;

use clap::Args;
use ragtune_compute::{Device, cuda, kernel_cache, kernel_sources, selftest};
use serde_json::{Value, json};

use crate::args::DeviceArg;

#[derive(Args)]
pub struct DoctorArgs {
    /// The GPU to examine when there is one: `cuda` or `cuda:N` (`auto` means cuda:0).
    #[arg(long, default_value = "auto")]
    device: DeviceArg,
}

/// The CPU's name from /proc/cpuinfo and the SIMD features this process can use.
fn cpu() -> (String, Vec<&'static str>) {
    let name = ragtune_compute::cpu::model_name().unwrap_or_else(|| std::env::consts::ARCH.to_string());
    #[allow(unused_mut)]
    let mut features = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (f, on) in [
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("fma", std::is_x86_feature_detected!("fma")),
            ("f16c", std::is_x86_feature_detected!("f16c")),
            ("avx512f", std::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::is_x86_feature_detected!("avx512bw")),
            ("avx512vnni", std::is_x86_feature_detected!("avx512vnni")),
            ("avx512bf16", std::is_x86_feature_detected!("avx512bf16")),
        ] {
            if on {
                features.push(f);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            features.push("neon");
        }
    }
    (name, features)
}

fn version(r: &Result<(i32, i32), String>) -> Value {
    match r {
        Ok((a, b)) => json!({ "version": format!("{a}.{b}") }),
        Err(why) => json!({ "absent": why }),
    }
}

fn line(r: &Result<(i32, i32), String>) -> String {
    match r {
        Ok((a, b)) => format!("{a}.{b}"),
        Err(why) => format!("absent — {why}"),
    }
}

pub fn run(args: DoctorArgs, json_out: bool) -> anyhow::Result<()> {
    let ordinal = args
        .device
        .gpu_ordinal()
        .ok_or_else(|| anyhow::anyhow!("--device cpu: doctor examines a GPU; use auto, cuda or cuda:N"))?;
    let (cpu_name, features) = cpu();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let versions = cuda::versions();
    let choice = Device::auto();
    let gpu = Device::cuda(ordinal);
    let mut broken = Vec::new();

    // Kernels compile wherever NVRTC loads, GPU or not.
    let arch = match &gpu {
        Ok(_) => cuda::arch_of(ordinal).ok(),
        Err(_) => versions.nvrtc.as_ref().ok().map(|_| "sm_80".to_string()),
    };
    let kernels = match &arch {
        Some(arch) => {
            let start = Instant::now();
            let mut failed = Vec::new();
            for k in kernel_sources::families() {
                if let Err(e) = kernel_cache::compiled(k.family, arch) {
                    failed.push(json!({ "family": k.family, "error": e.to_string() }));
                    broken.push(format!("kernels/{}.cu does not compile for {arch}: {e}", k.family));
                }
            }
            json!({
                "arch": arch,
                "families": kernel_sources::families().len(),
                "failed": failed,
                "seconds": start.elapsed().as_secs_f64(),
                "cache": kernel_cache::cache_dir().map(|d| d.display().to_string()),
            })
        }
        None => json!({ "skipped": "NVRTC is not available (see nvrtc above)" }),
    };

    let selftest = match &gpu {
        Ok(device) => match selftest::run(device) {
            Ok(report) => {
                if let Some(why) = report.failure() {
                    broken.push(why);
                }
                let checks: Vec<Value> = report
                    .checks
                    .iter()
                    .map(|c| json!({ "name": c.name, "max_err": c.max_err, "tolerance": c.tolerance, "passed": c.passed() }))
                    .collect();
                json!({ "device": report.device, "passed": report.passed(), "seconds": report.seconds, "checks": checks })
            }
            Err(e) => {
                broken.push(format!("the self-test could not run: {e}"));
                json!({ "error": e.to_string() })
            }
        },
        Err(e) => json!({ "skipped": format!("no usable GPU: {e}") }),
    };

    let report = json!({
        "ragtune": env!("CARGO_PKG_VERSION"),
        "cpu": { "model": cpu_name, "threads": threads, "features": features },
        "driver": version(&versions.driver),
        "nvrtc": version(&versions.nvrtc),
        "cublas": version(&versions.cublas),
        "auto": { "device": choice.device.describe(), "cpu_reason": choice.cpu_reason },
        "kernels": kernels,
        "selftest": selftest,
        "ok": broken.is_empty(),
        "problems": broken,
    });
    if json_out {
        println!("{report}");
    } else {
        print_text(&report, &versions, &features);
    }
    if broken.is_empty() { Ok(()) } else { anyhow::bail!("{}", broken.join("; ")) }
}

fn print_text(r: &Value, v: &cuda::CudaVersions, features: &[&str]) {
    println!("ragtune {} doctor", r["ragtune"].as_str().unwrap_or("?"));
    println!(
        "cpu        {} ({} threads; {})",
        r["cpu"]["model"].as_str().unwrap_or("?"),
        r["cpu"]["threads"],
        if features.is_empty() { "no SIMD features detected".to_string() } else { features.join(" ") }
    );
    println!("driver     {}", line(&v.driver));
    println!("nvrtc      {}", line(&v.nvrtc));
    println!("cublas     {}", line(&v.cublas));
    let auto = &r["auto"];
    match auto["cpu_reason"].as_str() {
        Some(why) => println!("auto       cpu — {why}"),
        None => println!("auto       {}", auto["device"].as_str().unwrap_or("?")),
    }
    let k = &r["kernels"];
    match k["skipped"].as_str() {
        Some(why) => println!("kernels    skipped — {why}"),
        None => println!(
            "kernels    {} families for {}: {} failed, {:.1} s",
            k["families"],
            k["arch"].as_str().unwrap_or("?"),
            k["failed"].as_array().map_or(0, Vec::len),
            k["seconds"].as_f64().unwrap_or(0.0)
        ),
    }
    let s = &r["selftest"];
    if let Some(why) = s["skipped"].as_str() {
        println!("self-test  skipped — {why}");
    } else if let Some(checks) = s["checks"].as_array() {
        println!(
            "self-test  {} on {} in {:.2} s",
            if s["passed"].as_bool() == Some(true) { "passed" } else { "FAILED" },
            s["device"].as_str().unwrap_or("?"),
            s["seconds"].as_f64().unwrap_or(0.0)
        );
        for c in checks {
            println!(
                "           {:<32} max error {:.2e} (tolerance {:.0e}) {}",
                c["name"].as_str().unwrap_or("?"),
                c["max_err"].as_f64().unwrap_or(f64::NAN),
                c["tolerance"].as_f64().unwrap_or(0.0),
                if c["passed"].as_bool() == Some(true) { "ok" } else { "FAILED" }
            );
        }
    }
}
