//! Scratch: one LoRA training step of the demo's shape (its built-in 2.1M-parameter base, r 16 on
//! all seven projections, batches of 8 × 256 tokens) and one 288-token prefill, timed — what
//! `ragtune demo` spends its set-up and answers on. Loss checked finite before timing.
//!     demo_step [STEPS]
//! RAGTUNE_CPU_ISA=scalar|avx2 caps the vector kernels (gemv_simd, vexp), to measure their gain;
//! RAGTUNE_GLIBC_DEFAULTS=1 leaves the allocator as glibc sets it (cpu::alloc), to measure that.
use std::path::Path;
use std::time::Instant;

use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device};
use ragtune_runtime::loader::{Precision, load_causal_lm_as};
use ragtune_runtime::{KvCache, LogitsWanted};
use ragtune_trainer::data::{Example, collate};
use ragtune_trainer::{LoraAdapter, LoraConfig, LoraTrainer, Target};
use rand::{Rng, SeedableRng};

fn main() {
    if std::env::var_os("RAGTUNE_GLIBC_DEFAULTS").is_none() {
        ragtune_compute::cpu::alloc::keep_freed_memory();
    }
    let steps: usize = std::env::args().nth(1).map_or(6, |s| s.parse().expect("STEPS"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/eval/assets/demo-base");
    let model = load_causal_lm_as(&dir, Precision::Dtype(DType::F32), Device::Cpu).expect("load").0;
    let vocab = model.config.vocab_size as i32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let rows: Vec<Example> = (0..8)
        .map(|_| {
            let ids: Vec<i32> = (0..256).map(|_| rng.random_range(3..vocab)).collect();
            Example { labels: ids.clone(), ids }
        })
        .collect();
    let batch = collate(&rows.iter().collect::<Vec<_>>(), 0).expect("collate");
    let config = LoraConfig {
        r: 16,
        alpha: 32.0,
        use_rslora: false,
        dropout: 0.0,
        targets: Target::ALL.to_vec(),
        layers: None,
    };
    let adapter = LoraAdapter::init(config, &model.config, 7, &model.device).expect("adapter");
    let mut trainer = LoraTrainer::new(&model, adapter, AdamW::default()).expect("trainer");
    let mut times = Vec::new();
    for s in 0..=steps {
        let t = Instant::now();
        let mut g = trainer.loss_and_grads(&batch).expect("step");
        assert!(g.loss.is_finite() && g.loss > 0.0, "loss {}", g.loss);
        g.clip(1.0).expect("clip");
        trainer.apply(&g, 1e-3).expect("apply");
        if s > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let step = times[times.len() / 2];
    let prompt: Vec<u32> = (0..288).map(|i| 3 + (i * 7 % 1500) as u32).collect();
    let mut pre = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut cache = KvCache::new(&model, 1, prompt.len() + 1).expect("cache");
        let (logits, _) = model.forward(&mut cache, &[&prompt], LogitsWanted::Last).expect("prefill");
        assert_eq!(logits.shape()[0], 1);
        pre.push(t.elapsed().as_secs_f64());
    }
    pre.sort_by(f64::total_cmp);
    println!(
        "isa {:?}: LoRA step 8x256 {:.1} ms ({:.0} tok/s), prefill 288 {:.2} ms",
        ragtune_compute::cpu::gemv_simd::Isa::detected(),
        step * 1e3,
        2048.0 / step,
        pre[pre.len() / 2] * 1e3
    );
}
