//! SentencePiece (`tokenizer.ggml.model = "llama"`) tokenizers from GGUF metadata against
//! sentencepiece itself: `tests/fixtures/make_spm_fixtures.py` trained a small BPE model (byte
//! fallback, Llama 2's trainer options) and recorded its pieces and sentencepiece's ids and
//! decodes for 181 strings; the test writes those pieces into a tokenizer-only GGUF with
//! ragtune's writer and checks every id and every decode. Control tokens written in the text are
//! parsed as specials by ragtune (as by Hugging Face's tokenizer), so for those strings the
//! reference is the ids of transformers' legacy Llama recipe, recorded by the same script.

mod common;

use std::sync::Arc;

use common::fixtures;
use ragtune_runtime::gguf::tokenizer::tokenizer;
use ragtune_runtime::gguf::{GgufFile, GgufValue, GgufWriter};
use ragtune_runtime::{RuntimeError, StreamDecoder, Tokenizer};
use serde_json::Value;

fn read_json(name: &str) -> Value {
    let path = fixtures().join("spm").join(name);
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// The fixture's metadata as llama.cpp's converter writes it; `edit` changes it before writing.
fn spm_gguf(edit: impl FnOnce(&mut Vec<(&'static str, GgufValue)>)) -> GgufFile {
    let vocab = read_json("vocab.json");
    let pieces = vocab["pieces"].as_array().unwrap();
    let id = |k: &str| GgufValue::U32(vocab[k].as_u64().unwrap() as u32);
    let mut meta: Vec<(&'static str, GgufValue)> = vec![
        ("general.architecture", GgufValue::String("llama".into())),
        ("tokenizer.ggml.model", GgufValue::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            GgufValue::Array(
                pieces.iter().map(|p| GgufValue::String(p["piece"].as_str().unwrap().into())).collect(),
            ),
        ),
        (
            "tokenizer.ggml.scores",
            GgufValue::Array(
                pieces.iter().map(|p| GgufValue::F32(p["score"].as_f64().unwrap() as f32)).collect(),
            ),
        ),
        (
            "tokenizer.ggml.token_type",
            GgufValue::Array(
                pieces.iter().map(|p| GgufValue::I32(p["type"].as_i64().unwrap() as i32)).collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id", id("bos_token_id")),
        ("tokenizer.ggml.eos_token_id", id("eos_token_id")),
        ("tokenizer.ggml.unknown_token_id", id("unk_token_id")),
        ("tokenizer.ggml.add_bos_token", GgufValue::Bool(true)),
        ("tokenizer.ggml.add_eos_token", GgufValue::Bool(false)),
    ];
    edit(&mut meta);
    let mut w = GgufWriter::new();
    for (k, v) in meta {
        w.metadata(k, v);
    }
    GgufFile::parse(Arc::new(w.to_bytes()), "spm.gguf").unwrap()
}

fn set(meta: &mut Vec<(&'static str, GgufValue)>, key: &'static str, value: GgufValue) {
    meta.retain(|(k, _)| *k != key);
    meta.push((key, value));
}

fn cases() -> Vec<Value> {
    read_json("cases.json")["cases"].as_array().unwrap().clone()
}

fn stream(tok: &Tokenizer, ids: &[u32]) -> String {
    let mut d = StreamDecoder::new();
    ids.iter().map(|&id| d.push(tok, id).unwrap()).collect()
}

#[test]
fn encodes_and_decodes_like_sentencepiece() {
    let tok = tokenizer(&spm_gguf(|_| {})).unwrap();
    let bos = read_json("vocab.json")["bos_token_id"].as_u64().unwrap() as u32;
    let all = cases();
    assert!(all.len() >= 40);
    for case in &all {
        let text = case["text"].as_str().unwrap();
        // Control tokens in the text are specials for ragtune, spelled out by sentencepiece.
        let want = if case["has_control_piece"].as_bool().unwrap() {
            ids(&case["hf_ids"])
        } else {
            ids(&case["ids"])
        };
        assert_eq!(tok.encode(text, false).unwrap(), want, "{text:?}");
        let with_bos = tok.encode(text, true).unwrap();
        assert_eq!((with_bos[0], &with_bos[1..]), (bos, &want[..]), "{text:?} with BOS");
        let spm_ids = ids(&case["ids"]);
        let decoded = case["decoded"].as_str().unwrap();
        assert_eq!(tok.decode(&spm_ids, false).unwrap(), decoded, "decode of {text:?}");
        assert_eq!(stream(&tok, &spm_ids), decoded, "streamed decode of {text:?}");
    }
    // The fixture exercises byte fallback (emoji, Hangul are not in the training text) and merges.
    let emoji = all.iter().find(|c| c["text"].as_str().unwrap().starts_with("emoji")).unwrap();
    let byte_ids = ids(&emoji["ids"]).iter().filter(|&&i| (3..259).contains(&i)).count();
    assert!(byte_ids >= 12, "emoji should fall back to bytes: {emoji}");
    assert!(tok.vocab_size() == 1000);
}

#[test]
fn add_space_prefix_false_matches_sentencepiece_without_dummy_prefix() {
    let file = spm_gguf(|m| set(m, "tokenizer.ggml.add_space_prefix", GgufValue::Bool(false)));
    let tok = tokenizer(&file).unwrap();
    for case in cases().iter().filter(|c| !c["has_control_piece"].as_bool().unwrap()) {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids_no_prefix"]);
        assert_eq!(tok.encode(text, false).unwrap(), want, "{text:?}");
        assert_eq!(
            tok.decode(&want, false).unwrap(),
            case["decoded_no_prefix"].as_str().unwrap(),
            "{text:?}"
        );
    }
}

#[test]
fn bos_and_eos_follow_the_flags() {
    let vocab = read_json("vocab.json");
    let (bos, eos) =
        (vocab["bos_token_id"].as_u64().unwrap() as u32, vocab["eos_token_id"].as_u64().unwrap() as u32);
    let plain = tokenizer(&spm_gguf(|_| {})).unwrap().encode("hello world", false).unwrap();
    let file = spm_gguf(|m| {
        set(m, "tokenizer.ggml.add_bos_token", GgufValue::Bool(false));
        set(m, "tokenizer.ggml.add_eos_token", GgufValue::Bool(true));
    });
    let got = tokenizer(&file).unwrap().encode("hello world", true).unwrap();
    assert_eq!(got, [plain.clone(), vec![eos]].concat());
    // llama.cpp adds BOS to SentencePiece models when the file does not say.
    let file = spm_gguf(|m| m.retain(|(k, _)| !k.starts_with("tokenizer.ggml.add_")));
    assert_eq!(tokenizer(&file).unwrap().encode("hello world", true).unwrap(), [vec![bos], plain].concat());
}

fn config_error(file: GgufFile) -> (String, String) {
    match tokenizer(&file).err().expect("should be refused") {
        RuntimeError::Config { field, detail, .. } => (field, detail),
        other => panic!("expected a Config error, got {other}"),
    }
}

#[test]
fn bad_metadata_is_named() {
    let short = |key: &'static str| {
        spm_gguf(move |m| {
            let (_, v) = m.iter_mut().find(|(k, _)| *k == key).unwrap();
            if let GgufValue::Array(items) = v {
                items.pop();
            }
        })
    };
    let (field, detail) = config_error(short("tokenizer.ggml.scores"));
    assert_eq!(field, "tokenizer.ggml.scores");
    assert!(detail.contains("999") && detail.contains("1000"), "{detail}");
    let (field, detail) = config_error(short("tokenizer.ggml.token_type"));
    assert_eq!(field, "tokenizer.ggml.token_type");
    assert!(detail.contains("999") && detail.contains("1000"), "{detail}");
    let (field, _) = config_error(spm_gguf(|m| m.retain(|(k, _)| *k != "tokenizer.ggml.tokens")));
    assert_eq!(field, "tokenizer.ggml.tokens");
    let (field, _) = config_error(spm_gguf(|m| m.retain(|(k, _)| *k != "tokenizer.ggml.scores")));
    assert_eq!(field, "tokenizer.ggml.scores");
    let (field, _) = config_error(spm_gguf(|m| set(m, "tokenizer.ggml.bos_token_id", GgufValue::U32(5000))));
    assert_eq!(field, "tokenizer.ggml.bos_token_id");
    let file = spm_gguf(|m| set(m, "tokenizer.ggml.model", GgufValue::String("bert".into())));
    let err = tokenizer(&file).err().unwrap().to_string();
    assert!(err.contains("tokenizer.ggml.model") && err.contains("`bert`"), "{err}");
}
