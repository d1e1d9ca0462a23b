//! Training steps on a GPU, as they travel in the GPU bundle: a LoRA step (r = 16 on all seven
//! projections, bf16 frozen base, f32 adapters) and a full f32 step of a SmolLM2-135M-shaped
//! random model over 8 × 512 tokens, after the ceilings of the same run. Checked before timing:
//! the first loss is near ln(vocab), as for any untrained model, and a few steps on the same
//! batch lower it. Rows: seconds per step (CUDA events), tokens/s, and MFU as the fraction of the
//! bf16 GEMM ceiling, counting 4·params·tokens FLOPs for LoRA (frozen base: forward + input
//! gradients) and 6·params·tokens for full training (docs/PERFORMANCE.md; attention left out).
//! Without a GPU it is skipped with the reason; the same code runs on the kernel emulator with
//! a tiny model in `cargo test`.

use std::sync::Arc;

use ragtune_bench::gpu::plan;
use ragtune_bench::gpu::rows::{append_rows, ceilings_line, json_row, markdown_table};
use ragtune_bench::gpu::timing::measure_ceilings;
use ragtune_bench::report::Ceilings;
use ragtune_bench::{random_llama_on, smollm2_config};
use ragtune_compute::ops::AdamW;
use ragtune_compute::{DType, Device};
use ragtune_kernel_emu::EmuBackend;
use ragtune_runtime::LlamaConfig;
use ragtune_tests::gpu::cuda_or_skip;
use ragtune_trainer::{FullTrainer, LoraAdapter, LoraTrainer, TrainBatch};

/// One measured step.
#[derive(Debug)]
struct StepRow {
    what: &'static str,
    shape: String,
    seconds: f64,
    repeats: usize,
    flops: f64,
    check: String,
}

fn batch(vocab: usize, rows: usize, seq: usize) -> TrainBatch {
    let ids: Vec<Vec<i32>> =
        (0..rows).map(|b| (0..seq).map(|t| ((b * 7919 + t * 104729) % vocab) as i32).collect()).collect();
    TrainBatch::from_labels(&ids, &ids).unwrap()
}

/// The first loss near ln(vocab), then lower after `steps` more on the same batch.
fn check_learning(what: &str, vocab: usize, mut step: impl FnMut() -> f32, steps: usize) -> String {
    let first = step();
    let uniform = (vocab as f32).ln();
    assert!(
        first.is_finite() && (0.5 * uniform..2.0 * uniform).contains(&first),
        "{what}: first loss {first} is not near ln(vocab) = {uniform}: training is broken, not timed"
    );
    let mut last = first;
    for _ in 0..steps {
        last = step();
    }
    assert!(last < first, "{what}: the loss went {first} → {last} over {steps} steps on one batch");
    format!("loss {first:.3} → {last:.3} over {steps} steps (ln vocab {uniform:.3})")
}

/// Median seconds of `step` over `repeats` (CUDA events on a GPU).
fn median_seconds(device: &Device, repeats: usize, mut step: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..repeats)
        .map(|_| {
            device
                .time_ms(|| {
                    step();
                    Ok(())
                })
                .unwrap()
                / 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn measure(
    device: &Device,
    config: LlamaConfig,
    rows: usize,
    seq: usize,
    repeats: usize,
    full: bool,
) -> Vec<StepRow> {
    let vocab = config.vocab_size;
    let b = batch(vocab, rows, seq);
    let tokens = (rows * seq) as f64;
    let mut out = Vec::new();
    let model = random_llama_on(config.clone(), DType::BF16, device);
    let params = model.num_params() as f64;
    let lora = ragtune_bench::lora_r16_all_targets();
    let adapter = LoraAdapter::init(lora, &model.config, 0, device).unwrap();
    let mut trainer = LoraTrainer::new(&model, adapter, AdamW::default()).unwrap();
    let check =
        check_learning("LoRA", vocab, || trainer.train_step(&b, 1e-2).unwrap(), plan::TRAIN_CHECK_STEPS);
    let seconds = median_seconds(device, repeats, || {
        trainer.train_step(&b, 1e-4).unwrap();
    });
    let shape = format!("{:.1}M params, {rows}×{seq} tokens", params / 1e6);
    out.push(StepRow {
        what: "LoRA step r=16, 7 targets, bf16 base",
        shape: shape.clone(),
        seconds,
        repeats,
        flops: 4.0 * params * tokens,
        check,
    });
    drop(trainer);
    drop(model);
    if full {
        let model = random_llama_on(config, DType::F32, device);
        let mut trainer = FullTrainer::new(model, AdamW::default()).unwrap();
        let check =
            check_learning("full", vocab, || trainer.train_step(&b, 1e-3).unwrap(), plan::TRAIN_CHECK_STEPS);
        let seconds = median_seconds(device, repeats, || {
            trainer.train_step(&b, 1e-5).unwrap();
        });
        out.push(StepRow {
            what: "full step, f32",
            shape,
            seconds,
            repeats,
            flops: 6.0 * params * tokens,
            check,
        });
    }
    out
}

fn report(device: &Device, rows: &[StepRow], c: &Ceilings, tokens: usize) -> String {
    let header = format!(
        "| step | shape | s/step | tokens/s | TFLOP/s | MFU (of {:.0} TFLOP/s) | check |",
        c.compute_flops / 1e12
    );
    let lines = rows.iter().map(|r| {
        let StepRow { what, shape, seconds, flops, check, .. } = r;
        let (per_s, tflops, mfu) =
            (tokens as f64 / seconds, flops / seconds / 1e12, 100.0 * flops / seconds / c.compute_flops);
        format!("| {what} | {shape} | {seconds:.4} | {per_s:.0} | {tflops:.2} | {mfu:.1}% | {check} |")
    });
    markdown_table(&format!("training steps on {device}"), &header, lines)
}

fn json_rows(rows: &[StepRow], c: &Ceilings) -> Vec<String> {
    rows.iter()
        .map(|r| {
            json_row("train", r.what, &r.shape, (r.seconds, r.repeats), (r.flops, 0.0), c, &[], &r.check)
        })
        .collect()
}

#[test]
fn gpu_train_steps() {
    let Some(device) = cuda_or_skip("gpu_train_steps") else { return };
    let c = measure_ceilings(&device, plan::CEILING_GEMM_N, plan::CEILING_COPY_BYTES, plan::REPEATS);
    let (rows, seq) = plan::TRAIN_BATCH;
    let measured = measure(&device, smollm2_config(), rows, seq, plan::TRAIN_REPEATS, true);
    println!("{}", report(&device, &measured, &c, rows * seq));
    append_rows(&[vec![ceilings_line(&device, &c)], json_rows(&measured, &c)].concat());
}

#[test]
fn train_bench_code_runs_on_the_emulator() {
    let device = Device::from_backend(Arc::new(EmuBackend::default()));
    let tiny = LlamaConfig {
        vocab_size: 96,
        hidden_size: 64,
        intermediate_size: 96,
        num_layers: 2,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: 64, // smollm2_config's rotary dim
        ..smollm2_config()
    };
    let c = measure_ceilings(&device, 16, 1 << 16, 1);
    let measured = measure(&device, tiny, 2, 8, 1, true);
    assert_eq!(measured.len(), 2);
    assert!(
        measured.iter().all(|r| r.seconds > 0.0 && r.flops > 0.0 && r.check.contains("→")),
        "{measured:?}"
    );
    let table = report(&device, &measured, &c, 16);
    assert!(
        table.contains("| LoRA step r=16, 7 targets, bf16 base |") && table.contains("| full step, f32 |"),
        "{table}"
    );
    assert!(json_rows(&measured, &c)[1].contains("\"suite\": \"train\""));
}
