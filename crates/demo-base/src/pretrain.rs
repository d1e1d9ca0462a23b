//! Pretraining the built-in base model from scratch: a seeded initialisation of a small Llama,
//! then full-mode training (`ragtune_trainer::FullTrainer`) over packed rows of the mixture,
//! AdamW under warmup + cosine with gradient clipping.

use std::collections::HashMap;
use std::time::Instant;

use ragtune_compute::ops::{self, AdamW};
use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::{
    LlamaConfig, LlamaFamily, LlamaModel, Projection, RopeConfig, RopeScaling, TensorName, Weights,
};
use ragtune_trainer::FullTrainer;
use ragtune_trainer::data::{Example, collate};
use ragtune_trainer::schedule::warmup_cosine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::tokenizer::{BOS_ID, EOS_ID, PAD_ID};
use ragtune_eval::error::{EvalError, Result};

/// The model's shape (a Llama with tied embeddings, no biases).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelShape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
}

impl Default for ModelShape {
    fn default() -> Self {
        ModelShape {
            hidden: 192,
            layers: 4,
            heads: 3,
            kv_heads: 3,
            head_dim: 64,
            intermediate: 512,
            vocab: 1536,
            max_positions: 512,
        }
    }
}

impl ModelShape {
    /// The runtime's config for this shape; `vocab` is the tokenizer's actual size.
    pub fn llama_config(&self, vocab: usize) -> LlamaConfig {
        LlamaConfig {
            family: LlamaFamily::Llama,
            vocab_size: vocab,
            hidden_size: self.hidden,
            intermediate_size: self.intermediate,
            num_layers: self.layers,
            num_heads: self.heads,
            num_kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            max_position_embeddings: self.max_positions,
            rms_norm_eps: 1e-5,
            rope: RopeConfig { theta: 10000.0, scaling: RopeScaling::None, rotary_dim: self.head_dim },
            tie_word_embeddings: true,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            bos_token_id: Some(BOS_ID),
            eos_token_ids: vec![EOS_ID],
            torch_dtype: Some("float32".into()),
            sliding_window: None,
            full_attention_layers: Vec::new(),
        }
    }
}

/// A freshly initialised f32 model on the CPU: every matrix ~ N(0, 0.02²) from a ChaCha stream
/// seeded by `seed` (drawn in a fixed tensor order, so the same seed gives the same model), the
/// residual outputs (`o_proj`, `down_proj`) further scaled by 1/√(2·layers) as GPT-2 does so the
/// residual stream's variance does not grow with depth; norms at 1.
pub fn init_model(config: LlamaConfig, seed: u64) -> Result<LlamaModel> {
    let c = &config;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let residual = 1.0 / (2.0 * c.num_layers as f32).sqrt();
    let mut tensors = HashMap::new();
    // The runtime's canonical tensor order fixes the order of the draws.
    for name in TensorName::all(c) {
        let shape = name.shape(c);
        let n: usize = shape.iter().product();
        let std = match name {
            TensorName::Norm(..) | TensorName::FinalNorm | TensorName::Bias(..) => None,
            TensorName::Weight(_, Projection::O | Projection::Down) => Some(0.02 * residual),
            TensorName::Embed | TensorName::Weight(..) | TensorName::LmHead => Some(0.02),
        };
        let values: Vec<f32> = match (std, name) {
            (Some(std), _) => (0..n).map(|_| std * normal(&mut rng)).collect(),
            (None, TensorName::Bias(..)) => vec![0.0; n],
            (None, _) => vec![1.0; n],
        };
        tensors.insert(name.hf(), Tensor::from_slice(&values, &shape)?);
    }
    let weights = Weights::from_tensors(tensors, "initialisation", DType::F32, Device::Cpu);
    Ok(LlamaModel::from_weights(config, &weights)?)
}

/// A standard normal draw (Box–Muller; `rand` 0.9 alone has no normal distribution).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Lay whole examples into rows of at most `seq` tokens (first fit over the rows still open, in
/// the given order), so no example is cut: an answer never lands in a row without its passages.
/// Rows are not masked at the seams (as in the usual packed pretraining; each example starts
/// with BOS). An example longer than `seq` is an error naming its index.
pub fn pack_whole(examples: &[Example], seq: usize) -> Result<Vec<Example>> {
    // A row with less room than this is closed: few examples are that short. And at most
    // `MAX_OPEN` rows stay open (the oldest is closed first), so packing stays linear.
    const CLOSE_BELOW: usize = 16;
    const MAX_OPEN: usize = 32;
    let mut rows: Vec<Example> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for (n, e) in examples.iter().enumerate() {
        if e.ids.len() > seq {
            return Err(EvalError::training(format!(
                "example {n} has {} tokens, more than the row length {seq}; raise the row length or shorten the example",
                e.ids.len()
            )));
        }
        let slot = open.iter().position(|&r| rows[r].ids.len() + e.ids.len() <= seq);
        let r = match slot {
            Some(k) => open[k],
            None => {
                rows.push(Example { ids: Vec::with_capacity(seq), labels: Vec::with_capacity(seq) });
                open.push(rows.len() - 1);
                rows.len() - 1
            }
        };
        rows[r].ids.extend_from_slice(&e.ids);
        rows[r].labels.extend_from_slice(&e.labels);
        open.retain(|&r| seq - rows[r].ids.len() >= CLOSE_BELOW);
        if open.len() > MAX_OPEN {
            open.remove(0);
        }
    }
    Ok(rows)
}

/// How the model trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    pub lr: f32,
    /// Share of the steps spent warming up.
    pub warmup: f32,
    pub weight_decay: f32,
    pub clip: f32,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings { batch: 8, seq: 384, lr: 2e-3, warmup: 0.03, weight_decay: 0.01, clip: 1.0 }
    }
}

/// One step's numbers, handed to the progress callback.
#[derive(Clone, Debug)]
pub struct StepInfo {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub lr: f32,
    /// Row tokens processed so far (padding included: that is the compute).
    pub tokens: u64,
    pub seconds: f64,
}

/// What a run did: the loss curve (mean per block of steps) and the cost.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainLog {
    pub steps: usize,
    pub tokens: u64,
    pub seconds: f64,
    /// `(step, mean loss over the steps since the previous point)`.
    pub curve: Vec<(usize, f32)>,
    pub final_loss: f32,
}

/// Train every weight of `model` on `rows` (already packed and in training order), one pass,
/// `settings.batch` rows per step. `on_step` sees every step.
pub fn pretrain(
    model: LlamaModel,
    rows: &[Example],
    settings: &TrainSettings,
    mut on_step: impl FnMut(&StepInfo),
) -> Result<(LlamaModel, TrainLog)> {
    if settings.batch == 0 || rows.len() < settings.batch {
        return Err(EvalError::config(format!(
            "{} rows cannot fill one batch of {}; raise the token budget or lower the batch",
            rows.len(),
            settings.batch
        )));
    }
    let optimizer = AdamW { weight_decay: settings.weight_decay, ..AdamW::default() };
    let mut trainer = FullTrainer::new(model, optimizer)?;
    let steps = rows.len() / settings.batch;
    let warmup = (settings.warmup * steps as f32).round() as u64;
    let start = Instant::now();
    let mut log = TrainLog { steps, ..TrainLog::default() };
    let every = (steps / 100).max(1);
    let (mut block, mut block_n) = (0f64, 0usize);
    for (step, chunk) in rows.chunks_exact(settings.batch).enumerate() {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = collate(&refs, PAD_ID as i32)?;
        let lr = warmup_cosine(settings.lr, step as u64, steps as u64, warmup);
        let mut grads = trainer.loss_and_grads(&batch)?;
        let norm = grads.clip(settings.clip)?;
        if !norm.is_finite() || !grads.loss.is_finite() {
            return Err(EvalError::training(format!(
                "step {step}: loss {} and gradient norm {norm}; lower the learning rate",
                grads.loss
            )));
        }
        trainer.apply(&grads, lr)?;
        log.tokens += (batch.batch * batch.seq) as u64;
        block += f64::from(grads.loss);
        block_n += 1;
        if block_n == every || step + 1 == steps {
            log.curve.push((step + 1, (block / block_n as f64) as f32));
            (block, block_n) = (0.0, 0);
        }
        log.final_loss = grads.loss;
        on_step(&StepInfo {
            step: step + 1,
            steps,
            loss: grads.loss,
            lr,
            tokens: log.tokens,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    log.seconds = start.elapsed().as_secs_f64();
    if let Some(&(_, last)) = log.curve.last() {
        log.final_loss = last;
    }
    Ok((trainer.model, log))
}

/// Cast every weight of `model` to `dtype` (the committed model is stored in bf16); returns a
/// model that runs in that dtype.
pub fn cast_model(model: &LlamaModel, dtype: DType) -> Result<LlamaModel> {
    let mut tensors = HashMap::new();
    for (name, t) in model.named_tensors()? {
        tensors.insert(name, ops::cast(&t, dtype)?);
    }
    let weights = Weights::from_tensors(tensors, "cast", dtype, model.device.clone());
    Ok(LlamaModel::from_weights(model.config.clone(), &weights)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragtune_compute::ops::IGNORE_INDEX;

    fn tiny_shape() -> ModelShape {
        ModelShape {
            hidden: 32,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            head_dim: 16,
            intermediate: 64,
            vocab: 40,
            max_positions: 64,
        }
    }

    #[test]
    fn initialisation_is_seeded_and_scaled() {
        let a = init_model(tiny_shape().llama_config(40), 3).unwrap();
        let b = init_model(tiny_shape().llama_config(40), 3).unwrap();
        let c = init_model(tiny_shape().llama_config(40), 4).unwrap();
        let v = |m: &LlamaModel| m.embed.to_vec_f32().unwrap();
        assert_eq!(v(&a), v(&b));
        assert_ne!(v(&a), v(&c));
        let std = |t: &Tensor| {
            let x = t.to_vec_f32().unwrap();
            (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
        };
        assert!((std(&a.embed) - 0.02).abs() < 0.002, "{}", std(&a.embed));
        // 2 layers: the residual outputs are scaled by 1/√4.
        assert!((std(&a.layers[0].down.weight) - 0.01).abs() < 0.001);
        assert_eq!(a.norm.to_vec_f32().unwrap(), vec![1.0; 32]);
    }

    #[test]
    fn packing_keeps_examples_whole_and_in_order() {
        let ex = |n: usize, tag: i32| Example { ids: vec![tag; n], labels: vec![IGNORE_INDEX; n] };
        let examples = [ex(30, 1), ex(20, 2), ex(40, 3), ex(10, 4), ex(64, 5)];
        let rows = pack_whole(&examples, 64).unwrap();
        // 30+20 fill the first row past the closing margin; 40 opens a second, which 10 joins;
        // 64 fills a third.
        let tags: Vec<Vec<i32>> = rows
            .iter()
            .map(|r| {
                let mut t = r.ids.clone();
                t.dedup();
                t
            })
            .collect();
        assert_eq!(tags, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert_eq!(rows[1].ids.len(), 50);
        let long = pack_whole(&[ex(65, 1)], 64).unwrap_err().to_string();
        assert!(long.contains("example 0 has 65 tokens"), "{long}");
    }

    #[test]
    fn full_training_lowers_the_loss_on_a_tiny_mixture() {
        // A tiny "language": sequences that count up modulo 37 from a random start, every token a
        // target, plus prompt → answer rows whose answer is the prompt's first token repeated.
        let model = init_model(tiny_shape().llama_config(40), 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut examples = Vec::new();
        for _ in 0..64 {
            let s: i32 = rng.random_range(3..40);
            let ids: Vec<i32> = (0..12).map(|k| 3 + (s - 3 + k) % 37).collect();
            examples.push(Example { labels: ids.clone(), ids });
        }
        let rows = pack_whole(&examples, 48).unwrap();
        let settings =
            TrainSettings { batch: 4, seq: 48, lr: 1e-2, warmup: 0.0, weight_decay: 0.0, clip: 1.0 };
        let rows: Vec<Example> = rows.iter().cycle().take(4 * 30).cloned().collect();
        let mut losses = Vec::new();
        let (_, log) = pretrain(model, &rows, &settings, |s| losses.push(s.loss)).unwrap();
        assert_eq!(log.steps, 30);
        assert_eq!(losses.len(), 30);
        // ln 40 ≈ 3.7 at the start; the counting rule is learnable within a few dozen steps.
        assert!(losses[0] > 3.0, "{losses:?}");
        assert!(*losses.last().unwrap() < 0.5 * losses[0], "{losses:?}");
        // Three 12-token examples per row (a fourth would leave less than the closing margin):
        // batches are 4 × 36, and that is what counts.
        assert_eq!(log.tokens, 30 * 4 * 36);
    }
}
