//! How long the GPU bundle (`cargo xtask gpu-check`) holds an H100, estimated on a machine without
//! one: `cargo xtask gpu-estimate` measures what it can here and models the rest.
//!
//! The bundle's time splits into parts that are each either measured here or bounded from the
//! device's roofline:
//!
//! - **Kernel compiles**: NVRTC for `sm_90a`, every family once (run.sh shares one kernel cache
//!   across the binaries). Measured here by the xtask with the NVRTC the GPU machines run.
//! - **Kernel and device checks** (`gpu_ops`, `gpu_device_checks`, `gpu_memory`): small shapes,
//!   so the host dominates. Each check is run here with the CPU as the device under test, which
//!   does the host's share (inputs, the CPU reference, comparisons) plus a CPU stand-in for the
//!   device's share: an upper bound on its host time. Its launches are counted on the kernel
//!   emulator and charged [`Gpu::launch_s`] each.
//! - **Benchmarks** (`gpu_bench`, `gpu_train_bench`): large shapes from [`crate::gpu::plan`]. Host
//!   work — seeded inputs, the CPU references of the top-k and LoRA rows, the f64 check of the
//!   GEMM ceiling, transfers — is counted per row and priced at rates measured here
//!   ([`HostRates`]); device work is each launch's roofline (bytes at the HBM bandwidth, FLOPs at
//!   the tensor-core or f32 peak) divided by [`Gpu::efficiency`], times the calls the benchmark
//!   makes (one check, two warm-ups, the repeats, an L2 flush before each repeat).
//! - **Fixed costs**: CUDA context, cuBLAS and module loads per binary ([`Gpu::binary_start_s`]),
//!   and the sanitizer pass, which run.sh caps at [`SANITIZER_BUDGET_S`] and counts in full.
//!
//! Host rates are taken on the 2-core build machine, so host terms are upper bounds for a GPU
//! host with more and faster cores.

use ragtune_compute::DType;
use ragtune_runtime::{LlamaConfig, TensorName};

use crate::gpu::plan::{self, REPEATS};

/// run.sh's default `RAGTUNE_SANITIZER_BUDGET_S`: the sanitizer pass's cap.
pub const SANITIZER_BUDGET_S: f64 = 240.0;
/// The bundle's bar: eight minutes of GPU time.
pub const BUDGET_S: f64 = 480.0;
/// Test binaries in the bundle (tests/tests/gpu_*.rs and bench/tests/gpu_*.rs).
pub const BINARIES: usize = 5;
/// Calls per benchmark measurement beyond the timed repeats: one checked call and two warm-ups.
const EXTRA_CALLS: usize = 3;

/// The GPU machine: an H100 SXM's peaks, and the assumptions the estimate makes about it.
#[derive(Clone, Copy, Debug)]
pub struct Gpu {
    /// HBM3 bandwidth, bytes/s.
    pub bytes_per_s: f64,
    /// Dense bf16/f16 tensor-core peak, FLOP/s.
    pub tensor_flops: f64,
    /// f32 (non-tensor) peak, FLOP/s.
    pub f32_flops: f64,
    /// The fraction of the roofline a launch reaches (assumed; the emulated profiler shows the
    /// kernels' access patterns near the bound, so half is conservative).
    pub efficiency: f64,
    /// Host↔device copies, bytes/s (assumed; pageable memory over PCIe).
    pub link_bytes_per_s: f64,
    /// One small launch with its share of synchronisation and allocation, seconds (assumed).
    pub launch_s: f64,
    /// Process start, CUDA context, cuBLAS handle and module loads per binary, seconds (assumed).
    pub binary_start_s: f64,
}

/// The H100 SXM the bundle is sized for.
pub const H100: Gpu = Gpu {
    bytes_per_s: 3.35e12,
    tensor_flops: 989e12,
    f32_flops: 67e12,
    efficiency: 0.5,
    link_bytes_per_s: 10e9,
    launch_s: 20e-6,
    binary_start_s: 3.0,
};

/// Host rates, measured on the machine running the estimate.
#[derive(Clone, Copy, Debug)]
pub struct HostRates {
    /// Seeded random bf16 elements per second (`ragtune_bench::random_tensor`).
    pub random_elements_per_s: f64,
    /// The CPU's bf16 matrix product (`ops::matmul` on `Device::Cpu`), FLOP/s.
    pub cpu_gemm_flops: f64,
    /// The CPU's bf16 similarity + top-k (`ops::topk_similarity`), FLOP/s.
    pub cpu_topk_flops: f64,
    /// The GEMM ceiling's check: f64 multiply-adds over rows of B, FLOP/s.
    pub f64_loop_flops: f64,
}

/// One line of the estimate.
#[derive(Clone, Debug)]
pub struct Term {
    pub part: String,
    pub host_s: f64,
    pub device_s: f64,
}

impl Term {
    pub fn seconds(&self) -> f64 {
        self.host_s + self.device_s
    }
}

/// Host and device seconds of the work one piece of a benchmark does.
#[derive(Clone, Copy, Debug, Default)]
struct Work {
    random: f64,
    cpu_gemm: f64,
    cpu_topk: f64,
    f64_loop: f64,
    link_bytes: f64,
    device_s: f64,
}

impl std::ops::Add for Work {
    type Output = Work;

    fn add(self, w: Work) -> Work {
        Work {
            random: self.random + w.random,
            cpu_gemm: self.cpu_gemm + w.cpu_gemm,
            cpu_topk: self.cpu_topk + w.cpu_topk,
            f64_loop: self.f64_loop + w.f64_loop,
            link_bytes: self.link_bytes + w.link_bytes,
            device_s: self.device_s + w.device_s,
        }
    }
}

impl std::iter::Sum for Work {
    fn sum<I: Iterator<Item = Work>>(parts: I) -> Work {
        parts.fold(Work::default(), |acc, w| acc + w)
    }
}

impl Work {
    fn term(self, part: String, h: &HostRates, g: &Gpu) -> Term {
        let host_s = self.random / h.random_elements_per_s
            + self.cpu_gemm / h.cpu_gemm_flops
            + self.cpu_topk / h.cpu_topk_flops
            + self.f64_loop / h.f64_loop_flops
            + self.link_bytes / g.link_bytes_per_s;
        Term { part, host_s, device_s: self.device_s }
    }
}

/// Seconds of one launch at `efficiency` of its roofline.
fn roofline(g: &Gpu, bytes: f64, flops: f64, tensor: bool) -> f64 {
    let peak = if tensor { g.tensor_flops } else { g.f32_flops };
    (bytes / g.bytes_per_s).max(flops / peak) / g.efficiency
}

/// Seconds of one timed measurement: `per_call` seconds a call, over the checked call, the
/// warm-ups and the repeats, plus an L2 flush (a read and a write of the flush buffer) before
/// each repeat.
fn measured(g: &Gpu, per_call: f64) -> f64 {
    let flush = roofline(g, 2.0 * plan::FLUSH_BYTES as f64, 0.0, false);
    (REPEATS + EXTRA_CALLS) as f64 * per_call + REPEATS as f64 * flush
}

fn size(dtype: DType) -> f64 {
    dtype.size() as f64
}

/// The ceilings every benchmark test measures first (timing.rs `measure_ceilings`).
fn ceilings(g: &Gpu) -> Work {
    let n = plan::CEILING_GEMM_N as f64;
    let copy = plan::CEILING_COPY_BYTES as f64;
    Work {
        random: 2.0 * n * n + copy / 4.0,
        f64_loop: 2.0 * 2.0 * n * n,
        // A and B up, C down; the copy's source up and its result down.
        link_bytes: 2.0 * n * n * 2.0 + n * n * 4.0 + 2.0 * copy,
        device_s: measured(g, roofline(g, 0.0, 2.0 * n * n * n, true))
            + measured(g, roofline(g, 2.0 * copy, 0.0, false)),
        ..Work::default()
    }
}

/// One attention row: fused against the naive path (two GEMMs and a softmax over the full
/// score matrix in f32), each checked once and timed.
fn attention(g: &Gpu, (bh, s, d, dtype): (usize, usize, usize, DType)) -> Work {
    let (bh, s, d) = (bh as f64, s as f64, d as f64);
    let qkv = 3.0 * bh * s * d;
    let causal_flops = 4.0 * bh * s * s * d / 2.0;
    let scores = bh * s * s * 4.0;
    Work {
        random: qkv,
        link_bytes: qkv * size(dtype) + 2.0 * bh * s * d * 4.0,
        device_s: measured(g, roofline(g, qkv * size(dtype), causal_flops, true))
            + measured(g, roofline(g, 4.0 * scores, 2.0 * causal_flops, true)),
        ..Work::default()
    }
}

/// One top-k row over its dtype's base (drawn by [`topk_bases`]): the CPU op's answers for the
/// first queries, then fused against the score GEMM alone (which writes every score).
fn topk(g: &Gpu, (nq, k, dtype): (usize, usize, DType)) -> Work {
    let (n, d) = (plan::TOPK_BASE as f64, plan::TOPK_DIM as f64);
    let checked = nq.min(plan::CHECK_QUERIES) as f64;
    let nq = nq as f64;
    let flops = 2.0 * nq * n * d;
    let read = (n + nq) * d * size(dtype);
    let tensor = dtype != DType::F32;
    Work {
        random: nq * d,
        cpu_topk: 2.0 * checked * n * d,
        link_bytes: nq * d * size(dtype) + nq * k as f64 * 8.0,
        device_s: measured(g, roofline(g, read, flops, tensor))
            + measured(g, roofline(g, read + nq * n * 4.0, flops, tensor)),
        ..Work::default()
    }
}

/// The top-k bases: one per dtype of the plan's rows, drawn and uploaded once.
fn topk_bases() -> Work {
    let mut dtypes: Vec<DType> = Vec::new();
    for &(_, _, dtype) in plan::TOPK {
        if !dtypes.contains(&dtype) {
            dtypes.push(dtype);
        }
    }
    let elements = (plan::TOPK_BASE * plan::TOPK_DIM) as f64;
    Work {
        random: dtypes.len() as f64 * elements,
        link_bytes: dtypes.iter().map(|&d| elements * size(d)).sum(),
        ..Work::default()
    }
}

/// One LoRA row, forward or backward: the inputs, the CPU reference on the first rows (the base
/// product dominates), and the three timed variants (LoRA layer, base GEMM alone, unfused GEMMs).
fn lora(g: &Gpu, (rows, inp, out, r, adapters): (usize, usize, usize, usize, usize), backward: bool) -> Work {
    let (rows, inp, out, r, a) = (rows as f64, inp as f64, out as f64, r as f64, adapters as f64);
    let dtype = plan::LORA_DTYPE;
    let checked = rows.min(plan::CHECK_ROWS as f64);
    let base_flops = 2.0 * rows * inp * out;
    let rank_flops = 2.0 * rows * r * (inp + out) * if backward { 2.0 } else { 1.0 };
    let inputs = rows * inp + out * inp + a * r * (inp + out) + if backward { rows * out } else { 0.0 };
    let out_elements = if backward { rows * inp } else { rows * out };
    let bytes = (rows * inp + out * inp + rows * out) * size(dtype);
    let per_call = roofline(g, bytes, base_flops + rank_flops, true);
    Work {
        random: inputs,
        // The CPU recomputes the first CHECK_ROWS rows.
        cpu_gemm: (base_flops + rank_flops) * checked / rows,
        // Inputs up (and down again for the CPU reference), three outputs down.
        link_bytes: 2.0 * inputs * size(dtype) + 3.0 * out_elements * 4.0,
        device_s: 3.0 * measured(g, per_call),
        ..Work::default()
    }
}

/// The training steps (gpu_train_bench): SmolLM2-135M's shape, random weights made twice (a bf16
/// model for LoRA, an f32 one for full fine-tuning), the learning check's steps, then the timed
/// ones. A step is 4·params·tokens FLOPs with LoRA (bf16 tensor cores) and 6·params·tokens full
/// (f32).
fn train(g: &Gpu, config: &LlamaConfig) -> Work {
    let params: f64 =
        TensorName::all(config).into_iter().map(|n| n.shape(config).iter().product::<usize>() as f64).sum();
    let tokens = (plan::TRAIN_BATCH.0 * plan::TRAIN_BATCH.1) as f64;
    let steps = (1 + plan::TRAIN_CHECK_STEPS + plan::TRAIN_REPEATS) as f64;
    Work {
        random: 2.0 * params,
        link_bytes: params * (2.0 + 4.0),
        device_s: steps
            * (roofline(g, 0.0, 4.0 * params * tokens, true)
                + roofline(g, 0.0, 6.0 * params * tokens, false)),
        ..Work::default()
    }
}

/// The benchmarks' terms: one per test function of gpu_bench.rs and gpu_train_bench.rs. Each
/// binary measures the ceilings once (its first test), so they count in the first term of each.
pub fn benchmark_terms(h: &HostRates, g: &Gpu, train_config: &LlamaConfig) -> Vec<Term> {
    let attention: Work =
        std::iter::once(ceilings(g)).chain(plan::ATTENTION.iter().map(|&row| attention(g, row))).sum();
    let topk: Work = std::iter::once(topk_bases()).chain(plan::TOPK.iter().map(|&row| topk(g, row))).sum();
    let lora: Work = plan::LORA.iter().flat_map(|&s| [lora(g, s, false), lora(g, s, true)]).sum();
    let train = ceilings(g) + train(g, train_config);
    vec![
        attention.term(format!("gpu_bench: ceilings, attention ({} rows)", plan::ATTENTION.len()), h, g),
        topk.term(format!("gpu_bench: top-k ({} rows)", plan::TOPK.len()), h, g),
        lora.term(format!("gpu_bench: LoRA ({} rows, forward and backward)", plan::LORA.len()), h, g),
        train.term("gpu_train_bench: ceilings, LoRA and full steps".into(), h, g),
    ]
}

/// The checks' term: `host_s` measured with the CPU as the device, `launches` counted on the
/// emulator.
pub fn checks_term(part: &str, host_s: f64, launches: usize, g: &Gpu) -> Term {
    Term { part: part.into(), host_s, device_s: launches as f64 * g.launch_s }
}

/// The fixed terms: compiles (measured by the caller), binary starts, and the sanitizer's cap.
pub fn fixed_terms(compile_s: f64, g: &Gpu) -> Vec<Term> {
    vec![
        Term {
            part: "NVRTC compile of every kernel family for sm_90a".into(),
            host_s: compile_s,
            device_s: 0.0,
        },
        Term {
            part: format!("{BINARIES} binaries: process, CUDA context, cuBLAS"),
            host_s: BINARIES as f64 * g.binary_start_s,
            device_s: 0.0,
        },
        Term {
            part: "compute-sanitizer pass (run.sh's cap, counted in full)".into(),
            host_s: 0.0,
            device_s: SANITIZER_BUDGET_S,
        },
    ]
}

/// A Markdown table of the terms and their total against [`BUDGET_S`].
pub fn table(terms: &[Term]) -> String {
    let mut s = String::from("| part | host s | device s | total s |\n|---|---|---|---|\n");
    for t in terms {
        s += &format!("| {} | {:.1} | {:.1} | {:.1} |\n", t.part, t.host_s, t.device_s, t.seconds());
    }
    let total: f64 = terms.iter().map(Term::seconds).sum();
    s += &format!(
        "| **whole bundle** | | | **{total:.0}** ({:.1} min; the bar is {:.0} min) |\n",
        total / 60.0,
        BUDGET_S / 60.0
    );
    s
}
