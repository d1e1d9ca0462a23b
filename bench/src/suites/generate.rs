//! `generate`: prefill and batch-1 decode of a SmolLM2-135M-shaped decoder (random f32 weights)
//! on the CPU. Decode must read every weight once per token, so its floor is weight bytes over
//! the copy bandwidth measured in the same run — the row's fraction of the ceiling is how close
//! decode comes to it (PERFORMANCE.md: "generation tokens/s at the memory-bandwidth floor").
//! No peer runs on the CPU here (llama.cpp would be the natural one; it is not in the pinned
//! toolchain). Checked first: finite logits, and decode after a shorter prefill giving the same
//! last-token logits as one long prefill (the KV cache is right).

use anyhow::{Result, bail};
use ragtune_runtime::{KvCache, LlamaModel, LogitsWanted};

use super::Ctx;
use crate::harness::{Budget, check_close, median_time};
use crate::report::Row;
use crate::{llama_params, random_llama, smollm2_config};

fn last_logits(model: &LlamaModel, cache: &mut KvCache, tokens: &[u32]) -> Result<Vec<f32>> {
    Ok(model.forward(cache, &[tokens], LogitsWanted::Last)?.0.to_vec_f32()?)
}

pub fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let model = random_llama(smollm2_config());
    let vocab = model.config.vocab_size as u32;
    let prompt_len = if ctx.quick { 64 } else { 128 };
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| (i * 7919) % vocab).collect();
    // Decode gets its own budget: every call appends to one cache, so the count must be capped.
    let decode_budget = if ctx.quick {
        Budget { min_repeats: 8, max_repeats: 24, min_seconds: 0.5 }
    } else {
        Budget { min_repeats: 16, max_repeats: 64, min_seconds: 2.0 }
    };

    let mut one = KvCache::new(&model, 1, prompt_len)?;
    let full = last_logits(&model, &mut one, &prompt)?;
    let mut two = KvCache::new(&model, 1, prompt_len)?;
    last_logits(&model, &mut two, &prompt[..prompt_len - 1])?;
    let stepped = last_logits(&model, &mut two, &prompt[prompt_len - 1..])?;
    if full.iter().any(|v| !v.is_finite()) {
        bail!("generate: the prefill logits hold NaN or infinity; not timed");
    }
    let want: Vec<f64> = full.iter().map(|&v| v as f64).collect();
    let err = check_close("decode step vs prefill logits", &stepped, &want, 1e-4)?;

    let params = llama_params(&model) as f64;
    let weight_bytes = model.weight_bytes_per_token() as f64;
    let shape = format!("SmolLM2-135M shape, f32, prompt {prompt_len}");
    let (prefill, reps) = median_time(ctx.budget, || {
        let mut cache = KvCache::new(&model, 1, prompt_len).expect("checked above");
        std::hint::black_box(last_logits(&model, &mut cache, &prompt).expect("checked above"));
    });
    let prefill_row = Row::new(
        "generate",
        "prefill",
        &shape,
        prefill,
        reps,
        2.0 * params * prompt_len as f64,
        weight_bytes,
        &ctx.ceilings,
    )?
    .with_check(format!("decode step vs prefill: rel err {err:.1e}"))
    .with_note(format!("{:.0} tokens/s", prompt_len as f64 / prefill));

    let mut cache = KvCache::new(&model, 1, prompt_len + decode_budget.max_repeats + 1)?;
    last_logits(&model, &mut cache, &prompt)?;
    let mut step = 0u32;
    let (decode, reps) = median_time(decode_budget, || {
        step += 1;
        let token = [(step * 31) % vocab];
        std::hint::black_box(
            last_logits(&model, &mut cache, &token).expect("the cache was sized for every step"),
        );
    });
    let decode_row = Row::new(
        "generate",
        "decode, batch 1",
        &format!("SmolLM2-135M shape, f32, context {prompt_len}+"),
        decode,
        reps,
        2.0 * params,
        weight_bytes,
        &ctx.ceilings,
    )?
    .with_check("finite logits; KV cache checked by the prefill row")
    .with_note(format!(
        "{:.1} tokens/s; {:.0} MB of weights per token",
        1.0 / decode,
        weight_bytes / 1e6
    ));
    Ok(vec![prefill_row, decode_row])
}
