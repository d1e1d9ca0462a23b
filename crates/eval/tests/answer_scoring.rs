//! The runner's answer path (prefill once, branch the KV cache per option, greedy decode from
//! the prefilled cache) gives the same option log-likelihoods as scoring each full
//! prompt + option sequence with `ragtune_runtime::score`, and the same tokens as
//! `ragtune_runtime::generate`.

use ragtune_compute::{DType, Device};
use ragtune_eval::prompt;
use ragtune_eval::run::answer::{answer, stop_tokens};
use ragtune_runtime::{GenerateOptions, generate, load_causal_lm, score};

#[test]
fn branched_scoring_and_decoding_match_the_runtime() {
    let dir = std::env::temp_dir().join(format!("ragtune-eval-answer-{}", std::process::id()));
    let model_dir = match std::env::var_os("RAGTUNE_DEMO_MODEL") {
        Some(d) => d.into(),
        None => ragtune_eval::builtin::write_builtin(&dir).expect("the built-in model is written"),
    };
    let (model, tok) = load_causal_lm(&model_dir, DType::F32, Device::Cpu).unwrap();
    let stops = stop_tokens(&model, &tok).unwrap();
    let text = prompt::with_passages(
        &["Saefask Osim was born in Raeverral. Saefask Osim works for Sturze Foundry."],
        "Where was Saefask Osim born?",
    );
    let choices: Vec<String> =
        ["Raeverral", "Digufir", "Nilmarke Bay", "Seszes"].iter().map(|s| s.to_string()).collect();
    let got = answer(&model, &tok, &text, &choices, 6, &stops).unwrap();
    let p = tok.encode(&text, true).unwrap();
    let eos = model.config.eos_token_ids[0];
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = choices
        .iter()
        .map(|c| {
            (p.clone(), tok.encode(&prompt::answer(c), false).unwrap().into_iter().chain([eos]).collect())
        })
        .collect();
    let want = score(&model, &pairs).unwrap();
    for (g, w) in got.log_likelihoods.iter().zip(&want) {
        assert!(
            (g - w.log_likelihood).abs() < 1e-3 * w.log_likelihood.abs().max(1.0),
            "{g} vs {}",
            w.log_likelihood
        );
    }
    let best =
        want.iter().enumerate().max_by(|a, b| a.1.log_likelihood.total_cmp(&b.1.log_likelihood)).unwrap().0;
    assert_eq!(got.choice, Some(best));
    let options = GenerateOptions { stop_tokens: stops.clone(), ..GenerateOptions::for_model(&model, 6) };
    let generated = generate(&model, std::slice::from_ref(&p), &options, |_, _| Ok(())).unwrap();
    assert_eq!(got.generated_tokens, generated[0].tokens.len());
    let text = tok.decode(&generated[0].tokens, true).unwrap();
    assert_eq!(got.text.as_deref(), Some(text.split('\n').next().unwrap().trim()));
    let _ = std::fs::remove_dir_all(&dir);
}
