//! Issue 17, item 7: mutation tests of the model readers — config.json (fields set to extreme
//! numbers, wrong types, removed, or the text damaged) and model.safetensors (byte edits, and
//! structural edits of its JSON header re-encoded with a correct length so the shape, dtype and
//! offset checks are reached) — through `LlamaModel::from_dir` on the llama-gqa fixture. Each
//! load returns a model or an error: never a panic, an abort or more than 1 GiB (the engine,
//! `ragtune_tests::fuzz`, enforces all three).

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_tests::fuzz::{CountingAlloc, Files, fuzz, mutate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture().join(name)).expect("the llama-gqa fixture is present")
}

/// The fixture's three files, with `name` replaced by `bytes`.
fn model_files(name: &str, bytes: Vec<u8>) -> Files {
    ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .map(|f| (f.to_string(), if *f == name { bytes.clone() } else { read(f) }))
        .collect()
}

/// A safetensors file with a structurally mutated JSON header (length recomputed) or, a third
/// of the time, NaN written over a weight.
fn mutate_safetensors(rng: &mut ChaCha8Rng, original: &[u8]) -> Vec<u8> {
    let len = u64::from_le_bytes(original[..8].try_into().expect("8 bytes")) as usize;
    let header: Value = serde_json::from_slice(&original[8..8 + len]).expect("the fixture's header is JSON");
    let data = &original[8 + len..];
    if rng.random_range(0..3) == 0 {
        let mut b = original.to_vec();
        let at = rng.random_range(8 + len..b.len() - 4);
        b[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        return b;
    }
    let text = mutate::json(rng, &header).to_string().into_bytes();
    let mut b = (text.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(&text);
    b.extend_from_slice(data);
    b
}

#[test]
fn fuzz_config_json() {
    let original: Value = serde_json::from_slice(&read("config.json")).expect("the fixture's config is JSON");
    fuzz(
        "config-json",
        19,
        |rng| {
            let bytes = if rng.random_range(0..4) == 0 {
                mutate::text(rng, &read("config.json"))
            } else {
                mutate::json(rng, &original).to_string().into_bytes()
            };
            model_files("config.json", bytes)
        },
        |dir| LlamaModel::from_dir(dir, DType::F32, Device::Cpu),
    );
}

#[test]
fn fuzz_safetensors() {
    let original = read("model.safetensors");
    fuzz(
        "safetensors",
        20,
        |rng| {
            let bytes = if rng.random() {
                mutate_safetensors(rng, &original)
            } else {
                mutate::bytes(rng, &original, 64)
            };
            model_files("model.safetensors", bytes)
        },
        |dir| LlamaModel::from_dir(dir, DType::F32, Device::Cpu),
    );
}
