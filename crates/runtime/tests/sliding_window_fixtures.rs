//! Sliding-window attention against transformers' recorded outputs (eager attention, f32,
//! rel-err ≤ 1e-4): a Mistral whose every layer sees only the 5 latest tokens, and a Qwen2 with
//! `use_sliding_window` where `max_window_layers` leaves layer 0 on full attention. The prompts
//! (19 tokens) and the greedy continuations run well past the window.

mod common;

use common::{
    check_cached_decode, check_prompt_logits, check_recorded_batches, greedy, greedy_max_new, ids, load_f32,
    logits_tol, manifest_named,
};
use ragtune_runtime::LlamaModel;
use serde_json::Value;

const MODELS: [&str; 2] = ["mistral-window", "qwen2-window"];

/// The recorded outputs of the window fixtures.
fn manifest() -> Value {
    manifest_named("sliding_window.json")
}

/// `f(model name, model, its recorded case, the case's prompt ids)` for each model.
fn each_model(m: &Value, mut f: impl FnMut(&str, &LlamaModel, &Value, Vec<u32>)) {
    for name in MODELS {
        let case = &m["models"][name];
        f(name, &load_f32(name), case, ids(&case["prompt_ids"]));
    }
}

#[test]
fn windows_apply_to_the_layers_transformers_applies_them_to() {
    let mistral = load_f32("mistral-window").config;
    assert_eq!(mistral.sliding_window, Some(5));
    assert!((0..mistral.num_layers).all(|l| mistral.attention_window(l) == Some(5)));
    // Qwen2: layer_types = [full_attention, sliding_attention] (max_window_layers 1).
    let qwen = load_f32("qwen2-window").config;
    assert_eq!((qwen.attention_window(0), qwen.attention_window(1)), (None, Some(5)));
    // The context stays max_position_embeddings: the window does not shorten it.
    assert_eq!(load_f32("mistral-window").max_context(), 64);
}

#[test]
fn prompt_logits_past_the_window_match_transformers() {
    let m = manifest();
    let tol = logits_tol(&m);
    each_model(&m, |name, model, case, prompt| {
        assert!(prompt.len() > model.config.sliding_window.unwrap());
        check_prompt_logits(model, name, &prompt, &case["prompt_logits"], tol);
    });
}

#[test]
fn greedy_continuation_past_the_window_matches_transformers() {
    let m = manifest();
    let max_new = greedy_max_new(&m);
    each_model(&m, |name, model, case, prompt| {
        assert_eq!(greedy(model, prompt, max_new), ids(&case["greedy_ids"]), "{name}");
    });
}

/// A left-padded batch of a 19- and a 9-token prompt: the window counts each sequence's real
/// tokens, in prefill and in the batched greedy decode after it.
#[test]
fn batched_prefill_and_decode_with_a_window_match_transformers() {
    // No eos: every row runs the full max_new tokens, so the pad id never shows.
    check_recorded_batches(&manifest(), &MODELS, |_| 0);
}

/// Decoding token by token through a cache that grows past the window gives the logits of one
/// prefill at every position.
#[test]
fn cached_decode_past_the_window_equals_prefill() {
    let m = manifest();
    for name in MODELS {
        check_cached_decode(&load_f32(name), name, &ids(&m["models"][name]["prompt_ids"]));
    }
}
