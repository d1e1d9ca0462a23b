//! LoRA training for the fine-tuning arms: documents (every token a target) or prompt →
//! answer examples (loss on the answer), tokenised, packed where they are documents, shuffled
//! with a seed and trained with AdamW under warmup + cosine.

use std::time::Instant;

use ragtune_compute::ops::{AdamW, IGNORE_INDEX};
use ragtune_runtime::{LlamaModel, Tokenizer};
use ragtune_trainer::data::{Example, Sampler, collate, pack};
use ragtune_trainer::schedule::warmup_cosine;
use ragtune_trainer::{LoraAdapter, LoraConfig, LoraTrainer, Target};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Hyper-parameters of every LoRA arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    pub r: usize,
    pub alpha: f32,
    pub targets: Vec<String>,
    pub lr: f32,
    /// Passes over the documents (FT, FT-par).
    pub epochs: usize,
    /// Passes over the question → answer examples (RAFT).
    pub raft_epochs: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Packed row length for documents, and the cut for examples (tokens): a longer prompt →
    /// answer example loses prompt tokens from its front, not its answer
    /// ([`Example::cut_to`](ragtune_trainer::data::Example::cut_to)).
    pub max_seq: usize,
    pub seed: u64,
}

impl Default for LoraSettings {
    fn default() -> Self {
        LoraSettings {
            r: 16,
            alpha: 32.0,
            targets: Target::ALL.iter().map(|t| t.name().to_string()).collect(),
            lr: 2e-3,
            epochs: 8,
            raft_epochs: 2,
            batch_size: 8,
            max_seq: 256,
            seed: 0,
        }
    }
}

/// What a training run cost.
pub struct Trained {
    pub adapter: LoraAdapter,
    pub seconds: f64,
    pub tokens: u64,
    pub first_loss: f32,
    pub last_loss: f32,
}

/// A document as a training example: BOS + text + EOS, every token a target.
pub fn document_example(tok: &Tokenizer, text: &str, eos: u32) -> Result<Example> {
    let mut ids: Vec<i32> = tok.encode(text, true)?.into_iter().map(|t| t as i32).collect();
    ids.push(eos as i32);
    Ok(Example { labels: ids.clone(), ids })
}

/// A prompt → answer example: the loss is taken on the answer and EOS only.
pub fn answer_example(tok: &Tokenizer, prompt: &str, answer: &str, eos: u32) -> Result<Example> {
    let p: Vec<i32> = tok.encode(prompt, true)?.into_iter().map(|t| t as i32).collect();
    let mut a: Vec<i32> = tok.encode(answer, false)?.into_iter().map(|t| t as i32).collect();
    a.push(eos as i32);
    let labels = std::iter::repeat_n(IGNORE_INDEX, p.len()).chain(a.iter().copied()).collect();
    Ok(Example { ids: [p, a].concat(), labels })
}

/// Parse target names (`q_proj`, …) into the trainer's targets.
pub fn targets(names: &[String]) -> Result<Vec<Target>> {
    names
        .iter()
        .map(|n| {
            Target::from_name(n).ok_or_else(|| {
                let known: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                EvalError::config(format!("unknown LoRA target `{n}`; known: {}", known.join(", ")))
            })
        })
        .collect()
}

/// Train a fresh adapter on `examples` for `epochs` passes; documents are packed into rows of
/// `max_seq` tokens when `pack_rows` is set. `on_step(step, total, loss)` reports progress.
pub fn train_lora(
    model: &LlamaModel,
    examples: Vec<Example>,
    pack_rows: bool,
    epochs: usize,
    settings: &LoraSettings,
    on_step: impl FnMut(usize, usize, f32),
) -> Result<Trained> {
    train_lora_epochs(model, examples, pack_rows, epochs, settings, on_step, |_, _, _| Ok(()))
}

/// [`train_lora`], calling `on_epoch(epoch, adapter, mean training loss of the epoch)` at the
/// end of every epoch (1-based; an epoch is `rows / batch` steps of the one cosine schedule
/// over all epochs, so epoch e of a longer run is early stopping, not a shorter run).
pub fn train_lora_epochs(
    model: &LlamaModel,
    examples: Vec<Example>,
    pack_rows: bool,
    epochs: usize,
    settings: &LoraSettings,
    mut on_step: impl FnMut(usize, usize, f32),
    mut on_epoch: impl FnMut(usize, &LoraAdapter, f32) -> Result<()>,
) -> Result<Trained> {
    let start = Instant::now();
    let max_seq = settings.max_seq.min(model.max_context());
    let rows: Vec<Example> = if pack_rows {
        pack(&examples, max_seq)
    } else {
        examples
            .into_iter()
            .map(|mut e| {
                e.cut_to(max_seq);
                e
            })
            .collect()
    };
    if rows.is_empty() {
        return Err(EvalError::config("no training examples: the corpus is empty"));
    }
    let config = LoraConfig {
        r: settings.r,
        alpha: settings.alpha,
        use_rslora: false,
        dropout: 0.0,
        targets: targets(&settings.targets)?,
        layers: None,
    };
    let adapter = LoraAdapter::init(config, &model.config, settings.seed, &model.device)?;
    let mut trainer = LoraTrainer::new(model, adapter, AdamW { weight_decay: 0.0, ..AdamW::default() })?;
    let batch = settings.batch_size.max(1);
    let steps = (rows.len() * epochs.max(1)).div_ceil(batch);
    let warmup = (steps / 20) as u64;
    let mut sampler = Sampler::new(rows.len(), settings.seed);
    let pad = model.config.eos_token_ids.first().copied().unwrap_or(0) as i32;
    let (mut tokens, mut first_loss, mut last_loss) = (0u64, f32::NAN, f32::NAN);
    let (mut done_epochs, mut epoch_loss) = (0usize, (0f64, 0usize));
    for step in 0..steps {
        let picked: Vec<&Example> = sampler.take(batch).into_iter().map(|i| &rows[i]).collect();
        let b = collate(&picked, pad)?;
        tokens += b.ids.len() as u64;
        let mut grads = trainer.loss_and_grads(&b)?;
        let loss = grads.loss;
        if !loss.is_finite() {
            return Err(EvalError::training(format!(
                "the LoRA loss became {loss} at step {} of {steps}; lower the learning rate ({})",
                step + 1,
                settings.lr
            )));
        }
        grads.clip(1.0)?;
        trainer.apply(&grads, warmup_cosine(settings.lr, step as u64, steps as u64, warmup))?;
        if step == 0 {
            first_loss = loss;
        }
        last_loss = loss;
        on_step(step + 1, steps, loss);
        epoch_loss.0 += f64::from(loss);
        epoch_loss.1 += 1;
        // Epoch e ends at the step nearest e·steps/epochs (steps need not divide evenly).
        let epochs = epochs.max(1);
        let epoch = ((step + 1) * epochs) / steps;
        if epoch > done_epochs {
            done_epochs = epoch;
            on_epoch(epoch, &trainer.adapter, (epoch_loss.0 / epoch_loss.1.max(1) as f64) as f32)?;
            epoch_loss = (0.0, 0);
        }
    }
    Ok(Trained {
        adapter: trainer.adapter,
        seconds: start.elapsed().as_secs_f64(),
        tokens,
        first_loss,
        last_loss,
    })
}
