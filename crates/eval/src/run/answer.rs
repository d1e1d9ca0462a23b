//! Answering one question with a model, timed. The prompt is prefilled once
//! ([`ragtune_runtime::Prefilled`]); greedy decoding continues from that cache for the free
//! answer, and a branch of it (one sequence per option) scores the multiple-choice options by
//! `log p(" option</s>" | prompt)`, so the options cost a few tokens each rather than a prompt
//! each. Latency counts what serving an answer costs — prefill up to
//! the first token, then decode — and not the option scoring, which only evaluation needs.

use std::time::Instant;

use ragtune_runtime::{LlamaModel, Prefilled, Tokenizer};

use crate::error::{EvalError, Result};
use crate::prompt;

/// The stop set for free answers: the model's end-of-sequence tokens and every token whose
/// text holds a newline (an answer is one line).
pub fn stop_tokens(model: &LlamaModel, tok: &Tokenizer) -> Result<Vec<u32>> {
    let mut stops = model.config.eos_token_ids.clone();
    for id in 0..tok.vocab_size() as u32 {
        if tok.decode(&[id], false)?.contains(prompt::ANSWER_END) {
            stops.push(id);
        }
    }
    stops.sort_unstable();
    stops.dedup();
    Ok(stops)
}

/// One question's answers under one prompt.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// Index of the highest-likelihood option (ties: the first), when there were options.
    pub choice: Option<usize>,
    /// Each option's log-likelihood.
    pub log_likelihoods: Vec<f64>,
    /// The generated answer (first line, trimmed), when generation was asked for.
    pub text: Option<String>,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
}

/// Score `choices` after `prompt_text` and/or generate up to `max_new_tokens` (0: none).
pub fn answer(
    model: &LlamaModel,
    tok: &Tokenizer,
    prompt_text: &str,
    choices: &[String],
    max_new_tokens: usize,
    stops: &[u32],
) -> Result<Answer> {
    let prompt_ids = tok.encode(prompt_text, true)?;
    let eos = model.config.eos_token_ids.first().copied();
    let options: Vec<Vec<u32>> = choices
        .iter()
        .map(|c| Ok(tok.encode(&prompt::answer(c), false)?.into_iter().chain(eos).collect()))
        .collect::<Result<_>>()?;
    let longest = options.iter().map(Vec::len).max().unwrap_or(0).max(max_new_tokens);
    let capacity = prompt_ids.len() + longest;
    if prompt_ids.is_empty() || capacity > model.max_context() {
        return Err(EvalError::config(format!(
            "a prompt of {} tokens plus {longest} answer tokens does not fit the model's context of {} \
             tokens; use fewer or shorter passages (rag k) or a shorter question",
            prompt_ids.len(),
            model.max_context()
        )));
    }
    let mut out = Answer { prompt_tokens: prompt_ids.len(), ..Answer::default() };
    let start = Instant::now();
    let prefilled = Prefilled::new(model, &prompt_ids, longest)?;
    out.prefill_ms = start.elapsed().as_secs_f64() * 1e3;
    if !options.is_empty() {
        out.log_likelihoods = prefilled.score(&options)?.iter().map(|s| s.log_likelihood).collect();
        let best = out.log_likelihoods.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.choice = out.log_likelihoods.iter().position(|&l| l == best);
    }
    if max_new_tokens > 0 {
        let start = Instant::now();
        let tokens = prefilled.greedy(max_new_tokens, stops)?;
        out.decode_ms = start.elapsed().as_secs_f64() * 1e3;
        out.generated_tokens = tokens.len();
        let text = tok.decode(&tokens, true)?;
        out.text = Some(text.split(prompt::ANSWER_END).next().unwrap_or("").trim().to_string());
    }
    Ok(out)
}
