//! Sliding-window attention against transformers' recorded outputs (eager attention, f32,
//! rel-err ≤ 1e-4): a Mistral whose every layer sees only the 5 latest tokens, and a Qwen2 with
//! `use_sliding_window` where `max_window_layers` leaves layer 0 on full attention. The prompts
//! (19 tokens) and the greedy continuations run well past the window.

mod common;

use common::{check_cached_decode, check_left_padded_batch, check_prompt_logits, fixtures, ids};
use ragtune_compute::{DType, Device};
use ragtune_runtime::{GenerateOptions, LlamaModel, generate};
use serde_json::Value;

const MODELS: [&str; 2] = ["mistral-window", "qwen2-window"];

fn manifest() -> Value {
    let text = std::fs::read_to_string(fixtures().join("sliding_window.json")).expect("sliding_window.json");
    serde_json::from_str(&text).expect("manifest JSON")
}

fn load(name: &str) -> LlamaModel {
    LlamaModel::from_dir(&fixtures().join(name).join("model"), DType::F32, Device::Cpu).expect("model loads")
}

#[test]
fn windows_apply_to_the_layers_transformers_applies_them_to() {
    let mistral = load("mistral-window").config;
    assert_eq!(mistral.sliding_window, Some(5));
    assert!((0..mistral.num_layers).all(|l| mistral.attention_window(l) == Some(5)));
    // Qwen2: layer_types = [full_attention, sliding_attention] (max_window_layers 1).
    let qwen = load("qwen2-window").config;
    assert_eq!((qwen.attention_window(0), qwen.attention_window(1)), (None, Some(5)));
    // The context stays max_position_embeddings: the window does not shorten it.
    assert_eq!(load("mistral-window").max_context(), 64);
}

#[test]
fn prompt_logits_past_the_window_match_transformers() {
    let m = manifest();
    let tol = m["tolerances"]["logits_rel_err"].as_f64().unwrap();
    for name in MODELS {
        let model = load(name);
        let case = &m["models"][name];
        let prompt = ids(&case["prompt_ids"]);
        assert!(prompt.len() > model.config.sliding_window.unwrap());
        check_prompt_logits(&model, name, &prompt, &case["prompt_logits"], tol);
    }
}

#[test]
fn greedy_continuation_past_the_window_matches_transformers() {
    let m = manifest();
    let max_new = m["greedy"]["max_new_tokens"].as_u64().unwrap() as usize;
    for name in MODELS {
        let model = load(name);
        let case = &m["models"][name];
        let prompt = ids(&case["prompt_ids"]);
        let out =
            generate(&model, &[prompt], &GenerateOptions::for_model(&model, max_new), |_, _| Ok(())).unwrap();
        assert_eq!(out[0].tokens, ids(&case["greedy_ids"]), "{name}");
    }
}

/// A left-padded batch of a 19- and a 9-token prompt: the window counts each sequence's real
/// tokens, in prefill and in the batched greedy decode after it.
#[test]
fn batched_prefill_and_decode_with_a_window_match_transformers() {
    let m = manifest();
    let tol = m["tolerances"]["logits_rel_err"].as_f64().unwrap();
    let max_new = m["greedy"]["max_new_tokens"].as_u64().unwrap() as usize;
    for name in MODELS {
        // No eos: every row runs the full max_new tokens, so the pad id never shows.
        check_left_padded_batch(&load(name), name, &m["models"][name]["batch"], tol, max_new, 0);
    }
}

/// Decoding token by token through a cache that grows past the window gives the logits of one
/// prefill at every position.
#[test]
fn cached_decode_past_the_window_equals_prefill() {
    let m = manifest();
    for name in MODELS {
        check_cached_decode(&load(name), name, &ids(&m["models"][name]["prompt_ids"]));
    }
}
