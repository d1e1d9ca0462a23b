//! Whole-crate checks on a kernel device, against the CPU in the same call: the tiny random
//! Llama and Qwen2 decoders ([`model`]), the flat and IVF indexes ([`index`]) and one training
//! step, LoRA and full ([`train_step`]). Each check builds its inputs from seeds, runs them on
//! `Device::Cpu` and on the device under test, and panics with the case and the error when they
//! disagree. Nothing is read from files, so the checks travel in the GPU bundle, where there is
//! no repository.
//!
//! [`for_each_device_check!`](crate::for_each_device_check) is the one list of them (like
//! [`for_each_parity_suite!`](crate::for_each_parity_suite) for the kernels): it makes one entry
//! function per case here (`device_checks::<group>_<name>(&Device)`), and the test files stamp
//! one test per entry per device from it — `tests/device_checks_emulated.rs`
//! `emulated_<group>_<name>` on the kernel emulator in `cargo test`, the GPU bundle's
//! `tests/gpu_device_checks.rs` `gpu_<group>_<name>` on CUDA.

pub mod index;
pub mod model;
pub mod train_step;

use std::collections::HashMap;
use std::fmt::Display;

use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::{LlamaConfig, LlamaFamily, LlamaModel, RopeConfig, RopeScaling, TensorName, Weights};

use crate::{random_vec, rng};

/// The list: `(group, name, check in the group's module, its arguments after the device)`.
/// Models run in every dtype the runtime takes (f32, bf16, f16); full fine-tuning trains f32
/// weights only, LoRA trains over a frozen base of any of the three.
#[macro_export]
macro_rules! for_each_device_check {
    ($expand:ident) => {
        $expand! {
            (model, llama_f32, logits_and_greedy_tokens, Arch::Llama, DType::F32),
            (model, llama_bf16, logits_and_greedy_tokens, Arch::Llama, DType::BF16),
            (model, llama_f16, logits_and_greedy_tokens, Arch::Llama, DType::F16),
            (model, qwen2_f32, logits_and_greedy_tokens, Arch::Qwen2, DType::F32),
            (model, qwen2_bf16, logits_and_greedy_tokens, Arch::Qwen2, DType::BF16),
            (model, qwen2_f16, logits_and_greedy_tokens, Arch::Qwen2, DType::F16),
            (index, flat, flat),
            (index, ivf, ivf),
            (train_step, lora_llama_f32, lora, Arch::Llama, DType::F32),
            (train_step, lora_qwen2_bf16, lora, Arch::Qwen2, DType::BF16),
            (train_step, lora_llama_f16, lora, Arch::Llama, DType::F16),
            (train_step, full_llama_f32, full, Arch::Llama),
            (train_step, full_qwen2_f32, full, Arch::Qwen2),
        }
    };
}

macro_rules! entry_functions {
    ($(($group:ident, $name:ident, $check:ident $(, $arg:expr)*)),* $(,)?) => {
        paste::paste! { $(
            #[doc = concat!("`", stringify!($group), "::", stringify!($check), "(device",
                $(", ", stringify!($arg),)* ")`.")]
            pub fn [<$group _ $name>](device: &Device) {
                $group::$check(device $(, $arg)*);
            }
        )* }
    };
}
for_each_device_check!(entry_functions);

/// The two decoder shapes checked: a plain Llama (tied head), and a Qwen2 with q/k/v biases, an
/// untied head and a sliding window in its second layer — so the parts real checkpoints switch
/// on and off each run both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
}

/// A tiny decoder of `arch`: small enough for the kernel emulator (hidden 64, 2 layers,
/// vocab 128), with grouped-query attention (4 query heads on 2 KV heads) at head dim 32, the
/// smallest the attention kernels are stamped for; the query width (128) differs from the
/// hidden size, as in models whose heads × head dim is not the hidden size.
pub fn tiny_config(arch: Arch) -> LlamaConfig {
    let qwen2 = arch == Arch::Qwen2;
    LlamaConfig {
        family: if qwen2 { LlamaFamily::Qwen2 } else { LlamaFamily::Llama },
        vocab_size: 128,
        hidden_size: 64,
        intermediate_size: 96,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 32,
        max_position_embeddings: 64,
        rms_norm_eps: 1e-5,
        rope: RopeConfig { theta: 10000.0, scaling: RopeScaling::None, rotary_dim: 32 },
        tie_word_embeddings: !qwen2,
        qkv_bias: qwen2,
        o_bias: false,
        mlp_bias: false,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
        torch_dtype: None,
        // Layer 1 sees the last 5 tokens only; layer 0 the whole context (Qwen2's
        // max_window_layers), so both attention paths run.
        sliding_window: qwen2.then_some(5),
        full_attention_layers: if qwen2 { vec![0] } else { Vec::new() },
    }
}

/// Seeded random f32 host weights for every tensor `config` names (biases and an untied head
/// included). Projections are uniform in ±√3/√in, so each keeps the variance of its input: the
/// layers then change the residual stream as much as the embedding put in it (with smaller
/// weights a tied-head model just predicts the token it was fed, every step alike). The
/// embedding (and head) is uniform in ±0.5, so the logits spread over a few units; norm weights
/// are near 1 and biases near 0, but not exactly, so a kernel that ignores one shows.
pub fn random_weights(config: &LlamaConfig, seed: u64) -> HashMap<String, Tensor> {
    let mut r = rng(seed);
    TensorName::all(config)
        .into_iter()
        .map(|name| {
            let shape = name.shape(config);
            let n: usize = shape.iter().product();
            let values: Vec<f32> = match name {
                TensorName::Norm(..) | TensorName::FinalNorm => {
                    random_vec(&mut r, n, 0.2).into_iter().map(|v| 1.0 + v).collect()
                }
                TensorName::Bias(..) => random_vec(&mut r, n, 0.1),
                TensorName::Embed | TensorName::LmHead => random_vec(&mut r, n, 0.5),
                TensorName::Weight(..) => random_vec(&mut r, n, 3f32.sqrt() / (shape[1] as f32).sqrt()),
            };
            (name.hf(), ok(Tensor::from_slice(&values, &shape), "a weight tensor"))
        })
        .collect()
}

/// The model `weights` make in `dtype` on `device`.
pub fn model_on(
    config: &LlamaConfig,
    weights: &HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
) -> LlamaModel {
    let w = Weights::from_tensors(weights.clone(), "random", dtype, device.clone());
    ok(
        LlamaModel::from_weights(config.clone(), &w),
        format!("loading the tiny {:?} model in {dtype} on {device}", config.family),
    )
}

/// The relative error allowed between a device's result and the CPU's for a whole model
/// (forward, or forward + backward) computed in `dtype`.
///
/// f32: both sides accumulate in f32, but in different orders (tiled kernels, cuBLAS, atomics in
/// the embedding backward), which moves results by a few ulps per op; over two layers, a loss
/// and a backward that stays near 1e-6, so 1e-4 is tight and still far above that noise.
/// bf16 / f16: every stored activation is rounded to 8 (bf16) or 11 (f16) bits; where the two
/// sides' f32 values differ by an ulp, a rounding can land on the other side and move that
/// element by a whole 16-bit ulp (2⁻⁸ relative for bf16), which then travels through the layers.
/// The per-op parity tolerance of docs/ARCHITECTURE.md is 1e-2; a two-layer bf16 model
/// compounds a few of those, so 3e-2. f16 rounds 8 times finer, so it keeps the per-op 1e-2.
/// On the emulator the errors are about 6e-3 (bf16), 7e-4 (f16) and 5e-7 (f32); a wrong
/// kernel gives errors of order one.
pub fn model_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-4,
        DType::F16 => 1e-2,
        _ => 3e-2,
    }
}

/// `result`'s value, or a panic naming `what` and the error: a device or library error is a
/// failed check, reported with what was being done.
#[track_caller]
pub fn ok<T, E: Display>(result: Result<T, E>, what: impl Display) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A tensor's values as f32 on the host.
#[track_caller]
pub fn values(t: &Tensor, what: impl Display) -> Vec<f32> {
    ok(t.to_vec_f32(), format_args!("reading {what}"))
}

/// Assert that the device's `got` is within `tol` (relative, see [`crate::rel_err`]) of the
/// CPU's `want`.
#[track_caller]
pub fn assert_near(what: impl Display, got: &[f32], want: &[f32], tol: f64) {
    let reference: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    crate::assert_close(&what.to_string(), got, &reference, tol);
}
