//! The whole training step on a kernel device — the CPU emulation of `kernels/*.cu`, the same
//! launches a GPU gets (forward kernels, the backward kernels, the fused loss and AdamW) —
//! against the PyTorch fixture: loss, LoRA gradients and a short AdamW trajectory. The same
//! steps against the CPU (LoRA dropout, full fine-tuning with biases) are device checks of
//! ragtune-tests (`device_checks::train_step`), which the GPU bundle runs too.

mod common;

use common::{fixtures, rows};
use std::sync::Arc;

use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device};
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::peft::load_adapter;
use ragtune_trainer::{LoraTrainer, TrainBatch};
use serde_json::Value;

#[test]
fn a_lora_step_on_the_emulated_device_matches_pytorch() {
    let device = Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward })));
    let dir = fixtures();
    let model =
        LlamaModel::from_dir(&dir.join("runtime/llama-gqa/model"), DType::F32, device.clone()).unwrap();
    let adapter = load_adapter(&dir.join("lora/adapter_init"), &model.config, &device).unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lora/manifest.json")).unwrap()).unwrap();
    let b: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lora/batch.json")).unwrap()).unwrap();
    let batch = TrainBatch::from_labels(&rows(&b["input_ids"]), &rows(&b["labels"])).unwrap();
    let hp = AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let mut trainer = LoraTrainer::new(&model, adapter, hp).unwrap();
    let grads = trainer.loss_and_grads(&batch).unwrap();
    assert!(!grads.grads[0].2.is_host(), "gradients stay on the device");
    let want = manifest["loss_step0_f64"].as_f64().unwrap();
    assert!(((grads.loss as f64) - want).abs() <= 1e-5 * want, "loss {} vs {want}", grads.loss);
    let bytes = std::fs::read(dir.join("lora/grads_step0.safetensors")).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (l, t, da, db) in &grads.grads {
        let prefix = ragtune_trainer::LoraAdapter::peft_prefix(*l, *t);
        for (part, g) in [("lora_A", da), ("lora_B", db)] {
            let name = format!("{prefix}.{part}.weight");
            let r: Vec<f32> = reference
                .tensor(&name)
                .unwrap()
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let g = g.to_vec::<f32>().unwrap();
            let (num, den) = g.iter().zip(&r).fold((0f64, 0f64), |(n, d), (a, b)| {
                (n + (*a as f64 - *b as f64).powi(2), d + (*b as f64).powi(2))
            });
            let e = (num / den).sqrt();
            assert!(e <= 1e-4, "{name}: rel err {e:.3e} on the emulated device");
        }
    }
    trainer.apply(&grads, 1e-2).unwrap();
    for k in 1..3 {
        let loss = trainer.train_step(&batch, 1e-2).unwrap() as f64;
        let want = manifest["trajectory_f64"][k].as_f64().unwrap();
        assert!((loss - want).abs() <= 1e-4, "step {k}: {loss} vs {want}");
    }
}
