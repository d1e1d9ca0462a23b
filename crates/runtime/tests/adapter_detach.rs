//! Attaching adapters and taking them off again (`ragtune_runtime::adapter`): the trained PEFT
//! fixture (tests/fixtures/lora/adapter_final, peft's own file) moves the logits of llama-gqa,
//! and after `detach` the model gives the base model's logits bit for bit, whether the adapter
//! was attached alone or stacked in a bank.

mod common;

use common::all_logits as logits;
use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_runtime::adapter::peft::load_adapter;
use ragtune_runtime::adapter::{attach_bank, detach};

#[test]
fn detach_restores_the_base_model_bit_for_bit() {
    let fixtures = common::fixtures();
    let mut model = LlamaModel::from_dir(&fixtures.join("llama-gqa/model"), DType::F32, Device::Cpu).unwrap();
    let adapter = load_adapter(&fixtures.join("../lora/adapter_final"), &model.config, &Device::Cpu).unwrap();
    let ids = [1u32, 5, 9, 14, 3, 7];
    let base = logits(&model, &ids);

    adapter.attach(&mut model).unwrap();
    let adapted = logits(&model, &ids);
    let moved = adapted.iter().zip(&base).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(moved > 1e-4, "the trained adapter should change the logits (moved {moved})");
    detach(&mut model);
    assert_eq!(logits(&model, &ids), base);

    attach_bank(&[&adapter], &mut model).unwrap();
    assert!(model.layers.iter().any(|l| l.q.bank.is_some()));
    detach(&mut model);
    assert!(model.layers.iter().all(|l| l.q.bank.is_none() && l.q.lora.is_none()));
    assert_eq!(logits(&model, &ids), base);
}
