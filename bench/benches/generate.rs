//! Generation speed on the CPU for a SmolLM2-135M-sized decoder with random weights (hidden 576,
//! 30 layers, 9 heads / 3 KV heads, MLP 1536, vocab 49152, tied head; f32): prefill tokens/s
//! for a 128-token prompt, and decode tokens/s for batch 1 after it, next to the
//! memory-bandwidth floor. Decode must read every weight once per token, so the floor is
//! `weight bytes / copy bandwidth`, the bandwidth measured by a large copy in the same run.
//!
//! Run: `cargo bench -p ragtune-bench --bench generate` (prints a table; no criterion: the
//! numbers that matter are ratios to the floor measured alongside).

use std::time::Instant;

use ragtune_bench::{random_llama, smollm2_config};
use ragtune_runtime::{KvCache, LogitsWanted};

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
    let model = random_llama(smollm2_config());
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
