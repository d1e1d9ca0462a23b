//! The base model as a Hugging Face folder: `config.json` (model_type `llama`, tied
//! embeddings), `model.safetensors` under the runtime's tensor names
//! (`LlamaModel::named_tensors`), `tokenizer.json`, `tokenizer_config.json` and
//! `generation_config.json` — what `load_causal_lm` reads, and what transformers'
//! `LlamaForCausalLM` / `PreTrainedTokenizerFast` read too.

use std::path::Path;

use ragtune_compute::{DType, ops};
use ragtune_runtime::{LlamaConfig, LlamaModel};
use serde_json::json;

use crate::tokenizer::{BOS_ID, EOS_ID, PAD_ID};
use ragtune_eval::error::{EvalError, Result};

fn torch_dtype(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "float32",
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        other => {
            return Err(EvalError::config(format!("a model cannot be stored in {other}; use f32 or bf16")));
        }
    })
}

/// `config.json` for `config` with weights stored in `dtype`: the runtime's Llama config plus
/// the demo tokenizer's special ids and the keys transformers writes for a fresh model.
pub fn config_json(config: &LlamaConfig, dtype: DType) -> Result<serde_json::Value> {
    let mut v = config.llama_config_json(torch_dtype(dtype)?);
    let extra = json!({
        "rope_scaling": null,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        "initializer_range": 0.02,
        "use_cache": true,
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        map.extend(extra);
    }
    Ok(v)
}

/// Write `model` (its weights cast to `dtype`) with its tokenizer into `out`, every file under a
/// temporary name first and then renamed, so an interrupted write leaves no half file.
pub fn write_model_folder(model: &LlamaModel, tokenizer_json: &str, dtype: DType, out: &Path) -> Result<()> {
    let tensors = model
        .named_tensors()?
        .into_iter()
        .map(|(n, t)| Ok((n, ops::cast(&t.to_host()?, dtype)?)))
        .collect::<Result<Vec<_>>>()?;
    let st = match dtype {
        DType::F32 => safetensors::Dtype::F32,
        DType::BF16 => safetensors::Dtype::BF16,
        DType::F16 => safetensors::Dtype::F16,
        other => {
            return Err(EvalError::config(format!("a model cannot be stored in {other}; use f32 or bf16")));
        }
    };
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in &tensors {
        let bytes =
            t.host_bytes().ok_or_else(|| EvalError::training(format!("`{name}` is not on the host")))?;
        let view = safetensors::tensor::TensorView::new(st, t.shape().to_vec(), bytes)
            .map_err(|e| EvalError::training(format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
    let weights = safetensors::serialize(views, metadata)
        .map_err(|e| EvalError::training(format!("cannot serialise the model: {e}")))?;
    std::fs::create_dir_all(out).map_err(|e| EvalError::io(out, e))?;
    let pretty =
        |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("a JSON value serialises") + "\n";
    let generation = json!({
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        "do_sample": false,
        "max_new_tokens": 16,
    });
    let tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "add_bos_token": true,
        "model_max_length": model.config.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
    });
    write_atomic(&out.join("model.safetensors"), &weights)?;
    write_atomic(&out.join("config.json"), pretty(config_json(&model.config, dtype)?).as_bytes())?;
    write_atomic(&out.join("generation_config.json"), pretty(generation).as_bytes())?;
    write_atomic(&out.join("tokenizer_config.json"), pretty(tokenizer_config).as_bytes())?;
    let tokenizer = if tokenizer_json.ends_with('\n') {
        tokenizer_json.to_string()
    } else {
        format!("{tokenizer_json}\n")
    };
    write_atomic(&out.join("tokenizer.json"), tokenizer.as_bytes())
}

/// Write `bytes` to `path` through ragtune's one atomic writer (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ragtune_compute::atomic_file::write(path, bytes).map_err(|e| EvalError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretrain::{ModelShape, cast_model, init_model};
    use crate::tokenizer::train_tokenizer;
    use ragtune_compute::Device;
    use ragtune_runtime::{KvCache, LogitsWanted, load_causal_lm};

    fn logits(model: &LlamaModel, ids: &[u32]) -> Vec<f32> {
        let mut cache = KvCache::new(model, 1, ids.len()).unwrap();
        model.forward(&mut cache, &[ids], LogitsWanted::All).unwrap().0.to_vec_f32().unwrap()
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ragtune-base-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_saved_folder_loads_and_gives_the_same_logits() {
        let texts =
            ["Kesh Dunmere was born in Tolmar.", "Question: Where was Kesh Dunmere born?\nAnswer: Tolmar"];
        let tokenizer_json = train_tokenizer(&texts, 280).unwrap();
        let shape = ModelShape {
            hidden: 32,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            head_dim: 16,
            intermediate: 48,
            vocab: 280,
            max_positions: 64,
        };
        let tok = ragtune_runtime::Tokenizer::from_json(&tokenizer_json).unwrap();
        let model = init_model(shape.llama_config(tok.vocab_size()), 5).unwrap();
        let ids = tok.encode(texts[1], true).unwrap();
        let want = logits(&model, &ids);
        for (dtype, name) in [(DType::F32, "f32"), (DType::BF16, "bf16")] {
            let dir = temp_dir(name);
            write_model_folder(&model, &tokenizer_json, dtype, &dir).unwrap();
            let (loaded, loaded_tok) = load_causal_lm(&dir, DType::F32, Device::Cpu).unwrap();
            assert_eq!(loaded_tok.encode(texts[1], true).unwrap(), ids);
            let c = &loaded.config;
            assert_eq!(
                (c.bos_token_id, c.eos_token_ids.clone(), c.tie_word_embeddings),
                (Some(1), vec![2], true)
            );
            assert_eq!((c.hidden_size, c.num_layers, c.num_kv_heads, c.head_dim), (32, 2, 1, 16));
            let got = logits(&loaded, &ids);
            // f32 files hold the very weights; bf16 ones equal the weights rounded to bf16.
            let reference = if dtype == DType::F32 {
                want.clone()
            } else {
                logits(&cast_model(&cast_model(&model, dtype).unwrap(), DType::F32).unwrap(), &ids)
            };
            assert_eq!(got, reference, "{name}");
            if dtype == DType::BF16 {
                let rel = got.iter().zip(&want).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt()
                    / want.iter().map(|b| b * b).sum::<f32>().sqrt();
                assert!(rel > 0.0 && rel < 2e-2, "bf16 rounding moved the logits by {rel}");
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn config_json_reproduces_the_shipped_demo_base_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/assets/demo-base/config.json");
        let shipped: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let ragtune_runtime::ModelConfig::Llama(config) =
            ragtune_runtime::ModelConfig::from_file(&path).unwrap()
        else {
            panic!("the demo base is a Llama");
        };
        assert_eq!(config_json(&config, DType::BF16).unwrap(), shipped);
    }
}
