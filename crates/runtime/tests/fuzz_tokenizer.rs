//! Issue 17, item 7: mutation tests of the tokenizer.json reader, on the llama-gqa fixture's
//! byte-level BPE file: structural edits (vocab ids set to huge or negative numbers, merges
//! emptied or repeated, the model type or pre-tokenizer given the wrong type, added tokens
//! removed) and text damage. A tokenizer that loads must also encode and decode a sentence.
//! Each case gives a value or an error: never a panic, an abort or more than 1 GiB.

use std::path::Path;

use ragtune_runtime::Tokenizer;
use ragtune_tests::fuzz::{CountingAlloc, file, fuzz, mutate};
use rand::Rng;
use serde_json::Value;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn fuzz_tokenizer_json() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/runtime/llama-gqa/model/tokenizer.json");
    let text = std::fs::read(&path).unwrap();
    let json: Value = serde_json::from_slice(&text).unwrap();
    fuzz(
        "tokenizer-json",
        24,
        |rng| {
            let bytes = match rng.random_range(0..4) {
                0 => mutate::text(rng, &text),
                _ => mutate::json(rng, &json).to_string().into_bytes(),
            };
            file("tokenizer.json", bytes)
        },
        |dir| {
            let tok = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
            let ids = tok.encode("The robot watered 12 plants, café ünïcode 🙂.", true)?;
            let max = ids.iter().max().copied().unwrap_or(0);
            let _ = tok.token_to_id("<|begin_of_text|>");
            tok.decode(&ids, false).map(|_| (tok.vocab_size(), max))
        },
    );
}

/// Load `json` and encode with special tokens, catching a panic: the reproducers below.
fn load_and_encode(json: &str) -> std::thread::Result<Result<Vec<u32>, ragtune_runtime::RuntimeError>> {
    let path = std::env::temp_dir().join(format!(
        "ragtune-fuzz-tok-{}-{:?}.json",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, json).unwrap();
    let result = std::panic::catch_unwind(|| Tokenizer::from_file(&path).and_then(|t| t.encode("abc", true)));
    std::fs::remove_file(&path).ok();
    result
}

fn fixture_json() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/runtime/llama-gqa/model/tokenizer.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Found by `cargo xtask fuzz` (seed 24, e.g. cases 2282, 3832): a syntax error inside the
/// `decoder` object panics in tokenizers 0.22.2 (`decoders/mod.rs:90`, `.expect("Helper")`)
/// instead of returning its parse error; `Tokenizer::from_file` parses the JSON first and names
/// the field.
#[test]
fn a_malformed_decoder_is_an_error() {
    let text = fixture_json().to_string();
    let at = text.find("\"decoder\":{").expect("the fixture has a decoder") + "\"decoder\":{".len();
    let broken = format!("{}\"type\":\"ByteLevel\",,{}", &text[..at], &text[at..]);
    let err = load_and_encode(&broken).expect("no panic").unwrap_err().to_string();
    assert!(err.contains("not valid JSON in field `decoder`") && err.contains("column"), "{err}");
}

/// Found by `cargo xtask fuzz` (seed 24, e.g. case 4654): a template `SpecialToken` missing from
/// `special_tokens` panics at encode time in tokenizers 0.22.2 (`processors/template.rs:563`,
/// "no entry found for key"); the file is checked on load.
#[test]
fn a_template_token_without_its_entry_is_an_error() {
    let mut json = fixture_json();
    json["post_processor"]["processors"][1]["single"][0]["SpecialToken"]["id"] = "<|missing|>".into();
    let err = load_and_encode(&json.to_string()).expect("no panic").unwrap_err().to_string();
    assert!(err.contains("post_processor.processors[1].single[0]") && err.contains("<|missing|>"), "{err}");
}

/// Found by `cargo xtask fuzz`: the pre-tokenizer `Split` repeated 1,000 times (a 215 KB file)
/// compiled 1,000 regexes, 425 MiB. The pattern count is bounded by the check made before
/// `tokenizers` parses the file (so before any regex is compiled): an error naming the field.
/// (Not measured here: the allocator's peak is shared with the fuzz test running beside it.)
#[test]
fn a_thousand_regex_pre_tokenizers_are_refused_cheaply() {
    let mut json = fixture_json();
    let split = json["pre_tokenizer"]["pretokenizers"][0].clone();
    let list = json["pre_tokenizer"]["pretokenizers"].as_array_mut().unwrap();
    list.splice(0..0, std::iter::repeat_n(split, 1000));
    let text = json.to_string();
    let err = load_and_encode(&text).expect("no panic").unwrap_err().to_string();
    assert!(err.contains("field `pre_tokenizer`") && err.contains("regex patterns"), "{err}");
}
