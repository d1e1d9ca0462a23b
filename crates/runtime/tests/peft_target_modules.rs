//! `target_modules` in the three spellings peft writes — a list of names, a regex string that
//! must match the whole module name (`re.fullmatch`), and `"all-linear"` — read as peft reads
//! them: an adapter whose weights sit on the selected modules loads with exactly those modules,
//! weights on a module the config does not select are refused, and a regex ragtune cannot read
//! is an error naming the field.

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_runtime::adapter::peft::{TargetModules, load_adapter, save_adapter};
use ragtune_runtime::adapter::{LoraAdapter, LoraConfig};
use ragtune_runtime::llama::Projection as Target;
use serde_json::{Value, json};

fn model() -> LlamaModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model");
    LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap()
}

/// An adapter on `targets` of `layers` (None = all) written to a folder whose config's
/// `target_modules` is then replaced by `selection`.
fn folder(case: &str, targets: &[Target], layers: Option<Vec<usize>>, selection: Value) -> PathBuf {
    let m = model();
    let config =
        LoraConfig { r: 2, alpha: 4.0, use_rslora: false, dropout: 0.0, targets: targets.to_vec(), layers };
    let adapter = LoraAdapter::init(config, &m.config, 3, &Device::Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("ragtune-targets-{case}-{}", std::process::id()));
    save_adapter(&adapter, &dir, "llama-gqa").unwrap();
    let path = dir.join("adapter_config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["target_modules"] = selection;
    cfg["layers_to_transform"] = Value::Null;
    std::fs::write(&path, cfg.to_string()).unwrap();
    dir
}

/// Load the folder of [`folder`]: the adapter's (targets, layers), or the error text.
fn load(
    case: &str,
    targets: &[Target],
    layers: Option<Vec<usize>>,
    selection: Value,
) -> Result<(Vec<Target>, Option<Vec<usize>>), String> {
    let dir = folder(case, targets, layers, selection);
    let out = load_adapter(&dir, &model().config, &Device::Cpu)
        .map(|a| (a.config.targets.clone(), a.config.layers.clone()))
        .map_err(|e| e.to_string());
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

const QV: [Target; 2] = [Target::Q, Target::V];

#[test]
fn a_regex_string_selects_by_full_match() {
    assert_eq!(load("re-qv", &QV, None, json!(r".*\.(q_proj|v_proj)")).unwrap(), (QV.to_vec(), None));
    // An alternation without a group is anchored as a whole, as re.fullmatch does.
    assert_eq!(load("re-alt", &QV, None, json!(".*q_proj|.*v_proj")).unwrap(), (QV.to_vec(), None));
    // A layer restriction: the weights on layer 0 only load; weights on layer 1 too are refused.
    let layer0 = json!(r"model\.layers\.[0]\.self_attn\.(q|v)_proj");
    assert_eq!(load("re-l0", &QV, Some(vec![0]), layer0.clone()).unwrap(), (QV.to_vec(), Some(vec![0])));
    let both = json!(r"model\.layers\.[01]\.self_attn\.(q|v)_proj");
    assert_eq!(load("re-l01", &QV, None, both).unwrap(), (QV.to_vec(), None));
    let err = load("re-l0-bad", &QV, None, layer0).unwrap_err();
    assert!(err.contains("model.layers.1.self_attn.q_proj") && err.contains("target_modules"), "{err}");
    // Not a full match: a pattern for the last component alone selects nothing.
    for partial in ["q_proj|v_proj", r"self_attn\.(q|v)_proj"] {
        let err = load("re-partial", &QV, None, json!(partial)).unwrap_err();
        assert!(err.contains("does not select"), "{partial}: {err}");
    }
    // A regex selecting q only does not cover weights on v.
    let err = load("re-q", &QV, None, json!(r".*\.q_proj")).unwrap_err();
    assert!(err.contains("v_proj"), "{err}");
}

#[test]
fn all_linear_and_lists_select_as_peft_does() {
    let all = load("all", &Target::ALL, None, json!("all-linear")).unwrap();
    assert_eq!(all, (Target::ALL.to_vec(), None));
    assert_eq!(load("list", &QV, None, json!(["q_proj", "v_proj"])).unwrap().0, QV);
    assert_eq!(load("list-path", &QV, None, json!(["self_attn.q_proj", "v_proj"])).unwrap().0, QV);
    // Absent: the weights decide (peft falls back to its default for the architecture).
    assert_eq!(load("null", &QV, None, Value::Null).unwrap().0, QV);
    // An entry must be the name or its last dotted components, not any suffix.
    let err = load("list-suffix", &QV, None, json!(["proj"])).unwrap_err();
    assert!(err.contains("does not select"), "{err}");
}

#[test]
fn a_selection_ragtune_cannot_read_is_an_error_naming_the_field() {
    for (case, bad, needle) in [
        ("unclosed", json!("(q_proj"), "(q_proj"),
        ("lookahead", json!(r"(?!lm_head).*_proj"), "look-around"),
        ("numbers", json!([1, 2]), "strings"),
        ("object", json!({"q_proj": true}), "regex string"),
    ] {
        let err = load(case, &QV, None, bad).unwrap_err();
        assert!(err.contains("target_modules") && err.contains(needle), "{case}: {err}");
    }
}

#[test]
fn matching_rules_on_module_names() {
    let name = "model.layers.3.self_attn.q_proj";
    let list = |v: &[&str]| TargetModules::List(v.iter().map(|s| s.to_string()).collect());
    assert!(list(&["q_proj"]).matches(name));
    assert!(list(&["layers.3.self_attn.q_proj"]).matches(name));
    assert!(list(&[name]).matches(name));
    assert!(!list(&["layers.2.self_attn.q_proj"]).matches(name));
    assert!(!list(&["_proj", "proj"]).matches(name));
    let re = TargetModules::parse(&json!(r"model\.layers\.\d+\.self_attn\.q_proj"), "cfg").unwrap();
    assert!(re.matches(name) && !re.matches("model.layers.3.self_attn.k_proj"));
    assert!(!re.matches(&format!("{name}.base_layer")), "the match must reach the end");
    assert!(!re.matches(&format!("x.{name}")), "the match must start at the beginning");
    let all = TargetModules::parse(&json!("ALL-LINEAR"), "cfg").unwrap();
    assert!(all.matches("model.layers.0.mlp.down_proj") && !all.matches("lm_head"));
}

/// `tests/fixtures/lora-regex/` (make_lora_regex_fixture.py): an adapter peft saved with a regex
/// `target_modules`, loaded with the modules peft adapted, gives peft's logits.
#[test]
fn a_peft_adapter_with_a_regex_selection_gives_peft_logits() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/lora-regex");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("manifest.json")).unwrap()).unwrap();
    let mut m = model();
    let adapter = load_adapter(&fx.join("adapter"), &m.config, &Device::Cpu).unwrap();
    let mut ours: Vec<String> =
        adapter.iter().map(|(l, t, _)| format!("model.layers.{l}.{}", t.path())).collect();
    ours.sort();
    let theirs: Vec<String> = manifest["adapted_modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(adapter.config.scale(), manifest["scale"].as_f64().unwrap() as f32);
    adapter.attach(&mut m).unwrap();
    let ids: Vec<u32> =
        manifest["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let mut cache = ragtune_runtime::KvCache::new(&m, 1, ids.len()).unwrap();
    let (logits, _) = m.forward(&mut cache, &[&ids], ragtune_runtime::LogitsWanted::All).unwrap();
    let got = logits.to_vec::<f32>().unwrap();
    let bytes = std::fs::read(fx.join("logits.npy")).unwrap();
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let want: Vec<f32> =
        bytes[10 + header..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(got.len(), want.len());
    let (mut num, mut den) = (0f64, 0f64);
    for (g, w) in got.iter().zip(&want) {
        num += f64::from(g - w).powi(2);
        den += f64::from(*w).powi(2);
    }
    let rel = (num / den).sqrt();
    assert!(rel <= 1e-5, "logits rel err {rel:.3e}");
    // The adapter does change the logits: the comparison is not against the base model.
    let base = model();
    let mut cache = ragtune_runtime::KvCache::new(&base, 1, ids.len()).unwrap();
    let (plain, _) = base.forward(&mut cache, &[&ids], ragtune_runtime::LogitsWanted::All).unwrap();
    let moved: f64 =
        plain.to_vec::<f32>().unwrap().iter().zip(&want).map(|(p, w)| f64::from(p - w).powi(2)).sum::<f64>();
    assert!((moved / den).sqrt() > 1e-2, "the fixture adapter barely moves the logits");
}
