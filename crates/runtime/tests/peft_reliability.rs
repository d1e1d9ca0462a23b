//! Issue 17: adapter folders with garbage in them are refused by name (a NaN tensor, a negative
//! or overflowing `lora_alpha`), and `use_rslora` / `layers_to_transform` are honoured as peft
//! honours them, when reading and when merging.

mod common;

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_runtime::adapter::merge::merge_to_folder;
use ragtune_runtime::adapter::peft::load_adapter;
use ragtune_runtime::{LlamaModel, Weights};
use safetensors::SafeTensors;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn model_dir() -> PathBuf {
    fixtures().join("runtime/llama-gqa/model")
}

fn model() -> LlamaModel {
    LlamaModel::from_dir(&model_dir(), DType::F32, Device::Cpu).unwrap()
}

type Named = Vec<(String, Vec<usize>, Vec<u8>)>;

/// The fixture's tensors, every value set to `fill` (the fixture's B is zero).
fn tensors(fill: f32) -> Named {
    let bytes = std::fs::read(fixtures().join("lora/adapter_init/adapter_model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let count = v.data().len() / 4;
            (n, v.shape().to_vec(), fill.to_le_bytes().repeat(count))
        })
        .collect()
}

use common::lora_init_config as config;

fn write(case: &str, config: &Value, tensors: &Named) -> PathBuf {
    common::write_adapter(&format!("peft-rel-{case}"), config, tensors)
}

fn load_err(case: &str, config: &Value, tensors: &Named) -> String {
    let dir = write(case, config, tensors);
    let e = load_adapter(&dir, &model().config, &Device::Cpu).map(|_| ()).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    e
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    for bad in [f32::NAN, f32::INFINITY] {
        let mut t = tensors(0.5);
        let name = t[3].0.clone();
        t[3].2[8..12].copy_from_slice(&bad.to_le_bytes());
        let e = load_err("nan", &config(), &t);
        assert!(e.contains(&name) && e.contains("element 2") && e.contains("finite"), "{e}");
    }
}

#[test]
fn bad_alpha_and_rank_are_refused_by_field() {
    for alpha in [serde_json::json!(-8), serde_json::json!(1e39)] {
        let mut c = config();
        c["lora_alpha"] = alpha;
        let e = load_err("alpha", &c, &tensors(0.5));
        assert!(e.contains("adapter_config.json") && e.contains("lora_alpha"), "{e}");
    }
    let mut c = config();
    c["r"] = serde_json::json!(100_000_000u64);
    let e = load_err("rank", &c, &tensors(0.5));
    assert!(e.contains("field `r`") && e.contains("100000000"), "{e}");
    let mut c = config();
    c["exclude_modules"] = serde_json::json!(["k_proj"]);
    assert!(load_err("exclude", &c, &tensors(0.5)).contains("exclude_modules"));
}

#[test]
fn layers_to_transform_is_honoured_when_reading() {
    let only_layer1: Named = tensors(0.5).into_iter().filter(|(n, _, _)| n.contains("layers.1.")).collect();
    let mut c = config();
    c["layers_to_transform"] = serde_json::json!([1]);
    let dir = write("ltt-ok", &c, &only_layer1);
    let adapter = load_adapter(&dir, &model().config, &Device::Cpu).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(adapter.iter().all(|(l, _, _)| l == 1));
    assert_eq!(adapter.config.layers, Some(vec![1]));
    // Weights on a layer the config does not list: the config and the weights disagree.
    let e = load_err("ltt-extra", &c, &tensors(0.5));
    assert!(e.contains("layers_to_transform") && e.contains("layer 0"), "{e}");
    // A single int is peft's other spelling; out-of-range layers are refused by name.
    c["layers_to_transform"] = serde_json::json!(1);
    let dir = write("ltt-int", &c, &only_layer1);
    assert!(load_adapter(&dir, &model().config, &Device::Cpu).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
    c["layers_to_transform"] = serde_json::json!([7]);
    let e = load_err("ltt-range", &c, &only_layer1);
    assert!(e.contains("layers_to_transform") && e.contains("layer 7"), "{e}");
    c["layers_to_transform"] = serde_json::json!([1]);
    c["layers_pattern"] = serde_json::json!("blocks");
    let e = load_err("ltt-pattern", &c, &only_layer1);
    assert!(e.contains("layers_pattern"), "{e}");
}

/// The merged weight minus the base weight of `name`, as f32.
fn merged_delta(case: &str, config: &Value, tensors: &Named, name: &str) -> Vec<f32> {
    let dir = write(case, config, tensors);
    let adapter = load_adapter(&dir, &model().config, &Device::Cpu).unwrap();
    let out = dir.join("merged");
    merge_to_folder(&model_dir(), &adapter, &out).unwrap();
    let base = Weights::open_dir(&model_dir(), DType::F32, Device::Cpu).unwrap();
    let merged = Weights::open_dir(&out, DType::F32, Device::Cpu).unwrap();
    let (b, m) =
        (base.raw(name).unwrap().to_vec_f32().unwrap(), merged.raw(name).unwrap().to_vec_f32().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    m.iter().zip(&b).map(|(m, b)| m - b).collect()
}

#[test]
fn use_rslora_and_layers_to_transform_are_honoured_when_merging() {
    let q0 = "model.layers.0.self_attn.q_proj.weight";
    let plain = merged_delta("m-plain", &config(), &tensors(0.5), q0);
    let mut c = config();
    c["use_rslora"] = serde_json::json!(true);
    let rs = merged_delta("m-rslora", &c, &tensors(0.5), q0);
    // r = 4, alpha = 8: alpha / r = 2, alpha / sqrt(r) = 4 — twice the plain update.
    assert!(plain.iter().all(|&d| (d - 2.0 * 0.25 * 4.0).abs() < 1e-4), "{:?}", &plain[..4]);
    for (p, r) in plain.iter().zip(&rs) {
        assert!((r - 2.0 * p).abs() < 1e-4, "rslora {r} vs plain {p}");
    }
    let only_layer1: Named = tensors(0.5).into_iter().filter(|(n, _, _)| n.contains("layers.1.")).collect();
    let mut c = config();
    c["layers_to_transform"] = serde_json::json!([1]);
    assert!(merged_delta("m-ltt0", &c, &only_layer1, q0).iter().all(|&d| d == 0.0));
    let q1 = "model.layers.1.self_attn.q_proj.weight";
    assert!(merged_delta("m-ltt1", &c, &only_layer1, q1).iter().all(|&d| d != 0.0));
}
