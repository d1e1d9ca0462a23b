//! Shared pieces of ragtune's benchmarks: seeded inputs and FLOP counts by the conventions of
//! PERFORMANCE.md, so every bench reports rates the same way; and the `cargo xtask bench`
//! machinery: the timing [`harness`], the CPU [`suites`], the [`report`] (report.md +
//! report.json) and the [`baseline`] comparison.

pub mod baseline;
pub mod gpu;
pub mod harness;
pub mod report;
pub mod suites;

use std::collections::HashMap;

use ragtune_compute::{DType, Device, Tensor, ops};
use ragtune_runtime::llama::LayerNorm;
use ragtune_runtime::{
    LlamaConfig, LlamaFamily, LlamaModel, Projection, RopeConfig, RopeScaling, TensorName, Weights,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A host tensor of `dtype` with values uniform in [-1, 1), reproducible by `seed`.
pub fn random_tensor(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    random_scaled(seed, shape, dtype, 1.0)
}

/// Elements per independently seeded stream of [`random_scaled`].
const RANDOM_CHUNK: usize = 1 << 16;

/// A host tensor of `dtype` with values uniform in [-scale, scale), reproducible by `seed`. The
/// elements come in chunks of 64 Ki, each from its own stream seeded by `(seed, chunk)`, on
/// rayon's threads: the GPU benchmarks draw gigabytes of inputs, and a GPU is lent by the minute.
pub fn random_scaled(seed: u64, shape: &[usize], dtype: DType, scale: f32) -> Tensor {
    use rayon::prelude::*;
    let n: usize = shape.iter().product();
    let mut v = vec![0f32; n];
    v.par_chunks_mut(RANDOM_CHUNK).enumerate().for_each(|(chunk, out)| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(chunk as u64);
        out.iter_mut().for_each(|x| *x = rng.random_range(-scale..scale));
    });
    ops::cast(&Tensor::from_slice(&v, shape).expect("shape"), dtype).expect("cast")
}

/// FLOPs of an `m × n × k` matrix product: 2·m·n·k.
pub fn gemm_flops(m: usize, n: usize, k: usize) -> u64 {
    2 * (m * n * k) as u64
}

/// The shape of SmolLM2-135M (hidden 576, 30 layers, 9 heads / 3 KV heads, MLP 1536, vocab
/// 49152, tied head).
pub fn smollm2_config() -> LlamaConfig {
    LlamaConfig {
        family: LlamaFamily::Llama,
        vocab_size: 49152,
        hidden_size: 576,
        intermediate_size: 1536,
        num_layers: 30,
        num_heads: 9,
        num_kv_heads: 3,
        head_dim: 64,
        max_position_embeddings: 8192,
        rms_norm_eps: 1e-5,
        rope: RopeConfig { theta: 100000.0, scaling: RopeScaling::None, rotary_dim: 64 },
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
        torch_dtype: None,
        sliding_window: None,
        full_attention_layers: Vec::new(),
    }
}

/// Random f32 weights scaled like an initialised model (|w| ≲ 0.05), norms at 1, on the CPU.
pub fn random_llama(config: LlamaConfig) -> LlamaModel {
    random_llama_on(config, DType::F32, &Device::Cpu)
}

/// The tensors of [`random_llama`], by their Hugging Face names (host, f32). The draw order
/// (embedding, final norm, then each layer) fixes the seeds, so it stays as it is.
pub fn random_weights(c: &LlamaConfig) -> HashMap<String, Tensor> {
    let layers = (0..c.num_layers).flat_map(|l| {
        [TensorName::Norm(l, LayerNorm::Input), TensorName::Norm(l, LayerNorm::PostAttention)]
            .into_iter()
            .chain(Projection::ALL.map(|p| TensorName::Weight(l, p)))
    });
    let mut t = HashMap::new();
    for (seed, name) in (1..).zip([TensorName::Embed, TensorName::FinalNorm].into_iter().chain(layers)) {
        let shape = name.shape(c);
        let w = if shape.len() == 1 {
            Tensor::from_slice(&vec![1f32; shape[0]], &shape).unwrap()
        } else {
            ragtune_compute::ops::scale(&random_tensor(seed, &shape, DType::F32), 0.05).unwrap()
        };
        t.insert(name.hf(), w);
    }
    t
}

/// [`random_llama`]'s weights in `dtype` on `device` (the GPU benchmarks' models).
pub fn random_llama_on(config: LlamaConfig, dtype: DType, device: &Device) -> LlamaModel {
    let weights = Weights::from_tensors(random_weights(&config), "random", dtype, device.clone());
    LlamaModel::from_weights(config, &weights).unwrap()
}

/// The benchmarks' adapter: LoRA r = 16, α = 32 on all seven projections, no dropout.
pub fn lora_r16_all_targets() -> ragtune_trainer::LoraConfig {
    ragtune_trainer::LoraConfig {
        r: 16,
        alpha: 32.0,
        use_rslora: false,
        dropout: 0.0,
        targets: ragtune_trainer::Target::ALL.to_vec(),
        layers: None,
    }
}

/// `model` as a Hugging Face folder in `dir` (config.json + model.safetensors, written by the
/// trainer's model writer), so a Python peer loads exactly the weights ragtune runs. Only what
/// transformers' LlamaForCausalLM reads is written: the benchmarks' models are plain Llamas.
pub fn write_hf_folder(model: &LlamaModel, dir: &std::path::Path) -> anyhow::Result<()> {
    let config = model.config.llama_config_json("float32");
    let source = dir.with_extension("src");
    std::fs::create_dir_all(&source)?;
    std::fs::write(source.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    ragtune_trainer::merge::save_model_folder(model, &source, dir)?;
    std::fs::remove_dir_all(&source)?;
    Ok(())
}

/// Greedy decode of `n` new tokens after `prompt` (stop tokens ignored): the tokens and the
/// decode rate in tokens/s, timed from the first token (which the prefill makes) to the last.
pub fn greedy_decode_rate(model: &LlamaModel, prompt: &[u32], n: usize) -> (Vec<u32>, f64) {
    let mut options = ragtune_runtime::GenerateOptions::for_model(model, n);
    options.stop_tokens.clear();
    let mut first = None;
    let out = ragtune_runtime::generate(model, &[prompt.to_vec()], &options, |_, _| {
        first.get_or_insert_with(std::time::Instant::now);
        Ok(())
    })
    .expect("generate");
    let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    (out[0].tokens.clone(), (n - 1) as f64 / secs)
}
