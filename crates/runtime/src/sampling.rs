//! Choosing the next token from logits: greedy (temperature 0), or temperature, top-k and
//! top-p (nucleus) sampling from a seeded ChaCha generator, so a seed reproduces a run.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, RuntimeError};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy; otherwise logits are divided by it before the softmax.
    pub temperature: f32,
    /// Keep only the k most likely tokens (`None` or 0: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p` (1: all).
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 0.0, top_k: None, top_p: 1.0, seed: 0 }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams::default()
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(RuntimeError::input(format!(
                "temperature {} must be a finite number >= 0 (0 = greedy)",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(RuntimeError::input(format!("top_p {} must lie in (0, 1]", self.top_p)));
        }
        Ok(())
    }
}

/// Draws tokens for one sequence.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

/// The index of the largest value; the first one on ties (as `torch.argmax`). NaN never wins.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best
}

impl Sampler {
    /// `stream` separates the sequences of one batch: each gets its own generator.
    pub fn new(params: SamplingParams, stream: u64) -> Result<Sampler> {
        params.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(stream);
        Ok(Sampler { params, rng })
    }

    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(RuntimeError::input("cannot sample from an empty vocabulary"));
        }
        if let Some(i) = logits.iter().position(|v| v.is_nan()) {
            return Err(RuntimeError::input(format!(
                "the model produced NaN logits (token {i}): its weights hold NaN/inf or overflow in this dtype; \
                 check the model's weight files (and any adapter), or run in f32"
            )));
        }
        let p = &self.params;
        if p.temperature == 0.0 {
            return Ok(argmax(logits) as u32);
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if let Some(k) = p.top_k.filter(|&k| k > 0) {
            order.truncate(k);
        }
        let max = logits[order[0]] / p.temperature;
        let mut probs: Vec<f64> =
            order.iter().map(|&i| f64::from(logits[i] / p.temperature - max).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= total);
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            let keep = probs
                .iter()
                .position(|&q| {
                    cum += q;
                    cum >= f64::from(p.top_p)
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut draw = self.rng.random::<f64>() * total;
        for (q, &i) in probs.iter().zip(&order) {
            draw -= q;
            if draw < 0.0 {
                return Ok(i as u32);
            }
        }
        Ok(order[probs.len() - 1] as u32)
    }
}
