//! The GPU side of `cargo xtask bench`, as it travels in the GPU bundle (machines without Rust):
//! the two GPU ceilings measured first in the run — a large device-to-device copy and a large
//! bf16 GEMM through cuBLAS (`ops::matmul` on a device) — an L2 flush between timed repeats, and
//! rows written as JSON lines in the row format of bench/src/report.rs (`Row`), so GPU and CPU
//! reports read the same. run.sh points `RAGTUNE_BENCH_ROWS` at REPORT_DIR/bench-rows.jsonl.
//!
//! Timing: [`Device::time_ms`] — CUDA events recorded around each repeat on the stream, so
//! launch latency and host synchronisation stay out — median of the repeats, after a warm-up
//! (module load and NVRTC compile stay out). The code runs on the kernel emulator in
//! `cargo test` (wall time there); no GPU number has been produced with it yet.

use std::io::Write as _;

use ragtune_compute::ops;
use ragtune_compute::{DType, Device, Tensor};

use crate::{random_tensor, rel_err, rng};

/// The GPU ceilings, in FLOP/s and bytes/s (read + written).
#[derive(Clone, Debug)]
pub struct GpuCeilings {
    pub compute_name: String,
    pub compute_flops: f64,
    pub bandwidth_name: String,
    pub bandwidth_bytes: f64,
}

/// Overwrites a buffer larger than L2 (H100: 50 MB) between repeats, so no repeat reads what the
/// previous one left in cache.
pub struct L2Flush {
    dst: Tensor,
    src: Tensor,
}

impl L2Flush {
    pub fn new(device: &Device, bytes: usize) -> L2Flush {
        let n = bytes / 4;
        let src = Tensor::from_slice(&vec![1f32; n], &[n]).unwrap().to_device(device).unwrap();
        let dst = Tensor::zeros(&[n], DType::F32, device).unwrap();
        L2Flush { dst, src }
    }

    pub fn flush(&mut self) {
        ops::copy_into(&mut self.dst, &self.src, 0).unwrap();
    }
}

/// Median milliseconds of `f` over `repeats` calls after two warm-ups, each call preceded by an
/// L2 flush that is not timed.
pub fn median_ms_flushed(device: &Device, repeats: usize, flush: &mut L2Flush, mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
    }
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            flush.flush();
            device
                .time_ms(|| {
                    f();
                    Ok(())
                })
                .unwrap()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The ceilings at `gemm_n`³ (bf16, f32 accumulation) and a `copy_bytes` device copy, checked
/// first: the GEMM on two rows against f64, the copy element for element.
pub fn measure_ceilings(device: &Device, gemm_n: usize, copy_bytes: usize, repeats: usize) -> GpuCeilings {
    let n = gemm_n;
    let mut r = rng(99);
    let (a, av) = random_tensor(&mut r, &[n, n], DType::BF16, 1.0);
    let (b, bv) = random_tensor(&mut r, &[n, n], DType::BF16, 1.0);
    let (a, b) = (a.to_device(device).unwrap(), b.to_device(device).unwrap());
    let c = ops::matmul(&a, &b).unwrap().to_vec_f32().unwrap();
    let rows = [0, n - 1];
    let got: Vec<f32> = rows.iter().flat_map(|&i| c[i * n..(i + 1) * n].to_vec()).collect();
    let want: Vec<f64> = rows
        .iter()
        .flat_map(|&i| {
            (0..n).map(|j| (0..n).map(|p| av[i * n + p] * bv[p * n + j]).sum::<f64>()).collect::<Vec<_>>()
        })
        .collect();
    let err = rel_err(&got, &want);
    assert!(err <= 1e-2, "bf16 GEMM ceiling {n}³: output differs from f64 by {err:.2e}");

    let elems = copy_bytes / 4;
    let src = Tensor::from_slice(&(0..elems).map(|i| (i % 1021) as f32).collect::<Vec<_>>(), &[elems])
        .unwrap()
        .to_device(device)
        .unwrap();
    let mut dst = Tensor::zeros(&[elems], DType::F32, device).unwrap();
    ops::copy_into(&mut dst, &src, 0).unwrap();
    assert!(
        dst.to_vec_f32().unwrap().iter().enumerate().all(|(i, &v)| v == (i % 1021) as f32),
        "device copy is wrong"
    );

    // The copy itself moves more than L2 holds; the GEMM is flushed like every other row.
    let mut flush = L2Flush::new(device, 256 << 20);
    let gemm_ms = median_ms_flushed(device, repeats, &mut flush, || {
        ops::matmul(&a, &b).unwrap();
    });
    let copy_ms =
        median_ms_flushed(device, repeats, &mut flush, || ops::copy_into(&mut dst, &src, 0).unwrap());
    GpuCeilings {
        compute_name: format!("cuBLAS bf16 GEMM {n}³ (ops::matmul), median of {repeats}"),
        compute_flops: 2.0 * (n as f64).powi(3) / (gemm_ms / 1e3),
        bandwidth_name: format!(
            "device-to-device copy {} MiB (read + write), median of {repeats}",
            copy_bytes >> 20
        ),
        bandwidth_bytes: 2.0 * (elems * 4) as f64 / (copy_ms / 1e3),
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out + "\""
}

/// A finite JSON number (NaN and infinities, which JSON lacks, become 0 and are caught by the
/// reader's checks).
fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v:e}") } else { "0".into() }
}

/// A Markdown table: `title`, a blank line, the `header` row (`| a | b |`), its separator, then
/// one line per row.
pub fn markdown_table(title: &str, header: &str, lines: impl IntoIterator<Item = String>) -> String {
    let columns = header.matches('|').count().saturating_sub(1);
    let mut s = format!("{title}\n\n{header}\n|{}\n", "---|".repeat(columns));
    for line in lines {
        s += &line;
        s.push('\n');
    }
    s
}

/// One row in bench/src/report.rs's `Row` format: floor = max(FLOPs / compute ceiling, bytes /
/// bandwidth ceiling); the row's (median seconds, repeats) and (FLOPs, bytes); `peers` as (name,
/// median seconds).
#[allow(clippy::too_many_arguments)]
pub fn json_row(
    suite: &str,
    name: &str,
    shape: &str,
    (median_s, repeats): (f64, usize),
    (flops, bytes): (f64, f64),
    c: &GpuCeilings,
    peers: &[(&str, f64)],
    check: &str,
) -> String {
    let (tc, tm) = (flops / c.compute_flops, bytes / c.bandwidth_bytes);
    let (bound, floor, throughput, unit) = if tc >= tm {
        ("compute", tc, flops / median_s / 1e12, "TFLOP/s")
    } else {
        ("memory", tm, bytes / median_s / 1e9, "GB/s")
    };
    let peers: Vec<String> = peers
        .iter()
        .map(|(n, t)| {
            format!(
                "{{\"name\": {}, \"median_s\": {}, \"time_ratio\": {}}}",
                json_str(n),
                json_num(*t),
                json_num(median_s / t)
            )
        })
        .collect();
    format!(
        "{{\"suite\": {}, \"name\": {}, \"shape\": {}, \"median_s\": {}, \"repeats\": {repeats}, \"flops\": {}, \
         \"bytes\": {}, \"bound\": \"{bound}\", \"throughput\": {}, \"unit\": \"{unit}\", \"ceiling_fraction\": {}, \
         \"peers\": [{}], \"check\": {}, \"note\": {}}}",
        json_str(suite),
        json_str(name),
        json_str(shape),
        json_num(median_s),
        json_num(flops),
        json_num(bytes),
        json_num(throughput),
        json_num(floor / median_s),
        peers.join(", "),
        json_str(check),
        json_str(&format!("GPU; ceilings: {}; {}", c.compute_name, c.bandwidth_name)),
    )
}

/// The ceilings line of the rows file: what `cargo xtask bench gpu-rows` judges the rows
/// against (bench/src/gpu_rows.rs), with the device that measured them.
pub fn ceilings_line(device: &Device, c: &GpuCeilings) -> String {
    format!(
        "{{\"ceilings\": {{\"compute_name\": {}, \"compute_flops\": {}, \"bandwidth_name\": {}, \"bandwidth_bytes\": {}}}, \"device\": {}}}",
        json_str(&c.compute_name),
        json_num(c.compute_flops),
        json_str(&c.bandwidth_name),
        json_num(c.bandwidth_bytes),
        json_str(&device.describe())
    )
}

/// Appends `lines` to the file named by `RAGTUNE_BENCH_ROWS`, when set (run.sh sets it).
pub fn append_rows(lines: &[String]) {
    let Ok(path) = std::env::var("RAGTUNE_BENCH_ROWS") else { return };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("RAGTUNE_BENCH_ROWS={path}: cannot open for appending: {e}"));
    for l in lines {
        writeln!(f, "{l}").unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
}
