//! The Llama-family forward pass against transformers' recorded outputs: a Llama with GQA and
//! llama3 rope scaling, and a Qwen2 with q/k/v bias and untied embeddings (f32, rel-err ≤ 1e-4).

mod common;

use common::{
    check_cached_decode, check_prompt_logits, check_recorded_batches, fixtures, greedy, greedy_max_new, ids,
    load_f32, logits_tol, manifest, read_npy,
};
use ragtune_runtime::{LlamaModel, Tokenizer, score};
use serde_json::Value;

const MODELS: [&str; 2] = ["llama-gqa", "qwen2-bias"];

/// `f(model name, model, case, its prompt ids)` for each recorded prompt case of each model.
fn each_case(m: &Value, mut f: impl FnMut(&str, &LlamaModel, &Value, Vec<u32>)) {
    for name in MODELS {
        let model = load_f32(name);
        for case in m["models"][name]["cases"].as_array().unwrap() {
            f(name, &model, case, ids(&case["ids"]));
        }
    }
}

#[test]
fn tokenizer_reproduces_prompt_ids() {
    let m = manifest();
    for name in MODELS {
        let tok = Tokenizer::from_file(&fixtures().join(name).join("model/tokenizer.json")).unwrap();
        for case in m["models"][name]["cases"].as_array().unwrap() {
            let text = case["prompt"].as_str().unwrap();
            assert_eq!(tok.encode(text, true).unwrap(), ids(&case["ids"]), "{name}: {text:?}");
        }
    }
}

#[test]
fn prompt_logits_match_transformers() {
    let m = manifest();
    let tol = logits_tol(&m);
    each_case(&m, |name, model, case, prompt| {
        check_prompt_logits(model, &format!("{name} {}", case["name"]), &prompt, &case["logits"], tol)
    });
}

#[test]
fn greedy_matches_transformers() {
    let m = manifest();
    let max_new = greedy_max_new(&m);
    each_case(&m, |name, model, case, prompt| {
        assert_eq!(greedy(model, prompt, max_new), ids(&case["greedy_ids"]), "{name} {}", case["name"]);
    });
}

/// Two prompts of different lengths in one batch: prefill logits where transformers' attention
/// mask is 1, and the greedy continuations (transformers pads a finished row with pad ids).
#[test]
fn batched_prefill_and_decode_match_transformers() {
    check_recorded_batches(&manifest(), &MODELS, |batch| batch["pad_token_id"].as_u64().unwrap() as u32);
}

/// Decoding token by token through the cache gives the same logits as one prefill.
#[test]
fn cached_decode_equals_full_prefill() {
    check_cached_decode(&load_f32("llama-gqa"), "llama-gqa", &[0, 321, 351, 303, 224, 41, 85, 291]);
}

/// The log-likelihood of a continuation equals the sum of log-softmax of transformers' logits.
#[test]
fn score_matches_reference_log_softmax() {
    let m = manifest();
    let model = load_f32("llama-gqa");
    let case = &m["models"]["llama-gqa"]["cases"][0];
    let full = ids(&case["ids"]);
    let (_, reference) = read_npy(&fixtures().join(case["logits"].as_str().unwrap()));
    let v = model.config.vocab_size;
    let split = 4;
    let mut expected = 0.0;
    for p in split..full.len() {
        let row = &reference[(p - 1) * v..p * v];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = row.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
        expected += row[full[p] as usize] - lse;
    }
    let pairs =
        vec![(full[..split].to_vec(), full[split..].to_vec()), (full[..2].to_vec(), full[2..5].to_vec())];
    let scores = score(&model, &pairs).unwrap();
    assert!((scores[0].log_likelihood - expected).abs() < 1e-3, "{} vs {expected}", scores[0].log_likelihood);
    assert_eq!(scores[1].token_log_probs.len(), 3);
}
