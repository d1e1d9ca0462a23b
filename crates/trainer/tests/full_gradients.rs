//! Full fine-tuning: every weight's gradient (embedding, norms, projections, final norm, head;
//! tied and untied) against Richardson-extrapolated central differences of the loss along a
//! random direction, and a few AdamW steps that lower the loss (the tied head following the
//! embedding).

use std::path::Path;

use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::{LlamaModel, ModelConfig, Weights};
use ragtune_trainer::full::{flatten, weights_mut};
use ragtune_trainer::{FullTrainer, TrainBatch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model(tied: bool) -> LlamaModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model");
    let ModelConfig::Llama(mut config) = ModelConfig::from_file(&dir.join("config.json")).unwrap() else {
        panic!("llama-gqa is a Llama config")
    };
    config.tie_word_embeddings = tied;
    LlamaModel::from_weights(config, &Weights::open_dir(&dir, DType::F32, Device::Cpu).unwrap()).unwrap()
}

fn batch(rng: &mut ChaCha8Rng) -> TrainBatch {
    let ids: Vec<Vec<i32>> = (0..2).map(|_| (0..9).map(|_| rng.random_range(0..384)).collect()).collect();
    let mut labels = ids.clone();
    labels[0][..3].fill(-100);
    TrainBatch::from_labels(&ids, &labels).unwrap()
}

/// The weight `i` of the trainer's own [`weights_mut`] order.
fn weight(m: &mut LlamaModel, i: usize) -> &mut Tensor {
    weights_mut(m).swap_remove(i)
}

fn check(tied: bool, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let b = batch(&mut rng);
    let mut trainer = FullTrainer::new(model(tied), AdamW::default()).unwrap();
    let grads = trainer.loss_and_grads(&b).unwrap();
    let g: Vec<Vec<f32>> = flatten(&grads.grads).iter().map(|t| t.to_vec::<f32>().unwrap()).collect();
    assert_eq!(g.len(), 1 + 9 * trainer.model.config.num_layers + 1 + usize::from(!tied));
    let h = 1e-2f32;
    for (i, gi) in g.iter().enumerate() {
        let dirn: Vec<f32> = (0..gi.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let analytic: f64 = gi.iter().zip(&dirn).map(|(a, b)| *a as f64 * *b as f64).sum();
        let original = weight(&mut trainer.model, i).clone();
        let base = original.to_vec::<f32>().unwrap();
        let mut at = |sign: f32| {
            let moved: Vec<f32> = base.iter().zip(&dirn).map(|(w, u)| w + sign * h * u).collect();
            let t = Tensor::from_slice(&moved, original.shape()).unwrap();
            *weight(&mut trainer.model, i) = t.clone();
            if tied && i == 0 {
                trainer.model.lm_head = t;
            }
            trainer.evaluate(std::slice::from_ref(&b)).unwrap() as f64
        };
        let n1 = (at(1.0) - at(-1.0)) / (2.0 * h as f64);
        let n2 = (at(0.5) - at(-0.5)) / (h as f64);
        let numeric = (4.0 * n2 - n1) / 3.0;
        *weight(&mut trainer.model, i) = original.clone();
        if tied && i == 0 {
            trainer.model.lm_head = original;
        }
        assert!(
            (numeric - analytic).abs() <= 3e-3 * analytic.abs() + 2e-4,
            "tied {tied}, weight {i}: analytic {analytic:.6e} vs numeric {numeric:.6e}"
        );
    }
    // A few steps on the same batch lower its loss; a tied head follows the embedding.
    let before = trainer.evaluate(std::slice::from_ref(&b)).unwrap();
    for _ in 0..5 {
        trainer.train_step(&b, 1e-2).unwrap();
    }
    let after = trainer.evaluate(std::slice::from_ref(&b)).unwrap();
    assert!(after < 0.8 * before, "{before} -> {after}");
    if tied {
        assert_eq!(
            trainer.model.lm_head.to_vec::<f32>().unwrap(),
            trainer.model.embed.to_vec::<f32>().unwrap()
        );
    }
}

#[test]
fn every_weight_gets_the_gradient_of_the_loss_untied() {
    check(false, 5);
}

#[test]
fn every_weight_gets_the_gradient_of_the_loss_tied() {
    check(true, 6);
}

#[test]
fn full_mode_refuses_a_16_bit_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model");
    let m = LlamaModel::from_dir(&dir, DType::BF16, Device::Cpu).unwrap();
    let err = FullTrainer::new(m, AdamW::default()).err().unwrap().to_string();
    assert!(err.contains("f32"), "{err}");
}
