//! SentencePiece BPE tokenizers (`tokenizer.ggml.model = "llama"`: Llama 2, Mistral v0.1,
//! TinyLlama, CodeLlama) from GGUF metadata, as a `tokenizers` BPE model.
//!
//! sentencepiece encodes by splitting the normalised text (spaces → "▁", one "▁" prefixed when
//! `add_space_prefix`, default true) into characters and repeatedly merging the adjacent pair
//! whose concatenation is a piece with the highest score; characters that are no piece become
//! `<0xXX>` byte tokens (or unknown). A `tokenizers` BPE model does the same when its merges are
//! ranked by the score of the merged piece — the recipe of transformers' `LlamaConverter`
//! (`generate_merges`): every split of every piece into two pieces, ordered by score, then the
//! longer left part, then the longer right part, then the ids. We build that rather than a
//! merge loop of our own because the runtime's [`crate::Tokenizer`] is a `tokenizers::Tokenizer`
//! (streaming decode, special-token handling and the CLI all go through it).
//!
//! Where it could differ from sentencepiece: when two *different* pieces have equal scores,
//! sentencepiece merges the leftmost pair and BPE the lower-ranked one. Trained BPE models give
//! every normal piece its own score (`tests/fixtures/make_spm_fixtures.py` checks the ids against
//! sentencepiece on 181 strings). Unused pieces (type 5) are merged into but sentencepiece then
//! splits them again; here they stay whole (llama-family files have none). Control tokens
//! written in the text are parsed as those tokens, like every ragtune tokenizer (see
//! [`super::tokenizer`]); sentencepiece's plain encode would spell them out. The text after a
//! control or user-defined token gets its own "▁" prefix, as in Hugging Face's legacy Llama
//! tokenizer and llama.cpp (`is_prev_special`); the fixture records those ids too.
//!
//! Decoding: "▁" → space, byte tokens reassembled into UTF-8, the prefix space dropped.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::reader::{GgufFile, GgufValue};
use super::tokenizer::{
    NORMAL, UNKNOWN, UNUSED, USER_DEFINED, bpe_document, config_err, per_token, post_processor, strings,
    token_id, token_types,
};
use crate::error::Result;

const SCORES: &str = "tokenizer.ggml.scores";

/// `tokenizer.ggml.scores`, one per token.
fn scores(file: &GgufFile, n_tokens: usize) -> Result<Vec<f32>> {
    per_token(file, SCORES, n_tokens)?
        .ok_or_else(|| config_err(file, SCORES, "is missing (SentencePiece merges are ranked by it)"))?
        .iter()
        .map(|v| {
            v.as_f64().map(|s| s as f32).ok_or_else(|| config_err(file, SCORES, "holds a non-number entry"))
        })
        .collect()
}

/// The merges that reproduce sentencepiece's score-ordered merging: every split of a mergeable
/// piece into two mergeable pieces, highest score first (transformers' `generate_merges`).
pub fn merges_from_scores(tokens: &[&str], scores: &[f32], types: &[i64]) -> Vec<(String, String)> {
    // sentencepiece merges into (and out of) normal, user-defined and unused pieces only.
    let mergeable = |i: usize| matches!(types[i], NORMAL | USER_DEFINED | UNUSED);
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, t) in tokens.iter().enumerate().filter(|(i, _)| mergeable(*i)) {
        ids.insert(t, i);
    }
    // (score, chars of left, chars of right, left id, right id)
    let mut merges: Vec<(f32, usize, usize, usize, usize)> = Vec::new();
    for (i, piece) in tokens.iter().enumerate().filter(|(i, _)| mergeable(*i)) {
        let mut local: Vec<(f32, usize, usize, usize, usize)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (l, r) = piece.split_at(at);
                Some((scores[i], l.chars().count(), r.chars().count(), *ids.get(l)?, *ids.get(r)?))
            })
            .collect();
        local.sort_by_key(|m| (m.3, m.4));
        merges.extend(local);
    }
    // Stable: equal keys keep the per-piece order above, as Python's sorted(reverse=True) does.
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    merges.into_iter().map(|m| (tokens[m.3].to_string(), tokens[m.4].to_string())).collect()
}

/// The tokenizer JSON of a SentencePiece (`llama`) GGUF tokenizer.
pub fn spm_json(file: &GgufFile) -> Result<String> {
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let scores = scores(file, tokens.len())?;
    let types = token_types(file, tokens.len())?;
    let unk = match token_id(file, "tokenizer.ggml.unknown_token_id", tokens.len())? {
        Some(id) => Some(id as usize),
        None => types.iter().position(|&t| t == UNKNOWN),
    };
    let merges: Vec<Value> =
        merges_from_scores(&tokens, &scores, &types).into_iter().map(|(l, r)| json!([l, r])).collect();
    let add_prefix = file.get("tokenizer.ggml.add_space_prefix").and_then(GgufValue::as_bool).unwrap_or(true);
    let to_metaspace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
    let normalizer = if add_prefix {
        json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u{2581}"}, to_metaspace]})
    } else {
        to_metaspace
    };
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let pipeline = json!({
        "normalizer": normalizer,
        "pre_tokenizer": null,
        // llama.cpp adds BOS to SentencePiece models unless the file says otherwise.
        "post_processor": post_processor(file, &tokens, true)?,
        "decoder": {"type": "Sequence", "decoders": decoders},
    });
    let bpe = json!({"unk_token": unk.map(|i| tokens[i]), "fuse_unk": true, "byte_fallback": true, "merges": merges});
    Ok(bpe_document(&tokens, &types, pipeline, bpe))
}
