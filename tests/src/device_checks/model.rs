//! A tiny random decoder on a device against the same weights on the CPU: the logits of a
//! batched, left-padded prefill of two prompts of different lengths, then greedy decoding step
//! by step from the KV cache (prefill and decode attention kernels, rotary embedding, GQA, the
//! sliding window and q/k/v biases for Qwen2), in f32, bf16 or f16.

use ragtune_compute::{DType, Device};
use ragtune_runtime::sampling::argmax;
use ragtune_runtime::{KvCache, LlamaModel, LogitsWanted};
use rand::Rng;

use super::{Arch, assert_near, model_on, model_tolerance, ok, random_weights, tiny_config, values};
use crate::rng;

/// Greedy decoding steps after the prefill.
const STEPS: usize = 8;

/// How far apart the CPU's best and second-best logits must be, in units of the model's
/// relative tolerance times the root mean square of the CPU's logits, for the device to be
/// required to pick the same token. Within that window the two are a near-tie that rounding may
/// legitimately decide either way, and the device's token must still be one of the tied ones
/// (see [`check_token`]). Rounding errors spread over the vocabulary, so logits within
/// tolerance move each element by about tol · rms and a gap by about twice that; 4 leaves room
/// for uneven spread. The window depends on the CPU's logits only — not on the device's error,
/// so the token check can fail on its own (a device error concentrated on the winning logits),
/// and which steps count as clear is the same on every device.
const TIE_WINDOW: f64 = 4.0;

/// Prefill logits and greedy tokens of the tiny `arch` model in `dtype` on `device` against the
/// CPU. Each step feeds both models the CPU's token, so a legitimate near-tie cannot make the
/// two runs drift apart and hide a later error.
pub fn logits_and_greedy_tokens(device: &Device, arch: Arch, dtype: DType) {
    let config = tiny_config(arch);
    let weights = random_weights(&config, 100 + arch as u64);
    let cpu = model_on(&config, &weights, dtype, &Device::Cpu);
    let dev = model_on(&config, &weights, dtype, device);
    let tol = model_tolerance(dtype);
    let case = format!("{arch:?} {dtype} on {device}");

    let mut r = rng(7 + arch as u64);
    let prompts: Vec<Vec<u32>> = [11usize, 6]
        .iter()
        .map(|&n| (0..n).map(|_| r.random_range(3..config.vocab_size as u32)).collect())
        .collect();
    let capacity = prompts.iter().map(Vec::len).max().unwrap_or(0) + STEPS;
    let cache = |m: &LlamaModel| ok(KvCache::new(m, prompts.len(), capacity), format!("{case}: KV cache"));
    let (mut cpu_cache, mut dev_cache) = (cache(&cpu), cache(&dev));

    // Prefill: every real row's logits (padded rows are never read, so they may differ).
    let feed: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let run = |m: &LlamaModel, c: &mut KvCache, feed: &[&[u32]], want| {
        ok(m.forward(c, feed, want), format!("{case}: forward on {}", m.device))
    };
    let (want, layout) = run(&cpu, &mut cpu_cache, &feed, LogitsWanted::All);
    let (got, _) = run(&dev, &mut dev_cache, &feed, LogitsWanted::All);
    let vocab = config.vocab_size;
    let (want, got) = (values(&want, "CPU logits"), values(&got, "device logits"));
    let real_rows = |all: &[f32]| -> Vec<f32> {
        (0..prompts.len())
            .flat_map(|b| (0..prompts[b].len()).map(move |t| (b, t)))
            .flat_map(|(b, t)| all[layout.row(b, t) * vocab..][..vocab].to_vec())
            .collect()
    };
    assert_near(format!("{case}: prefill logits"), &real_rows(&got), &real_rows(&want), tol);

    // The next-token logits of each sequence: its last real row.
    let last = |all: &[f32], b: usize| all[layout.row(b, prompts[b].len() - 1) * vocab..][..vocab].to_vec();
    let mut step_logits: Vec<(Vec<f32>, Vec<f32>)> =
        (0..prompts.len()).map(|b| (last(&got, b), last(&want, b))).collect();
    let mut clear = 0;
    for step in 0..=STEPS {
        let mut next = Vec::new();
        for (b, (got, want)) in step_logits.iter().enumerate() {
            let what = format!("{case}: sequence {b}, greedy step {step}");
            clear += usize::from(check_token(&what, got, want, tol));
            next.push(vec![argmax(want) as u32]);
        }
        if step == STEPS {
            break;
        }
        let feed: Vec<&[u32]> = next.iter().map(Vec::as_slice).collect();
        let (want, _) = run(&cpu, &mut cpu_cache, &feed, LogitsWanted::Last);
        let (got, _) = run(&dev, &mut dev_cache, &feed, LogitsWanted::Last);
        let (want, got) = (values(&want, "CPU logits"), values(&got, "device logits"));
        assert_near(format!("{case}: decode step {step} logits"), &got, &want, tol);
        step_logits = (0..prompts.len())
            .map(|b| (got[b * vocab..][..vocab].to_vec(), want[b * vocab..][..vocab].to_vec()))
            .collect();
    }
    // The weights make clear winners the common case (see `random_weights`); if near-ties were
    // the rule, the token check above would check next to nothing.
    let decisions = prompts.len() * (STEPS + 1);
    assert!(
        2 * clear >= decisions,
        "{case}: only {clear} of {decisions} greedy tokens had a clear winner on the CPU; the check is too weak"
    );
}

/// The device's greedy token against the CPU's logits: its CPU logit must be within the tie
/// window of the best one — so where the CPU's winner is clear (the runner-up is further away
/// than the window), it must be the CPU's token itself. Returns whether the winner was clear.
#[track_caller]
fn check_token(what: &str, got: &[f32], want: &[f32], tol: f64) -> bool {
    let (cpu_token, dev_token) = (argmax(want), argmax(got));
    let logit = |i: usize| f64::from(want[i]);
    let runner_up = (0..want.len()).filter(|&i| i != cpu_token).map(logit).fold(f64::MIN, f64::max);
    let rms = (want.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / want.len() as f64).sqrt();
    let window = TIE_WINDOW * tol * rms;
    let behind = logit(cpu_token) - logit(dev_token);
    assert!(
        behind <= window,
        "{what}: the device chose token {dev_token}, whose CPU logit is {behind:.3e} behind the CPU's \
         token {cpu_token}: more than the tie window {window:.3e}"
    );
    logit(cpu_token) - runner_up > window
}
