//! Scratch: greedy decode tokens/s of one GGUF loaded as f32 and as bf16, alternating rounds in
//! one run, greedy tokens compared first (bf16 rounds the weights, so a few may differ).
//!     dtype_decode GGUF [NEW_TOKENS] [ROUNDS]
//! RAGTUNE_CPU_ISA=scalar|avx2 caps the few-row product's instruction set, to measure its gain.
use std::path::PathBuf;

use ragtune_bench::greedy_decode_rate as decode;
use ragtune_compute::{DType, Device};
use ragtune_runtime::loader::{Precision, load_causal_lm_as};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = PathBuf::from(args.get(1).expect("usage: dtype_decode GGUF [NEW_TOKENS] [ROUNDS]"));
    let n: usize = args.get(2).map_or(64, |s| s.parse().expect("NEW_TOKENS"));
    let rounds: usize = args.get(3).map_or(5, |s| s.parse().expect("ROUNDS"));
    let load = |d| load_causal_lm_as(&path, Precision::Dtype(d), Device::Cpu).expect("load").0;
    let (f32m, bf16m) = (load(DType::F32), load(DType::BF16));
    let prompt = [504u32, 3575, 282, 4649, 314];
    let (a, _) = decode(&f32m, &prompt, 16);
    let (b, _) = decode(&bf16m, &prompt, 16);
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    println!("isa {:?}; greedy agree {same}/16", ragtune_compute::cpu::gemv_simd::Isa::detected());
    let (mut f, mut h) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        f.push(decode(&f32m, &prompt, n).1);
        h.push(decode(&bf16m, &prompt, n).1);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (mf, mh) = (median(&mut f), median(&mut h));
    println!("decode tokens/s (median of {rounds}, {n} tokens): f32 {mf:.1}, bf16 {mh:.1} ({:.2}x)", mh / mf);
}
