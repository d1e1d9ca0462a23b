//! What the GPU benchmarks run, in one place: the shapes and repeat counts of
//! bench/tests/gpu_bench.rs and bench/tests/gpu_train_bench.rs. The tests read them from here, and
//! so does the bundle's time estimate ([`crate::gpu::estimate`]), so a row added to a benchmark
//! is a row the estimate counts.

use ragtune_compute::DType;

use crate::gpu::lora::LayerShape;

/// Timed repeats per measurement (after two untimed warm-ups).
pub const REPEATS: usize = 20;
/// The compute ceiling's bf16 GEMM is `CEILING_GEMM_N`³ (with the 1 GiB copy, enough to fill an
/// H100).
pub const CEILING_GEMM_N: usize = 8192;
/// The bandwidth ceiling's device-to-device copy, in bytes.
pub const CEILING_COPY_BYTES: usize = 1 << 30;
/// The buffer overwritten between timed repeats (five times an H100's L2).
pub const FLUSH_BYTES: usize = 256 << 20;

/// Attention rows: `(b·h, seq, head_dim, dtype)`, causal.
pub const ATTENTION: &[(usize, usize, usize, DType)] = &[
    (32, 1024, 128, DType::BF16),
    (32, 1024, 128, DType::F16),
    (32, 4096, 128, DType::BF16),
    (32, 4096, 128, DType::F16),
    (32, 8192, 128, DType::BF16),
    (32, 8192, 128, DType::F16),
    (64, 2048, 64, DType::BF16),
];

/// Top-k rows search one base of `TOPK_BASE` rows × `TOPK_DIM`; each row is `(queries, k, dtype)`.
pub const TOPK_BASE: usize = 1 << 20;
/// The top-k base's dimension.
pub const TOPK_DIM: usize = 384;
/// Queries of a top-k measurement that the CPU op answers too, to check the device's answers:
/// two of the fused kernel's 64-query blocks.
pub const CHECK_QUERIES: usize = 128;
/// Top-k rows: `(queries, k, dtype)`. One query streams the base (bandwidth); batches are
/// GEMM-shaped; k = 2048 takes the radix path (FAISS GPU's largest k).
pub const TOPK: &[(usize, usize, DType)] =
    &[(1, 10, DType::F32), (1024, 10, DType::BF16), (1024, 100, DType::BF16), (64, 2048, DType::BF16)];

/// LoRA rows, forward and backward each: `(rows, in, out, r, adapters)`, all bf16. A
/// Llama-8B-sized attention projection and MLP up-projection over 4096 tokens, r = 16; and four
/// adapters mixed in one batch. The backward is the trainer's: adapted projections on a frozen base.
pub const LORA: &[LayerShape] =
    &[(4096, 4096, 4096, 16, 1), (4096, 4096, 14336, 16, 1), (4096, 4096, 4096, 16, 4)];
/// Rows of a LoRA measurement that the CPU reference recomputes (the device is checked on all
/// of them against its unfused GEMMs).
pub const CHECK_ROWS: usize = 256;
/// The LoRA rows' dtype.
pub const LORA_DTYPE: DType = DType::BF16;

/// Training-step rows (SmolLM2-135M's shape, random weights): `(rows, seq)` tokens per step.
pub const TRAIN_BATCH: (usize, usize) = (8, 512);
/// Timed training steps (each of LoRA and full), after the learning check's steps.
pub const TRAIN_REPEATS: usize = 10;
/// Steps the learning check takes before timing (one first, then this many).
pub const TRAIN_CHECK_STEPS: usize = 4;
