//! What the trainer's kill tests (`kill_*.rs`) write: the llama-gqa fixture and two distinct
//! adapters for it (B filled with seeded values, so merges and saves of the two differ).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::{LoraAdapter, LoraConfig, Target};
use rand::{Rng, SeedableRng};

pub fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model")
}

pub fn model() -> LlamaModel {
    LlamaModel::from_dir(&model_dir(), DType::F32, Device::Cpu).expect("the llama-gqa fixture loads")
}

/// A rank-8 adapter on every projection with A and B drawn from `seed`.
pub fn adapter(model: &LlamaModel, seed: u64) -> LoraAdapter {
    let config = LoraConfig {
        r: 8,
        alpha: 16.0,
        use_rslora: false,
        dropout: 0.0,
        targets: Target::ALL.to_vec(),
        layers: None,
    };
    let mut adapter = LoraAdapter::init(config, &model.config, seed, &Device::Cpu).expect("a valid config");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for m in adapter.modules.iter_mut().flatten().flatten() {
        let b: Vec<f32> = (0..m.b.numel()).map(|_| rng.random_range(-0.5f32..0.5)).collect();
        m.b = Tensor::from_slice(&b, m.b.shape()).expect("B's own shape");
    }
    adapter
}

/// A fresh scratch folder for `name`.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ragtune-kill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("the temp folder is writable");
    d
}
