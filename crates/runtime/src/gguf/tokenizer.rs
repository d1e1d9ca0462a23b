//! A `tokenizers::Tokenizer` built from GGUF metadata (`tokenizer.ggml.*`): byte-level BPE
//! (`model = "gpt2"`) from the token list and merges, the pre-tokenizer that
//! `tokenizer.ggml.pre` names, control and user-defined tokens as special added tokens, and a
//! BOS template when `add_bos_token` is set. The tokenizer is assembled as `tokenizer.json`
//! text, which is the crate's stable interface.

use serde_json::{Value, json};

use super::reader::{GgufFile, GgufValue};
use crate::error::{Result, RuntimeError};
use crate::tokenizer::Tokenizer;

/// llama.cpp's token types: 3 = control, 4 = user-defined (both matched whole, before BPE).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn byte_level(use_regex: bool) -> Value {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

fn split(pattern: &str) -> Value {
    json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false})
}

/// The pre-tokenizer of a `tokenizer.ggml.pre` name, as Hugging Face's files spell it.
fn pre_tokenizer(pre: &str) -> Result<Value> {
    Ok(match pre {
        "default" | "gpt2" | "gpt-2" => byte_level(true),
        "smollm" | "starcoder" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            byte_level(true),
        ]}),
        "llama-bpe" | "llama3" | "smaug-bpe" => {
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(false)]})
        }
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(false)]}),
        other => {
            return Err(RuntimeError::Unsupported(format!(
                "GGUF tokenizer.ggml.pre = `{other}`; ragtune knows default/gpt2, smollm/starcoder, \
                 llama-bpe and qwen2"
            )));
        }
    })
}

fn strings<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    let items = file.get(key).and_then(GgufValue::as_array).ok_or_else(|| RuntimeError::Config {
        path: file.origin().to_string(),
        field: key.to_string(),
        detail: "missing or not an array".into(),
    })?;
    items
        .iter()
        .map(|v| {
            v.as_str().ok_or_else(|| RuntimeError::Config {
                path: file.origin().to_string(),
                field: key.to_string(),
                detail: "holds a non-string entry".into(),
            })
        })
        .collect()
}

/// The tokenizer JSON for a GGUF file's metadata.
pub fn tokenizer_json(file: &GgufFile) -> Result<String> {
    let model = file.get("tokenizer.ggml.model").and_then(GgufValue::as_str).unwrap_or("missing");
    if model != "gpt2" {
        return Err(RuntimeError::Unsupported(format!(
            "{}: tokenizer.ggml.model = `{model}`; ragtune builds byte-level BPE (`gpt2`) tokenizers \
             from GGUF metadata — use the model's Hugging Face folder for other tokenizers",
            file.origin()
        )));
    }
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let merges = strings(file, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = file
        .get("tokenizer.ggml.token_type")
        .and_then(GgufValue::as_array)
        .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(1.0) as i64).collect())
        .unwrap_or_default();
    let pre = file.get("tokenizer.ggml.pre").and_then(GgufValue::as_str).unwrap_or("default");
    let vocab: serde_json::Map<String, Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.to_string(), json!(i))).collect();
    let added: Vec<Value> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(&CONTROL) | Some(&USER_DEFINED)))
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": types[i] == CONTROL})
        })
        .collect();
    let add_bos = file.get("tokenizer.ggml.add_bos_token").and_then(GgufValue::as_bool).unwrap_or(false);
    let bos = file.get("tokenizer.ggml.bos_token_id").and_then(GgufValue::as_u64);
    let post = match (add_bos, bos) {
        (true, Some(id)) => {
            let token = tokens.get(id as usize).copied().unwrap_or_default();
            json!({"type": "TemplateProcessing",
                   "single": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                   "pair": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                            {"Sequence": {"id": "B", "type_id": 1}}],
                   "special_tokens": {token: {"id": token, "ids": [id], "tokens": [token]}}})
        }
        _ => Value::Null,
    };
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre)?,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    });
    Ok(doc.to_string())
}

/// The tokenizer of a GGUF file.
pub fn tokenizer(file: &GgufFile) -> Result<Tokenizer> {
    Tokenizer::from_json(&tokenizer_json(file)?)
}
