//! `train`: seconds per training step of LoRA (r = 16, all seven projections) and full
//! fine-tuning on random-weight Llama models, batches of 4 × 128 tokens, as a fraction of the
//! SGEMM ceiling (a CPU "MFU"), counting 4 · params · tokens FLOPs for LoRA (frozen base:
//! forward + input gradients) and 6 · params · tokens for full training (PERFORMANCE.md;
//! attention's share left out). The LoRA rows' peer is PyTorch + peft (bench/torch_peer.py) on
//! the same weights and batch: r = 16, α = 32, the seven projections, AdamW at the same rate; its
//! first loss must equal ragtune's (a zero-initialised B leaves the base model's loss) before the
//! two alternate step by step. Full training has no peer (llm.c's CPU trainer would be the natural
//! one; it is not built here). Checked first: the first step's loss is finite and near
//! ln(vocab), as it must be for an untrained model with small weights.

use anyhow::{Result, bail};
use ragtune_compute::Device;
use ragtune_compute::ops::AdamW;
use ragtune_runtime::LlamaConfig;
use ragtune_trainer::{FullTrainer, LoraAdapter, LoraTrainer, TrainBatch};

use super::Ctx;
use super::generate::torch_llama;
use crate::harness::{Budget, alternating_medians, median_time, time_once};
use crate::report::Row;
use crate::{random_llama, smollm2_config};

/// Sequences per training batch (the suite's and the criterion bench's).
pub const BATCH: usize = 4;
/// Tokens per sequence.
pub const SEQ: usize = 128;

/// ~10M parameters: hidden 256, 8 layers, 4 heads / 2 KV heads, MLP 688, vocab 16384, tied.
pub fn small_config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 16384,
        hidden_size: 256,
        intermediate_size: 688,
        num_layers: 8,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 64,
        ..smollm2_config()
    }
}

/// A fixed `BATCH` × `SEQ` batch of token ids below `vocab`, labels equal to inputs.
pub fn batch(vocab: usize) -> Result<TrainBatch> {
    let ids: Vec<Vec<i32>> =
        (0..BATCH).map(|b| (0..SEQ).map(|t| ((b * 7919 + t * 104729) % vocab) as i32).collect()).collect();
    Ok(TrainBatch::from_labels(&ids, &ids)?)
}

/// An untrained model's loss must be finite and near ln(vocab) (uniform guessing).
pub fn check_initial_loss(what: &str, loss: f32, vocab: usize) -> Result<String> {
    let uniform = (vocab as f32).ln();
    if !loss.is_finite() || loss < 0.5 * uniform || loss > 2.0 * uniform {
        bail!(
            "{what}: first loss {loss} is not near ln(vocab) = {uniform:.2}; training is broken, not timed"
        );
    }
    Ok(format!("first loss {loss:.3} (ln vocab {uniform:.3})"))
}

pub fn run(ctx: &Ctx, notes: &mut Vec<String>) -> Result<Vec<Row>> {
    // Steps are long (a second or more): a few repeats give a stable median.
    let budget = Budget { min_repeats: if ctx.quick { 2 } else { 5 }, max_repeats: 10, min_seconds: 0.0 };
    let tokens = (BATCH * SEQ) as f64;
    let mut models = vec![("~10M", small_config())];
    if !ctx.quick {
        models.push(("SmolLM2-135M shape", smollm2_config()));
    }
    let mut rows = Vec::new();
    for (name, config) in models {
        let model = random_llama(config);
        let params = model.num_params() as f64;
        let vocab = model.config.vocab_size;
        let b = batch(vocab)?;
        let lora = crate::lora_r16_all_targets();
        let adapter = LoraAdapter::init(lora, &model.config, 0, &Device::Cpu)?;
        let trainable = adapter.num_params();
        let mut trainer = LoraTrainer::new(&model, adapter, AdamW::default())?;
        let first = trainer.train_step(&b, 1e-4)?;
        let check = check_initial_loss(&format!("LoRA {name}"), first, vocab)?;
        let mut torch = torch_llama(ctx, &model, &format!("train-{}", config_slug(name)), notes)?;
        if let Some(py) = torch.as_mut() {
            let theirs = py.ask(&format!("lora {BATCH},{SEQ}"))?["first_loss"].as_f64().unwrap_or(f64::NAN);
            let agrees = (theirs - first as f64).abs() <= 1e-3 * theirs.abs(); // false for NaN
            if !agrees {
                notes.push(format!(
                    "peft left out of train ({name}): its first loss {theirs} is not ragtune's {first}"
                ));
                torch = None;
            }
        }
        let mut failed = None;
        let medians = alternating_medians(budget, 1 + torch.is_some() as usize, |i| match i {
            0 => Ok(time_once(|| {
                if let Err(e) = trainer.train_step(&b, 1e-4) {
                    failed.get_or_insert(e);
                }
            })),
            _ => torch.as_mut().expect("count 2 only with a peer").time_one(),
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        let (t, reps) = medians[0];
        let shape = format!("{name} ({:.1}M params), batch {BATCH}×{SEQ}, f32", params / 1e6);
        let mut row = Row::new(
            "train",
            "LoRA step r=16, 7 targets",
            &shape,
            t,
            reps,
            4.0 * params * tokens,
            0.0,
            &ctx.ceilings,
        )?
        .with_check(if torch.is_some() {
            format!("{check}; peft's first loss the same to 1e-3")
        } else {
            check
        })
        .with_note(format!("{:.0} tokens/s; {:.2}M trainable", tokens / t, trainable as f64 / 1e6));
        if let Some(&(p, _)) = medians.get(1) {
            row = row.with_peer("PyTorch + peft", p);
        }
        rows.push(row);
        drop(trainer);
        if name == "~10M" {
            let mut full = FullTrainer::new(model, AdamW::default())?;
            let check = check_initial_loss(&format!("full {name}"), full.train_step(&b, 1e-4)?, vocab)?;
            let mut failed = None;
            let (t, reps) = median_time(budget, || {
                if let Err(e) = full.train_step(&b, 1e-4) {
                    failed.get_or_insert(e);
                }
            });
            if let Some(e) = failed {
                return Err(e.into());
            }
            rows.push(
                Row::new("train", "full step", &shape, t, reps, 6.0 * params * tokens, 0.0, &ctx.ceilings)?
                    .with_check(check)
                    .with_note(format!("{:.0} tokens/s", tokens / t)),
            );
        }
    }
    Ok(rows)
}

/// A file-name-safe form of a model's label ("~10M" -> "10m").
fn config_slug(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_loss_check_accepts_uniform_and_rejects_nan_or_far_values() {
        assert!(check_initial_loss("t", 9.8, 16384).is_ok());
        assert!(check_initial_loss("t", f32::NAN, 16384).is_err());
        assert!(check_initial_loss("t", 0.1, 16384).unwrap_err().to_string().contains("ln(vocab)"));
        assert!(check_initial_loss("t", 40.0, 16384).is_err());
    }
}
