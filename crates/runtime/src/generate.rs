//! Batched generation: one prefill of every prompt, then one decode step per token for the
//! sequences still running, each with its own sampler, stop tokens and token budget.

use crate::error::{Result, RuntimeError};
use crate::llama::{KvCache, LlamaModel, LogitsWanted};
use crate::sampling::{Sampler, SamplingParams};

#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation of a sequence ends after it emits one of these (the token is kept).
    pub stop_tokens: Vec<u32>,
}

impl GenerateOptions {
    /// Greedy, stopping on the model's `eos_token_id`s.
    pub fn for_model(model: &LlamaModel, max_new_tokens: usize) -> Self {
        GenerateOptions {
            max_new_tokens,
            sampling: SamplingParams::greedy(),
            stop_tokens: model.config.eos_token_ids.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// Emitted this stop token.
    Stop(u32),
    /// Reached `max_new_tokens`.
    Length,
    /// Reached the model's context length.
    Context,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The new tokens, the stop token included.
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
}

/// Check a prompt before it reaches the model: not empty, and leaving room in the context.
pub fn check_prompt(model: &LlamaModel, index: usize, prompt: &[u32]) -> Result<()> {
    if prompt.is_empty() {
        return Err(RuntimeError::input(format!(
            "prompt {index} is empty: a decoder needs at least one token to condition on \
             (a BOS token counts)"
        )));
    }
    if prompt.len() > model.max_context() {
        return Err(RuntimeError::input(format!(
            "prompt {index} has {} tokens, more than the model's context of {} tokens \
             (max_position_embeddings); shorten it",
            prompt.len(),
            model.max_context()
        )));
    }
    Ok(())
}

/// Generate for every prompt at once. `on_token(sequence, token)` sees each token as it is
/// chosen (for streaming).
pub fn generate(
    model: &LlamaModel,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    on_token: impl FnMut(usize, u32) -> Result<()>,
) -> Result<Vec<Generated>> {
    generate_with_adapters(model, prompts, None, options, on_token)
}

/// [`generate`] with each prompt's adapter chosen from the model's adapter banks
/// (`Linear::bank`, filled by [`crate::adapter::attach_bank`]): `adapters[i]` for
/// prompt `i`, −1 for none. One batch serves them all.
pub fn generate_with_adapters(
    model: &LlamaModel,
    prompts: &[Vec<u32>],
    adapters: Option<&[i32]>,
    options: &GenerateOptions,
    mut on_token: impl FnMut(usize, u32) -> Result<()>,
) -> Result<Vec<Generated>> {
    for (i, p) in prompts.iter().enumerate() {
        check_prompt(model, i, p)?;
    }
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let capacity = longest.saturating_add(options.max_new_tokens).min(model.max_context());
    let mut cache = KvCache::new(model, prompts.len(), capacity)?;
    cache.set_adapters(adapters.map(<[i32]>::to_vec))?;
    let mut samplers =
        (0..prompts.len()).map(|i| Sampler::new(options.sampling, i as u64)).collect::<Result<Vec<_>>>()?;
    let mut out: Vec<Generated> =
        prompts.iter().map(|_| Generated { tokens: Vec::new(), finish: FinishReason::Length }).collect();
    let mut running: Vec<bool> = vec![options.max_new_tokens > 0; prompts.len()];
    let mut inputs: Vec<Vec<u32>> = prompts.to_vec();
    while running.iter().any(|&r| r) {
        let feed: Vec<&[u32]> =
            inputs.iter().zip(&running).map(|(t, &r)| if r { t.as_slice() } else { &[][..] }).collect();
        let (logits, _) = model.forward(&mut cache, &feed, LogitsWanted::Last)?;
        let logits = logits.to_vec_f32()?;
        let vocab = model.config.vocab_size;
        for b in 0..prompts.len() {
            if !running[b] {
                continue;
            }
            let token = samplers[b].sample(&logits[b * vocab..(b + 1) * vocab])?;
            out[b].tokens.push(token);
            on_token(b, token)?;
            inputs[b] = vec![token];
            if options.stop_tokens.contains(&token) {
                out[b].finish = FinishReason::Stop(token);
                running[b] = false;
            } else if out[b].tokens.len() >= options.max_new_tokens {
                out[b].finish = FinishReason::Length;
                running[b] = false;
            } else if cache.lens()[b] >= cache.capacity() {
                out[b].finish = FinishReason::Context;
                running[b] = false;
            }
        }
    }
    Ok(out)
}
