//! The kernel parity suites on a real GPU (CUDA through cudarc and NVRTC) against the CPU: one
//! test per entry of the list the emulator runs too (`ragtune_tests::suites`), named
//! `gpu_<family>_<name>`. Skipped with a printed reason where no GPU is usable; fails then under
//! RAGTUNE_REQUIRE_GPU=1.

use ragtune_tests::{gpu::cuda_or_skip, parity, rng};

macro_rules! gpu_suites {
    ($(($family:ident, $name:ident, $check:ident, $seed:literal, $schedules:ident)),* $(,)?) => {
        paste::paste! { $(
            #[test]
            fn [<gpu_ $family _ $name>]() {
                if let Some(d) = cuda_or_skip(stringify!([<gpu_ $family _ $name>])) {
                    parity::$check(&d, &mut rng($seed));
                }
            }
        )* }
    };
}

ragtune_tests::for_each_parity_suite!(gpu_suites);
