//! The device self-test: a short parity check of a GPU against the CPU, run before
//! [`Device::auto`] trusts a GPU and by `ragtune doctor`.
//!
//! A machine can have a driver, NVRTC and cuBLAS that all load, and still compute wrongly (a
//! driver older than the kernels assume, a broken cuBLAS install, a GPU in a bad state). The
//! self-test runs one small case of every op family the runtime leans on — cuBLAS GEMMs in f32
//! and bf16, the norms, softmax, the activations, the element-wise ops, casts, fused attention
//! and top-k — on the device and on the CPU, and compares. It takes well under a second of GPU
//! time; kernel compiles (cached on disk after the first run) dominate.
//!
//! [`gate`] is what `auto` uses: a pass is remembered per machine (a marker file beside the
//! kernel cache, keyed by the device, the driver, NVRTC, ragtune's version and the kernel
//! sources), so the test runs once, not at every start.

use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{ComputeError, Result};
use crate::ops::{self, AttentionSpec, Similarity, SoftmaxSpec, TopkSpec};
use crate::tensor::Tensor;

/// One op compared between the device and the CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub name: &'static str,
    /// Largest |device − cpu| over the output, divided by max(1, largest |cpu|).
    pub max_err: f64,
    /// The most `max_err` may be: a few ulps of the dtype, times the reduction length's growth.
    pub tolerance: f64,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.max_err <= self.tolerance
    }
}

/// Every check of one run, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfTestReport {
    pub device: String,
    pub checks: Vec<Check>,
    pub seconds: f64,
}

impl SelfTestReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }

    /// The first failed check as a sentence, `None` when all passed.
    pub fn failure(&self) -> Option<String> {
        self.checks.iter().find(|c| !c.passed()).map(|c| {
            format!(
                "the GPU self-test failed on {}: {} differs from the CPU by {:.3e} (tolerance {:.1e})",
                self.device, c.name, c.max_err, c.tolerance
            )
        })
    }
}

/// Deterministic inputs in [-1, 1) (SplitMix64): no RNG crate in the library, and the same
/// numbers on every machine so a failure reproduces.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Runner<'a> {
    device: &'a Device,
    checks: Vec<Check>,
    seed: u64,
}

impl Runner<'_> {
    /// A host tensor of deterministic values and its copy on the device.
    fn input(&mut self, shape: &[usize], dtype: DType) -> Result<(Tensor, Tensor)> {
        self.seed += 1;
        let host = Tensor::from_slice(&values(shape.iter().product(), self.seed), shape)?;
        let host = if dtype == DType::F32 { host } else { ops::cast(&host, dtype)? };
        let dev = host.to_device(self.device)?;
        Ok((host, dev))
    }

    /// Run `op` on the CPU inputs and on the device inputs and record how far apart they are.
    fn compare(
        &mut self,
        name: &'static str,
        tolerance: f64,
        cpu: Result<Tensor>,
        gpu: Result<Tensor>,
    ) -> Result<()> {
        let with_name = |e: ComputeError| ComputeError::invalid("self-test", format!("{name}: {e}"));
        let want = cpu.map_err(with_name)?.to_vec_f32().map_err(with_name)?;
        let got = gpu.map_err(with_name)?.to_host().and_then(|t| t.to_vec_f32()).map_err(with_name)?;
        let max_err = if want.len() != got.len() {
            f64::INFINITY
        } else {
            let scale = want.iter().fold(1.0f64, |m, &v| m.max(f64::from(v.abs())));
            // A NaN anywhere is a failure: f64::max would skip it, so map it to infinity.
            let diff = want.iter().zip(&got).fold(0.0f64, |m, (&w, &g)| {
                let d = f64::from(w - g).abs();
                if d.is_nan() { f64::INFINITY } else { m.max(d) }
            });
            diff / scale
        };
        self.checks.push(Check { name, max_err, tolerance });
        Ok(())
    }
}

/// Run every check on `device` against the CPU. An op that fails outright (a launch error) is
/// an `Err` naming the check; a wrong result is a failed [`Check`] in the report.
pub fn run(device: &Device) -> Result<SelfTestReport> {
    let start = Instant::now();
    let mut r = Runner { device, checks: Vec::new(), seed: 0x5e1f };
    // bf16 keeps 8 mantissa bits: 2^-8 relative per rounding, a few roundings per output.
    let (f32_tol, bf16_tol) = (1e-4, 3e-2);

    for (name, dt, tol) in
        [("matmul f32 (cuBLAS)", DType::F32, f32_tol), ("matmul bf16 (cuBLAS)", DType::BF16, bf16_tol)]
    {
        let (a, da) = r.input(&[37, 96], dt)?;
        let (b, db) = r.input(&[96, 53], dt)?;
        r.compare(name, tol, ops::matmul(&a, &b), ops::matmul(&da, &db))?;
    }
    let (x, dx) = r.input(&[9, 160], DType::F32)?;
    let (w, dw) = r.input(&[160], DType::F32)?;
    r.compare("rms_norm", f32_tol, ops::rms_norm(&x, &w, 1e-5), ops::rms_norm(&dx, &dw, 1e-5))?;
    r.compare(
        "layer_norm",
        f32_tol,
        ops::layer_norm(&x, &w, Some(&w), 1e-5),
        ops::layer_norm(&dx, &dw, Some(&dw), 1e-5),
    )?;
    let (s, ds) = r.input(&[3, 17, 17], DType::F32)?;
    let spec = SoftmaxSpec { scale: 0.7, causal: true };
    r.compare("softmax (causal)", f32_tol, ops::softmax(&s, spec), ops::softmax(&ds, spec))?;
    r.compare("silu", f32_tol, ops::silu(&x), ops::silu(&dx))?;
    r.compare("gelu", f32_tol, ops::gelu(&x), ops::gelu(&dx))?;
    r.compare("add (repeated operand)", f32_tol, ops::add(&x, &w), ops::add(&dx, &dw))?;
    let (h, dh) = r.input(&[9, 160], DType::BF16)?;
    r.compare("cast bf16 → f32", 0.0, ops::cast(&h, DType::F32), ops::cast(&dh, DType::F32))?;
    for (name, dt, tol) in [
        ("attention f32 (causal, GQA)", DType::F32, f32_tol),
        ("attention bf16 (causal, GQA)", DType::BF16, bf16_tol),
    ] {
        let (q, dq) = r.input(&[1, 21, 4, 64], dt)?;
        let (k, dk) = r.input(&[1, 21, 2, 64], dt)?;
        let (v, dv) = r.input(&[1, 21, 2, 64], dt)?;
        let spec = AttentionSpec::new(true, 64);
        r.compare(
            name,
            tol,
            ops::attention(&q, &k, &v, spec, None),
            ops::attention(&dq, &dk, &dv, spec, None),
        )?;
    }
    let (queries, dqueries) = r.input(&[5, 48], DType::F32)?;
    let (base, dbase) = r.input(&[300, 48], DType::F32)?;
    let spec = TopkSpec { k: 7, similarity: Similarity::Dot };
    let scores = |res: Result<ops::TopkResult>| res.map(|t| t.scores);
    r.compare(
        "top-k similarity (scores)",
        f32_tol,
        scores(ops::topk_similarity(&queries, &base, spec, None)),
        scores(ops::topk_similarity(&dqueries, &dbase, spec, None)),
    )?;
    device.synchronize()?;
    Ok(SelfTestReport { device: device.describe(), checks: r.checks, seconds: start.elapsed().as_secs_f64() })
}

/// The marker file a pass on this machine leaves, `None` when no cache folder is known.
fn marker(device: &Device, versions: &str) -> Option<PathBuf> {
    let dir = crate::kernel_cache::cache_dir()?;
    let mut h = Sha256::new();
    h.update(device.describe());
    h.update(versions);
    h.update(env!("CARGO_PKG_VERSION"));
    for k in crate::kernel_sources::families() {
        h.update(crate::kernel_sources::source_hash(k.family));
    }
    let key: String = h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    Some(dir.join("selftest").join(format!("{key}.passed")))
}

/// Whether `device` may be trusted: a pass remembered on this machine, else a fresh run (whose
/// pass is then remembered). `Err` carries the reason to fall back to the CPU. `versions` names
/// the driver and libraries, so an upgrade runs the test again.
pub fn gate(device: &Device, versions: &str) -> std::result::Result<(), String> {
    let marker = marker(device, versions);
    if marker.as_ref().is_some_and(|m| m.exists()) {
        return Ok(());
    }
    let report = run(device).map_err(|e| format!("the GPU self-test could not run: {e}"))?;
    if let Some(why) = report.failure() {
        return Err(format!("{why}; run `ragtune doctor` for details"));
    }
    if let Some(m) = marker {
        // Best effort: without the marker the test simply runs again next time.
        let _ = remember(&m, &report);
    }
    Ok(())
}

fn remember(marker: &std::path::Path, report: &SelfTestReport) -> std::io::Result<()> {
    std::fs::create_dir_all(marker.parent().unwrap_or(std::path::Path::new(".")))?;
    let line =
        format!("{} passed {} checks in {:.2} s\n", report.device, report.checks.len(), report.seconds);
    crate::atomic_file::write(marker, line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_deterministic_and_spread_over_minus_one_to_one() {
        let a = values(10_000, 3);
        assert_eq!(a, values(10_000, 3));
        assert_ne!(a, values(10_000, 4));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!(a.iter().any(|&v| v < -0.99) && a.iter().any(|&v| v > 0.99));
    }

    #[test]
    fn the_cpu_passes_against_itself_and_a_failure_names_the_check() {
        let report = run(&Device::Cpu).unwrap();
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.checks.len(), 12);
        assert!(report.checks.iter().all(|c| c.max_err == 0.0));
        let mut bad = report.clone();
        bad.checks[4].max_err = 1.0;
        let why = bad.failure().unwrap();
        assert!(why.contains(bad.checks[4].name), "{why}");
    }
}
