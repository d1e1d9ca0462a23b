//! Issue 17, item 7: mutation tests of the trainer's readers — adapter_config.json (fields set
//! to extreme values, the text damaged), adapter_model.safetensors (byte edits) and JSONL
//! training data (mutated lines and fields, extreme `max_len`). Each read returns a value or an
//! error: never a panic, an abort or more than 1 GiB (enforced by `ragtune_tests::fuzz`).

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_runtime::{LlamaModel, Tokenizer};
use ragtune_tests::fuzz::{CountingAlloc, file, fuzz, mutate};
use ragtune_trainer::data::read_jsonl;
use ragtune_trainer::peft::load_adapter;
use rand::Rng;
use serde_json::Value;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn fuzz_adapter() {
    let model =
        LlamaModel::from_dir(&fixtures().join("runtime/llama-gqa/model"), DType::F32, Device::Cpu).unwrap();
    let src = fixtures().join("lora/adapter_init");
    let config_text = std::fs::read(src.join("adapter_config.json")).unwrap();
    let config: Value = serde_json::from_slice(&config_text).unwrap();
    let weights = std::fs::read(src.join("adapter_model.safetensors")).unwrap();
    fuzz(
        "adapter",
        21,
        |rng| {
            let (mut c, mut w) = (config_text.clone(), weights.clone());
            match rng.random_range(0..4) {
                0 | 1 => c = mutate::json(rng, &config).to_string().into_bytes(),
                2 => c = mutate::text(rng, &config_text),
                _ => w = mutate::bytes(rng, &weights, 64),
            }
            vec![("adapter_config.json".into(), c), ("adapter_model.safetensors".into(), w)]
        },
        |dir| load_adapter(dir, &model.config, &Device::Cpu),
    );
}

#[test]
fn fuzz_jsonl() {
    let tok = Tokenizer::from_file(&fixtures().join("runtime/llama-gqa/model/tokenizer.json")).unwrap();
    let lines: Vec<Value> = [
        r#"{"prompt": "Question: why? Answer:", "completion": " Because."}"#,
        r#"{"text": "The robot watered the plants."}"#,
        r#"{"text": "}"}"#,
    ]
    .iter()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let joined = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n").into_bytes();
    // Drawn by each case's input maker, read by its reader.
    let max_len = std::cell::Cell::new(0);
    fuzz(
        "jsonl",
        22,
        |rng| {
            max_len.set(*mutate::pick(rng, &[0, 1, 2, 8, 512, usize::MAX]));
            let text = if rng.random() {
                mutate::text(rng, &joined)
            } else {
                let mut out = String::new();
                for _ in 0..rng.random_range(1..5) {
                    let line = mutate::pick(rng, &lines).clone();
                    out += &mutate::json(rng, &line).to_string();
                    out.push('\n');
                }
                out.into_bytes()
            };
            file("data.jsonl", text)
        },
        |dir| read_jsonl(&dir.join("data.jsonl"), &tok, Some(1), max_len.get()),
    );
}
