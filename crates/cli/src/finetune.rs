//! `ragtune finetune`: LoRA fine-tuning of a Hugging Face decoder folder on a JSONL file
//! (`{"text"}` or `{"prompt", "completion"}` lines), writing a PEFT adapter folder that Python
//! `peft` loads unchanged. AdamW with linear warmup + cosine decay, global-norm clipping,
//! gradient accumulation, seeded order, checkpoints that resume the same loss trajectory; the loss of each step shows on a progress bar, and
//! `--json` prints a summary object at the end.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ragtune_compute::DType;
use ragtune_compute::ops::AdamW;
use ragtune_runtime::adapter::merge::save_model_folder;
use ragtune_runtime::adapter::peft::save_adapter;
use ragtune_runtime::load_causal_lm;
use ragtune_trainer::checkpoint::{load_checkpoint, save_checkpoint};
use ragtune_trainer::data::{Example, Sampler, collate, pack, read_jsonl, read_jsonl_counted};
use ragtune_trainer::full::FullStepGrads;
use ragtune_trainer::schedule::warmup_cosine;
use ragtune_trainer::{FullTrainer, LoraAdapter, LoraConfig, LoraTrainer, StepGrads, Target, TrainBatch};

use crate::args::{DeviceArg, FloatDtype};
use crate::progress::bar;

/// What trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Low-rank adapters on the chosen projections; the base stays frozen. Writes a PEFT adapter.
    Lora,
    /// Every weight (f32). Writes a whole Hugging Face model folder.
    Full,
}

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// A Hugging Face model folder (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// JSONL training data: {"text": ...} or {"prompt": ..., "completion": ...} per line.
    #[arg(long)]
    data: PathBuf,
    /// Held-out JSONL data (same format): its mean loss is reported before and after training.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Folder for the PEFT adapter (adapter_config.json, adapter_model.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// lora (adapters, base frozen) or full (every weight).
    #[arg(long, value_enum, default_value = "lora")]
    mode: Mode,
    /// Optimizer steps.
    #[arg(long, default_value_t = 100)]
    steps: u64,
    /// Peak learning rate (after the warmup; cosine decay to zero over the run).
    #[arg(long, default_value_t = 1e-4)]
    lr: f32,
    /// Updates of linear warmup from 0 to --lr.
    #[arg(long, default_value_t = 0)]
    warmup_steps: u64,
    /// Clip the gradients' global L2 norm to this (0 = no clipping; the norm is still checked
    /// for NaN/inf, which stops the run with the last checkpoint intact).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f32,
    /// Micro-batches of --batch-size accumulated per update.
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    #[arg(long, default_value_t = 16)]
    lora_r: usize,
    #[arg(long, default_value_t = 32.0)]
    lora_alpha: f32,
    /// Scale α/√r instead of α/r.
    #[arg(long)]
    rslora: bool,
    /// LoRA dropout on the adapters' inputs during training (as peft's lora_dropout), 0 ≤ P < 1.
    /// The masks follow --seed, so a resumed run draws the same ones.
    #[arg(long, default_value_t = 0.0)]
    lora_dropout: f32,
    /// Comma-separated projections: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj, or
    /// all-linear (all seven, as in PEFT).
    #[arg(long, default_value = "q_proj,k_proj,v_proj,o_proj")]
    targets: String,
    /// Examples per step.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Pack the examples end to end into rows of --max-len tokens (no padding; attention is not
    /// masked between packed examples).
    #[arg(long)]
    pack: bool,
    /// Examples are cut to this many tokens.
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: DeviceArg,
    /// Write a checkpoint (adapter, optimizer state, step) to OUT/checkpoint-STEP every this
    /// many steps (0 = none).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Continue from a checkpoint folder written by --checkpoint-every (same data and settings;
    /// --steps is the total to reach).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// The frozen base's dtype: auto (bf16 on a GPU, f32 on the CPU), f32, bf16 or f16. The
    /// adapter always trains in f32; `--mode full` trains f32 weights (auto means f32 there).
    #[arg(long, default_value = "auto", value_parser = FloatDtype::parse_dense)]
    dtype: FloatDtype,
}

fn parse_targets(spec: &str) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // PEFT's `all-linear`: every linear layer but the output head — all seven projections.
        let named = if name == "all-linear" {
            Target::ALL.to_vec()
        } else {
            vec![Target::from_name(name).with_context(|| {
                format!(
                    "--targets: `{name}` is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, \
                     down_proj or all-linear"
                )
            })?]
        };
        for t in named {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    if out.is_empty() {
        bail!("--targets is empty: name at least one projection (e.g. q_proj,v_proj)");
    }
    Ok(out)
}

/// The most sequences per micro-batch (`--batch-size`) and micro-batches per step
/// (`--accumulate`).
const MAX_BATCH: usize = 65536;

pub fn run(args: FinetuneArgs, json: bool) -> Result<()> {
    if args.steps == 0 || args.batch_size == 0 || args.accumulate == 0 || args.max_len < 2 {
        bail!("--steps, --batch-size and --accumulate must be at least 1 and --max-len at least 2");
    }
    // Sizes a user types size buffers: bounded here, with the reason, before anything is made.
    for (name, value) in [("--batch-size", args.batch_size), ("--accumulate", args.accumulate)] {
        if value > MAX_BATCH {
            bail!(
                "{name} {value} is above the limit of {MAX_BATCH}: each step holds that many sequences' activations \
                 (use --accumulate for larger effective batches, up to {MAX_BATCH} × {MAX_BATCH})"
            );
        }
    }
    let draws =
        (args.batch_size as u64).checked_mul(args.accumulate as u64).and_then(|b| b.checked_mul(args.steps));
    if draws.is_none() {
        bail!(
            "--steps {} × --batch-size {} × --accumulate {} examples overflow a 64-bit count: lower --steps",
            args.steps,
            args.batch_size,
            args.accumulate
        );
    }
    if !(args.grad_clip >= 0.0 && args.grad_clip.is_finite()) {
        bail!("--grad-clip {} must be a finite number >= 0 (0 turns clipping off)", args.grad_clip);
    }
    if !(0.0..1.0).contains(&args.lora_dropout) {
        bail!("--lora-dropout {} must be in [0, 1)", args.lora_dropout);
    }
    if args.mode == Mode::Full {
        if args.lora_dropout > 0.0 {
            bail!("--lora-dropout applies to --mode lora (full mode has no LoRA branch)");
        }
        if args.checkpoint_every > 0 || args.resume.is_some() {
            bail!("--checkpoint-every and --resume work with --mode lora only for now");
        }
        if !args.model.join("config.json").is_file() {
            bail!(
                "--mode full writes a Hugging Face folder: --model must be one (with config.json), not a .gguf file"
            );
        }
        if !matches!(args.dtype, FloatDtype::F32 | FloatDtype::Auto) {
            bail!("--mode full trains f32 master weights: use --dtype f32 (or leave --dtype out)");
        }
    }
    let targets = parse_targets(&args.targets)?;
    let device = args.device.open(json)?;
    let dtype = if args.mode == Mode::Full { DType::F32 } else { args.dtype.resolve(&device) };
    let (model, tokenizer) = load_causal_lm(&args.model, dtype, device.clone())
        .with_context(|| format!("loading the model {}", args.model.display()))?;
    let eos = model.config.eos_token_ids.first().copied();
    // Packed examples are cut into rows afterwards, so each is read whole (up to the context).
    let read_len = if args.pack { model.max_context() } else { args.max_len.min(model.max_context()) };
    let data = read_jsonl_counted(&args.data, &tokenizer, eos, read_len)
        .with_context(|| format!("reading the training data {}", args.data.display()))?;
    // Lines with nothing to learn are skipped, and said so in the summary.
    let skipped = Skipped { count: data.skipped, lines: data.lines, note: data.skipped_note() };
    let examples = data.examples;
    let examples = if args.pack {
        let rows = pack(&examples, args.max_len.min(model.max_context()));
        if rows.is_empty() {
            bail!("--pack: the data holds fewer than 2 tokens");
        }
        rows
    } else {
        examples
    };
    let eval = match &args.eval {
        None => Vec::new(),
        Some(path) => {
            let ex = read_jsonl(path, &tokenizer, eos, args.max_len.min(model.max_context()))
                .with_context(|| format!("reading the eval data {}", path.display()))?;
            let pad = eos.unwrap_or(0) as i32;
            ex.chunks(args.batch_size)
                .map(|c| collate(&c.iter().collect::<Vec<_>>(), pad))
                .collect::<ragtune_trainer::Result<Vec<_>>>()?
        }
    };
    if args.mode == Mode::Full {
        return run_full(&args, json, model, &examples, &eval, eos, &skipped);
    }
    let config = LoraConfig {
        r: args.lora_r,
        alpha: args.lora_alpha,
        use_rslora: args.rslora,
        dropout: args.lora_dropout,
        targets,
        layers: None,
    };
    // What decides the data order and the schedule: a resumed run must match it.
    let settings = serde_json::json!({
        "seed": args.seed, "batch_size": args.batch_size, "accumulate": args.accumulate,
        "steps": args.steps, "lr": args.lr, "warmup_steps": args.warmup_steps,
        "weight_decay": args.weight_decay, "grad_clip": args.grad_clip, "max_len": args.max_len,
        "examples": examples.len(), "pack": args.pack, "lora_dropout": args.lora_dropout,
    });
    let optimizer = AdamW { weight_decay: args.weight_decay, ..AdamW::default() };
    let (adapter, resumed) = match &args.resume {
        None => (LoraAdapter::init(config, &model.config, args.seed, &device)?, None),
        Some(dir) => {
            let ck = load_checkpoint(dir, &model.config, &device)
                .with_context(|| format!("loading the checkpoint {}", dir.display()))?;
            // On standard error, so a --json summary on standard output stays one object.
            if let Some(how) = &ck.recovered {
                eprintln!("note: {how}");
            }
            let no_dropout = serde_json::json!(0.0);
            for (key, value) in settings.as_object().into_iter().flatten() {
                // Checkpoints from before --lora-dropout trained without it.
                let was = match ck.settings.get(key) {
                    None if key == "lora_dropout" => Some(&no_dropout),
                    was => was,
                };
                if key != "steps" && was != Some(value) {
                    bail!(
                        "--resume {}: `{key}` was {} in that run but is {value} now; resume with the same \
                         data and settings",
                        dir.display(),
                        ck.settings.get(key).unwrap_or(&serde_json::Value::Null)
                    );
                }
            }
            if ck.step >= args.steps {
                bail!(
                    "--resume {}: the checkpoint is already at step {}; raise --steps",
                    dir.display(),
                    ck.step
                );
            }
            (ck.adapter, Some((ck.moments, ck.step)))
        }
    };
    let params = adapter.num_params();
    let mut trainer = LoraTrainer::new(&model, adapter, optimizer)?;
    trainer.dropout_seed = args.seed;
    let mut first_step = 1;
    let mut sampler = Sampler::new(examples.len(), args.seed);
    if let Some((moments, step)) = resumed {
        trainer.restore(moments, step)?;
        // The same order as the first run: replay the draws of the steps already taken.
        sampler.skip(step * (args.batch_size * args.accumulate) as u64);
        first_step = step + 1;
    }
    let eval_before = if eval.is_empty() { None } else { Some(trainer.evaluate(&eval)?) };
    let pad = eos.unwrap_or(0) as i32;
    let progress = bar(args.steps + 1 - first_step, "finetune", "steps", json);
    let start = Instant::now();
    let (mut losses, mut tokens) = (Vec::new(), 0usize);
    let mut norms = Vec::new();
    for step in first_step..=args.steps {
        let parts = micro_batches(&args, &mut sampler, &examples, pad, &mut tokens, |batch| {
            trainer.loss_and_grads(batch).with_context(|| format!("step {step}"))
        })?;
        let mut grads = StepGrads::accumulate(parts)?;
        let loss = grads.loss;
        if !loss.is_finite() {
            bail!("step {step}: the loss is {loss}; lower --lr (no adapter was written)");
        }
        // The norm is taken even without clipping: a NaN or infinity in the gradients stops
        // the run here, before it reaches the weights or a checkpoint.
        let limit = if args.grad_clip > 0.0 { args.grad_clip } else { f32::MAX };
        norms.push(grads.clip(limit).with_context(|| format!("step {step}: lower --lr"))?);
        let lr = warmup_cosine(args.lr, step - 1, args.steps, args.warmup_steps);
        trainer.apply(&grads, lr)?;
        losses.push(loss);
        if args.checkpoint_every > 0 && step % args.checkpoint_every == 0 {
            let dir = args.out.join(format!("checkpoint-{step}"));
            save_checkpoint(
                &dir,
                &trainer.adapter,
                trainer.moments(),
                step,
                &settings,
                &args.model.display().to_string(),
            )
            .with_context(|| format!("writing the checkpoint {}", dir.display()))?;
        }
        let rate = tokens as f64 / start.elapsed().as_secs_f64().max(1e-9);
        progress.set_message(format!("loss {loss:.4}, {rate:.0} tok/s"));
        progress.inc(1);
    }
    progress.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let eval_after = if eval.is_empty() { None } else { Some(trainer.evaluate(&eval)?) };
    save_adapter(&trainer.adapter, &args.out, &args.model.display().to_string())
        .with_context(|| format!("writing the adapter to {}", args.out.display()))?;
    let first = losses.first().copied().unwrap_or(f32::NAN);
    let last = losses.last().copied().unwrap_or(f32::NAN);
    if json {
        let summary = serde_json::json!({
            "out": args.out.display().to_string(),
            "examples": examples.len(),
            "skipped_examples": skipped.count,
            "data_lines": skipped.lines,
            "steps": args.steps,
            "first_step": first_step,
            "trainable_params": params,
            "losses": losses,
            "grad_norms": norms,
            "eval_loss_before": eval_before,
            "eval_loss_after": eval_after,
            "tokens": tokens,
            "seconds": secs,
            "tokens_per_second": tokens as f64 / secs.max(1e-9),
        });
        println!("{summary}");
    } else {
        println!(
            "trained {params} LoRA parameters for {} steps on {} examples: loss {first:.4} -> {last:.4}, \
             {:.0} tokens/s; adapter written to {}",
            args.steps,
            examples.len(),
            tokens as f64 / secs.max(1e-9),
            args.out.display()
        );
        if let (Some(b), Some(a)) = (eval_before, eval_after) {
            println!("held-out loss {b:.4} -> {a:.4}");
        }
        if let Some(note) = &skipped.note {
            println!("{note}");
        }
    }
    Ok(())
}

/// Training lines skipped as too short, for the summary.
struct Skipped {
    count: usize,
    lines: usize,
    note: Option<String>,
}

/// `--mode full`: every weight trains; the result is a whole model folder in `--out`.
/// One optimizer step's `--accumulate` micro-batches of `--batch-size` examples drawn from
/// `sampler`, each padded with `pad` and handed to `grads`; their tokens are added to `tokens`.
fn micro_batches<G>(
    args: &FinetuneArgs,
    sampler: &mut Sampler,
    examples: &[Example],
    pad: i32,
    tokens: &mut usize,
    mut grads: impl FnMut(&TrainBatch) -> Result<G>,
) -> Result<Vec<G>> {
    let mut parts = Vec::with_capacity(args.accumulate);
    for _ in 0..args.accumulate {
        let picked: Vec<_> = sampler.take(args.batch_size).into_iter().map(|i| &examples[i]).collect();
        let batch = collate(&picked, pad)?;
        *tokens += batch.ids.len();
        parts.push(grads(&batch)?);
    }
    Ok(parts)
}

fn run_full(
    args: &FinetuneArgs,
    json: bool,
    model: ragtune_runtime::LlamaModel,
    examples: &[Example],
    eval: &[ragtune_trainer::TrainBatch],
    eos: Option<u32>,
    skipped: &Skipped,
) -> Result<()> {
    let optimizer = AdamW { weight_decay: args.weight_decay, ..AdamW::default() };
    let mut trainer = FullTrainer::new(model, optimizer)?;
    let params = trainer.num_params();
    let eval_before = if eval.is_empty() { None } else { Some(trainer.evaluate(eval)?) };
    let mut sampler = Sampler::new(examples.len(), args.seed);
    let pad = eos.unwrap_or(0) as i32;
    let progress = bar(args.steps, "finetune", "steps", json);
    let start = Instant::now();
    let (mut losses, mut norms, mut tokens) = (Vec::new(), Vec::new(), 0usize);
    for step in 1..=args.steps {
        let parts = micro_batches(args, &mut sampler, examples, pad, &mut tokens, |batch| {
            trainer.loss_and_grads(batch).with_context(|| format!("step {step}"))
        })?;
        let mut grads = FullStepGrads::accumulate(parts)?;
        // The norm is taken even without clipping: a NaN or infinity in the gradients stops
        // the run here, before it reaches the weights or a checkpoint.
        let limit = if args.grad_clip > 0.0 { args.grad_clip } else { f32::MAX };
        norms.push(grads.clip(limit).with_context(|| format!("step {step}: lower --lr"))?);
        trainer.apply(&grads, warmup_cosine(args.lr, step - 1, args.steps, args.warmup_steps))?;
        losses.push(grads.loss);
        let rate = tokens as f64 / start.elapsed().as_secs_f64().max(1e-9);
        progress.set_message(format!("loss {:.4}, {rate:.0} tok/s", grads.loss));
        progress.inc(1);
    }
    progress.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let eval_after = if eval.is_empty() { None } else { Some(trainer.evaluate(eval)?) };
    save_model_folder(&trainer.model, &args.model, &args.out)
        .with_context(|| format!("writing the model to {}", args.out.display()))?;
    if json {
        let summary = serde_json::json!({
            "out": args.out.display().to_string(), "mode": "full", "examples": examples.len(),
            "skipped_examples": skipped.count, "data_lines": skipped.lines,
            "steps": args.steps, "trainable_params": params, "losses": losses, "grad_norms": norms,
            "eval_loss_before": eval_before, "eval_loss_after": eval_after, "tokens": tokens,
            "seconds": secs, "tokens_per_second": tokens as f64 / secs.max(1e-9),
        });
        println!("{summary}");
    } else {
        let (first, last) =
            (losses.first().copied().unwrap_or(f32::NAN), losses.last().copied().unwrap_or(f32::NAN));
        println!(
            "trained all {params} weights for {} steps: loss {first:.4} -> {last:.4}, {:.0} tokens/s; model written to {}",
            args.steps,
            tokens as f64 / secs.max(1e-9),
            args.out.display()
        );
        if let Some(note) = &skipped.note {
            println!("{note}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_names_and_all_linear() {
        assert_eq!(parse_targets("q_proj, v_proj,q_proj").unwrap(), [Target::Q, Target::V]);
        assert_eq!(parse_targets("all-linear").unwrap(), Target::ALL.to_vec());
        assert_eq!(parse_targets("v_proj,all-linear").unwrap().len(), 7);
        let e = parse_targets("q_proj,lm_head").unwrap_err().to_string();
        assert!(e.contains("lm_head") && e.contains("all-linear"), "{e}");
        assert!(parse_targets(" , ").is_err());
    }
}
