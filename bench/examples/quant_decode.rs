//! SmolLM2 greedy decode tokens/s at `--dtype stored` (Q4_1 / Q8_0 blocks kept, activations 8
//! bits plus an 8-bit residual) and `stored-q8` (plain 8-bit activations) against the f32 path (the same file dequantized), alternating rounds in one
//! run; the greedy tokens of both are printed first so a speed-up never hides a broken path.
//!     quant_decode GGUF [NEW_TOKENS] [ROUNDS]
//! Run with RAYON_NUM_THREADS=2 to match the CI machine kind.
use std::path::PathBuf;

use ragtune_bench::greedy_decode_rate as decode;
use ragtune_compute::{DType, Device};
use ragtune_runtime::loader::{Precision, load_causal_lm_as};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = PathBuf::from(args.get(1).expect("usage: quant_decode GGUF [NEW_TOKENS] [ROUNDS]"));
    let n: usize = args.get(2).map_or(64, |s| s.parse().expect("NEW_TOKENS"));
    let rounds: usize = args.get(3).map_or(5, |s| s.parse().expect("ROUNDS"));
    let load = |p: Precision| load_causal_lm_as(&path, p, Device::Cpu).expect("load").0;
    // ONLY=stored skips the f32 model (for profiling the stored path alone).
    if std::env::var("ONLY").is_ok_and(|v| v == "stored") {
        let stored = load(Precision::Stored);
        for _ in 0..rounds {
            println!("stored decode {:.1} tokens/s", decode(&stored, &[504, 3575, 282, 4649, 314], n).1);
        }
        return;
    }
    let dense = load(Precision::Dtype(DType::F32));
    let stored = load(Precision::Stored);
    let q8 = load(Precision::StoredQ8);
    let prompt = [504u32, 3575, 282, 4649, 314];
    let (a, _) = decode(&dense, &prompt, 16);
    let (b, _) = decode(&stored, &prompt, 16);
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    println!("greedy f32    {a:?}\ngreedy stored {b:?}\nagree {same}/16");
    println!(
        "threads {}; weight bytes per token: f32 {} MB, stored {} MB",
        rayon::current_num_threads(),
        dense.weight_bytes_per_token() >> 20,
        stored.weight_bytes_per_token() >> 20
    );
    let (mut f, mut s, mut s8) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        f.push(decode(&dense, &prompt, n).1);
        s.push(decode(&stored, &prompt, n).1);
        s8.push(decode(&q8, &prompt, n).1);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (mf, ms, m8) = (median(&mut f), median(&mut s), median(&mut s8));
    println!(
        "decode tokens/s (median of {rounds}, {n} tokens): f32 {mf:.1}, stored {ms:.1} ({:.2}x), stored-q8 {m8:.1} ({:.2}x)",
        ms / mf,
        m8 / mf
    );
}
