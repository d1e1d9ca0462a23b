//! Training speed on the CPU: LoRA (r = 16 on all seven projections) and full fine-tuning of
//! random-weight Llama models — a ~10M-parameter one and one shaped like SmolLM2-135M — in
//! tokens/s, and as a fraction of the SGEMM rate measured in the same run, counting
//! 4 · params · tokens FLOPs for LoRA (frozen base: forward + input gradients) and
//! 6 · params · tokens for full training (PERFORMANCE.md; attention's share is left out).
//!
//! Run: `cargo bench -p ragtune-bench --bench train` (prints a table).

use std::time::Instant;

use ragtune_bench::suites::train::{BATCH, SEQ, batch, check_initial_loss, small_config};
use ragtune_bench::{gemm_flops, random_llama, random_tensor, smollm2_config};
use ragtune_compute::ops::{self, AdamW};
use ragtune_compute::{DType, Device};
use ragtune_trainer::{FullTrainer, LoraAdapter, LoraTrainer};

const STEPS: usize = 3;

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

/// Seconds per step: one warm-up step whose loss must be an untrained model's (checked before
/// anything is timed), then the mean of `STEPS`.
fn time_steps(what: &str, vocab: usize, mut step: impl FnMut() -> f32) -> f64 {
    check_initial_loss(what, step(), vocab).unwrap();
    let t = Instant::now();
    for _ in 0..STEPS {
        step();
    }
    t.elapsed().as_secs_f64() / STEPS as f64
}

/// One table row; `flops_per_token_param` is 4 for LoRA and 6 for full training.
fn print_row(
    name: &str,
    mode: &str,
    params: usize,
    trainable: usize,
    secs: f64,
    flops_per_token_param: f64,
    rate: f64,
) {
    let tokens = (BATCH * SEQ) as f64;
    let frac = flops_per_token_param * params as f64 * tokens / secs / rate;
    println!(
        "| {name} | {mode} | {:.1}M ({:.2}M) | {secs:.3} | {:.0} | {:.0}% |",
        params as f64 / 1e6,
        trainable as f64 / 1e6,
        tokens / secs,
        100.0 * frac
    );
}

fn main() {
    let rate = sgemm_rate();
    println!("SGEMM 1024³ in this run: {:.0} GFLOP/s; batches of {BATCH} × {SEQ} tokens\n", rate / 1e9);
    println!("| model | mode | params (trainable) | s/step | tokens/s | fraction of SGEMM |");
    println!("|---|---|---|---|---|---|");
    for (name, config) in [("~10M", small_config()), ("SmolLM2-135M shape", smollm2_config())] {
        let model = random_llama(config);
        let n = model.num_params();
        let vocab = model.config.vocab_size;
        let b = batch(vocab).unwrap();
        let lora = ragtune_bench::lora_r16_all_targets();
        let adapter = LoraAdapter::init(lora, &model.config, 0, &Device::Cpu).unwrap();
        let trainable = adapter.num_params();
        let mut trainer = LoraTrainer::new(&model, adapter, AdamW::default()).unwrap();
        let secs = time_steps(&format!("LoRA {name}"), vocab, || trainer.train_step(&b, 1e-4).unwrap());
        print_row(name, "LoRA r=16, 7 targets", n, trainable, secs, 4.0, rate);
        drop(trainer);
        if name == "~10M" {
            let mut full = FullTrainer::new(model, AdamW::default()).unwrap();
            let secs = time_steps(&format!("full {name}"), vocab, || full.train_step(&b, 1e-4).unwrap());
            print_row(name, "full", n, n, secs, 6.0, rate);
        }
    }
}
