//! The parameter-name table (`ragtune_runtime::llama::names`) against independent spellings:
//! the state_dict keys transformers recorded in the decoder fixtures' `model.safetensors`, and
//! literal Hugging Face / GGUF name lists written out here. A model written through
//! `LlamaModel::named_tensors` must load back bit for bit and hold the fixture's very tensors
//! under the same names.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_runtime::llama::names::{LayerNorm, Projection, TensorName};
use ragtune_runtime::{LlamaConfig, LlamaModel, ModelConfig, Weights};

/// The decoder fixtures whose `model.safetensors` transformers' `save_pretrained` wrote.
const DECODERS: [&str; 4] = ["llama-gqa", "qwen2-bias", "mistral-window", "qwen2-window"];

fn model_dir(name: &str) -> PathBuf {
    common::fixtures().join(name).join("model")
}

fn config(dir: &Path) -> LlamaConfig {
    match ModelConfig::from_file(&dir.join("config.json")).unwrap() {
        ModelConfig::Llama(c) => c,
        ModelConfig::Bert(_) => panic!("{} is a decoder", dir.display()),
    }
}

#[test]
fn named_tensors_are_the_recorded_transformers_keys() {
    for name in DECODERS {
        let dir = model_dir(name);
        let recorded: BTreeSet<String> =
            Weights::open_dir(&dir, DType::F32, Device::Cpu).unwrap().names().map(str::to_string).collect();
        let model = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
        let names: Vec<String> = model.named_tensors().unwrap().into_iter().map(|(n, _)| n).collect();
        let ours: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(ours.len(), names.len(), "{name}: a name is repeated");
        assert_eq!(ours, recorded, "{name}");
        // The table alone (no model) spells the same list, and reads every key back.
        let table: Vec<String> = TensorName::all(&config(&dir)).into_iter().map(TensorName::hf).collect();
        assert_eq!(table, names, "{name}");
        for key in &recorded {
            assert_eq!(TensorName::from_hf(key).map(TensorName::hf).as_deref(), Some(key.as_str()), "{name}");
        }
    }
}

#[test]
fn a_model_written_from_named_tensors_loads_back_bit_identical() {
    for name in DECODERS {
        let dir = model_dir(name);
        let model = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
        let tensors = model.named_tensors().unwrap();
        let out = std::env::temp_dir().join(format!("ragtune-param-names-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(dir.join("config.json"), out.join("config.json")).unwrap();
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, t)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    t.shape().to_vec(),
                    t.host_bytes().unwrap(),
                )
                .unwrap();
                (n.clone(), view)
            })
            .collect();
        safetensors::serialize_to_file(views, None, &out.join("model.safetensors")).unwrap();

        let loaded = LlamaModel::from_dir(&out, DType::F32, Device::Cpu).unwrap();
        let again = loaded.named_tensors().unwrap();
        // The fixtures are f32, so the file transformers wrote is the reference bit for bit:
        // a tensor filed under a neighbour's name (k for v, same shape) shows here.
        let original = Weights::open_dir(&dir, DType::F32, Device::Cpu).unwrap();
        assert_eq!(again.len(), tensors.len(), "{name}");
        for ((n0, t0), (n1, t1)) in tensors.iter().zip(&again) {
            assert_eq!(n0, n1, "{name}");
            assert_eq!(t0.shape(), t1.shape(), "{name} {n0}");
            assert_eq!(t0.host_bytes(), t1.host_bytes(), "{name} {n0}");
            assert_eq!(original.raw(n0).unwrap().host_bytes(), t1.host_bytes(), "{name} {n0}");
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// A one-layer config: tied embedding or an output layer, biases on q/k/v only.
fn one_layer(tied: bool) -> LlamaConfig {
    let ModelConfig::Llama(mut c) =
        ModelConfig::from_file(&model_dir("qwen2-bias").join("config.json")).unwrap()
    else {
        panic!("qwen2-bias is a decoder")
    };
    c.num_layers = 1;
    c.tie_word_embeddings = tied;
    (c.qkv_bias, c.o_bias, c.mlp_bias) = (true, false, false);
    c
}

#[test]
fn the_table_spells_the_literal_hf_and_gguf_names() {
    let hf_gguf = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"),
        ("model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight"),
        ("model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight"),
        ("model.layers.0.self_attn.q_proj.bias", "blk.0.attn_q.bias"),
        ("model.layers.0.self_attn.k_proj.weight", "blk.0.attn_k.weight"),
        ("model.layers.0.self_attn.k_proj.bias", "blk.0.attn_k.bias"),
        ("model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight"),
        ("model.layers.0.self_attn.v_proj.bias", "blk.0.attn_v.bias"),
        ("model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight"),
        ("model.layers.0.mlp.gate_proj.weight", "blk.0.ffn_gate.weight"),
        ("model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight"),
        ("model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    let untied = TensorName::all(&one_layer(false));
    assert_eq!(untied.len(), hf_gguf.len());
    for (t, (hf, gguf)) in untied.iter().zip(hf_gguf) {
        assert_eq!((t.hf().as_str(), t.gguf().as_str()), (hf, gguf));
        assert_eq!(TensorName::from_hf(hf), Some(*t), "{hf}");
        assert_eq!(TensorName::from_gguf(gguf), Some(*t), "{gguf}");
    }
    // Tied: the same list without the output layer.
    let tied: Vec<String> = TensorName::all(&one_layer(true)).into_iter().map(TensorName::hf).collect();
    assert_eq!(tied, hf_gguf[..hf_gguf.len() - 1].iter().map(|(hf, _)| hf.to_string()).collect::<Vec<_>>());
    // Layer numbers of more than one digit, in both spellings.
    let t = TensorName::Weight(12, Projection::Down);
    assert_eq!(
        (t.hf(), t.gguf()),
        ("model.layers.12.mlp.down_proj.weight".into(), "blk.12.ffn_down.weight".into())
    );
    let n = TensorName::Norm(30, LayerNorm::PostAttention);
    assert_eq!(TensorName::from_gguf("blk.30.ffn_norm.weight"), Some(n));
    assert_eq!(
        Projection::ALL.map(Projection::name),
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    );
}

#[test]
fn shapes_follow_the_fixture_files() {
    for name in DECODERS {
        let dir = model_dir(name);
        let c = config(&dir);
        let w = Weights::open_dir(&dir, DType::F32, Device::Cpu).unwrap();
        for t in TensorName::all(&c) {
            assert_eq!(w.raw(&t.hf()).unwrap().shape(), t.shape(&c).as_slice(), "{name} {t}");
        }
    }
}
