//! Full fine-tuning of a model with attention biases (the Qwen2 fixture: q, k, v have one): the
//! bias gradients against Richardson-extrapolated central differences of the loss (in f64)
//! along a random direction, the bias being in the trained set, and a few steps that lower the
//! loss and write a folder that loads back into the same logits.

mod common;

use std::path::{Path, PathBuf};

use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::full::{flatten, weights_mut};
use ragtune_trainer::merge::save_model_folder;
use ragtune_trainer::{FullTrainer, Target, TrainBatch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/qwen2-bias/model")
}

fn batch(rng: &mut ChaCha8Rng) -> TrainBatch {
    let ids: Vec<Vec<i32>> = (0..2).map(|_| (0..9).map(|_| rng.random_range(0..384)).collect()).collect();
    let mut labels = ids.clone();
    labels[1][..2].fill(-100);
    TrainBatch::from_labels(&ids, &labels).unwrap()
}

fn bias_mut(m: &mut LlamaModel, layer: usize, t: Target) -> &mut Tensor {
    let l = &mut m.layers[layer];
    let lin = match t {
        Target::Q => &mut l.q,
        Target::K => &mut l.k,
        Target::V => &mut l.v,
        _ => panic!("only q, k, v have biases in Qwen2"),
    };
    lin.bias.as_mut().expect("the fixture's q/k/v have biases")
}

#[test]
fn bias_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let b = batch(&mut rng);
    let mut model = LlamaModel::from_dir(&model_dir(), DType::F32, Device::Cpu).unwrap();
    // The fixture's biases are small; larger ones make their effect (and a wrong gradient) visible.
    for l in 0..model.config.num_layers {
        for t in [Target::Q, Target::K, Target::V] {
            let bias = bias_mut(&mut model, l, t);
            let v: Vec<f32> = (0..bias.numel()).map(|_| rng.random_range(-0.5..0.5)).collect();
            *bias = Tensor::from_slice(&v, bias.shape()).unwrap();
        }
    }
    let mut trainer = FullTrainer::new(model, AdamW::default()).unwrap();
    let grads = trainer.loss_and_grads(&b).unwrap();
    // Every weight and the six biases train, and the gradients line up with the weights.
    let layers = trainer.model.config.num_layers;
    assert_eq!(flatten(&grads.grads).len(), 1 + (9 + 3) * layers + 1 + 1);
    let shapes: Vec<Vec<usize>> =
        weights_mut(&mut trainer.model).iter().map(|w| w.shape().to_vec()).collect();
    let gshapes: Vec<Vec<usize>> = flatten(&grads.grads).iter().map(|g| g.shape().to_vec()).collect();
    assert_eq!(shapes, gshapes);
    for l in 0..layers {
        for t in Target::ALL {
            let g = &grads.grads.layers[l].bias[t.index()];
            if !matches!(t, Target::Q | Target::K | Target::V) {
                assert!(g.is_none(), "layer {l} {} has no bias but got a gradient", t.name());
                continue;
            }
            let g = g.as_ref().expect("q/k/v biases get gradients").to_vec::<f32>().unwrap();
            let dirn: Vec<f32> = (0..g.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let analytic = common::dot(&g, &dirn);
            let original = bias_mut(&mut trainer.model, l, t).clone();
            let base = original.to_vec::<f32>().unwrap();
            let numeric = common::directional_derivative(&base, &dirn, 1e-2, |w| {
                *bias_mut(&mut trainer.model, l, t) = Tensor::from_slice(&w, original.shape()).unwrap();
                f64::from(trainer.evaluate(std::slice::from_ref(&b)).unwrap())
            });
            *bias_mut(&mut trainer.model, l, t) = original;
            assert!(analytic.abs() > 1e-4, "layer {l} {}: the gradient is too small to test", t.name());
            let what = format!("layer {l} {} bias", t.name());
            common::assert_derivative(&what, analytic, numeric, 3e-3, 2e-4);
        }
    }
}

#[test]
fn full_steps_on_a_biased_model_lower_the_loss_and_save_a_loadable_folder() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let b = batch(&mut rng);
    let model = LlamaModel::from_dir(&model_dir(), DType::F32, Device::Cpu).unwrap();
    let bias0 = model.layers[0].v.bias.as_ref().unwrap().to_vec::<f32>().unwrap();
    let mut trainer = FullTrainer::new(model, AdamW::default()).unwrap();
    let before = trainer.evaluate(std::slice::from_ref(&b)).unwrap();
    for _ in 0..5 {
        trainer.train_step(&b, 1e-2).unwrap();
    }
    let after = trainer.evaluate(std::slice::from_ref(&b)).unwrap();
    assert!(after < 0.8 * before, "{before} -> {after}");
    let bias1 = trainer.model.layers[0].v.bias.as_ref().unwrap().to_vec::<f32>().unwrap();
    assert!(bias0.iter().zip(&bias1).any(|(a, b)| a != b), "the v bias did not train");

    let out = std::env::temp_dir().join(format!("ragtune-full-bias-{}", std::process::id()));
    save_model_folder(&trainer.model, &model_dir(), &out).unwrap();
    let loaded = LlamaModel::from_dir(&out, DType::F32, Device::Cpu).unwrap();
    assert_eq!(loaded.layers[0].v.bias.as_ref().unwrap().to_vec::<f32>().unwrap(), bias1);
    let reloaded = FullTrainer::new(loaded, AdamW::default()).unwrap();
    let (x, y) = (trainer.logits(&b).unwrap(), reloaded.logits(&b).unwrap());
    assert_eq!(x.to_vec::<f32>().unwrap(), y.to_vec::<f32>().unwrap());
    std::fs::remove_dir_all(&out).unwrap();
}
