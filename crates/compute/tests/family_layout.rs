//! The source tree lines up with the kernel families: for every `kernels/<family>.cu` there is
//! an op layer `src/ops/<family>.rs`, a CPU implementation `src/cpu/<family>.rs` (or
//! `src/cpu/<family>/mod.rs`) and a launch file `src/gpu/<family>.rs`, each holding the family's
//! forward and backward; and nothing else sits in those folders but what the lists below name
//! and say why.

use std::collections::BTreeSet;
use std::path::Path;

/// Ops with no `.cu` file: products run on the `gemm` crate / cuBLAS, copies on memcpy.
const LIBRARY_BACKED: [&str; 2] = ["matmul", "copy"];
/// CPU-only support code with no GPU counterpart: SIMD math (vector exp, the decode GEMVs and
/// their dispatch), quantized GGUF blocks, the bf16 and int8 screens that speed the exact top-k, the
/// allocator setting for host buffers, the thread pool that model-sized calls run on.
const CPU_SUPPORT: [&str; 7] = ["alloc", "gemv", "gemv_simd", "pool", "quant", "topk_screen", "vexp"];
/// Shared checks of the training ops' f32 operands.
const OPS_SUPPORT: [&str; 1] = ["f32_operands"];

/// The modules in `src/<dir>`: file stems and sub-folders, without `mod`.
fn modules(dir: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_str().unwrap().to_string()
        })
        .filter(|m| m != "mod")
        .collect()
}

fn families() -> BTreeSet<String> {
    ragtune_compute::kernel_sources::families().iter().map(|f| f.family.to_string()).collect()
}

fn check(dir: &str, extra: &[&str]) {
    let found = modules(dir);
    let mut want = families();
    want.extend(extra.iter().map(|s| s.to_string()));
    assert_eq!(found, want, "src/{dir}: one module per kernel family, plus {extra:?}");
}

#[test]
fn ops_line_up_with_the_kernel_families() {
    let extra: Vec<&str> = LIBRARY_BACKED.iter().chain(&OPS_SUPPORT).copied().collect();
    check("ops", &extra);
}

#[test]
fn cpu_implementations_line_up_with_the_kernel_families() {
    let extra: Vec<&str> = ["matmul"].iter().chain(&CPU_SUPPORT).copied().collect();
    check("cpu", &extra);
}

#[test]
fn gpu_launches_line_up_with_the_kernel_families() {
    check("gpu", &["matmul"]);
}

#[test]
fn backward_passes_sit_beside_their_forward() {
    for dir in ["ops", "cpu", "gpu"] {
        assert!(
            !modules(dir).contains("backward"),
            "src/{dir}/backward.rs: move each backward to its family's file"
        );
    }
}
