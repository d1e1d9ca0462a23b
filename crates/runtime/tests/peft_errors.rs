//! Adapter folders ragtune must refuse, each with an error naming the feature or the tensor —
//! DoRA, `modules_to_save`, another `peft_type`, unpaired A/B, a rank or shape mismatch, a
//! pickled `.bin`, embedding LoRA — and the key spellings it must accept (an adapter name, no
//! `base_model.model.` prefix). Each case edits a copy of the fixture's adapter_init/.

mod common;

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_runtime::adapter::peft::load_adapter;
use safetensors::SafeTensors;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn model() -> LlamaModel {
    LlamaModel::from_dir(&fixtures().join("runtime/llama-gqa/model"), DType::F32, Device::Cpu).unwrap()
}

/// The fixture's tensors, for editing.
fn tensors() -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(fixtures().join("lora/adapter_init/adapter_model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec())).collect()
}

use common::lora_init_config as config;

/// Write an adapter folder from edited parts and load it.
fn load(case: &str, config: &Value, tensors: &[(String, Vec<usize>, Vec<u8>)]) -> Result<usize, String> {
    let dir = common::write_adapter(&format!("peft-{case}"), config, tensors);
    let out =
        load_adapter(&dir, &model().config, &Device::Cpu).map(|a| a.num_params()).map_err(|e| e.to_string());
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[track_caller]
fn expect_err(result: Result<usize, String>, needles: &[&str]) {
    let err = result.expect_err("the adapter must be refused");
    for n in needles {
        assert!(err.contains(n), "error {err:?} should mention {n:?}");
    }
}

#[test]
fn the_fixture_and_its_key_variants_load() {
    let params = load("plain", &config(), &tensors()).unwrap();
    assert_eq!(params, 2 * (4 * 64 + 128 * 4) + 2 * (4 * 64 + 64 * 4));
    // Adapter name in the key, and no base_model.model. prefix: the same adapter.
    let named: Vec<_> = tensors()
        .into_iter()
        .map(|(n, s, d)| (n.replace(".weight", ".default.weight").replace("base_model.model.", ""), s, d))
        .collect();
    assert_eq!(load("named", &config(), &named).unwrap(), params);
}

#[test]
fn unsupported_features_are_named() {
    let mut c = config();
    c["use_dora"] = Value::Bool(true);
    expect_err(load("dora", &c, &tensors()), &["use_dora", "DoRA"]);

    let mut c = config();
    c["modules_to_save"] = serde_json::json!(["lm_head"]);
    expect_err(load("mts", &c, &tensors()), &["modules_to_save"]);

    let mut c = config();
    c["peft_type"] = Value::String("IA3".into());
    expect_err(load("ia3", &c, &tensors()), &["peft_type", "IA3"]);

    let mut t = tensors();
    let (n, s, d) = t.iter().find(|(n, _, _)| n.ends_with("lora_A.weight")).unwrap().clone();
    t.push((n.replace("lora_A.weight", "lora_magnitude_vector"), vec![s[0]], d[..4 * s[0]].to_vec()));
    expect_err(load("magnitude", &config(), &t), &["lora_magnitude_vector", "DoRA"]);

    let mut t = tensors();
    t.push(("base_model.model.model.embed_tokens.lora_embedding_A".into(), vec![1], vec![0; 4]));
    expect_err(load("embedding", &config(), &t), &["lora_embedding"]);

    let mut t = tensors();
    t.push(("base_model.model.lm_head.weight".into(), vec![1], vec![0; 4]));
    expect_err(load("leftover", &config(), &t), &["lm_head.weight", "not a LoRA weight"]);
}

#[test]
fn unpaired_and_misshapen_weights_are_refused() {
    let t: Vec<_> = tensors()
        .into_iter()
        .filter(|(n, _, _)| !n.ends_with("layers.1.self_attn.v_proj.lora_B.weight"))
        .collect();
    expect_err(load("unpaired", &config(), &t), &["layers.1.self_attn.v_proj", "no lora_B"]);

    let mut c = config();
    c["r"] = serde_json::json!(8);
    expect_err(load("rank", &c, &tensors()), &["r=8", "lora_A [4, 64]"]);
}

#[test]
fn a_pickled_adapter_is_refused_with_the_fix() {
    let dir = std::env::temp_dir().join(format!("ragtune-peft-pickle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("adapter_config.json"), config().to_string()).unwrap();
    std::fs::write(dir.join("adapter_model.bin"), b"\x80\x02pickle").unwrap();
    let err = load_adapter(&dir, &model().config, &Device::Cpu).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(err.contains("adapter_model.bin") && err.contains("safetensors"), "{err}");
}
