//! Issue 17, item 7: mutation tests of the model readers — config.json (fields set to extreme
//! numbers, wrong types, removed) and model.safetensors (byte mutations) — through
//! `LlamaModel::from_dir` on the llama-gqa fixture. Each load must return a model or an error,
//! never panic or abort. A fixed seed and a time budget keep them short.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const BUDGET: Duration = Duration::from_secs(3);
const MAX_CASES: usize = 300;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model")
}

fn copy(tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("ragtune-fuzz-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture().join(f), dst.join(f)).unwrap();
    }
    dst
}

fn extreme(rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..12) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(1_000_000_000u64),
        4 => json!(1e308),
        5 => json!(-1e308),
        6 => json!(1u64 << 40),
        7 => json!("x"),
        8 => Value::Null,
        9 => json!([1, 2]),
        10 => json!(0.5),
        _ => json!(3),
    }
}

fn run(name: &str, seed: u64, mut case: impl FnMut(&mut ChaCha8Rng)) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let mut cases = 0;
    while cases < MAX_CASES && start.elapsed() < BUDGET {
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&mut rng)));
        assert!(outcome.is_ok(), "{name}: case {cases} (seed {seed}) panicked");
        cases += 1;
    }
    assert!(cases >= 10, "{name}: only {cases} cases ran within the budget");
}

#[test]
fn mutated_config_json_never_panics() {
    let dir = copy("config");
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("config.json")).unwrap()).unwrap();
    let keys: Vec<String> = original.as_object().unwrap().keys().cloned().collect();
    run("config.json", 19, |rng| {
        let mut c = original.clone();
        for _ in 0..rng.random_range(1..3) {
            let key = &keys[rng.random_range(0..keys.len())];
            if rng.random_range(0..8) == 0 {
                c.as_object_mut().unwrap().remove(key);
            } else {
                c[key.as_str()] = extreme(rng);
            }
        }
        std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
        let _ = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mutated_safetensors_never_panic() {
    let dir = copy("weights");
    let original = std::fs::read(fixture().join("model.safetensors")).unwrap();
    run("model.safetensors", 20, |rng| {
        let mut b = original.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..b.len());
            match rng.random_range(0..4) {
                // The 8-byte header length and the JSON header are where the structure lives.
                0 => b[..8].copy_from_slice(&[u64::MAX, 1 << 40, 0, 7][rng.random_range(0..4)].to_le_bytes()),
                1 => b[at.min(600)] = rng.random(),
                2 => b.truncate(at),
                _ => {
                    // A NaN written over a weight.
                    let at = at.saturating_sub(4);
                    b[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                }
            }
        }
        std::fs::write(dir.join("model.safetensors"), &b).unwrap();
        let _ = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
