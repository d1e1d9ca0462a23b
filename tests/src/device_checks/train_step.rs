//! One training step on a device against the same step on the CPU: the loss, every gradient
//! and the weights after the AdamW update, for LoRA (adapters on all seven projections over a
//! frozen f32, bf16 or f16 base, with LoRA dropout, whose masks are drawn on the host and
//! applied on the device) and for full fine-tuning (every f32 weight, Qwen2's biases and an
//! untied head included).
//!
//! The AdamW update is checked at a small learning rate. Its first step moves each weight by
//! about ±lr whatever the gradient's size, so a gradient element within rounding of zero could
//! move either way on either side, by 2·lr. In f32 that takes an element within ~1e-6 of its
//! tensor's scale, which these seeds do not draw; with a 16-bit base, where rounding is
//! coarser, the tolerance is 300 times wider than such a move. At lr = 1e-4 a wrong update
//! still shows in f32: a step 1.5 times too large lands at 1.7 to 6.8 times the tolerance on the
//! emulator.

use ragtune_compute::ops::{AdamW, IGNORE_INDEX};
use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::full::weights_mut;
use ragtune_trainer::{FullTrainer, LoraAdapter, LoraConfig, LoraModule, LoraTrainer, Target, TrainBatch};

use super::{Arch, assert_near, model_on, model_tolerance, ok, random_weights, tiny_config, values};
use crate::{random_vec, rng};

/// The learning rate of the checked update (see the module docs).
const LR: f32 = 1e-4;

/// A LoRA step of the tiny `arch` model with a `dtype` base on `device` against the CPU.
pub fn lora(device: &Device, arch: Arch, dtype: DType) {
    let config = tiny_config(arch);
    let weights = random_weights(&config, 200 + arch as u64);
    let case = format!("LoRA {arch:?} {dtype} base on {device}");
    let lora = LoraConfig {
        r: 4,
        alpha: 8.0,
        use_rslora: false,
        dropout: 0.25,
        targets: Target::ALL.to_vec(),
        layers: None,
    };
    let mut adapter = ok(LoraAdapter::init(lora, &config, 3, &Device::Cpu), "adapter init");
    // PEFT starts B at zero, which makes every gradient of A zero: random B checks both.
    let mut r = rng(5);
    for slot in adapter.modules.iter_mut().flat_map(|m| m.iter_mut().flatten()) {
        let shape = slot.b.shape().to_vec();
        let b = random_vec(&mut r, shape.iter().product(), 0.1);
        slot.b = ok(Tensor::from_slice(&b, &shape), "adapter B");
    }
    let batch = batch(config.vocab_size);
    let step = |on: &Device| {
        let model = model_on(&config, &weights, dtype, on);
        let modules = adapter
            .modules
            .iter()
            .map(|slots| {
                slots.clone().map(|m| {
                    m.map(|LoraModule { a, b }| LoraModule {
                        a: ok(a.to_device(on), "adapter A to the device"),
                        b: ok(b.to_device(on), "adapter B to the device"),
                    })
                })
            })
            .collect();
        let adapter = LoraAdapter { config: adapter.config.clone(), modules };
        lora_step(&case, &model, adapter, &batch)
    };
    let (want, got) = (step(&Device::Cpu), step(device));
    let (loss, eval_loss) = (want.losses[0].1, want.losses[1].1);
    assert!(
        (eval_loss - loss).abs() > 1e-3 * loss,
        "{case}: dropout left the training loss at the evaluation loss; the masks are not checked"
    );
    same_step(&case, &got, &want, model_tolerance(dtype));
}

/// A full fine-tuning step of the tiny `arch` model (f32 weights) on `device` against the CPU.
pub fn full(device: &Device, arch: Arch) {
    let config = tiny_config(arch);
    let weights = random_weights(&config, 300 + arch as u64);
    let case = format!("full {arch:?} on {device}");
    let batch = batch(config.vocab_size);
    let step = |on: &Device| {
        let model = model_on(&config, &weights, DType::F32, on);
        let mut trainer = ok(FullTrainer::new(model, AdamW::default()), format!("{case}: trainer on {on}"));
        let g = ok(trainer.loss_and_grads(&batch), format!("{case}: loss and gradients on {on}"));
        let grads: Vec<Vec<f32>> = ragtune_trainer::full::flatten(&g.grads)
            .into_iter()
            .map(|t| {
                assert!(on.is_cpu() || !t.is_host(), "{case}: a gradient came back to the host");
                values(t, "a gradient")
            })
            .collect();
        ok(trainer.apply(&g, LR), format!("{case}: AdamW update on {on}"));
        let after: Vec<Vec<f32>> =
            weights_mut(&mut trainer.model).into_iter().map(|w| values(w, "a weight")).collect();
        let loss_after =
            ok(trainer.evaluate(std::slice::from_ref(&batch)), format!("{case}: loss after the update"));
        // Tensors are named by their place in the trainer's weight order (see `weights_mut`).
        let names = (0..grads.len()).map(|i| format!("weight {i}")).collect();
        Step { losses: vec![("loss", g.loss), ("loss after the update", loss_after)], names, grads, after }
    };
    same_step(&case, &step(device), &step(&Device::Cpu), model_tolerance(DType::F32));
}

/// What a training step produced, on the host: losses by name, then per trained tensor its
/// name, its gradient and its value after the update.
struct Step {
    losses: Vec<(&'static str, f32)>,
    names: Vec<String>,
    grads: Vec<Vec<f32>>,
    after: Vec<Vec<f32>>,
}

/// The device's step against the CPU's, everything within `tol`.
#[track_caller]
fn same_step(case: &str, got: &Step, want: &Step, tol: f64) {
    for ((what, g), (_, w)) in got.losses.iter().zip(&want.losses) {
        assert_near(format!("{case}: {what}"), &[*g], &[*w], tol);
    }
    assert_eq!(
        (got.grads.len(), got.after.len()),
        (want.grads.len(), want.after.len()),
        "{case}: tensor counts"
    );
    for (i, (g, w)) in got.grads.iter().zip(&want.grads).enumerate() {
        assert_near(format!("{case}: gradient of {} ({} values)", want.names[i], w.len()), g, w, tol);
    }
    for (i, (g, w)) in got.after.iter().zip(&want.after).enumerate() {
        assert_near(format!("{case}: {} after the update", want.names[i]), g, w, tol);
    }
}

/// A LoRA step: the training loss (with dropout), the loss without it, the adapters' gradients
/// and their values after the update.
fn lora_step(case: &str, model: &LlamaModel, adapter: LoraAdapter, batch: &TrainBatch) -> Step {
    let on = &model.device;
    let mut trainer =
        ok(LoraTrainer::new(model, adapter, AdamW::default()), format!("{case}: trainer on {on}"));
    trainer.dropout_seed = 17;
    let g = ok(trainer.loss_and_grads(batch), format!("{case}: loss and gradients on {on}"));
    let eval_loss = ok(trainer.loss(batch), format!("{case}: evaluation loss on {on}"));
    let mut names = Vec::new();
    let mut grads = Vec::new();
    for (l, t, da, db) in &g.grads {
        assert!(on.is_cpu() || !da.is_host(), "{case}: a gradient came back to the host");
        names.extend([format!("{l}.{t}.A"), format!("{l}.{t}.B")]);
        grads.extend([values(da, "a gradient"), values(db, "a gradient")]);
    }
    ok(trainer.apply(&g, LR), format!("{case}: AdamW update on {on}"));
    let after = trainer
        .adapter
        .iter()
        .flat_map(|(_, _, m)| [values(&m.a, "adapter A"), values(&m.b, "adapter B")])
        .collect();
    Step { losses: vec![("loss", g.loss), ("loss without dropout", eval_loss)], names, grads, after }
}

/// Two sequences of 10 tokens: the first with its first three labels ignored (a prompt), the
/// second right-padded after 7 tokens (pads ignored), so masked targets are exercised.
fn batch(vocab: usize) -> TrainBatch {
    let token = |b: usize, t: usize| ((b * 31 + t * 17 + 3) % vocab) as i32;
    let ids: Vec<Vec<i32>> =
        (0..2).map(|b| (0..10).map(|t| if b == 1 && t >= 7 { 0 } else { token(b, t) }).collect()).collect();
    let labels: Vec<Vec<i32>> = ids
        .iter()
        .enumerate()
        .map(|(b, row)| {
            row.iter()
                .enumerate()
                .map(|(t, &id)| if (b == 0 && t < 3) || (b == 1 && t >= 7) { IGNORE_INDEX } else { id })
                .collect()
        })
        .collect();
    ok(TrainBatch::from_labels(&ids, &labels), "the training batch")
}
