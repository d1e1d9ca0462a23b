//! config.json variants, sharded safetensors, dtypes, sampling, and the errors bad input gets:
//! unknown model_type, missing and misshapen tensors, empty and too long prompts.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{fixtures, rel_err};
use ragtune_compute::{DType, Device};
use ragtune_runtime::{
    GenerateOptions, KvCache, LlamaFamily, LlamaModel, LogitsWanted, ModelConfig, RopeScaling, RuntimeError,
    Sampler, SamplingParams, generate, load_causal_lm,
};

fn llama(json: &str) -> ragtune_runtime::LlamaConfig {
    match ModelConfig::from_json(json, "config.json").unwrap() {
        ModelConfig::Llama(c) => c,
        other => panic!("{other:?}"),
    }
}

const BASE: &str = r#""vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 8, "max_position_embeddings": 128"#;

#[test]
fn config_fields_and_variants() {
    let c =
        llama(&format!(r#"{{"model_type": "llama", {BASE}, "eos_token_id": [5, 7], "bos_token_id": 1}}"#));
    assert_eq!(
        (c.num_kv_heads, c.head_dim, c.eos_token_ids.clone(), c.bos_token_id),
        (8, 8, vec![5, 7], Some(1))
    );
    assert_eq!((c.qkv_bias, c.o_bias, c.tie_word_embeddings, c.rope.theta), (false, false, false, 10000.0));

    let c = llama(&format!(
        r#"{{"model_type": "llama", {BASE}, "num_key_value_heads": 2, "head_dim": 16, "eos_token_id": 3,
        "attention_bias": true, "mlp_bias": true, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
        "rope_theta": 500000.0, "rope_scaling": {{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}}}"#
    ));
    assert_eq!((c.num_kv_heads, c.head_dim, c.eos_token_ids.clone()), (2, 16, vec![3]));
    assert_eq!((c.qkv_bias, c.o_bias, c.mlp_bias, c.tie_word_embeddings), (true, true, true, true));
    assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));
    assert!(matches!(c.rope.scaling, RopeScaling::Llama3 { factor: 8.0, .. }));
    // llama3: the highest frequency is kept, the lowest divided by the factor.
    let plain = ragtune_runtime::RopeConfig { scaling: RopeScaling::None, ..c.rope.clone() }.inv_freq();
    let scaled = c.rope.inv_freq();
    assert_eq!(scaled[0], plain[0]);
    assert!((scaled[7] - plain[7] / 8.0).abs() < 1e-12);

    // transformers v5 spelling: rope_parameters holds theta and the type.
    let c = llama(&format!(
        r#"{{"model_type": "qwen2", {BASE}, "rope_parameters": {{"rope_type": "default", "rope_theta": 1e6}},
        "use_sliding_window": false, "sliding_window": 32}}"#
    ));
    assert_eq!((c.family, c.rope.theta, c.qkv_bias, c.o_bias), (LlamaFamily::Qwen2, 1e6, true, false));
    assert_eq!(c.sliding_window, None);
    let c = llama(&format!(r#"{{"model_type": "mistral", {BASE}, "sliding_window": 64}}"#));
    assert_eq!(c.sliding_window, Some(64));
}

/// Which layers slide, as transformers 5.23 decides: Mistral every layer (an absent key is the
/// class default 4096, null none); Qwen2 only with `use_sliding_window`, from `layer_types` when
/// given, else the layers from `max_window_layers` (default 28) on.
#[test]
fn sliding_window_config_follows_transformers() {
    let windows = |c: &ragtune_runtime::LlamaConfig| {
        (0..c.num_layers).map(|l| c.attention_window(l)).collect::<Vec<_>>()
    };
    let c = llama(&format!(r#"{{"model_type": "mistral", {BASE}}}"#));
    assert_eq!(windows(&c), [Some(4096), Some(4096)]);
    let c = llama(&format!(r#"{{"model_type": "mistral", {BASE}, "sliding_window": null}}"#));
    assert_eq!(windows(&c), [None, None]);
    let c = llama(&format!(r#"{{"model_type": "llama", {BASE}, "sliding_window": 8}}"#));
    assert_eq!(windows(&c), [None, None]);
    let qwen = |extra: &str| {
        llama(&format!(r#"{{"model_type": "qwen2", {BASE}, "use_sliding_window": true{extra}}}"#))
    };
    assert_eq!(windows(&qwen(r#", "sliding_window": 16, "max_window_layers": 1"#)), [None, Some(16)]);
    assert_eq!(windows(&qwen(r#", "sliding_window": 16"#)), [None, None]); // max_window_layers 28
    assert_eq!(windows(&qwen(r#", "max_window_layers": 0"#)), [Some(4096), Some(4096)]);
    let typed = qwen(
        r#", "sliding_window": 16, "max_window_layers": 0,
        "layer_types": ["sliding_attention", "full_attention"]"#,
    );
    assert_eq!(windows(&typed), [Some(16), None]);
    let err = |extra: &str| {
        let json = format!(r#"{{"model_type": "qwen2", {BASE}, "use_sliding_window": true{extra}}}"#);
        ModelConfig::from_json(&json, "config.json").unwrap_err().to_string()
    };
    let e = err(r#", "layer_types": ["full_attention"]"#);
    assert!(e.contains("layer_types") && e.contains("1 entries for 2 layers"), "{e}");
    let e = err(r#", "layer_types": ["full_attention", "chunked_attention"]"#);
    assert!(e.contains("layer_types[1]") && e.contains("chunked_attention"), "{e}");
    let e = err(r#", "sliding_window": 0"#);
    assert!(e.contains("sliding_window") && e.contains("0 would hide"), "{e}");
}

#[test]
fn config_errors_name_the_field() {
    let err = |json: String| ModelConfig::from_json(&json, "config.json").unwrap_err().to_string();
    let e = err(format!(r#"{{"model_type": "gpt2", {BASE}}}"#));
    assert!(e.contains("model_type") && e.contains("gpt2") && e.contains("llama, mistral, qwen2"), "{e}");
    let e = err(r#"{"model_type": "llama", "hidden_size": 64}"#.to_string());
    assert!(e.contains("num_attention_heads") && e.contains("required"), "{e}");
    let e = err(format!(r#"{{"model_type": "llama", {BASE}, "num_key_value_heads": 3}}"#));
    assert!(e.contains("num_key_value_heads"), "{e}");
    let e = err(format!(
        r#"{{"model_type": "llama", {BASE}, "rope_scaling": {{"rope_type": "yarn", "factor": 4.0}}}}"#
    ));
    assert!(e.contains("rope_scaling.rope_type") && e.contains("yarn"), "{e}");
    let e = err(format!(r#"{{"model_type": "llama", {BASE}, "hidden_act": "gelu"}}"#));
    assert!(e.contains("hidden_act"), "{e}");
    let e = err(format!(r#"{{"model_type": "llama", {BASE}, "eos_token_id": "x"}}"#));
    assert!(e.contains("eos_token_id"), "{e}");
}

/// A copy of the llama-gqa fixture folder in a fresh temporary folder, with `edit` applied to
/// its config.json.
fn fixture_copy(tag: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let src = fixtures().join("llama-gqa/model");
    let dst = std::env::temp_dir().join(format!("ragtune-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dst.join("config.json"), config.to_string()).unwrap();
    dst
}

fn load_err(dir: &Path) -> String {
    let err = LlamaModel::from_dir(dir, DType::F32, Device::Cpu).err().expect("an error");
    std::fs::remove_dir_all(dir).ok();
    err.to_string()
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let dir = fixture_copy("layers", |c| c["num_hidden_layers"] = 3.into());
    let e = load_err(&dir);
    assert!(e.contains("model.layers.2.input_layernorm.weight") && e.contains("missing"), "{e}");
    let dir = fixture_copy("shape", |c| c["intermediate_size"] = 100.into());
    let e = load_err(&dir);
    assert!(e.contains("mlp.gate_proj.weight") && e.contains("[160, 64]") && e.contains("[100, 64]"), "{e}");
    let dir = fixture_copy("untied", |c| c["tie_word_embeddings"] = true.into());
    assert!(LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).is_ok(), "tied models ignore lm_head");
    std::fs::remove_dir_all(&dir).ok();
    let dir = fixture_copy("bias", |c| c["attention_bias"] = true.into());
    let e = load_err(&dir);
    assert!(e.contains("q_proj.bias") && e.contains("missing"), "{e}");
}

#[test]
fn sharded_checkpoint_loads_like_a_single_file() {
    let src = fixtures().join("llama-gqa/model");
    let dir = fixture_copy("sharded", |_| {});
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for (i, chunk) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let views: HashMap<String, safetensors::tensor::TensorView<'_>> =
            chunk.iter().map(|n| (n.clone(), st.tensor(n).unwrap())).collect();
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
        chunk.iter().for_each(|n| {
            weight_map.insert(n.clone(), file.clone().into());
        });
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let sharded = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
    let single = LlamaModel::from_dir(&src, DType::F32, Device::Cpu).unwrap();
    let prompt = [0u32, 5, 9, 77, 300];
    let run = |m: &LlamaModel| {
        let mut cache = KvCache::new(m, 1, prompt.len()).unwrap();
        m.forward(&mut cache, &[&prompt], LogitsWanted::All).unwrap().0.to_vec_f32().unwrap()
    };
    assert_eq!(run(&sharded), run(&single));

    // A weight_map entry whose shard lacks the tensor is named.
    weight_map.insert("model.extra.weight".into(), "model-00001-of-00002.safetensors".into());
    let index = serde_json::json!({"weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("model.extra.weight") && e.contains("model-00001-of-00002"), "{e}");
}

#[test]
fn bf16_and_f16_weights_stay_close_to_f32() {
    let dir = fixtures().join("llama-gqa/model");
    let prompt = [0u32, 321, 351, 303, 224, 41, 85];
    let logits = |dt| {
        let m = LlamaModel::from_dir(&dir, dt, Device::Cpu).unwrap();
        let mut cache = KvCache::new(&m, 1, prompt.len()).unwrap();
        m.forward(&mut cache, &[&prompt], LogitsWanted::All).unwrap().0.to_vec_f32().unwrap()
    };
    let reference: Vec<f64> = logits(DType::F32).into_iter().map(f64::from).collect();
    for dt in [DType::BF16, DType::F16] {
        let err = rel_err(&logits(dt), &reference);
        assert!(err < 3e-2, "{dt}: rel err {err:.2e}");
    }
}

#[test]
fn bad_prompts_are_clear_errors() {
    let (model, tokenizer) =
        load_causal_lm(&fixtures().join("llama-gqa/model"), DType::F32, Device::Cpu).unwrap();
    let opts = GenerateOptions::for_model(&model, 4);
    let e = generate(&model, &[vec![]], &opts, |_, _| Ok(())).unwrap_err();
    assert!(matches!(e, RuntimeError::Input(_)) && e.to_string().contains("empty"), "{e}");
    let long = vec![5u32; model.config.max_position_embeddings + 1];
    let e = generate(&model, &[long], &opts, |_, _| Ok(())).unwrap_err().to_string();
    assert!(e.contains("257 tokens") && e.contains("max_position_embeddings"), "{e}");
    let e = generate(&model, &[vec![100_000]], &opts, |_, _| Ok(())).unwrap_err().to_string();
    assert!(e.contains("100000") && e.contains("vocabulary"), "{e}");
    // Generation stops at the context end instead of overflowing the cache: two more positions
    // fit, and the token sampled from the last one needs no position of its own.
    let near_end = vec![5u32; model.config.max_position_embeddings - 2];
    let out = generate(
        &model,
        &[near_end],
        &GenerateOptions { stop_tokens: vec![], ..opts.clone() },
        |_, _| Ok(()),
    )
    .unwrap();
    assert_eq!(out[0].tokens.len(), 3);
    assert_eq!(out[0].finish, ragtune_runtime::FinishReason::Context);
    assert!(!tokenizer.encode("hello", true).unwrap().is_empty());
    let e = load_causal_lm(&fixtures().join("llama-gqa/model/config.json"), DType::F32, Device::Cpu)
        .err()
        .unwrap();
    assert!(e.to_string().contains(".gguf"), "{e}");
    let e = load_causal_lm(&fixtures().join("bert-mini/model"), DType::F32, Device::Cpu).err().unwrap();
    assert!(e.to_string().contains("BERT"), "{e}");
}

#[test]
fn sampling_is_seeded_and_filters() {
    let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let best = ragtune_runtime::sampling::argmax(&logits) as u32;
    let params = SamplingParams { temperature: 0.8, top_k: None, top_p: 0.9, seed: 42 };
    let draw = |p: SamplingParams, stream| {
        let mut s = Sampler::new(p, stream).unwrap();
        (0..20).map(|_| s.sample(&logits).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(draw(params, 0), draw(params, 0));
    assert_ne!(draw(params, 0), draw(params, 1));
    assert!(draw(SamplingParams { top_k: Some(1), ..params }, 0).iter().all(|&t| t == best));
    assert!(draw(SamplingParams { top_p: 1e-6, ..params }, 3).iter().all(|&t| t == best));
    let top3: Vec<u32> = {
        let mut order: Vec<u32> = (0..50).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        order[..3].to_vec()
    };
    assert!(
        draw(SamplingParams { top_k: Some(3), temperature: 5.0, ..params }, 0)
            .iter()
            .all(|t| top3.contains(t))
    );
    assert!(Sampler::new(SamplingParams { temperature: -1.0, ..params }, 0).is_err());
    assert!(Sampler::new(SamplingParams { top_p: 0.0, ..params }, 0).is_err());
    let mut s = Sampler::new(params, 0).unwrap();
    assert!(s.sample(&[f32::NAN, 1.0]).is_err());
}

/// Issue 17: sizes and numbers in config.json are refused by field before anything is sized by
/// them (no abort on `num_hidden_layers: 1000000000`), naming config.json.
#[test]
fn absurd_config_numbers_are_refused_by_field_before_allocating() {
    for (tag, edit, field, words) in [
        ("layers-huge", serde_json::json!(1_000_000_000u64), "num_hidden_layers", "1000000000"),
        ("layers-big", serde_json::json!(3), "num_hidden_layers", "the weights hold 2"),
        ("layers-zero", serde_json::json!(0), "num_hidden_layers", "at least 1 layer"),
    ] {
        let dir = fixture_copy(tag, |c| c["num_hidden_layers"] = edit.clone());
        let e = load_err(&dir);
        assert!(e.contains("config.json") && e.contains(field) && e.contains(words), "{tag}: {e}");
    }
    for eps in [serde_json::json!(1e308), serde_json::json!(-1.0), serde_json::json!(2.0)] {
        let dir = fixture_copy("eps", |c| c["rms_norm_eps"] = eps.clone());
        let e = load_err(&dir);
        assert!(e.contains("config.json") && e.contains("rms_norm_eps"), "{e}");
    }
    let dir = fixture_copy("vocab", |c| c["vocab_size"] = serde_json::json!(u64::MAX / 2));
    let e = load_err(&dir);
    assert!(e.contains("config.json") && e.contains("vocab_size"), "{e}");
}
