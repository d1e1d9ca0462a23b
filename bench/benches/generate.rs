//! Generation speed on the CPU for a SmolLM2-135M-sized decoder with random weights (hidden 576,
//! 30 layers, 9 heads / 3 KV heads, MLP 1536, vocab 49152, tied head; f32): prefill tokens/s
//! for a 128-token prompt, and decode tokens/s for batch 1 after it, next to the
//! memory-bandwidth floor. Decode must read every weight once per token, so the floor is
//! `weight bytes / copy bandwidth`, the bandwidth measured by a large copy in the same run.
//!
//! Run: `cargo bench -p ragtune-bench --bench generate` (prints a table; no criterion: the
//! numbers that matter are ratios to the floor measured alongside).

use std::collections::HashMap;
use std::time::Instant;

use ragtune_bench::random_tensor;
use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::{
    KvCache, LlamaConfig, LlamaFamily, LlamaModel, LogitsWanted, RopeConfig, RopeScaling, Weights,
};

fn smollm2_config() -> LlamaConfig {
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
    }
}

/// Random weights scaled like an initialised model (|w| ≲ 0.05), norms at 1.
fn random_model(config: LlamaConfig) -> LlamaModel {
    let c = &config;
    let (h, i, q, kv) =
        (c.hidden_size, c.intermediate_size, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let mut t = HashMap::new();
    let mut seed = 0;
    let mut add = |name: String, shape: &[usize]| {
        seed += 1;
        let w = if shape.len() == 1 {
            Tensor::from_slice(&vec![1f32; shape[0]], shape).unwrap()
        } else {
            ragtune_compute::ops::scale(&random_tensor(seed, shape, DType::F32), 0.05).unwrap()
        };
        t.insert(name, w);
    };
    add("model.embed_tokens.weight".into(), &[c.vocab_size, h]);
    add("model.norm.weight".into(), &[h]);
    for l in 0..c.num_layers {
        let p = format!("model.layers.{l}");
        add(format!("{p}.input_layernorm.weight"), &[h]);
        add(format!("{p}.post_attention_layernorm.weight"), &[h]);
        add(format!("{p}.self_attn.q_proj.weight"), &[q, h]);
        add(format!("{p}.self_attn.k_proj.weight"), &[kv, h]);
        add(format!("{p}.self_attn.v_proj.weight"), &[kv, h]);
        add(format!("{p}.self_attn.o_proj.weight"), &[h, q]);
        add(format!("{p}.mlp.gate_proj.weight"), &[i, h]);
        add(format!("{p}.mlp.up_proj.weight"), &[i, h]);
        add(format!("{p}.mlp.down_proj.weight"), &[h, i]);
    }
    let weights = Weights::from_tensors(t, "random", DType::F32, Device::Cpu);
    LlamaModel::from_weights(config, &weights).unwrap()
}

/// Copy bandwidth in bytes/s (read + written) over a buffer far larger than the caches,
/// split over the threads like the model's kernels are.
fn copy_bandwidth() -> f64 {
    let n = 64 << 20; // 256 MiB of f32
    let src = vec![1f32; n];
    let mut dst = vec![0f32; n];
    let threads = rayon_threads();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for (d, c) in dst.chunks_mut(n / threads).zip(src.chunks(n / threads)) {
                s.spawn(move || d.copy_from_slice(c));
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    assert_eq!(dst[n - 1], 1.0);
    (2 * n * 4) as f64 / best
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with no arguments and
    // only needs it to build and start, so do the full run only when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        println!("generate bench: run with `cargo bench -p ragtune-bench --bench generate`");
        return;
    }
    let bandwidth = copy_bandwidth();
    let model = random_model(smollm2_config());
    let weight_bytes = model.weight_bytes_per_token();
    let prompt: Vec<u32> = (0..128u32).map(|i| (i * 7919) % 49152).collect();
    let decode_steps = 32;

    // Warm-up, and a check that the model produces finite logits.
    let mut cache = KvCache::new(&model, 1, prompt.len() + decode_steps).unwrap();
    let (logits, _) = model.forward(&mut cache, &[&prompt[..16]], LogitsWanted::Last).unwrap();
    assert!(logits.to_vec_f32().unwrap().iter().all(|v| v.is_finite()));

    let mut prefill = f64::MAX;
    let mut decode = f64::MAX;
    for _ in 0..3 {
        let mut cache = KvCache::new(&model, 1, prompt.len() + decode_steps).unwrap();
        let start = Instant::now();
        model.forward(&mut cache, &[&prompt], LogitsWanted::Last).unwrap();
        prefill = prefill.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        for s in 0..decode_steps {
            let token = [(s as u32 * 31) % 49152];
            model.forward(&mut cache, &[&token], LogitsWanted::Last).unwrap().0.to_vec_f32().unwrap();
        }
        decode = decode.min(start.elapsed().as_secs_f64() / decode_steps as f64);
    }
    let floor = weight_bytes as f64 / bandwidth;
    println!("SmolLM2-135M-sized decoder, f32, random weights, {} threads", rayon_threads());
    println!("  weights read per decoded token : {:.1} MB", weight_bytes as f64 / 1e6);
    println!("  copy bandwidth (read + write)  : {:.1} GB/s", bandwidth / 1e9);
    println!("  prefill, 128-token prompt      : {:.0} tokens/s", prompt.len() as f64 / prefill);
    println!(
        "  decode, batch 1 (ctx 128..160) : {:.1} tokens/s ({:.1} ms/token, {:.1} GB/s of weights)",
        1.0 / decode,
        decode * 1e3,
        weight_bytes as f64 / decode / 1e9
    );
    println!(
        "  bandwidth floor                : {:.1} tokens/s ({:.1} ms/token); decode reaches {:.0}% of it",
        1.0 / floor,
        floor * 1e3,
        100.0 * floor / decode
    );
}
