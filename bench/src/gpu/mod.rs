//! The GPU benchmarks (bench/tests/gpu_bench.rs, bench/tests/gpu_train_bench.rs), which travel in
//! the GPU bundle to machines without Rust: how they time ([`timing`]: ceilings, L2 flush,
//! medians), each family's fused kernel against its unfused peer ([`attention`], [`lora`],
//! [`topk`]), the rows file they append to and `cargo xtask bench gpu-rows` reads ([`rows`]),
//! the shapes they run ([`plan`]) and the bundle's time estimate built on them ([`estimate`]).
//! Every piece also runs on the kernel emulator at a tiny size in `cargo test`.

pub mod attention;
pub mod estimate;
pub mod lora;
pub mod plan;
pub mod rows;
pub mod timing;
pub mod topk;
