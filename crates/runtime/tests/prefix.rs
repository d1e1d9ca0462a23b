//! `Prefilled` (one prefill, then branched scoring and greedy decoding) against the runtime's
//! own `score` and `generate`, which prefill every sequence from scratch: the same
//! log-likelihoods (to 1e-5) and the same greedy tokens, on the recorded Llama and Qwen2
//! fixtures.

mod common;

use common::{greedy_max_new, ids, load_f32, manifest};
use ragtune_runtime::{GenerateOptions, Prefilled, generate, score};

#[test]
fn branched_scores_equal_score_from_scratch() {
    let m = manifest();
    for name in ["llama-gqa", "qwen2-bias"] {
        let model = load_f32(name);
        for case in m["models"][name]["cases"].as_array().unwrap() {
            let full = ids(&case["ids"]);
            let split = full.len() / 2;
            let prompt = full[..split].to_vec();
            // Continuations of different lengths, one of them the recorded text itself.
            let conts = vec![full[split..].to_vec(), vec![7], vec![11, 3, 250, 9]];
            let room = conts.iter().map(Vec::len).max().unwrap();
            let got = Prefilled::new(&model, &prompt, room).unwrap().score(&conts).unwrap();
            let pairs: Vec<_> = conts.iter().map(|c| (prompt.clone(), c.clone())).collect();
            let want = score(&model, &pairs).unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g.log_likelihood - w.log_likelihood).abs() < 1e-5, "{name}: {g:?} vs {w:?}");
                assert_eq!(g.token_log_probs.len(), w.token_log_probs.len());
                for (a, b) in g.token_log_probs.iter().zip(&w.token_log_probs) {
                    assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b}");
                }
                assert_eq!(g.is_greedy, w.is_greedy, "{name}");
            }
        }
    }
}

#[test]
fn greedy_equals_generate_and_scoring_first_changes_nothing() {
    let m = manifest();
    let max_new = greedy_max_new(&m);
    for name in ["llama-gqa", "qwen2-bias"] {
        let model = load_f32(name);
        for case in m["models"][name]["cases"].as_array().unwrap() {
            let prompt = ids(&case["ids"]);
            let opts = GenerateOptions::for_model(&model, max_new);
            let want = generate(&model, std::slice::from_ref(&prompt), &opts, |_, _| Ok(())).unwrap();
            let p = Prefilled::new(&model, &prompt, max_new).unwrap();
            // Scoring branches the cache; the greedy answer must not see the branch.
            p.score(&[vec![5, 6]]).unwrap();
            let got = p.greedy(max_new, &opts.stop_tokens).unwrap();
            assert_eq!(got, want[0].tokens, "{name} {}", case["name"]);
            // A stop token ends the answer right after it (kept), as in `generate`.
            let stop = got[1];
            let stopped = Prefilled::new(&model, &prompt, max_new).unwrap().greedy(max_new, &[stop]).unwrap();
            let cut = got.iter().position(|&t| t == stop).unwrap() + 1;
            assert_eq!(stopped, got[..cut], "{name}");
        }
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let model = load_f32("llama-gqa");
    let max = model.max_context();
    assert!(Prefilled::new(&model, &[], 4).is_err());
    let e = Prefilled::new(&model, &[1, 2], max).err().unwrap().to_string();
    assert!(e.contains("context"), "{e}");
    let p = Prefilled::new(&model, &[1, 2, 3], 2).unwrap();
    assert_eq!(p.prompt_len(), 3);
    assert_eq!(p.last_logits().len(), model.config.vocab_size);
    assert!(p.score(&[vec![]]).unwrap_err().to_string().contains("empty"));
    assert!(p.score(&[vec![4, 5, 6]]).unwrap_err().to_string().contains("room"));
    assert!(p.score(&[]).unwrap().is_empty());
    assert!(p.greedy(0, &[]).unwrap().is_empty());
}
