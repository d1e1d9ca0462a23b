//! `generate`: prefill and batch-1 decode of a SmolLM2-135M-shaped decoder (random f32 weights)
//! on the CPU. Decode must read every weight once per token, so its floor is weight bytes over
//! the copy bandwidth measured in the same run — the row's fraction of the ceiling is how close
//! decode comes to it (PERFORMANCE.md: "generation tokens/s at the memory-bandwidth floor").
//! The peer is transformers' LlamaForCausalLM (bench/torch_peer.py) on the very same weights,
//! written as a Hugging Face folder: its prompt logits must match ragtune's before either is
//! timed, then the two alternate call by call. Checked first: finite logits, and decode after a
//! shorter prefill giving the same last-token logits as one long prefill (the KV cache is right),
//! on both sides.

use anyhow::{Context, Result, bail};
use ragtune_runtime::{KvCache, LlamaModel, LogitsWanted};

use super::{Ctx, PyServer, TORCH_PEER};
use crate::harness::{Budget, alternating_medians, check_close, read_ceiling, time_once};
use crate::report::Row;
use crate::{random_llama, smollm2_config, write_hf_folder};

fn last_logits(model: &LlamaModel, cache: &mut KvCache, tokens: &[u32]) -> Result<Vec<f32>> {
    Ok(model.forward(cache, &[tokens], LogitsWanted::Last)?.0.to_vec_f32()?)
}

/// The PyTorch peer holding `model`'s weights, or `None` with the reason in `notes`.
pub fn torch_llama(
    ctx: &Ctx,
    model: &LlamaModel,
    name: &str,
    notes: &mut Vec<String>,
) -> Result<Option<PyServer>> {
    let Some(mut py) = ctx.python_server(TORCH_PEER, notes)? else { return Ok(None) };
    let dir = ctx.scratch.join(name);
    write_hf_folder(model, &dir).with_context(|| format!("writing {}", dir.display()))?;
    py.ask(&format!("llama {}", dir.display()))?;
    Ok(Some(py))
}

fn csv(tokens: &[u32]) -> String {
    tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

pub fn run(ctx: &Ctx, notes: &mut Vec<String>) -> Result<Vec<Row>> {
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

    let mut torch = torch_llama(ctx, &model, "generate-smollm2", notes)?;
    if let Some(py) = torch.as_mut() {
        // The same weights must give the same logits, or the peer runs a different model.
        let theirs: Vec<f32> =
            serde_json::from_value(py.ask(&format!("prefill {}", csv(&prompt)))?["last_logits"].clone())?;
        if let Err(e) = check_close("transformers prefill vs ragtune", &theirs, &want, 1e-3) {
            notes.push(format!("transformers left out of generate: {e:#}"));
            torch = None;
        }
    }

    let params = model.num_params() as f64;
    let weight_bytes = model.weight_bytes_per_token() as f64;
    let shape = format!("SmolLM2-135M shape, f32, prompt {prompt_len}");
    let count = 1 + torch.is_some() as usize;
    let prefill = alternating_medians(ctx.budget, count, |i| match i {
        0 => Ok(time_once(|| {
            let mut cache = KvCache::new(&model, 1, prompt_len).expect("checked above");
            std::hint::black_box(last_logits(&model, &mut cache, &prompt).expect("checked above"));
        })),
        _ => torch.as_mut().expect("count 2 only with a peer").time_one(),
    })?;
    let mut prefill_row = Row::new(
        "generate",
        "prefill",
        &shape,
        prefill[0].0,
        prefill[0].1,
        2.0 * params * prompt_len as f64,
        weight_bytes,
        &ctx.ceilings,
    )?
    .with_check(format!("decode step vs prefill: rel err {err:.1e}"))
    .with_note(format!("{:.0} tokens/s", prompt_len as f64 / prefill[0].0));
    if let Some(&(t, _)) = prefill.get(1) {
        prefill_row = prefill_row.with_peer("transformers", t);
    }

    if let Some(py) = torch.as_mut() {
        let e =
            py.ask(&format!("decode {}", csv(&prompt)))?["step_rel_err"].as_f64().unwrap_or(f64::INFINITY);
        if e > 1e-4 {
            notes.push(format!(
                "transformers left out of decode: its cached step differs from its prefill by {e:.1e}"
            ));
            torch = None;
        }
    }
    let count = 1 + torch.is_some() as usize;
    let mut cache = KvCache::new(&model, 1, prompt_len + decode_budget.max_repeats + 1)?;
    last_logits(&model, &mut cache, &prompt)?;
    let mut step = 0u32;
    // The weights' own floor: decode only reads them (the row's "of ceiling" stays the copy's).
    let read = read_ceiling(256 << 20);
    let decode = alternating_medians(decode_budget, count, |i| match i {
        0 => {
            step += 1;
            let token = [(step * 31) % vocab];
            Ok(time_once(|| {
                std::hint::black_box(
                    last_logits(&model, &mut cache, &token).expect("the cache was sized for every step"),
                );
            }))
        }
        _ => torch.as_mut().expect("count 2 only with a peer").time_one(),
    })?;
    let mut decode_row = Row::new(
        "generate",
        "decode, batch 1",
        &format!("SmolLM2-135M shape, f32, context {prompt_len}+"),
        decode[0].0,
        decode[0].1,
        2.0 * params,
        weight_bytes,
        &ctx.ceilings,
    )?
    .with_check("finite logits; KV cache checked by the prefill row")
    .with_note(format!(
        "{:.1} tokens/s; {:.0} MB of weights per token; {:.0}% of a read-only stream's rate in this \
         run ({:.2} GB/s)",
        1.0 / decode[0].0,
        weight_bytes / 1e6,
        100.0 * weight_bytes / decode[0].0 / read,
        read / 1e9
    ));
    if let Some(&(t, _)) = decode.get(1) {
        decode_row = decode_row.with_peer("transformers", t);
    }
    Ok(vec![prefill_row, decode_row])
}
