//! Issue 17, item 7: mutation tests of the trainer's readers — adapter_config.json (fields set
//! to extreme values), adapter_model.safetensors (byte mutations) and JSONL training data
//! (mutated lines). Each read returns a value or an error, never a panic. A fixed seed and a
//! time budget keep them short.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ragtune_compute::{DType, Device};
use ragtune_runtime::{LlamaModel, Tokenizer};
use ragtune_trainer::data::read_jsonl;
use ragtune_trainer::peft::load_adapter;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const BUDGET: Duration = Duration::from_secs(2);
const MAX_CASES: usize = 300;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
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

fn extreme(rng: &mut ChaCha8Rng) -> Value {
    [
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(100_000_000u64),
        json!(1e39),
        json!(-8.0),
        json!(f64::MAX),
        json!("x"),
        Value::Null,
        json!([0, 1, 99]),
        json!(true),
        json!(4),
    ][rng.random_range(0..12)]
    .clone()
}

#[test]
fn mutated_adapters_never_panic() {
    let model =
        LlamaModel::from_dir(&fixtures().join("runtime/llama-gqa/model"), DType::F32, Device::Cpu).unwrap();
    let src = fixtures().join("lora/adapter_init");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("adapter_config.json")).unwrap()).unwrap();
    let weights = std::fs::read(src.join("adapter_model.safetensors")).unwrap();
    let keys: Vec<String> = config.as_object().unwrap().keys().cloned().collect();
    let dir = std::env::temp_dir().join(format!("ragtune-fuzz-adapter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    run("adapter", 21, |rng| {
        let mut c = config.clone();
        let mut w = weights.clone();
        if rng.random() {
            let key = &keys[rng.random_range(0..keys.len())];
            c[key.as_str()] = extreme(rng);
        } else {
            let at = rng.random_range(0..w.len());
            match rng.random_range(0..3) {
                0 => w[..8].copy_from_slice(&[u64::MAX, 1 << 40, 0][rng.random_range(0..3)].to_le_bytes()),
                1 => w.truncate(at),
                _ => w[at] = rng.random(),
            }
        }
        std::fs::write(dir.join("adapter_config.json"), c.to_string()).unwrap();
        std::fs::write(dir.join("adapter_model.safetensors"), &w).unwrap();
        let _ = load_adapter(&dir, &model.config, &Device::Cpu);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mutated_jsonl_never_panics() {
    let tok = Tokenizer::from_file(&fixtures().join("runtime/llama-gqa/model/tokenizer.json")).unwrap();
    let lines = [
        r#"{"prompt": "Question: why? Answer:", "completion": " Because."}"#,
        r#"{"text": "The robot watered the plants."}"#,
        r#"{"text": "}"}"#,
    ];
    let path = std::env::temp_dir().join(format!("ragtune-fuzz-data-{}.jsonl", std::process::id()));
    run("jsonl", 22, |rng| {
        let mut text = String::new();
        for _ in 0..rng.random_range(1..5) {
            let mut line = lines[rng.random_range(0..lines.len())].as_bytes().to_vec();
            for _ in 0..rng.random_range(0..3) {
                if line.is_empty() {
                    break;
                }
                let at = rng.random_range(0..line.len());
                match rng.random_range(0..3) {
                    0 => line[at] = rng.random_range(0x20..0x7f),
                    1 => line.truncate(at),
                    _ => line.splice(at..at, "\u{1F600}é\\u0000".bytes()).for_each(drop),
                }
            }
            text.push_str(&String::from_utf8_lossy(&line));
            text.push('\n');
        }
        std::fs::write(&path, &text).unwrap();
        let max_len = [0, 1, 2, 8, 512, usize::MAX][rng.random_range(0..6)];
        let _ = read_jsonl(&path, &tok, Some(1), max_len);
    });
    let _ = std::fs::remove_file(&path);
}
