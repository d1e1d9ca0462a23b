//! GPU benchmarks that travel in the GPU bundle: the ceilings first (device-to-device copy,
//! cuBLAS bf16 GEMM), then fused attention next to a naive unfused one in the same run (TFLOP/s,
//! speed-up, fraction of the ceiling), each output checked before it is timed and each repeat
//! after an L2 flush. Rows go to `RAGTUNE_BENCH_ROWS` (run.sh: REPORT_DIR/bench-rows.jsonl) in
//! `cargo xtask bench`'s row format. Without a GPU the benchmark is skipped with the reason; its
//! code runs on the kernel emulator at a tiny size, so the bundle never carries a benchmark that
//! was not executed somewhere.
//!
//! `gpu_profile_target` is what `cargo xtask profile` runs under ncu: one shape of one family,
//! chosen by `RAGTUNE_PROFILE_KERNEL` / `RAGTUNE_PROFILE_SHAPE`; it does nothing when unset.

use std::sync::{Arc, OnceLock};

use ragtune_bench::gpu::attention::{measure, table};
use ragtune_bench::gpu::plan::{self, REPEATS};
use ragtune_bench::gpu::rows::{append_rows, ceilings_line, json_row};
use ragtune_bench::gpu::timing::{L2Flush, Timing, measure_ceilings};
use ragtune_bench::gpu::{lora, topk};
use ragtune_bench::report::Ceilings;
use ragtune_compute::{DType, Device};
use ragtune_kernel_emu::{EmuBackend, EmuOptions};
use ragtune_tests::gpu::cuda_or_skip;

#[test]
fn gpu_attention_fused_vs_naive() {
    let Some((device, c, mut flush)) = gpu("gpu_attention_fused_vs_naive") else { return };
    let rows: Vec<_> = plan::ATTENTION
        .iter()
        .map(|&(heads, seq, head_dim, dtype)| {
            measure(&device, heads, seq, head_dim, dtype, REPEATS, &mut flush)
        })
        .collect();
    println!("{}", table(&device, &rows));
    append(&device, &c, rows.iter().map(|r| r.json_row(&c, REPEATS)));
}

/// The GPU, this run's ceilings and an L2 flush for a benchmark test; `None` (after saying why)
/// where no GPU is usable.
fn gpu(test: &str) -> Option<(Device, Ceilings, L2Flush)> {
    let device = cuda_or_skip(test)?;
    let c = ceilings(&device);
    let flush = L2Flush::new(&device, plan::FLUSH_BYTES);
    Some((device, c, flush))
}

/// Appends the ceilings' line and then `rows` to the run's rows file.
fn append(device: &Device, c: &Ceilings, rows: impl Iterator<Item = String>) {
    append_rows(&std::iter::once(ceilings_line(device, c)).chain(rows).collect::<Vec<_>>());
}

/// The ceilings of this run, measured and printed by the first test that asks (the tests run
/// one at a time in this process, on the one GPU, so every row is judged against ceilings seen
/// in the same process; measuring them once leaves the GPU's minutes to the rows).
fn ceilings(device: &Device) -> Ceilings {
    static CEILINGS: OnceLock<Ceilings> = OnceLock::new();
    CEILINGS
        .get_or_init(|| {
            let c = measure_ceilings(device, plan::CEILING_GEMM_N, plan::CEILING_COPY_BYTES, REPEATS);
            println!(
                "ceilings: {:.0} TFLOP/s ({}); {:.0} GB/s ({})",
                c.compute_flops / 1e12,
                c.compute_name,
                c.bandwidth_bytes / 1e9,
                c.bandwidth_name
            );
            c
        })
        .clone()
}

#[test]
fn gpu_topk_fused_vs_score_gemm() {
    let Some((device, c, mut flush)) = gpu("gpu_topk_fused_vs_score_gemm") else { return };
    let mut rows = Vec::new();
    // One base per dtype, searched by every row of that dtype.
    let mut bases: Vec<(DType, topk::Base)> = Vec::new();
    for &(nq, k, dtype) in plan::TOPK {
        if !bases.iter().any(|(d, _)| *d == dtype) {
            bases.push((dtype, topk::Base::random(&device, plan::TOPK_BASE, plan::TOPK_DIM, dtype)));
        }
        let base = &bases.iter().find(|(d, _)| *d == dtype).unwrap().1;
        rows.push(topk::measure(&device, base, nq, k, REPEATS, &mut flush));
    }
    println!("{}", topk::table(&device, &rows));
    append(&device, &c, rows.iter().map(|r| r.json_row(&c, REPEATS)));
}

#[test]
fn gpu_lora_vs_base_gemm() {
    let Some((device, c, mut flush)) = gpu("gpu_lora_vs_base_gemm") else { return };
    let mut t = Timing { device: &device, repeats: REPEATS, flush: &mut flush };
    let (mut rows, mut back) = (Vec::new(), Vec::new());
    for &shape in plan::LORA {
        rows.push(lora::measure(&mut t, shape, plan::LORA_DTYPE));
        back.push(lora::measure_backward(&mut t, shape, plan::LORA_DTYPE));
    }
    println!("{}", lora::table(&device, &rows));
    println!("{}", lora::table(&device, &back));
    append(&device, &c, rows.iter().chain(&back).map(|r| r.json_row(&c, REPEATS)));
}

#[test]
fn topk_and_lora_bench_code_runs_on_the_emulator() {
    let device = Device::from_backend(Arc::new(EmuBackend::new(EmuOptions::default())));
    let mut flush = L2Flush::new(&device, 1 << 16);
    let c = measure_ceilings(&device, 16, 1 << 16, 1);
    let t = [
        topk::measure(&device, &topk::Base::random(&device, 1000, 40, DType::F32), 3, 10, 1, &mut flush),
        topk::measure(&device, &topk::Base::random(&device, 700, 32, DType::BF16), 17, 5, 1, &mut flush),
    ];
    let table = topk::table(&device, &t);
    assert!(
        table.contains("| 1000 | 40 | 3 | 10 | f32 |") && table.contains("| 700 | 32 | 17 | 5 | bf16 |"),
        "{table}"
    );
    assert!(t.iter().all(|r| r.fused_ms > 0.0 && r.gemm_ms > 0.0 && r.agreement >= 0.99));
    assert!(t[0].json_row(&c, 1).contains("\"suite\": \"topk\""));
    let mut timing = Timing { device: &device, repeats: 1, flush: &mut flush };
    let l = [
        lora::measure(&mut timing, (24, 64, 48, 4, 1), DType::F32),
        lora::measure(&mut timing, (20, 32, 40, 8, 3), DType::BF16),
    ];
    let table = lora::table(&device, &l);
    assert!(
        table.contains("| 24 | 64 | 48 | 4 | 1 | f32 |") && table.contains("| 20 | 32 | 40 | 8 | 3 | bf16 |"),
        "{table}"
    );
    assert!(l.iter().all(|r| r.lora_ms > 0.0 && r.base_ms > 0.0 && r.unfused_ms > 0.0));
    let line = l[1].json_row(&c, 1);
    assert!(line.contains("\"suite\": \"lora\"") && line.contains("unfused LoRA GEMMs"), "{line}");
    let back = [
        lora::measure_backward(&mut timing, (24, 64, 48, 4, 1), DType::F32),
        lora::measure_backward(&mut timing, (20, 32, 40, 8, 3), DType::BF16),
    ];
    let table = lora::table(&device, &back);
    assert!(table.contains("| 20 | 32 | 40 | 8 | 3 | bf16 |"), "{table}");
    assert!(back.iter().all(|r| r.lora_ms > 0.0 && r.base_ms > 0.0 && r.unfused_ms > 0.0));
    assert!(back[0].json_row(&c, 1).contains("unfused LoRA backward GEMMs"));
    // The rows file the bundle writes reads back as a report (`cargo xtask bench gpu-rows`).
    let lines: Vec<String> = std::iter::once(ceilings_line(&device, &c))
        .chain(t.iter().map(|r| r.json_row(&c, 1)))
        .chain(l.iter().map(|r| r.json_row(&c, 1)))
        .collect();
    let path = std::env::temp_dir().join(format!("ragtune-gpu-rows-{}.jsonl", std::process::id()));
    std::fs::write(&path, lines.join("\n")).unwrap();
    let report = ragtune_bench::gpu::rows::report_from_rows(&path, "now").unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(report.rows.len(), 4);
    assert_eq!(report.suites, ["lora", "topk"]);
    assert_eq!(report.machine, device.describe());
    // Exact: the rows are written with Rust's shortest round-trip form and read with serde_json's
    // float_roundtrip parser (its default one can be one ulp off).
    assert_eq!(report.ceilings.compute_flops, c.compute_flops);
}

/// A profile shape: `key=value` pairs over `defaults` (every key must be one of them); the
/// `dtype` value is checked separately.
fn parse_shape(s: &str, defaults: &[(&'static str, usize)]) -> Result<(Vec<usize>, DType), String> {
    let mut values: Vec<usize> = defaults.iter().map(|&(_, v)| v).collect();
    let mut dtype = DType::BF16;
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or(format!("{part:?}: write key=value"))?;
        if k == "dtype" {
            dtype = match v {
                "bf16" => DType::BF16,
                "f16" => DType::F16,
                "f32" => DType::F32,
                _ => return Err(format!("dtype={v}: use bf16, f16 or f32")),
            };
            continue;
        }
        let Some(i) = defaults.iter().position(|&(name, _)| name == k) else {
            let keys: Vec<&str> = defaults.iter().map(|&(name, _)| name).collect();
            return Err(format!("{k}: this benchmark's shapes take {}, dtype", keys.join(", ")));
        };
        values[i] = v.parse::<usize>().map_err(|_| format!("{k}={v}: not a whole number"))?;
    }
    Ok((values, dtype))
}

const ATTENTION_SHAPE: &[(&str, usize)] = &[("heads", 32), ("seq", 4096), ("d", 128)];
const TOPK_SHAPE: &[(&str, usize)] = &[("n", 1 << 20), ("d", 384), ("nq", 1024), ("k", 10)];
const LORA_SHAPE: &[(&str, usize)] =
    &[("rows", 4096), ("in", 4096), ("out", 4096), ("r", 16), ("adapters", 1)];

/// What `cargo xtask profile KERNEL` runs under ncu: one shape of one family's benchmark, chosen
/// by `RAGTUNE_PROFILE_KERNEL` (attention, topk, lora) and `RAGTUNE_PROFILE_SHAPE`; nothing when
/// unset.
#[test]
fn gpu_profile_target() {
    let Ok(kernel) = std::env::var("RAGTUNE_PROFILE_KERNEL") else { return };
    let shape = std::env::var("RAGTUNE_PROFILE_SHAPE").unwrap_or_default();
    let defaults = match kernel.as_str() {
        "attention" => ATTENTION_SHAPE,
        "topk" => TOPK_SHAPE,
        "lora" => LORA_SHAPE,
        other => panic!("RAGTUNE_PROFILE_KERNEL={other}: GPU benchmarks exist for attention, topk, lora"),
    };
    let (v, dtype) = parse_shape(&shape, defaults).unwrap_or_else(|e| panic!("RAGTUNE_PROFILE_SHAPE: {e}"));
    let Some(device) = cuda_or_skip("gpu_profile_target") else { return };
    let mut flush = L2Flush::new(&device, plan::FLUSH_BYTES);
    match kernel.as_str() {
        "attention" => {
            println!("{}", table(&device, &[measure(&device, v[0], v[1], v[2], dtype, 1, &mut flush)]))
        }
        "topk" => {
            let base = topk::Base::random(&device, v[0], v[1], dtype);
            let row = topk::measure(&device, &base, v[2], v[3], 1, &mut flush);
            println!("{}", topk::table(&device, &[row]));
        }
        _ => {
            let mut t = Timing { device: &device, repeats: 1, flush: &mut flush };
            let row = lora::measure(&mut t, (v[0], v[1], v[2], v[3], v[4]), dtype);
            println!("{}", lora::table(&device, &[row]));
        }
    }
}

#[test]
fn profile_shapes_parse_and_bad_ones_are_named() {
    assert_eq!(parse_shape("", ATTENTION_SHAPE).unwrap(), (vec![32, 4096, 128], DType::BF16));
    assert_eq!(
        parse_shape("heads=8,seq=512,d=64,dtype=f16", ATTENTION_SHAPE).unwrap(),
        (vec![8, 512, 64], DType::F16)
    );
    assert_eq!(
        parse_shape("nq=1,k=100,dtype=f32", TOPK_SHAPE).unwrap(),
        (vec![1 << 20, 384, 1, 100], DType::F32)
    );
    assert_eq!(parse_shape("out=14336,adapters=4", LORA_SHAPE).unwrap().0, vec![4096, 4096, 14336, 16, 4]);
    assert!(parse_shape("seq=big", ATTENTION_SHAPE).unwrap_err().contains("seq=big"));
    assert!(parse_shape("width=3", ATTENTION_SHAPE).unwrap_err().contains("heads, seq, d"));
    assert!(parse_shape("heads=3", TOPK_SHAPE).unwrap_err().contains("n, d, nq, k"));
    assert!(parse_shape("dtype=f8", LORA_SHAPE).unwrap_err().contains("bf16"));
}

#[test]
fn attention_bench_code_runs_on_the_emulator() {
    let device = Device::from_backend(Arc::new(EmuBackend::new(EmuOptions::default())));
    let mut flush = L2Flush::new(&device, 1 << 16);
    let rows = vec![
        measure(&device, 2, 37, 32, DType::BF16, 1, &mut flush),
        measure(&device, 1, 20, 64, DType::F32, 1, &mut flush),
    ];
    let t = table(&device, &rows);
    assert!(t.contains("| 2 | 37 | 32 | bf16 |") && t.contains("| 1 | 20 | 64 | f32 |"), "{t}");
    assert!(rows.iter().all(|r| r.fused_ms > 0.0 && r.naive_ms > 0.0 && r.fused_tflops.is_finite()));
    // The ceilings' code (checks included) at a tiny size, and the JSON rows it feeds.
    let ceilings = measure_ceilings(&device, 16, 1 << 16, 1);
    assert!(ceilings.compute_flops > 0.0 && ceilings.bandwidth_bytes > 0.0, "{ceilings:?}");
    let line = rows[0].json_row(&ceilings, 1);
    for field in
        ["\"suite\": \"attention\"", "\"shape\": \"b·h=2 s=37 d=32 bf16\"", "\"name\": \"naive unfused\""]
    {
        assert!(line.contains(field), "{field} missing from {line}");
    }
}

#[test]
fn json_rows_judge_by_the_larger_floor() {
    let c = Ceilings {
        compute_name: "gemm \"x\"".into(),
        compute_flops: 1e15,
        bandwidth_name: "copy".into(),
        bandwidth_bytes: 1e12,
    };
    // 1e12 FLOPs (1 ms) vs 1e8 bytes (0.1 ms): compute-bound, floor 1 ms, measured 2 ms.
    let row = json_row("attention", "f", "s", (2e-3, 5), (1e12, 1e8), &c, &[("naive", 4e-3)], "ok");
    for field in [
        "\"bound\": \"compute\"",
        "\"unit\": \"TFLOP/s\"",
        "\"throughput\": 5e2",
        "\"ceiling_fraction\": 5e-1",
        "\"time_ratio\": 5e-1",
        "gemm \\\"x\\\"",
    ] {
        assert!(row.contains(field), "{field} missing from {row}");
    }
    let row = json_row("decode", "f", "s", (2e-3, 5), (1e9, 1e9), &c, &[], "ok");
    assert!(row.contains("\"bound\": \"memory\"") && row.contains("\"ceiling_fraction\": 5e-1"), "{row}");
}
