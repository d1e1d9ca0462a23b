//! Training a sliding-window model (the `mistral-window` and `qwen2-window` fixtures: window 5,
//! 19-token sequences): the training forward's loss equals the cross-entropy of transformers'
//! recorded logits, and every weight's gradient matches central differences of that loss — so
//! both the forward and the backward honour the window, per layer.

use std::path::{Path, PathBuf};

use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::full::{flatten, weights_mut};
use ragtune_trainer::{FullTrainer, TrainBatch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime")
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("sliding_window.json")).unwrap()).unwrap()
}

fn model(name: &str) -> LlamaModel {
    LlamaModel::from_dir(&fixtures().join(name).join("model"), DType::F32, Device::Cpu).unwrap()
}

/// The prompt of a fixture as one training sequence (loss on every next token).
fn prompt_batch(case: &Value) -> (Vec<i32>, TrainBatch) {
    let ids: Vec<i32> =
        case["prompt_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect();
    let batch = TrainBatch::from_labels(std::slice::from_ref(&ids), std::slice::from_ref(&ids)).unwrap();
    (ids, batch)
}

/// `<f4` `.npy` values (the fixtures' logits).
fn read_f32_npy(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(std::str::from_utf8(&bytes[10..10 + header_len]).unwrap().contains("'<f4'"));
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect()
}

#[test]
fn training_loss_matches_transformers_logits_past_the_window() {
    let m = manifest();
    for name in ["mistral-window", "qwen2-window"] {
        let case = &m["models"][name];
        let (ids, batch) = prompt_batch(case);
        let trainer = FullTrainer::new(model(name), AdamW::default()).unwrap();
        let loss = trainer.evaluate(std::slice::from_ref(&batch)).unwrap() as f64;
        let logits = read_f32_npy(&fixtures().join(case["prompt_logits"].as_str().unwrap()));
        let v = logits.len() / ids.len();
        let mut expected = 0.0;
        for t in 0..ids.len() - 1 {
            let row = &logits[t * v..(t + 1) * v];
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = row.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
            expected += lse - row[ids[t + 1] as usize];
        }
        expected /= (ids.len() - 1) as f64;
        assert!((loss - expected).abs() <= 1e-4 * expected, "{name}: loss {loss} vs transformers {expected}");
    }
}

#[test]
fn windowed_gradients_match_central_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let m = manifest();
    for name in ["mistral-window", "qwen2-window"] {
        let (_, batch) = prompt_batch(&m["models"][name]);
        let mut trainer = FullTrainer::new(model(name), AdamW::default()).unwrap();
        let grads = trainer.loss_and_grads(&batch).unwrap();
        let g: Vec<Vec<f32>> = flatten(&grads.grads).iter().map(|t| t.to_vec::<f32>().unwrap()).collect();
        let h = 1e-2f32;
        for (i, gi) in g.iter().enumerate() {
            let dirn: Vec<f32> = (0..gi.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let analytic: f64 = gi.iter().zip(&dirn).map(|(a, b)| *a as f64 * *b as f64).sum();
            let original = weights_mut(&mut trainer.model).swap_remove(i).clone();
            let base = original.to_vec::<f32>().unwrap();
            let mut at = |sign: f32| {
                let moved: Vec<f32> = base.iter().zip(&dirn).map(|(w, u)| w + sign * h * u).collect();
                *weights_mut(&mut trainer.model).swap_remove(i) =
                    ragtune_compute::Tensor::from_slice(&moved, original.shape()).unwrap();
                trainer.evaluate(std::slice::from_ref(&batch)).unwrap() as f64
            };
            // Richardson extrapolation of two central differences.
            let n1 = (at(1.0) - at(-1.0)) / (2.0 * h as f64);
            let n2 = (at(0.5) - at(-0.5)) / (h as f64);
            let numeric = (4.0 * n2 - n1) / 3.0;
            *weights_mut(&mut trainer.model).swap_remove(i) = original;
            assert!(
                (numeric - analytic).abs() <= 3e-3 * analytic.abs() + 2e-4,
                "{name}, weight {i}: analytic {analytic:.6e} vs numeric {numeric:.6e}"
            );
        }
    }
}
