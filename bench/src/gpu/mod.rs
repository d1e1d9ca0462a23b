//! The GPU benchmarks (bench/tests/gpu_bench.rs, bench/tests/gpu_train_bench.rs), which travel in
//! the GPU bundle to machines without Rust: how they time ([`timing`]: ceilings, L2 flush,
//! medians), each family's fused kernel against its unfused peer ([`attention`], [`lora`],
//! [`topk`]), and the rows file they append to and `cargo xtask bench gpu-rows` reads ([`rows`]).
//! Every piece also runs on the kernel emulator at a tiny size in `cargo test`.

pub mod attention;
pub mod lora;
pub mod rows;
pub mod timing;
pub mod topk;
