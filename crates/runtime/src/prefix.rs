//! A prompt prefilled once and then used twice: scoring several continuations of it (the cache
//! branched, one sequence per continuation) and decoding greedily from it. [`crate::score()`] and
//! [`crate::generate()`] each prefill their prompts themselves; evaluating a multiple-choice
//! question that also wants a free answer would prefill the same prompt twice (and once more per
//! option), which [`Prefilled`] avoids: the options cost a few tokens each, not a prompt each.

use crate::error::{Result, RuntimeError};
use crate::generate::check_prompt;
use crate::llama::{KvCache, LlamaModel, LogitsWanted};
use crate::sampling::argmax;
use crate::score::{Score, log_prob};

/// A one-sequence KV cache holding a prompt, with the logits of its last position.
pub struct Prefilled<'m> {
    model: &'m LlamaModel,
    cache: KvCache,
    last: Vec<f32>,
    prompt_len: usize,
}

impl<'m> Prefilled<'m> {
    /// Prefill `prompt` into a cache with `room` positions to spare after it: at least the
    /// longest continuation to be scored and the most tokens to be generated.
    pub fn new(model: &'m LlamaModel, prompt: &[u32], room: usize) -> Result<Prefilled<'m>> {
        check_prompt(model, 0, prompt)?;
        let capacity = prompt.len() + room;
        if capacity > model.max_context() {
            return Err(RuntimeError::input(format!(
                "a prompt of {} tokens plus {room} more does not fit the model's context of {} tokens",
                prompt.len(),
                model.max_context()
            )));
        }
        let mut cache = KvCache::new(model, 1, capacity)?;
        let (logits, _) = model.forward(&mut cache, &[prompt], LogitsWanted::Last)?;
        Ok(Prefilled { model, cache, last: logits.to_vec_f32()?, prompt_len: prompt.len() })
    }

    /// Tokens of the prompt.
    pub fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    /// The logits after the prompt's last token (they predict the first new token).
    pub fn last_logits(&self) -> &[f32] {
        &self.last
    }

    /// `log p(continuation | prompt)` of each continuation, as [`crate::score()`] gives for
    /// `(prompt, continuation)` pairs, in one batch over a branch of the cache (the prompt is
    /// not run again). Every continuation must be non-empty and fit the cache's room.
    pub fn score(&self, continuations: &[Vec<u32>]) -> Result<Vec<Score>> {
        if continuations.is_empty() {
            return Ok(Vec::new());
        }
        for (i, c) in continuations.iter().enumerate() {
            if c.is_empty() {
                return Err(RuntimeError::input(format!("continuation {i} is empty: nothing to score")));
            }
            if self.prompt_len + c.len() > self.cache.capacity() {
                return Err(RuntimeError::input(format!(
                    "continuation {i} has {} tokens, more than the {} the prefilled prompt left room for",
                    c.len(),
                    self.cache.capacity() - self.prompt_len
                )));
            }
        }
        let mut branch = self.cache.repeat(continuations.len())?;
        let feed: Vec<&[u32]> = continuations.iter().map(Vec::as_slice).collect();
        let (logits, layout) = self.model.forward(&mut branch, &feed, LogitsWanted::All)?;
        let all = logits.to_vec_f32()?;
        let vocab = self.model.config.vocab_size;
        Ok(continuations
            .iter()
            .enumerate()
            .map(|(b, c)| {
                // The prompt's last logits predict the first token; token j − 1 predicts token j.
                let rows = std::iter::once(self.last.as_slice())
                    .chain((1..c.len()).map(|j| &all[layout.row(b, j - 1) * vocab..][..vocab]));
                let (token_log_probs, greedy): (Vec<f64>, Vec<bool>) =
                    rows.zip(c).map(|(row, &t)| log_prob(row, t as usize)).unzip();
                Score {
                    log_likelihood: token_log_probs.iter().sum(),
                    token_log_probs,
                    is_greedy: greedy.iter().all(|&g| g),
                }
            })
            .collect())
    }

    /// Continue the prompt greedily: up to `max_new_tokens` tokens, ending after the first one
    /// in `stops` (kept) or when the cache is full. The same tokens as [`crate::generate()`]
    /// with greedy sampling and these stop tokens.
    pub fn greedy(mut self, max_new_tokens: usize, stops: &[u32]) -> Result<Vec<u32>> {
        let mut tokens = Vec::new();
        if max_new_tokens == 0 {
            return Ok(tokens);
        }
        let mut next = argmax(&self.last) as u32;
        loop {
            tokens.push(next);
            let full = self.cache.lens()[0] >= self.cache.capacity();
            if stops.contains(&next) || tokens.len() >= max_new_tokens || full {
                return Ok(tokens);
            }
            let (logits, _) = self.model.forward(&mut self.cache, &[&[next]], LogitsWanted::Last)?;
            next = argmax(&logits.to_vec_f32()?) as u32;
        }
    }
}
