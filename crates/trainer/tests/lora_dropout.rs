//! LoRA dropout (peft's: on the adapter branch's input, training only, inverted): the gradients
//! under a fixed mask against central differences of the loss under that same mask; p = 0
//! leaves training untouched; evaluation and inference ignore dropout; the masks drop a
//! fraction ≈ p, scale the rest by 1/(1 − p) and change with the step, the micro-batch, the
//! layer and the projection; a run resumed from a checkpoint draws the same masks; the saved
//! adapter records lora_dropout.

mod common;

use std::path::Path;

use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::checkpoint::{load_checkpoint, save_checkpoint};
use ragtune_trainer::dropout::DropoutDraw;
use ragtune_trainer::peft::{load_adapter, save_adapter};
use ragtune_trainer::{LoraAdapter, LoraConfig, LoraTrainer, StepGrads, Target, TrainBatch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model() -> LlamaModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model");
    LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap()
}

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// An adapter on all seven projections with a non-zero B (so A's gradients are not zero).
fn adapter(m: &LlamaModel, dropout: f32, seed: u64) -> LoraAdapter {
    let config = LoraConfig {
        r: 3,
        alpha: 5.0,
        use_rslora: false,
        dropout,
        targets: Target::ALL.to_vec(),
        layers: None,
    };
    let mut a = LoraAdapter::init(config, &m.config, seed, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for m in a.modules.iter_mut().flatten().flatten() {
        m.b = Tensor::from_slice(&random(&mut rng, m.b.numel(), 0.3), m.b.shape()).unwrap();
    }
    a
}

fn batch(seed: u64) -> TrainBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<Vec<i32>> = (0..2).map(|_| (0..11).map(|_| rng.random_range(0..384)).collect()).collect();
    let mut labels = ids.clone();
    labels[0][..3].fill(-100);
    TrainBatch::from_labels(&ids, &labels).unwrap()
}

/// A or B of the module `t` in layer `l`.
fn slot<'a>(tr: &'a mut LoraTrainer<'_>, l: usize, t: Target, is_a: bool) -> &'a mut Tensor {
    let module = tr.adapter.modules[l][t.index()].as_mut().unwrap();
    if is_a { &mut module.a } else { &mut module.b }
}

fn values(g: &StepGrads) -> Vec<Vec<f32>> {
    g.grads.iter().flat_map(|(_, _, a, b)| [a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap()]).collect()
}

#[test]
fn gradients_under_a_fixed_mask_match_finite_differences() {
    let m = model();
    let b = batch(1);
    let mut trainer = LoraTrainer::new(&m, adapter(&m, 0.3, 4), AdamW::default()).unwrap();
    trainer.dropout_seed = 99;
    let grads = trainer.loss_and_grads_at(&b, 0).unwrap();
    assert_eq!(grads.loss, trainer.training_loss_at(&b, 0).unwrap(), "the same masks give the same loss");
    // Dropout is really on: the loss differs from the loss without it and between micro-batches.
    let plain = trainer.loss(&b).unwrap();
    assert!((grads.loss - plain).abs() > 1e-4, "dropout loss {} vs plain {plain}", grads.loss);
    assert_ne!(grads.loss, trainer.training_loss_at(&b, 1).unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (l, t, da, db) in &grads.grads {
        for (is_a, g) in [(true, da), (false, db)] {
            let g = g.to_vec::<f32>().unwrap();
            let dirn = random(&mut rng, g.len(), 1.0);
            let analytic = common::dot(&g, &dirn);
            let original = slot(&mut trainer, *l, *t, is_a).clone();
            let base = original.to_vec::<f32>().unwrap();
            let numeric = common::directional_derivative(&base, &dirn, 1e-2, |w| {
                *slot(&mut trainer, *l, *t, is_a) = Tensor::from_slice(&w, original.shape()).unwrap();
                f64::from(trainer.training_loss_at(&b, 0).unwrap())
            });
            *slot(&mut trainer, *l, *t, is_a) = original;
            let what = format!("layer {l} {} lora_{}", t.name(), if is_a { "A" } else { "B" });
            common::assert_derivative(&what, analytic, numeric, 2e-3, 1e-4);
        }
    }
}

#[test]
fn dropout_zero_leaves_training_untouched() {
    let m = model();
    let b = batch(2);
    let mut trainer = LoraTrainer::new(&m, adapter(&m, 0.0, 5), AdamW::default()).unwrap();
    let reference = trainer.loss_and_grads_at(&b, 0).unwrap();
    // No mask is drawn: the seed and the micro-batch change nothing, bit for bit, and the
    // training loss is the evaluation loss.
    trainer.dropout_seed = 12345;
    for micro in [1, 7] {
        let g = trainer.loss_and_grads_at(&b, micro).unwrap();
        assert_eq!(g.loss.to_bits(), reference.loss.to_bits());
        assert_eq!(values(&g), values(&reference));
    }
    assert_eq!(trainer.training_loss_at(&b, 3).unwrap().to_bits(), trainer.loss(&b).unwrap().to_bits());
}

#[test]
fn evaluation_and_inference_ignore_dropout() {
    let m = model();
    let b = batch(3);
    let (with, without) = (adapter(&m, 0.4, 6), adapter(&m, 0.0, 6));
    let t1 = LoraTrainer::new(&m, with.clone(), AdamW::default()).unwrap();
    let t0 = LoraTrainer::new(&m, without.clone(), AdamW::default()).unwrap();
    assert_eq!(
        t1.logits(&b).unwrap().to_vec::<f32>().unwrap(),
        t0.logits(&b).unwrap().to_vec::<f32>().unwrap()
    );
    assert_eq!(t1.loss(&b).unwrap().to_bits(), t0.loss(&b).unwrap().to_bits());
    assert_eq!(
        t1.evaluate(std::slice::from_ref(&b)).unwrap(),
        t0.evaluate(std::slice::from_ref(&b)).unwrap()
    );
    // The adapter attached for generation computes the same with or without a dropout setting.
    let ids: Vec<u32> = b.ids[..11].iter().map(|&i| i as u32).collect();
    let run = |a: &LoraAdapter| {
        let mut m = model();
        a.attach(&mut m).unwrap();
        let mut cache = ragtune_runtime::KvCache::new(&m, 1, ids.len()).unwrap();
        m.forward(&mut cache, &[&ids], ragtune_runtime::LogitsWanted::All).unwrap().0.to_vec::<f32>().unwrap()
    };
    assert_eq!(run(&with), run(&without));
    // The saved adapter records lora_dropout, and loads with it.
    let dir = std::env::temp_dir().join(format!("ragtune-dropout-save-{}", std::process::id()));
    save_adapter(&with, &dir, "llama-gqa").unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["lora_dropout"].as_f64().unwrap() as f32, 0.4);
    assert_eq!(load_adapter(&dir, &m.config, &Device::Cpu).unwrap().config.dropout, 0.4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn masks_drop_a_fraction_p_and_change_with_step_micro_layer_and_projection() {
    let (rows, cols) = (200, 500);
    for p in [0.05f32, 0.25, 0.6] {
        let draw = DropoutDraw { p, seed: 3, step: 0, micro: 0 };
        let mask = draw.mask(1, Target::Q, rows, cols);
        let n = mask.len() as f64;
        let dropped = mask.iter().filter(|&&v| v == 0.0).count() as f64 / n;
        let sigma = (f64::from(p) * (1.0 - f64::from(p)) / n).sqrt();
        assert!((dropped - f64::from(p)).abs() < 5.0 * sigma, "p {p}: dropped {dropped}");
        let keep = 1.0 / (1.0 - p);
        assert!(mask.iter().all(|&v| v == 0.0 || v == keep), "kept values must be 1/(1-p)");
        // Inverted dropout keeps the mean: E[mask] = 1.
        let mean = mask.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        assert!((mean - 1.0).abs() < 5.0 * sigma / (1.0 - f64::from(p)), "p {p}: mean {mean}");
        // Deterministic, and different for any other step, micro-batch, layer, projection, seed.
        assert_eq!(mask, draw.mask(1, Target::Q, rows, cols));
        let others = [
            DropoutDraw { step: 1, ..draw }.mask(1, Target::Q, rows, cols),
            DropoutDraw { micro: 1, ..draw }.mask(1, Target::Q, rows, cols),
            DropoutDraw { seed: 4, ..draw }.mask(1, Target::Q, rows, cols),
            draw.mask(0, Target::Q, rows, cols),
            draw.mask(1, Target::K, rows, cols),
        ];
        for other in others {
            let agree = mask.iter().zip(&other).filter(|(a, b)| (**a == 0.0) == (**b == 0.0)).count() as f64;
            // Independent masks agree on a fraction p² + (1 − p)² of the places.
            let expect = f64::from(p * p + (1.0 - p) * (1.0 - p));
            assert!(
                (agree / n - expect).abs() < 0.02,
                "p {p}: masks agree on {} (independent: {expect})",
                agree / n
            );
        }
    }
}

#[test]
fn training_draws_new_masks_each_micro_batch_and_step() {
    let m = model();
    let b = batch(4);
    let mut trainer = LoraTrainer::new(&m, adapter(&m, 0.3, 8), AdamW::default()).unwrap();
    let g0 = trainer.loss_and_grads(&b).unwrap();
    let g1 = trainer.loss_and_grads(&b).unwrap();
    assert_ne!(g0.loss, g1.loss, "a second micro-batch must draw new masks");
    assert_eq!(g0.loss, trainer.loss_and_grads_at(&b, 0).unwrap().loss);
    assert_eq!(g1.loss, trainer.loss_and_grads_at(&b, 1).unwrap().loss);
    // An update with a zero learning rate leaves the weights: only the step changes the masks.
    let grads = StepGrads::accumulate(vec![g0, g1]).unwrap();
    let loss0 = trainer.training_loss_at(&b, 0).unwrap();
    let weights = |t: &LoraTrainer<'_>| -> Vec<Vec<f32>> {
        t.adapter
            .iter()
            .flat_map(|(_, _, m)| [m.a.to_vec::<f32>().unwrap(), m.b.to_vec::<f32>().unwrap()])
            .collect()
    };
    let before = weights(&trainer);
    trainer.apply(&grads, 0.0).unwrap();
    assert_eq!(weights(&trainer), before);
    let after = trainer.loss_and_grads(&b).unwrap();
    assert_ne!(after.loss, loss0, "a new step must draw new masks");
    assert_eq!(after.loss, trainer.training_loss_at(&b, 0).unwrap(), "apply starts the micro-batches again");
    // A bad probability is refused.
    for p in [1.0, -0.1, f32::NAN] {
        let config = LoraConfig { dropout: p, ..adapter(&m, 0.0, 8).config };
        let err = LoraAdapter::init(config, &m.config, 0, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("lora_dropout"), "{err}");
        let mut a = adapter(&m, 0.0, 8);
        a.config.dropout = p;
        assert!(LoraTrainer::new(&m, a, AdamW::default()).is_err());
    }
}

#[test]
fn a_resumed_run_draws_the_same_masks() {
    let m = model();
    let batches: Vec<TrainBatch> = (10..14).map(batch).collect();
    let run = |trainer: &mut LoraTrainer<'_>, steps: std::ops::Range<usize>| -> Vec<f32> {
        steps
            .map(|s| {
                let g = trainer.loss_and_grads(&batches[s]).unwrap();
                trainer.apply(&g, 1e-2).unwrap();
                g.loss
            })
            .collect()
    };
    let mut whole = LoraTrainer::new(&m, adapter(&m, 0.2, 9), AdamW::default()).unwrap();
    whole.dropout_seed = 5;
    let straight = run(&mut whole, 0..4);
    let mut first = LoraTrainer::new(&m, adapter(&m, 0.2, 9), AdamW::default()).unwrap();
    first.dropout_seed = 5;
    let mut losses = run(&mut first, 0..2);
    let dir = std::env::temp_dir().join(format!("ragtune-dropout-ck-{}", std::process::id()));
    save_checkpoint(&dir, &first.adapter, first.moments(), first.step, &serde_json::json!({}), "x").unwrap();
    let ck = load_checkpoint(&dir, &m.config, &Device::Cpu).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(ck.adapter.config.dropout, 0.2);
    let mut resumed = LoraTrainer::new(&m, ck.adapter, AdamW::default()).unwrap();
    resumed.dropout_seed = 5;
    resumed.restore(ck.moments, ck.step).unwrap();
    losses.extend(run(&mut resumed, 2..4));
    assert_eq!(losses, straight);
    let w = |t: &LoraTrainer<'_>| -> Vec<Vec<f32>> {
        t.adapter.iter().map(|(_, _, m)| m.a.to_vec::<f32>().unwrap()).collect()
    };
    assert_eq!(w(&resumed), w(&whole));
}
