//! Training speed on the CPU: LoRA (r = 16 on all seven projections) and full fine-tuning of
//! random-weight Llama models — a ~10M-parameter one and one shaped like SmolLM2-135M — in
//! tokens/s, and as a fraction of the SGEMM rate measured in the same run, counting
//! 4 · params · tokens FLOPs for LoRA (frozen base: forward + input gradients) and
//! 6 · params · tokens for full training (PERFORMANCE.md; attention's share is left out).
//!
//! Run: `cargo bench -p ragtune-bench --bench train` (prints a table).

use std::time::Instant;

use ragtune_bench::{gemm_flops, random_llama, random_tensor, smollm2_config};
use ragtune_compute::ops::{self, AdamW};
use ragtune_compute::{DType, Device};
use ragtune_runtime::{LlamaConfig, LlamaModel};
use ragtune_trainer::{FullTrainer, LoraAdapter, LoraTrainer, TrainBatch};

const BATCH: usize = 4;
const SEQ: usize = 128;
const STEPS: usize = 3;

/// ~10M parameters: hidden 256, 8 layers, 4 heads / 2 KV heads, MLP 688, vocab 16384, tied.
fn small_config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 16384,
        hidden_size: 256,
        intermediate_size: 688,
        num_layers: 8,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 64,
        ..smollm2_config()
    }
}

fn params(m: &LlamaModel) -> usize {
    let lin = |l: &ragtune_runtime::linear::Linear| l.weight.numel();
    m.embed.numel()
        + m.norm.numel()
        + m.layers
            .iter()
            .map(|l| {
                l.input_norm.numel()
                    + l.post_norm.numel()
                    + [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].into_iter().map(lin).sum::<usize>()
            })
            .sum::<usize>()
}

fn batch(vocab: usize) -> TrainBatch {
    let ids: Vec<Vec<i32>> =
        (0..BATCH).map(|b| (0..SEQ).map(|t| ((b * 7919 + t * 104729) % vocab) as i32).collect()).collect();
    TrainBatch::from_labels(&ids, &ids).expect("a valid batch")
}

/// SGEMM FLOP/s at 1024³ (the best of a few runs).
fn sgemm_rate() -> f64 {
    let a = random_tensor(1, &[1024, 1024], DType::F32);
    let b = random_tensor(2, &[1024, 1024], DType::F32);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(ops::matmul(&a, &b).unwrap());
        best = best.min(t.elapsed().as_secs_f64());
    }
    gemm_flops(1024, 1024, 1024) as f64 / best
}

/// Seconds per step: one warm-up step, then the mean of `STEPS`.
fn time_steps(mut step: impl FnMut()) -> f64 {
    step();
    let t = Instant::now();
    for _ in 0..STEPS {
        step();
    }
    t.elapsed().as_secs_f64() / STEPS as f64
}

fn main() {
    let rate = sgemm_rate();
    let tokens = (BATCH * SEQ) as f64;
    println!("SGEMM 1024³ in this run: {:.0} GFLOP/s; batches of {BATCH} × {SEQ} tokens\n", rate / 1e9);
    println!("| model | mode | params (trainable) | s/step | tokens/s | fraction of SGEMM |");
    println!("|---|---|---|---|---|---|");
    for (name, config) in [("~10M", small_config()), ("SmolLM2-135M shape", smollm2_config())] {
        let model = random_llama(config);
        let n = params(&model);
        let b = batch(model.config.vocab_size);
        let lora = ragtune_bench::lora_r16_all_targets();
        let adapter = LoraAdapter::init(lora, &model.config, 0, &Device::Cpu).unwrap();
        let trainable = adapter.num_params();
        let mut trainer = LoraTrainer::new(&model, adapter, AdamW::default()).unwrap();
        let secs = time_steps(|| {
            trainer.train_step(&b, 1e-4).unwrap();
        });
        let frac = 4.0 * n as f64 * tokens / secs / rate;
        println!(
            "| {name} | LoRA r=16, 7 targets | {:.1}M ({:.2}M) | {secs:.3} | {:.0} | {:.0}% |",
            n as f64 / 1e6,
            trainable as f64 / 1e6,
            tokens / secs,
            100.0 * frac
        );
        drop(trainer);
        if name == "~10M" {
            let mut full = FullTrainer::new(model, AdamW::default()).unwrap();
            let secs = time_steps(|| {
                full.train_step(&b, 1e-4).unwrap();
            });
            let frac = 6.0 * n as f64 * tokens / secs / rate;
            println!(
                "| {name} | full | {:.1}M ({:.1}M) | {secs:.3} | {:.0} | {:.0}% |",
                n as f64 / 1e6,
                n as f64 / 1e6,
                tokens / secs,
                100.0 * frac
            );
        }
    }
}
