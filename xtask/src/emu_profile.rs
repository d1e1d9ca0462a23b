//! `cargo xtask emu-profile [FAMILY...] [--json FILE]`: the emulated profiler over ragtune's
//! kernel families at representative shapes, on any machine.
//!
//! Each scenario runs one op through the CPU emulator's device (`ragtune-kernel-emu`) with
//! profiling on, so every launch the op makes runs on the kernels' instrumented copies and
//! reports exact properties of its addresses: global bytes, load efficiency (bytes used / bytes
//! of the 32-byte sectors touched, per warp-wide access), shared-memory bank-conflict degree,
//! atomics, barriers and mma instructions. No timing is modelled; `roofline_us_h100` is the
//! bound those numbers imply on an H100: max(global bytes / 3.35 TB/s, flops / peak), the peak
//! being 989 TFLOP/s (bf16/f16 tensor cores) for launches that issue mma, 67 TFLOP/s (f32)
//! otherwise. `flops` is exact for mma launches (4096 per mma.m16n8k16); for the others it is the
//! op's nominal count, credited to the op's launch that moves the most global bytes.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use ragtune_compute::ops::{self, AttentionSpec, Similarity, TopkSpec};
use ragtune_compute::{DType, Device, Tensor};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, LaunchProfile};
use serde::Serialize;

#[derive(Args)]
pub struct EmuProfileArgs {
    /// Kernel families to profile (`kernels/<family>.cu`); all scenarios when none is given.
    pub families: Vec<String>,
    /// Also write the rows as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

const H100_BYTES_PER_US: f64 = 3.35e6; // 3.35 TB/s
const H100_TENSOR_FLOPS_PER_US: f64 = 989e6; // bf16/f16 dense
const H100_F32_FLOPS_PER_US: f64 = 67e6;

#[derive(Serialize)]
struct Row {
    kernel: String,
    family: String,
    shape: String,
    global_load_bytes: u64,
    global_store_bytes: u64,
    load_efficiency: f64,
    store_efficiency: f64,
    /// None when the profiler saw no shared access (none made, or only to the static
    /// `__shared__` of template functions, which it cannot see: see ragtune-kernel-emu).
    smem_bank_conflict_ways: Option<f64>,
    global_atomics: u64,
    barriers: u64,
    mma: u64,
    flops: u64,
    output_elements: u64,
    roofline_us_h100: f64,
}

/// Runs a scenario's op on the (profiled) emulated device.
type RunOp = Box<dyn Fn(&Device) -> Result<()>>;

/// One op at one shape: what it is called, its nominal flops and output size, how to run it.
struct Scenario {
    family: &'static str,
    shape: String,
    flops: u64,
    output_elements: u64,
    run: RunOp,
}

fn tensor(device: &Device, shape: &[usize], dtype: DType, seed: usize) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> =
        (0..n).map(|i| (((i * 7919 + seed * 104729) % 2001) as f32 - 1000.0) / 1000.0).collect();
    let t = Tensor::from_slice(&data, shape)?.to_device(device)?;
    Ok(if dtype == DType::F32 { t } else { ops::cast(&t, dtype)? })
}

fn attention(dtype: DType, b: usize, sq: usize, skv: usize, h: usize, hd: usize, backward: bool) -> Scenario {
    let name = if backward {
        "attention backward"
    } else if sq <= 4 {
        "attention decode"
    } else {
        "attention prefill"
    };
    let causal = sq > 4;
    let pairs = (b * h * sq * skv) as u64 / if causal { 2 } else { 1 };
    let fwd = 4 * pairs * hd as u64;
    Scenario {
        family: "attention",
        shape: format!(
            "{name} {dtype:?} b{b} sq{sq} skv{skv} h{h} d{hd}{}",
            if causal { " causal" } else { "" }
        ),
        // The backward pass: 5 matmul-shaped products against the forward's 2.
        flops: if backward { fwd * 5 / 2 } else { fwd },
        output_elements: (b * sq * h * hd * if backward { 3 } else { 1 }) as u64,
        run: Box::new(move |d| {
            let q = tensor(d, &[b, sq, h, hd], dtype, 1)?;
            let k = tensor(d, &[b, skv, h, hd], dtype, 2)?;
            let v = tensor(d, &[b, skv, h, hd], dtype, 3)?;
            let spec = AttentionSpec::new(causal, hd);
            if backward {
                let dout = tensor(d, &[b, sq, h, hd], dtype, 4)?;
                ops::attention_backward(&q, &k, &v, &dout, spec, None)?;
            } else {
                ops::attention(&q, &k, &v, spec, None)?;
            }
            Ok(())
        }),
    }
}

fn topk(dtype: DType, nq: usize, nb: usize, dim: usize, k: usize) -> Scenario {
    Scenario {
        family: "topk",
        shape: format!("topk dot {dtype:?} nq{nq} base{nb} d{dim} k{k}"),
        flops: (2 * nq * nb * dim) as u64,
        output_elements: (2 * nq * k) as u64,
        run: Box::new(move |d| {
            let q = tensor(d, &[nq, dim], dtype, 5)?;
            let base = tensor(d, &[nb, dim], dtype, 6)?;
            ops::topk_similarity(&q, &base, TopkSpec { k, similarity: Similarity::Dot }, None)?;
            Ok(())
        }),
    }
}

/// A mixed-adapter LoRA forward (shrink, then expand into y), bf16, adapter `i % adapters` for
/// row i. With `chunk`, the batch goes in pieces of that many rows: below the grouped path's
/// threshold (gpu/lora.rs, 64 rows), so every launch is a row kernel — a block per row, each
/// independent of the others, so the pieces' launches add up to the row kernels' figures for
/// the whole batch.
fn lora_forward(
    rows: usize,
    inp: usize,
    r: usize,
    out: usize,
    adapters: usize,
    chunk: Option<usize>,
) -> Scenario {
    let path = chunk.map_or("grouped".to_string(), |c| format!("row kernels, {c}-row pieces"));
    Scenario {
        family: "lora",
        shape: format!("lora {path} bf16 rows{rows} in{inp} r{r} out{out} adapters{adapters}"),
        flops: (2 * rows * inp * r + 2 * rows * out * r) as u64,
        output_elements: (rows * r + rows * out) as u64,
        run: Box::new(move |d| {
            let a = tensor(d, &[adapters, r, inp], DType::BF16, 21)?;
            let b = tensor(d, &[adapters, out, r], DType::BF16, 22)?;
            let scales = vec![0.5; adapters];
            let step = chunk.unwrap_or(rows);
            for first in (0..rows).step_by(step) {
                let n = step.min(rows - first);
                let x = tensor(d, &[n, inp], DType::BF16, 23 + first)?;
                let ids: Vec<i32> = (first..first + n).map(|i| (i % adapters) as i32).collect();
                let ids = Tensor::from_slice(&ids, &[n])?.to_device(d)?;
                let u = ops::lora_shrink(&x, &a, &ids)?;
                let mut y = tensor(d, &[n, out], DType::BF16, 24 + first)?;
                ops::lora_expand(&mut y, &u, &b, &ids, &scales)?;
            }
            Ok(())
        }),
    }
}

/// `topk_ivf` over `nlist` lists of `list_rows` rows each, `nprobe` distinct lists per query
/// (`q * 5 + p` mod nlist): the probed lists' rows are read once per (query, probe).
fn topk_ivf(
    dtype: DType,
    nq: usize,
    [nlist, list_rows]: [usize; 2],
    dim: usize,
    nprobe: usize,
    k: usize,
) -> Scenario {
    Scenario {
        family: "topk",
        shape: format!("topk_ivf dot {dtype:?} nq{nq} lists{nlist}x{list_rows} d{dim} nprobe{nprobe} k{k}"),
        flops: (2 * nq * nprobe * list_rows * dim) as u64,
        output_elements: (2 * nq * k) as u64,
        run: Box::new(move |d| {
            let q = tensor(d, &[nq, dim], dtype, 11)?;
            let base = tensor(d, &[nlist * list_rows, dim], dtype, 12)?;
            let offsets: Vec<i32> = (0..=nlist).map(|l| (l * list_rows) as i32).collect();
            let offsets = Tensor::from_slice(&offsets, &[nlist + 1])?.to_device(d)?;
            let probes: Vec<i32> =
                (0..nq * nprobe).map(|i| ((i / nprobe * 5 + i % nprobe) % nlist) as i32).collect();
            let probes = Tensor::from_slice(&probes, &[nq, nprobe])?.to_device(d)?;
            ops::topk_ivf(&q, &base, &offsets, &probes, TopkSpec { k, similarity: Similarity::Dot }, None)?;
            Ok(())
        }),
    }
}

fn scenarios() -> Vec<Scenario> {
    let (rows, cols) = (64usize, 1024usize);
    let (nq, nb, dim, k) = (8usize, 4096usize, 128usize, 10usize);
    let (lrows, lin, lr, lout, adapters) = (64usize, 512usize, 16usize, 512usize, 2usize);
    let n = 1usize << 16;
    vec![
        attention(DType::F32, 1, 128, 128, 4, 64, false),
        attention(DType::BF16, 1, 128, 128, 4, 64, false),
        attention(DType::BF16, 1, 256, 256, 4, 128, false),
        attention(DType::F16, 1, 128, 128, 4, 80, false),
        attention(DType::BF16, 1, 1, 1024, 8, 64, false),
        attention(DType::F32, 1, 64, 64, 2, 64, true),
        topk(DType::F32, nq, nb, dim, k),
        // Large batches take the fused path: its base bytes per query are the figure to watch.
        topk(DType::BF16, 256, 4096, 128, k),
        topk(DType::F32, 128, 2048, 64, k),
        // IVF: a block per (query, probed list) streams the list's contiguous rows.
        topk_ivf(DType::BF16, 16, [32, 256], 128, 4, k),
        topk_ivf(DType::F32, 8, [16, 300], 96, 3, k),
        // A serving batch mixing adapters: the grouped (SGMV) tensor-core path, and the row
        // kernels on the same batch.
        lora_forward(256, 1024, 16, 1024, 4, None),
        lora_forward(256, 1024, 16, 1024, 4, Some(32)),
        lora_forward(lrows, lin, lr, lout, adapters, None),
        Scenario {
            family: "lora",
            shape: format!("lora backward bf16 rows{lrows} in{lin} r{lr} out{lout} adapters{adapters}"),
            // du, dx, dA and dB: four rank-r products of the forward's size.
            flops: (4 * lrows * lr * (lin + lout)) as u64,
            output_elements: (lrows * lin + adapters * lr * (lin + lout)) as u64,
            run: Box::new(move |d| {
                let x = tensor(d, &[lrows, lin], DType::BF16, 16)?;
                let a = tensor(d, &[adapters, lr, lin], DType::BF16, 17)?;
                let b = tensor(d, &[adapters, lout, lr], DType::BF16, 18)?;
                let dy = tensor(d, &[lrows, lout], DType::BF16, 19)?;
                let ids: Vec<i32> = (0..lrows as i32).map(|i| i % adapters as i32).collect();
                let ids = Tensor::from_slice(&ids, &[lrows])?.to_device(d)?;
                let u = ops::lora_shrink(&x, &a, &ids)?;
                let mut dx = tensor(d, &[lrows, lin], DType::BF16, 20)?;
                let t = ops::LoraBackward {
                    x: &x,
                    mask: None,
                    dy: &dy,
                    u: &u,
                    a: &a,
                    b: &b,
                    ids: &ids,
                    scales: &[0.5; 2],
                };
                ops::lora_backward(&t, &mut dx)?;
                Ok(())
            }),
        },
        Scenario {
            family: "norm",
            shape: format!("rms_norm f32 [{rows}, {cols}]"),
            flops: (4 * rows * cols) as u64,
            output_elements: (rows * cols) as u64,
            run: Box::new(move |d| {
                ops::rms_norm(
                    &tensor(d, &[rows, cols], DType::F32, 11)?,
                    &tensor(d, &[cols], DType::F32, 12)?,
                    1e-5,
                )?;
                Ok(())
            }),
        },
        Scenario {
            family: "elementwise",
            shape: format!("add f32 [{n}]"),
            flops: n as u64,
            output_elements: n as u64,
            run: Box::new(move |d| {
                ops::add(&tensor(d, &[n], DType::F32, 13)?, &tensor(d, &[n], DType::F32, 14)?)?;
                Ok(())
            }),
        },
        Scenario {
            family: "act",
            shape: format!("silu bf16 [{n}]"),
            flops: 4 * n as u64,
            output_elements: n as u64,
            run: Box::new(move |d| {
                ops::silu(&tensor(d, &[n], DType::BF16, 15)?)?;
                Ok(())
            }),
        },
    ]
}

/// The rows of one scenario's launches.
fn rows_of(s: &Scenario, profiles: &[LaunchProfile]) -> Vec<Row> {
    let busiest = profiles
        .iter()
        .enumerate()
        .filter(|(_, p)| p.mma == 0)
        .max_by_key(|(_, p)| p.global_load_bytes + p.global_store_bytes)
        .map(|(i, _)| i);
    let any_mma = profiles.iter().any(|p| p.mma > 0);
    profiles
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let bytes = (p.global_load_bytes + p.global_store_bytes) as f64;
            let (flops, peak) = if p.mma > 0 {
                (p.mma_flops(), H100_TENSOR_FLOPS_PER_US)
            } else if !any_mma && Some(i) == busiest {
                (s.flops, H100_F32_FLOPS_PER_US)
            } else {
                (0, H100_F32_FLOPS_PER_US)
            };
            Row {
                kernel: p.kernel.clone(),
                family: p.family.clone(),
                shape: s.shape.clone(),
                global_load_bytes: p.global_load_bytes,
                global_store_bytes: p.global_store_bytes,
                load_efficiency: p.load_efficiency(),
                store_efficiency: p.store_efficiency(),
                smem_bank_conflict_ways: (p.shared_accesses > 0).then(|| p.smem_bank_conflict_ways()),
                global_atomics: p.global_atomics,
                barriers: p.barriers,
                mma: p.mma,
                flops,
                output_elements: if Some(i) == busiest || profiles.len() == 1 {
                    s.output_elements
                } else {
                    0
                },
                roofline_us_h100: (bytes / H100_BYTES_PER_US).max(flops as f64 / peak),
            }
        })
        .collect()
}

/// The bank-conflict column: "-" when no shared access was seen.
fn banks(ways: Option<f64>) -> String {
    ways.map_or("-".into(), |w| format!("{w:.2}"))
}

pub fn run(root: &Path, args: EmuProfileArgs) -> Result<()> {
    if !ragtune_kernel_emu::profiling_available() {
        bail!("this build of ragtune-kernel-emu has no profiling copies (RAGTUNE_EMU_SANITIZE is set?)");
    }
    let all = scenarios();
    for f in &args.families {
        if !all.iter().any(|s| s.family == f) {
            let known: Vec<&str> = all.iter().map(|s| s.family).collect();
            bail!("no emu-profile scenario for family `{f}` (have: {})", known.join(", "));
        }
    }
    let mut rows = Vec::new();
    for s in all.iter().filter(|s| args.families.is_empty() || args.families.iter().any(|f| f == s.family)) {
        let start = Instant::now();
        let backend = Arc::new(EmuBackend::new(EmuOptions::default()));
        let device = Device::from_backend(backend.clone());
        backend.start_profiling();
        let result = (s.run)(&device);
        let profiles = backend.take_profiles();
        result.with_context(|| s.shape.clone())?;
        // Only the family's own launches: the casts that make bf16 inputs are not the subject.
        let profiles: Vec<LaunchProfile> = profiles.into_iter().filter(|p| p.family == s.family).collect();
        eprintln!("{}: {} launches in {}", s.shape, profiles.len(), crate::seconds(start.elapsed()));
        rows.extend(rows_of(s, &profiles));
    }
    println!(
        "{:<44} {:<38} {:>11} {:>11} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>10}",
        "shape",
        "kernel",
        "load B",
        "store B",
        "ld eff",
        "st eff",
        "banks",
        "atomics",
        "barrier",
        "mma",
        "roof us"
    );
    for r in &rows {
        println!(
            "{:<44} {:<38} {:>11} {:>11} {:>6.3} {:>6.3} {:>6} {:>7} {:>7} {:>7} {:>10.3}",
            r.shape,
            r.kernel,
            r.global_load_bytes,
            r.global_store_bytes,
            r.load_efficiency,
            r.store_efficiency,
            banks(r.smem_bank_conflict_ways),
            r.global_atomics,
            r.barriers,
            r.mma,
            r.roofline_us_h100
        );
    }
    // The bar: every attention, top-k and LoRA launch that reads more than 64 KiB (smaller
    // ones are launch-bound) loads at >= 0.8 efficiency with <= 1.5-way bank conflicts.
    let judged = |r: &&Row| {
        ["attention", "topk", "lora"].contains(&r.family.as_str()) && r.global_load_bytes > 64 * 1024
    };
    let flagged: Vec<&Row> = rows
        .iter()
        .filter(judged)
        .filter(|r| r.load_efficiency < 0.8 || r.smem_bank_conflict_ways.is_some_and(|w| w > 1.5))
        .collect();
    println!(
        "\n{} of {} attention/topk/lora launches reading > 64 KiB miss load_efficiency >= 0.8 or bank \
         conflicts <= 1.5{}",
        flagged.len(),
        rows.iter().filter(judged).count(),
        if flagged.is_empty() { String::new() } else { ":".into() }
    );
    for r in &flagged {
        println!(
            "  {} ({}): load {:.3}, banks {}",
            r.kernel,
            r.shape,
            r.load_efficiency,
            banks(r.smem_bank_conflict_ways)
        );
    }
    if let Some(path) = &args.json {
        let path = if path.is_absolute() { path.clone() } else { root.join(path) };
        std::fs::write(&path, serde_json::to_string_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if !flagged.is_empty() {
        bail!("{} launches miss the bar (listed above)", flagged.len());
    }
    Ok(())
}
