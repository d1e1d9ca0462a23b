//! Scratch: the `generate` suite's 128-token prefill or the `train` suite's LoRA step at the
//! SmolLM2-135M shape (random f32 weights, batch 4 × 128, r 16 on all seven projections), in a
//! loop long enough to profile: `perf record` it.
//!     step_profile prefill|lora [STEPS]
use std::time::Instant;

use ragtune_bench::suites::train;
use ragtune_bench::{random_llama, smollm2_config};
use ragtune_compute::Device;
use ragtune_compute::ops::AdamW;
use ragtune_runtime::{KvCache, LogitsWanted};
use ragtune_trainer::{LoraAdapter, LoraTrainer};

fn main() {
    ragtune_compute::cpu::alloc::keep_freed_memory();
    let mode = std::env::args().nth(1).unwrap_or_else(|| "prefill".into());
    let steps: usize = std::env::args().nth(2).map_or(20, |s| s.parse().expect("STEPS"));
    let model = random_llama(smollm2_config());
    let vocab = model.config.vocab_size;
    let mut times = Vec::new();
    match mode.as_str() {
        "prefill" => {
            let prompt: Vec<u32> = (0..128u32).map(|i| (i * 7919) % vocab as u32).collect();
            for _ in 0..steps {
                let t = Instant::now();
                let mut cache = KvCache::new(&model, 1, 129).expect("cache");
                let logits = model.forward(&mut cache, &[&prompt], LogitsWanted::Last).expect("prefill").0;
                std::hint::black_box(logits);
                times.push(t.elapsed().as_secs_f64());
            }
        }
        "lora" => {
            let b = train::batch(vocab).expect("batch");
            let adapter =
                LoraAdapter::init(ragtune_bench::lora_r16_all_targets(), &model.config, 0, &Device::Cpu)
                    .expect("adapter");
            let mut trainer = LoraTrainer::new(&model, adapter, AdamW::default()).expect("trainer");
            let first = trainer.train_step(&b, 1e-4).expect("step");
            assert!(first.is_finite(), "first loss {first}");
            for _ in 0..steps {
                let (t, f) = (Instant::now(), minor_faults());
                trainer.train_step(&b, 1e-4).expect("step");
                times.push(t.elapsed().as_secs_f64());
                println!(
                    "step: {:.0} ms, {} minor page faults",
                    times.last().unwrap() * 1e3,
                    minor_faults() - f
                );
            }
        }
        other => panic!("mode {other}: prefill or lora"),
    }
    times.sort_by(f64::total_cmp);
    println!("{mode} median {:.2} ms over {steps}", times[steps / 2] * 1e3);
}

/// Minor page faults of this process so far (/proc/self/stat, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    after.split_whitespace().nth(7).and_then(|v| v.parse().ok()).unwrap_or(0)
}
