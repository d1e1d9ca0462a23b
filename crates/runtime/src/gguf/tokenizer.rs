//! A `tokenizers::Tokenizer` built from GGUF metadata (`tokenizer.ggml.*`). `model = "gpt2"`:
//! byte-level BPE from the token list and merges, with the pre-tokenizer that
//! `tokenizer.ggml.pre` names. `model = "llama"`: SentencePiece BPE, see [`super::spm`]. Both
//! take control tokens (and unknown) as special added tokens and user-defined tokens as plain
//! added tokens — so a control token written in the text (`<s>`, `<|endoftext|>`) is parsed as
//! that token, as Hugging Face's tokenizers and llama.cpp's `parse_special` do — and add BOS/EOS
//! through a template when `add_bos_token`/`add_eos_token` ask for it. The tokenizer is
//! assembled as `tokenizer.json` text, which is the crate's stable interface.

use serde_json::{Value, json};

use super::reader::{GgufFile, GgufValue};
use crate::error::{Result, RuntimeError};
use crate::tokenizer::Tokenizer;

/// llama.cpp's token types (`tokenizer.ggml.token_type`, the same numbers as sentencepiece's):
/// 2 = unknown, 3 = control, 4 = user-defined (these three matched whole, before BPE).
pub(super) const NORMAL: i64 = 1;
pub(super) const UNKNOWN: i64 = 2;
pub(super) const CONTROL: i64 = 3;
pub(super) const USER_DEFINED: i64 = 4;
pub(super) const UNUSED: i64 = 5;

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

pub(super) fn strings<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
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

pub(super) fn config_err(file: &GgufFile, key: &str, detail: impl Into<String>) -> RuntimeError {
    RuntimeError::Config { path: file.origin().to_string(), field: key.to_string(), detail: detail.into() }
}

/// The array at `key` holding one entry per token, or `None` when the key is absent.
pub(super) fn per_token<'a>(
    file: &'a GgufFile,
    key: &str,
    n_tokens: usize,
) -> Result<Option<&'a [GgufValue]>> {
    let Some(value) = file.get(key) else { return Ok(None) };
    let items = value.as_array().ok_or_else(|| config_err(file, key, "is not an array"))?;
    if items.len() != n_tokens {
        return Err(config_err(
            file,
            key,
            format!("has {} entries but tokenizer.ggml.tokens has {n_tokens}", items.len()),
        ));
    }
    Ok(Some(items))
}

/// `tokenizer.ggml.token_type`, one per token; absent means every token is normal.
pub(super) fn token_types(file: &GgufFile, n_tokens: usize) -> Result<Vec<i64>> {
    const KEY: &str = "tokenizer.ggml.token_type";
    let Some(items) = per_token(file, KEY, n_tokens)? else { return Ok(vec![NORMAL; n_tokens]) };
    items
        .iter()
        .map(|v| {
            v.as_u64().map(|t| t as i64).ok_or_else(|| config_err(file, KEY, "holds a non-integer entry"))
        })
        .collect()
}

/// Unknown and control tokens as special added tokens, user-defined ones as plain added tokens.
pub(super) fn added_tokens(tokens: &[&str], types: &[i64]) -> Vec<Value> {
    let added = |i: usize, kind: i64| match kind {
        UNKNOWN | CONTROL | USER_DEFINED => Some(json!({"id": i, "content": tokens[i], "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": kind != USER_DEFINED})),
        _ => None,
    };
    types.iter().enumerate().filter_map(|(i, &kind)| added(i, kind)).collect()
}

/// A special token id named by `key`, checked to index the token list.
pub(super) fn token_id(file: &GgufFile, key: &str, n_tokens: usize) -> Result<Option<u32>> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(id) if (id as usize) < n_tokens => Ok(Some(id as u32)),
            _ => Err(config_err(file, key, format!("{v:?} is not a token id below {n_tokens}"))),
        },
    }
}

/// The template that adds BOS before and EOS after each sequence, as the flags ask; `Null`
/// when neither is added. A pair is `[BOS] A [EOS] B [EOS]` (B gets no second BOS).
pub(super) fn post_processor(file: &GgufFile, tokens: &[&str], default_add_bos: bool) -> Result<Value> {
    let flag = |key: &str, default: bool| file.get(key).and_then(GgufValue::as_bool).unwrap_or(default);
    let bos = token_id(file, "tokenizer.ggml.bos_token_id", tokens.len())?
        .filter(|_| flag("tokenizer.ggml.add_bos_token", default_add_bos));
    let eos = token_id(file, "tokenizer.ggml.eos_token_id", tokens.len())?
        .filter(|_| flag("tokenizer.ggml.add_eos_token", false));
    if bos.is_none() && eos.is_none() {
        return Ok(Value::Null);
    }
    let special = |id: u32| json!({"SpecialToken": {"id": tokens[id as usize], "type_id": 0}});
    let seq = |name: &str, type_id: u32| json!({"Sequence": {"id": name, "type_id": type_id}});
    let mut single: Vec<Value> = bos.map(special).into_iter().collect();
    single.push(seq("A", 0));
    single.extend(eos.map(special));
    let mut pair = single.clone();
    pair.push(seq("B", 1));
    pair.extend(eos.map(special));
    let specials: serde_json::Map<String, Value> = bos
        .into_iter()
        .chain(eos)
        .map(|id| {
            let t = tokens[id as usize];
            (t.to_string(), json!({"id": t, "ids": [id], "tokens": [t]}))
        })
        .collect();
    Ok(json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials}))
}

/// The tokenizer JSON for a GGUF file's metadata.
pub fn tokenizer_json(file: &GgufFile) -> Result<String> {
    match file.get("tokenizer.ggml.model").and_then(GgufValue::as_str) {
        Some("gpt2") => gpt2_json(file),
        Some("llama") => super::spm::spm_json(file),
        other => Err(RuntimeError::Unsupported(format!(
            "{}: tokenizer.ggml.model = `{}`; ragtune builds byte-level BPE (`gpt2`) and SentencePiece \
             BPE (`llama`) tokenizers from GGUF metadata — use the model's Hugging Face folder for others",
            file.origin(),
            other.unwrap_or("missing")
        ))),
    }
}

/// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
fn gpt2_json(file: &GgufFile) -> Result<String> {
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let merges = strings(file, "tokenizer.ggml.merges")?;
    let types = token_types(file, tokens.len())?;
    let pre = file.get("tokenizer.ggml.pre").and_then(GgufValue::as_str).unwrap_or("default");
    let pipeline = json!({
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre)?,
        "post_processor": post_processor(file, &tokens, false)?,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    });
    let bpe = json!({"unk_token": null, "fuse_unk": false, "byte_fallback": false, "merges": merges});
    Ok(bpe_document(&tokens, &types, pipeline, bpe))
}

/// A `tokenizer.json` document of a BPE model over `tokens` (each token's id is its position)
/// with the added tokens `types` implies: `pipeline` holds the normalizer, pre-tokenizer,
/// post-processor and decoder, `bpe` the model's merges, unknown token and fallback switches.
pub(super) fn bpe_document(tokens: &[&str], types: &[i64], mut pipeline: Value, mut bpe: Value) -> String {
    let vocab: serde_json::Map<String, Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.to_string(), json!(i))).collect();
    for (k, v) in [
        ("type", json!("BPE")),
        ("dropout", Value::Null),
        ("continuing_subword_prefix", Value::Null),
        ("end_of_word_suffix", Value::Null),
        ("ignore_merges", json!(false)),
        ("vocab", Value::Object(vocab)),
    ] {
        bpe[k] = v;
    }
    for (k, v) in [
        ("version", json!("1.0")),
        ("truncation", Value::Null),
        ("padding", Value::Null),
        ("added_tokens", Value::Array(added_tokens(tokens, types))),
        ("model", bpe),
    ] {
        pipeline[k] = v;
    }
    pipeline.to_string()
}

/// The tokenizer of a GGUF file.
pub fn tokenizer(file: &GgufFile) -> Result<Tokenizer> {
    Tokenizer::from_json(&tokenizer_json(file)?)
}
