//! Answering questions with a model: multiple choice by the log-likelihood of each option (one
//! batch per question), and a greedy free answer generated one question at a time so its
//! latency is a real per-question latency (prefill up to the first token, then decode).

use std::time::Instant;

use ragtune_runtime::{GenerateOptions, LlamaModel, Tokenizer, generate, score};

use crate::error::Result;
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
    /// Index of the highest-likelihood option, when there were options.
    pub choice: Option<usize>,
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
    let mut out = Answer { prompt_tokens: prompt_ids.len(), ..Answer::default() };
    if !choices.is_empty() {
        let pairs = choices
            .iter()
            .map(|c| Ok((prompt_ids.clone(), tok.encode(&prompt::answer(c), false)?)))
            .collect::<Result<Vec<_>>>()?;
        let scores = score(model, &pairs)?;
        out.choice = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.log_likelihood.total_cmp(&b.1.log_likelihood).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i);
    }
    if max_new_tokens > 0 {
        let options = GenerateOptions {
            max_new_tokens,
            stop_tokens: stops.to_vec(),
            ..GenerateOptions::for_model(model, max_new_tokens)
        };
        let start = Instant::now();
        let mut first: Option<Instant> = None;
        let generated = generate(model, std::slice::from_ref(&prompt_ids), &options, |_, _| {
            first.get_or_insert_with(Instant::now);
            Ok(())
        })?;
        let end = Instant::now();
        let first = first.unwrap_or(end);
        out.prefill_ms = (first - start).as_secs_f64() * 1e3;
        out.decode_ms = (end - first).as_secs_f64() * 1e3;
        let tokens = &generated[0].tokens;
        out.generated_tokens = tokens.len();
        let text = tok.decode(tokens, true)?;
        out.text = Some(text.split(prompt::ANSWER_END).next().unwrap_or("").trim().to_string());
    }
    Ok(out)
}
