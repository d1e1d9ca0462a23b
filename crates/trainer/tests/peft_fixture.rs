//! The PEFT fixture recorded with PyTorch + peft (tests/fixtures/lora/, made by
//! make_lora_fixtures.py): tiny llama-gqa + a LoRA r=4, α=8 adapter on q_proj/v_proj with seeded
//! non-zero A and B. ragtune must reproduce the step-0 loss, the LoRA gradients, the 10-step
//! AdamW loss trajectory, the trained adapter and the logits, within the manifest's tolerances;
//! an adapter it writes must read back identically.

mod common;

use common::{fixtures, rows};
use std::path::{Path, PathBuf};

use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::peft::{load_adapter, save_adapter};
use ragtune_trainer::{LoraAdapter, LoraTrainer, TrainBatch};
use serde_json::Value;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rel_err(out: &[f32], reference: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&o, &r) in out.iter().zip(reference) {
        num += (o as f64 - r as f64).powi(2);
        den += (r as f64).powi(2);
    }
    assert_eq!(out.len(), reference.len());
    (num / den).sqrt()
}

/// Tensors of a safetensors file as f32, by name.
fn safetensors_f32(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            assert_eq!(v.dtype(), safetensors::Dtype::F32, "{n}");
            (n, v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A little-endian f32 `.npy` (version 1 header).
fn npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A little-endian f32 `.npy` (version 1) of `shape` (a Python tuple).
fn write_npy_f32(path: &Path, values: &[f32], shape: &str) {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

struct Fixture {
    model: LlamaModel,
    manifest: Value,
    batch: TrainBatch,
    mask: Vec<i32>,
}

fn fixture() -> Fixture {
    let dir = fixtures();
    let model = LlamaModel::from_dir(&dir.join("runtime/llama-gqa/model"), DType::F32, Device::Cpu).unwrap();
    let manifest = json(&dir.join("lora/manifest.json"));
    let b = json(&dir.join("lora/batch.json"));
    let batch = TrainBatch::from_labels(&rows(&b["input_ids"]), &rows(&b["labels"])).unwrap();
    let mask = rows(&b["attention_mask"]).concat();
    Fixture { model, manifest, batch, mask }
}

/// Relative error of `model`'s logits on the fixture batch's real (unmasked) tokens, each row
/// run alone, against PEFT's logits with the initial adapter (`lora/init_logits.npy`).
fn init_logits_rel_err(fx: &Fixture, model: &LlamaModel) -> f64 {
    let (seq, vocab) = (fx.batch.seq, model.config.vocab_size);
    let mut ours = Vec::new();
    for b in 0..fx.batch.batch {
        let real: Vec<u32> = (0..seq)
            .filter(|&t| fx.mask[b * seq + t] == 1)
            .map(|t| fx.batch.ids[b * seq + t] as u32)
            .collect();
        let mut cache = ragtune_runtime::KvCache::new(model, 1, seq).unwrap();
        let (logits, _) = model.forward(&mut cache, &[&real], ragtune_runtime::LogitsWanted::All).unwrap();
        ours.extend(logits.to_vec::<f32>().unwrap());
    }
    let reference = npy_f32(&fixtures().join("lora/init_logits.npy"));
    let masked: Vec<f32> = reference
        .chunks(vocab)
        .zip(&fx.mask)
        .filter(|(_, m)| **m == 1)
        .flat_map(|(r, _)| r.to_vec())
        .collect();
    rel_err(&ours, &masked)
}

fn adapter_grads(grads: &ragtune_trainer::StepGrads) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for (l, t, da, db) in &grads.grads {
        let p = LoraAdapter::peft_prefix(*l, *t);
        out.push((format!("{p}.lora_A.weight"), da.to_vec::<f32>().unwrap()));
        out.push((format!("{p}.lora_B.weight"), db.to_vec::<f32>().unwrap()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn optimizer(m: &Value) -> (AdamW, f32) {
    let o = &m["optimizer"];
    let f = |v: &Value| v.as_f64().unwrap() as f32;
    let hp = AdamW {
        beta1: f(&o["betas"][0]),
        beta2: f(&o["betas"][1]),
        eps: f(&o["eps"]),
        weight_decay: f(&o["weight_decay"]),
    };
    (hp, f(&o["lr"]))
}

/// PEFT's initial adapter (`lora/adapter_init`) for `model`.
fn initial_adapter(model: &LlamaModel) -> LoraAdapter {
    load_adapter(&fixtures().join("lora/adapter_init"), &model.config, &Device::Cpu).unwrap()
}

/// A trainer of the initial adapter on the fixture's f32 model with the manifest's AdamW, and
/// the manifest's learning rate.
fn initial_trainer(fx: &Fixture) -> (LoraTrainer<'_>, f32) {
    let (hp, lr) = optimizer(&fx.manifest);
    (LoraTrainer::new(&fx.model, initial_adapter(&fx.model), hp).unwrap(), lr)
}

#[test]
fn step0_loss_and_lora_gradients_match_pytorch() {
    let fx = fixture();
    let adapter = initial_adapter(&fx.model);
    assert_eq!(adapter.config.scale(), fx.manifest["lora"]["scale"].as_f64().unwrap() as f32);
    let (hp, _) = optimizer(&fx.manifest);
    let trainer = LoraTrainer::new(&fx.model, adapter, hp).unwrap();
    let grads = trainer.loss_and_grads(&fx.batch).unwrap();
    let want = fx.manifest["loss_step0_f64"].as_f64().unwrap();
    let loss_err = (grads.loss as f64 - want).abs() / want;
    let tol = &fx.manifest["tolerances"];
    eprintln!("step-0 loss {} vs {want} (rel err {loss_err:.2e}), {} targets", grads.loss, grads.count);
    assert!(loss_err <= tol["loss_step0_rel"].as_f64().unwrap(), "loss rel err {loss_err:.3e}");
    assert_eq!(grads.count as u64, fx.manifest["n_target_tokens"].as_u64().unwrap());

    let reference = safetensors_f32(&fixtures().join("lora/grads_step0.safetensors"));
    let ours = adapter_grads(&grads);
    assert_eq!(
        ours.iter().map(|g| &g.0).collect::<Vec<_>>(),
        reference.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    let mut worst = 0f64;
    for ((name, g), (_, r)) in ours.iter().zip(&reference) {
        let e = rel_err(g, r);
        worst = worst.max(e);
        assert!(e <= tol["grads_rel_err_per_tensor"].as_f64().unwrap(), "{name}: gradient rel err {e:.3e}");
    }
    eprintln!("LoRA gradients: worst per-tensor rel err {worst:.2e}");

    // Logits of base + adapter_init where attention_mask is 1.
    let logits = trainer.logits(&fx.batch).unwrap().to_vec::<f32>().unwrap();
    let reference = npy_f32(&fixtures().join("lora/init_logits.npy"));
    let vocab = fx.model.config.vocab_size;
    let keep = |v: &[f32]| -> Vec<f32> {
        v.chunks(vocab).zip(&fx.mask).filter(|(_, m)| **m == 1).flat_map(|(r, _)| r.to_vec()).collect()
    };
    let e = rel_err(&keep(&logits), &keep(&reference));
    eprintln!("init logits rel err {e:.2e}");
    assert!(e <= tol["init_logits_rel_err"].as_f64().unwrap(), "logits rel err {e:.3e}");
}

#[test]
fn ten_adamw_steps_follow_the_pytorch_trajectory() {
    let fx = fixture();
    let (mut trainer, lr) = initial_trainer(&fx);
    let want: Vec<f64> =
        fx.manifest["trajectory_f64"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(trainer.train_step(&fx.batch, lr).unwrap() as f64);
    }
    got.push(trainer.loss(&fx.batch).unwrap() as f64);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("trajectory {got:?}\nworst abs err {worst:.2e}");
    assert!(
        worst <= fx.manifest["tolerances"]["trajectory_abs"].as_f64().unwrap(),
        "trajectory abs err {worst:.3e}"
    );

    // The trained adapter against peft's adapter_final, then a save/load round trip.
    let final_ref = safetensors_f32(&fixtures().join("lora/adapter_final/adapter_model.safetensors"));
    let out = std::env::temp_dir().join(format!("ragtune-peft-fixture-{}", std::process::id()));
    save_adapter(&trainer.adapter, &out, "tests/fixtures/runtime/llama-gqa/model").unwrap();
    let ours = safetensors_f32(&out.join("adapter_model.safetensors"));
    assert_eq!(
        ours.iter().map(|g| &g.0).collect::<Vec<_>>(),
        final_ref.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    for ((name, g), (_, r)) in ours.iter().zip(&final_ref) {
        let e = rel_err(g, r);
        assert!(
            e <= fx.manifest["tolerances"]["adapter_final_rel_err_per_tensor"].as_f64().unwrap(),
            "{name}: rel err {e:.3e}"
        );
    }
    // For the fixture script's peft check (README of tests/fixtures):
    //   RAGTUNE_PEFT_CHECK_DIR=DIR cargo test -p ragtune-trainer --test peft_fixture
    //   make_lora_fixtures.py --check-adapter DIR/adapter --expect-logits DIR/logits.npy
    if let Some(check) = std::env::var_os("RAGTUNE_PEFT_CHECK_DIR") {
        let check = PathBuf::from(check);
        save_adapter(&trainer.adapter, &check.join("adapter"), "tests/fixtures/runtime/llama-gqa/model")
            .unwrap();
        let logits = trainer.logits(&fx.batch).unwrap().to_vec::<f32>().unwrap();
        let shape = format!("({}, {}, {})", fx.batch.batch, fx.batch.seq, fx.model.config.vocab_size);
        write_npy_f32(&check.join("logits.npy"), &logits, &shape);
    }
    let back = load_adapter(&out, &fx.model.config, &Device::Cpu).unwrap();
    assert_eq!(back.config.r, 4);
    for ((_, _, a), (_, _, b)) in back.iter().zip(trainer.adapter.iter()) {
        assert_eq!(a.a.to_vec::<f32>().unwrap(), b.a.to_vec::<f32>().unwrap());
        assert_eq!(a.b.to_vec::<f32>().unwrap(), b.b.to_vec::<f32>().unwrap());
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn accumulated_micro_batches_give_the_full_batch_gradient() {
    let fx = fixture();
    let (trainer, _) = initial_trainer(&fx);
    let full = trainer.loss_and_grads(&fx.batch).unwrap();
    let seq = fx.batch.seq;
    let row = |b: usize| TrainBatch {
        batch: 1,
        seq,
        ids: fx.batch.ids[b * seq..(b + 1) * seq].to_vec(),
        targets: fx.batch.targets[b * seq..(b + 1) * seq].to_vec(),
    };
    let parts = vec![trainer.loss_and_grads(&row(0)).unwrap(), trainer.loss_and_grads(&row(1)).unwrap()];
    let mut merged = ragtune_trainer::StepGrads::accumulate(parts).unwrap();
    assert_eq!(merged.count, full.count);
    assert!((merged.loss - full.loss).abs() <= 1e-5 * full.loss, "{} vs {}", merged.loss, full.loss);
    for ((name, g), (_, r)) in adapter_grads(&merged).iter().zip(&adapter_grads(&full)) {
        let e = rel_err(g, r);
        assert!(e <= 1e-5, "{name}: accumulated vs full rel err {e:.3e}");
    }
    // Clipping to half the norm halves every gradient.
    let norm = merged.clip(f32::MAX).unwrap();
    let before = adapter_grads(&merged);
    let again = merged.clip(norm / 2.0).unwrap();
    assert!((again - norm).abs() <= 1e-6 * norm);
    for ((_, g), (_, r)) in adapter_grads(&merged).iter().zip(&before) {
        let half: Vec<f32> = r.iter().map(|x| x * 0.5).collect();
        assert!(rel_err(g, &half) <= 1e-5);
    }
}

#[test]
fn an_attached_adapter_gives_peft_logits_in_the_runtime_forward() {
    let mut fx = fixture();
    let adapter = initial_adapter(&fx.model);
    adapter.attach(&mut fx.model).unwrap();
    let e = init_logits_rel_err(&fx, &fx.model);
    assert!(e <= 1e-4, "runtime logits with the attached adapter: rel err {e:.3e}");
    // Training on a model that already carries an adapter is refused.
    let err = LoraTrainer::new(&fx.model, adapter, AdamW::default()).err().unwrap().to_string();
    assert!(err.contains("adapter attached"), "{err}");
}

#[test]
fn a_bf16_or_f16_base_trains_within_half_precision_tolerances() {
    let fx = fixture();
    let reference = safetensors_f32(&fixtures().join("lora/grads_step0.safetensors"));
    let want = fx.manifest["loss_step0_f64"].as_f64().unwrap();
    let (hp, lr) = optimizer(&fx.manifest);
    for dtype in [DType::BF16, DType::F16] {
        let model =
            LlamaModel::from_dir(&fixtures().join("runtime/llama-gqa/model"), dtype, Device::Cpu).unwrap();
        let adapter = initial_adapter(&model);
        let mut trainer = LoraTrainer::new(&model, adapter, hp).unwrap();
        let grads = trainer.loss_and_grads(&fx.batch).unwrap();
        let loss_err = (grads.loss as f64 - want).abs() / want;
        let worst = adapter_grads(&grads)
            .iter()
            .zip(&reference)
            .map(|((_, g), (_, r))| rel_err(g, r))
            .fold(0.0, f64::max);
        eprintln!("{dtype} base: loss rel err {loss_err:.2e}, worst gradient rel err {worst:.2e}");
        // ARCHITECTURE.md's tolerance for 16-bit operands.
        assert!(loss_err <= 1e-2 && worst <= 1e-2 * 5.0, "{dtype}: loss {loss_err:.3e}, grads {worst:.3e}");
        for _ in 0..10 {
            trainer.train_step(&fx.batch, lr).unwrap();
        }
        let last = trainer.loss(&fx.batch).unwrap() as f64;
        let want_last = fx.manifest["trajectory_f64"][10].as_f64().unwrap();
        eprintln!("{dtype} base: loss after 10 steps {last} vs {want_last}");
        assert!((last - want_last).abs() <= 2e-2 * want_last, "{dtype}: {last} vs {want_last}");
    }
}

#[test]
fn a_merged_folder_gives_the_adapters_logits() {
    let fx = fixture();
    let adapter = initial_adapter(&fx.model);
    let out = std::env::temp_dir().join(format!("ragtune-merged-{}", std::process::id()));
    ragtune_trainer::merge::merge_to_folder(&fixtures().join("runtime/llama-gqa/model"), &adapter, &out)
        .unwrap();
    assert!(out.join("tokenizer.json").is_file() && out.join("config.json").is_file());
    let merged = LlamaModel::from_dir(&out, DType::F32, Device::Cpu).unwrap();
    let e = init_logits_rel_err(&fx, &merged);
    eprintln!("merged logits rel err {e:.2e}");
    assert!(e <= 1e-4, "merged model logits: rel err {e:.3e}");
    let err = ragtune_trainer::merge::merge_to_folder(&out, &adapter, &out).unwrap_err().to_string();
    assert!(err.contains("another folder"), "{err}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn one_batch_serves_several_adapters_as_each_alone() {
    let dir = fixtures();
    let load =
        || LlamaModel::from_dir(&dir.join("runtime/llama-gqa/model"), DType::F32, Device::Cpu).unwrap();
    let base = load();
    let first = load_adapter(&dir.join("lora/adapter_init"), &base.config, &Device::Cpu).unwrap();
    // A second adapter of another rank on other projections, with non-zero B.
    let config = ragtune_trainer::LoraConfig {
        r: 2,
        alpha: 3.0,
        use_rslora: true,
        dropout: 0.0,
        targets: vec![ragtune_trainer::Target::O, ragtune_trainer::Target::Down],
        layers: Some(vec![1]),
    };
    let mut second = LoraAdapter::init(config, &base.config, 9, &Device::Cpu).unwrap();
    for slots in second.modules.iter_mut() {
        for m in slots.iter_mut().flatten() {
            let v: Vec<f32> = (0..m.b.numel()).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.02).collect();
            m.b = ragtune_compute::Tensor::from_slice(&v, m.b.shape()).unwrap();
        }
    }
    let tokens: Vec<u32> = [0u32, 52, 88, 271, 87, 293, 29, 224, 58, 327].to_vec();
    let logits = |model: &LlamaModel, ids: Option<Vec<i32>>, batch: usize| {
        let mut cache = ragtune_runtime::KvCache::new(model, batch, 16).unwrap();
        cache.set_adapters(ids).unwrap();
        let feed: Vec<&[u32]> = (0..batch).map(|_| tokens.as_slice()).collect();
        model
            .forward(&mut cache, &feed, ragtune_runtime::LogitsWanted::All)
            .unwrap()
            .0
            .to_vec::<f32>()
            .unwrap()
    };
    let mut banked = load();
    ragtune_trainer::lora::attach_bank(&[&first, &second], &mut banked).unwrap();
    let mixed = logits(&banked, Some(vec![1, -1, 0]), 3);
    let per = mixed.len() / 3;
    let alone = |adapter: Option<&LoraAdapter>| {
        let mut m = load();
        if let Some(a) = adapter {
            a.attach(&mut m).unwrap();
        }
        logits(&m, None, 1)
    };
    for (row, want) in [(0, alone(Some(&second))), (1, alone(None)), (2, alone(Some(&first)))] {
        let e = rel_err(&mixed[row * per..(row + 1) * per], &want);
        assert!(e <= 1e-5, "sequence {row}: banked vs alone rel err {e:.3e}");
    }
    let mut cache = ragtune_runtime::KvCache::new(&banked, 2, 4).unwrap();
    assert!(cache.set_adapters(Some(vec![0])).unwrap_err().to_string().contains("one per sequence"));
}
