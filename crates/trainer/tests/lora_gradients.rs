//! The trainer's LoRA gradients on every projection, checked by central differences of its own
//! loss: the PyTorch fixture covers q_proj/v_proj only, so here all seven targets (with rsLoRA,
//! GQA, and an adapter on a subset of layers) are checked. For each (layer, target, A or B), the
//! directional derivative along a random direction must match `⟨grad, direction⟩`.

use std::path::Path;

use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::{LoraAdapter, LoraConfig, LoraTrainer, Target, TrainBatch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn check(layers: Option<Vec<usize>>, use_rslora: bool, seed: u64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/llama-gqa/model");
    let model = LlamaModel::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
    let config =
        LoraConfig { r: 3, alpha: 5.0, use_rslora, dropout: 0.0, targets: Target::ALL.to_vec(), layers };
    let mut adapter = LoraAdapter::init(config, &model.config, seed, &Device::Cpu).unwrap();
    // B starts at zero, which would make every A gradient zero: give it values.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for slots in adapter.modules.iter_mut() {
        for m in slots.iter_mut().flatten() {
            m.b = Tensor::from_slice(&random(&mut rng, m.b.numel(), 0.2), m.b.shape()).unwrap();
        }
    }
    let ids: Vec<Vec<i32>> = (0..2).map(|_| (0..11).map(|_| rng.random_range(0..384)).collect()).collect();
    let mut labels = ids.clone();
    labels[0][..4].fill(-100); // a prompt
    labels[1][8..].fill(-100); // padding
    let batch = TrainBatch::from_labels(&ids, &labels).unwrap();
    let mut trainer = LoraTrainer::new(&model, adapter, AdamW::default()).unwrap();
    let grads = trainer.loss_and_grads(&batch).unwrap();
    let h = 1e-2f32;
    let mut checked = 0;
    for (l, t, da, db) in &grads.grads {
        for (is_a, g) in [(true, da), (false, db)] {
            let g = g.to_vec::<f32>().unwrap();
            let dirn = random(&mut rng, g.len(), 1.0);
            let analytic: f64 = g.iter().zip(&dirn).map(|(a, b)| *a as f64 * *b as f64).sum();
            let original = {
                let m = trainer.adapter.modules[*l][t.index()].as_ref().unwrap();
                if is_a { m.a.clone() } else { m.b.clone() }
            };
            let base = original.to_vec::<f32>().unwrap();
            let mut at = |sign: f32| {
                let moved: Vec<f32> = base.iter().zip(&dirn).map(|(w, u)| w + sign * h * u).collect();
                let m = trainer.adapter.modules[*l][t.index()].as_mut().unwrap();
                let slot = if is_a { &mut m.a } else { &mut m.b };
                *slot = Tensor::from_slice(&moved, original.shape()).unwrap();
                trainer.loss(&batch).unwrap() as f64
            };
            let n1 = (at(1.0) - at(-1.0)) / (2.0 * h as f64);
            let n2 = (at(0.5) - at(-0.5)) / (h as f64);
            let numeric = (4.0 * n2 - n1) / 3.0;
            let m = trainer.adapter.modules[*l][t.index()].as_mut().unwrap();
            *(if is_a { &mut m.a } else { &mut m.b }) = original;
            let which = if is_a { "A" } else { "B" };
            assert!(
                (numeric - analytic).abs() <= 2e-3 * analytic.abs() + 1e-4,
                "layer {l} {} lora_{which}: analytic {analytic:.6e} vs numeric {numeric:.6e}",
                t.name()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * grads.grads.len());
}

#[test]
fn every_target_gets_the_gradient_of_the_loss() {
    check(None, false, 1);
}

#[test]
fn rslora_and_a_layer_subset_get_the_gradient_of_the_loss() {
    check(Some(vec![1]), true, 2);
}
