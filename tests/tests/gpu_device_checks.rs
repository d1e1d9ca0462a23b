//! The device checks on a real GPU (CUDA through cudarc and NVRTC) against the CPU: tiny random
//! Llama and Qwen2 models (logits and greedy tokens in f32, bf16 and f16), the flat and IVF
//! indexes, and one LoRA and one full training step — one test per entry of the list the
//! emulator runs too (`ragtune_tests::device_checks`), named `gpu_<group>_<name>`. Skipped with
//! a printed reason where no GPU is usable; fails then under RAGTUNE_REQUIRE_GPU=1.

use ragtune_tests::device_checks;
use ragtune_tests::gpu::cuda_or_skip;

macro_rules! gpu_checks {
    ($(($group:ident, $name:ident, $check:ident $(, $arg:expr)*)),* $(,)?) => {
        paste::paste! { $(
            #[test]
            fn [<gpu_ $group _ $name>]() {
                if let Some(d) = cuda_or_skip(stringify!([<gpu_ $group _ $name>])) {
                    device_checks::[<$group _ $name>](&d);
                }
            }
        )* }
    };
}

ragtune_tests::for_each_device_check!(gpu_checks);
