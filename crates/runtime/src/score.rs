//! The log-likelihood of a continuation given a prompt, for multiple-choice scoring: one forward
//! pass over prompt + continuation with every position's logits, then `log_softmax` on the host.

use crate::error::{Result, RuntimeError};
use crate::generate::check_prompt;
use crate::llama::{KvCache, LlamaModel, LogitsWanted};

#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// `log p(continuation | prompt)`, natural log.
    pub log_likelihood: f64,
    /// Per continuation token.
    pub token_log_probs: Vec<f64>,
    /// Whether every continuation token is the argmax at its position.
    pub is_greedy: bool,
}

/// `log_softmax(row)[target]` (in f64) and whether `target` is the (first) argmax.
pub(crate) fn log_prob(row: &[f32], target: usize) -> (f64, bool) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    (row[target] as f64 - lse, crate::sampling::argmax(row) == target)
}

/// Score each `(prompt, continuation)` pair in one batch.
pub fn score(model: &LlamaModel, pairs: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Score>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut seqs = Vec::with_capacity(pairs.len());
    for (i, (prompt, cont)) in pairs.iter().enumerate() {
        if cont.is_empty() {
            return Err(RuntimeError::input(format!("continuation {i} is empty: nothing to score")));
        }
        let full: Vec<u32> = prompt.iter().chain(cont).copied().collect();
        check_prompt(model, i, prompt)?;
        check_prompt(model, i, &full)?;
        seqs.push(full);
    }
    let capacity = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let mut cache = KvCache::new(model, seqs.len(), capacity)?;
    let feed: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let (logits, layout) = model.forward(&mut cache, &feed, LogitsWanted::All)?;
    let logits = logits.to_vec_f32()?;
    let vocab = model.config.vocab_size;
    Ok(pairs
        .iter()
        .enumerate()
        .map(|(b, (prompt, cont))| {
            let mut token_log_probs = Vec::with_capacity(cont.len());
            let mut is_greedy = true;
            for (i, &target) in cont.iter().enumerate() {
                // The logits at position p predict token p + 1.
                let row = layout.row(b, prompt.len() + i - 1);
                let (lp, top) = log_prob(&logits[row * vocab..(row + 1) * vocab], target as usize);
                token_log_probs.push(lp);
                is_greedy &= top;
            }
            Score { log_likelihood: token_log_probs.iter().sum(), token_log_probs, is_greedy }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_prob_is_a_log_softmax() {
        let row = [1.0f32, 2.0, 3.0];
        let z: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
        assert!((log_prob(&row, 2).0 - (3.0f64.exp() / z).ln()).abs() < 1e-12);
        assert!(log_prob(&row, 2).1 && !log_prob(&row, 1).1);
    }
}
