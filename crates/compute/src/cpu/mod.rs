//! The CPU side of every op family: the fallback users run without a GPU, and the reference the
//! kernels in `kernels/*.cu` are checked against. Functions work on slices; `ops` does the
//! checking and the dispatch. Written for speed: rayon across rows, f32 accumulation in
//! SIMD-friendly loops, the `gemm` crate for matrix products.

pub mod act;
pub mod alloc;
pub mod attention;
pub mod cast;
pub mod elementwise;
pub mod embed;
pub mod gemv;
pub mod gemv_simd;
pub mod kmeans;
pub mod lora;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod quant;
pub mod rope;
pub mod softmax;
pub mod topk;
pub mod topk_screen;
pub mod vexp;

/// Rows handled per rayon task: enough work to amortise the task, small enough to balance.
pub(crate) fn rows_per_task(cols: usize) -> usize {
    (16 * 1024 / cols.max(1)).clamp(1, 4096)
}

/// The CPU's model name (`model name` in /proc/cpuinfo), where there is one: for the reports and
/// diagnostics that say what machine ran (`ragtune doctor`, the experiment and bench reports).
pub fn model_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    line.split_once(':').map(|(_, v)| v.trim().to_string())
}

/// Elements per rayon task for elementwise work.
pub(crate) const ELEMS_PER_TASK: usize = 32 * 1024;
