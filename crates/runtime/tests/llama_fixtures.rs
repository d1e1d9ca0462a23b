//! The Llama-family forward pass against transformers' recorded outputs: a Llama with GQA and
//! llama3 rope scaling, and a Qwen2 with q/k/v bias and untied embeddings (f32, rel-err ≤ 1e-4).

mod common;

use common::{fixtures, ids, manifest, read_npy, rel_err};
use ragtune_compute::{DType, Device};
use ragtune_runtime::{GenerateOptions, KvCache, LlamaModel, LogitsWanted, Tokenizer, generate, score};

const MODELS: [&str; 2] = ["llama-gqa", "qwen2-bias"];

fn load(name: &str) -> LlamaModel {
    LlamaModel::from_dir(&fixtures().join(name).join("model"), DType::F32, Device::Cpu).expect("model loads")
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
    let tol = m["tolerances"]["logits_rel_err"].as_f64().unwrap();
    for name in MODELS {
        let model = load(name);
        for case in m["models"][name]["cases"].as_array().unwrap() {
            let prompt = ids(&case["ids"]);
            let mut cache = KvCache::new(&model, 1, prompt.len()).unwrap();
            let (logits, _) = model.forward(&mut cache, &[&prompt], LogitsWanted::All).unwrap();
            let (shape, reference) = read_npy(&fixtures().join(case["logits"].as_str().unwrap()));
            assert_eq!(logits.shape(), [1, shape[0], shape[1]]);
            let err = rel_err(&logits.to_vec_f32().unwrap(), &reference);
            assert!(err <= tol, "{name} {}: logits rel err {err:.2e}", case["name"]);
        }
    }
}

#[test]
fn greedy_matches_transformers() {
    let m = manifest();
    let max_new = m["greedy"]["max_new_tokens"].as_u64().unwrap() as usize;
    for name in MODELS {
        let model = load(name);
        for case in m["models"][name]["cases"].as_array().unwrap() {
            let prompt = ids(&case["ids"]);
            let out =
                generate(&model, &[prompt], &GenerateOptions::for_model(&model, max_new), |_, _| Ok(()))
                    .unwrap();
            assert_eq!(out[0].tokens, ids(&case["greedy_ids"]), "{name} {}", case["name"]);
        }
    }
}

/// Two prompts of different lengths in one batch: prefill logits where transformers' attention
/// mask is 1, and the greedy continuations (transformers pads a finished row with pad ids).
#[test]
fn batched_prefill_and_decode_match_transformers() {
    let m = manifest();
    let tol = m["tolerances"]["logits_rel_err"].as_f64().unwrap();
    for name in MODELS {
        let model = load(name);
        let batch = &m["models"][name]["batch"];
        let padded: Vec<Vec<u32>> = batch["ids_list"].as_array().unwrap().iter().map(ids).collect();
        let masks: Vec<Vec<u32>> = batch["attention_mask_list"].as_array().unwrap().iter().map(ids).collect();
        let prompts: Vec<Vec<u32>> = padded
            .iter()
            .zip(&masks)
            .map(|(p, mk)| p.iter().zip(mk).filter(|(_, m)| **m == 1).map(|(t, _)| *t).collect())
            .collect();
        let s = padded[0].len();
        let (_, reference) = read_npy(&fixtures().join(batch["logits"].as_str().unwrap()));
        let mut cache = KvCache::new(&model, prompts.len(), s).unwrap();
        let feed: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let (logits, layout) = model.forward(&mut cache, &feed, LogitsWanted::All).unwrap();
        let logits = logits.to_vec_f32().unwrap();
        let v = model.config.vocab_size;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for (b, p) in prompts.iter().enumerate() {
            for t in 0..p.len() {
                let row = layout.row(b, t);
                ours.extend_from_slice(&logits[row * v..(row + 1) * v]);
                let ref_row = b * s + (s - p.len()) + t;
                theirs.extend_from_slice(&reference[ref_row * v..(ref_row + 1) * v]);
            }
        }
        let err = rel_err(&ours, &theirs);
        assert!(err <= tol, "{name}: batched logits rel err {err:.2e}");

        let max_new = m["greedy"]["max_new_tokens"].as_u64().unwrap() as usize;
        let out =
            generate(&model, &prompts, &GenerateOptions::for_model(&model, max_new), |_, _| Ok(())).unwrap();
        let pad = batch["pad_token_id"].as_u64().unwrap() as u32;
        for (b, expected) in batch["greedy_ids"].as_array().unwrap().iter().enumerate() {
            let mut got = out[b].tokens.clone();
            got.resize(max_new, pad);
            assert_eq!(got, ids(expected), "{name}: batch row {b}");
        }
    }
}

/// Decoding token by token through the cache gives the same logits as one prefill.
#[test]
fn cached_decode_equals_full_prefill() {
    let model = load("llama-gqa");
    let prompt: Vec<u32> = vec![0, 321, 351, 303, 224, 41, 85, 291];
    let mut full_cache = KvCache::new(&model, 1, prompt.len()).unwrap();
    let (full, _) = model.forward(&mut full_cache, &[&prompt], LogitsWanted::All).unwrap();
    let full = full.to_vec_f32().unwrap();
    let v = model.config.vocab_size;
    let mut cache = KvCache::new(&model, 1, prompt.len()).unwrap();
    model.forward(&mut cache, &[&prompt[..3]], LogitsWanted::Last).unwrap();
    for t in 3..prompt.len() {
        let (step, _) = model.forward(&mut cache, &[&prompt[t..t + 1]], LogitsWanted::Last).unwrap();
        let reference: Vec<f64> = full[t * v..(t + 1) * v].iter().map(|&x| x as f64).collect();
        assert!(rel_err(&step.to_vec_f32().unwrap(), &reference) < 1e-5, "position {t}");
    }
}

/// The log-likelihood of a continuation equals the sum of log-softmax of transformers' logits.
#[test]
fn score_matches_reference_log_softmax() {
    let m = manifest();
    let model = load("llama-gqa");
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
