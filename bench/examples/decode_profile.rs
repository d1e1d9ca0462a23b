//! Scratch: batch-1 decode steps of the SmolLM2-135M-shaped decoder the `generate` suite times
//! (random f32 weights), in a loop long enough to profile: `perf record` it.
//!     decode_profile [STEPS]
use std::time::Instant;

use ragtune_bench::{random_llama, smollm2_config};
use ragtune_runtime::{KvCache, LogitsWanted};

fn main() {
    let steps: usize = std::env::args().nth(1).map_or(200, |s| s.parse().expect("STEPS"));
    let model = random_llama(smollm2_config());
    let vocab = model.config.vocab_size as u32;
    let prompt: Vec<u32> = (0..128u32).map(|i| (i * 7919) % vocab).collect();
    let mut cache = KvCache::new(&model, 1, 128 + steps + 1).expect("cache");
    model.forward(&mut cache, &[&prompt], LogitsWanted::Last).expect("prefill");
    let mut times = Vec::new();
    for s in 0..steps as u32 {
        let t = Instant::now();
        let token = [(s * 31) % vocab];
        let logits = model.forward(&mut cache, &[&token], LogitsWanted::Last).expect("step").0;
        std::hint::black_box(logits);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!("decode step median {:.2} ms over {steps}", times[steps / 2] * 1e3);
}
