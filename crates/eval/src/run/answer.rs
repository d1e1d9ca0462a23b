//! Answering one question with a model. The prompt is prefilled once; greedy decoding continues
//! from that cache for the free answer, and a branch of it (one sequence per option) scores the
//! multiple-choice options by `log p(" option</s>" | prompt)`, so the options cost a few tokens
//! each rather than a prompt each. Latency counts what serving an answer costs — prefill up to
//! the first token, then decode — and not the option scoring, which only evaluation needs.

use std::time::Instant;

use ragtune_runtime::{KvCache, LlamaModel, LogitsWanted, Tokenizer, sampling::argmax};

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

/// `log_softmax(row)[target]`, in f64.
fn log_prob(row: &[f32], target: u32) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    row[target as usize] as f64 - lse
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
    let mut cache = KvCache::new(model, 1, capacity)?;
    let (logits, _) = model.forward(&mut cache, &[&prompt_ids], LogitsWanted::Last)?;
    let last = logits.to_vec_f32()?;
    out.prefill_ms = start.elapsed().as_secs_f64() * 1e3;
    if !options.is_empty() {
        let mut branch = cache.repeat(options.len())?;
        let feed: Vec<&[u32]> = options.iter().map(Vec::as_slice).collect();
        let (logits, layout) = model.forward(&mut branch, &feed, LogitsWanted::All)?;
        let all = logits.to_vec_f32()?;
        let vocab = model.config.vocab_size;
        for (b, opt) in options.iter().enumerate() {
            // The prompt's last logits predict the option's first token; the option's token
            // j − 1 predicts token j.
            let mut ll = log_prob(&last, opt[0]);
            for (j, &token) in opt.iter().enumerate().skip(1) {
                let row = layout.row(b, j - 1);
                ll += log_prob(&all[row * vocab..(row + 1) * vocab], token);
            }
            out.log_likelihoods.push(ll);
        }
        let best = out.log_likelihoods.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.choice = out.log_likelihoods.iter().position(|&l| l == best);
    }
    if max_new_tokens > 0 {
        let start = Instant::now();
        let mut tokens = Vec::new();
        let mut next = argmax(&last) as u32;
        loop {
            tokens.push(next);
            if stops.contains(&next) || tokens.len() >= max_new_tokens {
                break;
            }
            let (logits, _) = model.forward(&mut cache, &[&[next]], LogitsWanted::Last)?;
            next = argmax(&logits.to_vec_f32()?) as u32;
        }
        out.decode_ms = start.elapsed().as_secs_f64() * 1e3;
        out.generated_tokens = tokens.len();
        let text = tok.decode(&tokens, true)?;
        out.text = Some(text.split(prompt::ANSWER_END).next().unwrap_or("").trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_prob_is_a_log_softmax() {
        let row = [1.0f32, 2.0, 3.0];
        let z: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
        assert!((log_prob(&row, 2) - (3.0f64.exp() / z).ln()).abs() < 1e-12);
    }
}
