//! The one list of parity suites, for every device (the way ggml's backend-ops test and candle's
//! per-device test macro keep theirs): each entry names the kernel family it checks, the test's
//! name, the check in [`crate::parity`], its seed, and how many emulator schedules it needs.
//!
//! [`for_each_parity_suite!`](crate::for_each_parity_suite) hands the list to a macro of the
//! caller's, which stamps out one `#[test]` per entry for its device: `tests/kernels_emulated.rs`
//! names them `emulated_<family>_<name>`, the GPU bundle's `tests/gpu_ops.rs` `gpu_<family>_<name>`.
//! [`SUITES`] is the same list as data, for the coverage check that runs them all and compares the
//! kernels launched with the kernels built.

use ragtune_compute::Device;
use rand_chacha::ChaCha8Rng;

/// The list: `(family, name, parity check, seed, schedules)`. `schedules` is `all` where thread
/// order can matter (reductions, barriers, atomics) and `one` where a kernel has no cross-thread
/// dependence worth three schedules (elementwise-exact casts, the host-side GEMM).
#[macro_export]
macro_rules! for_each_parity_suite {
    ($expand:ident) => {
        $expand! {
            (matmul, products, matmul, 21, one),
            (norm, rms_and_layer_norm, norms, 22, all),
            (norm, l2_normalize, l2_normalize, 26, all),
            (norm, rms_norm_backward, rms_norm_backward, 39, all),
            (softmax, rows, softmax, 23, all),
            (elementwise, binary_scale_and_activations, elementwise, 24, all),
            (cast, every_pair_exactly, cast, 25, one),
            (topk, search, topk, 27, all),
            (topk, ivf, topk_ivf, 45, all),
            (kmeans, assign_and_update, kmeans, 28, all),
            (attention, prefill_and_decode, attention, 31, all),
            (attention, sliding_window, sliding_window_attention, 36, all),
            (attention, backward, attention_backward, 34, all),
            (rope, rotation, rope, 32, all),
            (embed, lookup, embedding, 33, all),
            (embed, embedding_backward, embedding_backward, 37, all),
            (act, swiglu, swiglu, 40, all),
            (act, swiglu_backward, swiglu_backward, 38, all),
            (copy, copy_into, copy_into, 41, all),
            (optim, adamw, adamw, 42, all),
            (loss, cross_entropy, cross_entropy, 43, all),
            (lora, shrink_expand_and_backward, lora, 44, all),
        }
    };
}

/// One entry of the list.
#[derive(Clone, Copy, Debug)]
pub struct Suite {
    /// The kernel family (`kernels/<family>.cu`), or `matmul` / `copy` for library-backed ops.
    pub family: &'static str,
    pub name: &'static str,
    pub check: fn(&Device, &mut ChaCha8Rng),
    pub seed: u64,
}

macro_rules! suite_table {
    ($(($family:ident, $name:ident, $check:ident, $seed:literal, $schedules:ident)),* $(,)?) => {
        /// Every suite, in the list's order.
        pub const SUITES: &[Suite] = &[$(Suite {
            family: stringify!($family),
            name: stringify!($name),
            check: $crate::parity::$check,
            seed: $seed,
        }),*];
    };
}
for_each_parity_suite!(suite_table);
