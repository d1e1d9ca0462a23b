//! What the trainer's kill tests (`kill_*.rs`) write: the llama-gqa fixture and two distinct
//! adapters for it (B filled with seeded values, so merges and saves of the two differ).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_tests::kill;
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

/// The old (seed 1) and new (seed 2) adapter every kill test writes over each other.
pub fn two_adapters(model: &LlamaModel) -> [LoraAdapter; 2] {
    [adapter(model, 1), adapter(model, 2)]
}

/// The child side of a kill test: writes the old and new adapter of [`two_adapters`] with `write`
/// until killed.
pub fn serve_adapter_writer(role: &str, write: impl Fn(&LoraAdapter, &Path)) {
    kill::serve(role, |_| {
        let versions = two_adapters(&model());
        move |target: &Path, new: bool| write(&versions[new as usize], target)
    });
}

/// The parent side: kills `child_test` (a [`serve_adapter_writer`] for `role`) at random moments
/// (`seed`) while it writes to `folder` in a fresh scratch folder, and checks after each kill that
/// what is there `loads` (and, through `kill::check_writer`, that each file is old or new).
pub fn check_adapter_writer<T, E: std::fmt::Debug>(
    child_test: &str,
    role: &str,
    folder: &str,
    seed: u64,
    write: impl Fn(&LoraAdapter, &Path),
    loads: impl Fn(&LlamaModel, &Path) -> Result<T, E>,
) {
    let model = model();
    let versions = two_adapters(&model);
    let target = scratch(role).join(folder);
    kill::check_writer(
        child_test,
        role,
        &target,
        seed,
        |new| write(&versions[new as usize], &target),
        |round| {
            let loaded = loads(&model, &target);
            assert!(loaded.is_ok(), "round {round}: {:?}", loaded.err());
        },
    );
    std::fs::remove_dir_all(target.parent().unwrap()).unwrap();
}
