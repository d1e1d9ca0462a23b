//! `ragtune embed`: sentence vectors from a BERT-family model folder for one text per line or
//! JSONL lines with a `text` field, written as a `<f4` `[n, dim]` `.npy` file (atomically).
//! Plain lines are borrowed from the input, not copied, and the embedder tokenizes only the
//! head of each text that its `max_tokens` can use, so a 20 MB line costs the input's bytes and
//! no more.

use std::borrow::Cow;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ragtune_index::npy;
use ragtune_runtime::BertEmbedder;

use crate::args::{DeviceArg, FloatDtype};

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// A BERT-family model folder (config.json, safetensors, tokenizer.json, and optionally the
    /// sentence-transformers modules.json / 1_Pooling).
    #[arg(long)]
    model: PathBuf,
    /// One text per line, or JSONL with a `text` field; `-` reads standard input.
    #[arg(long)]
    input: String,
    /// Output `.npy` file.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Weight dtype: auto (bf16 on a GPU, f32 on the CPU), f32, bf16 or f16.
    #[arg(long, default_value = "auto", value_parser = FloatDtype::parse_dense)]
    dtype: FloatDtype,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: DeviceArg,
}

/// The texts of `input`: a JSON object line contributes its `text` field, any other non-empty
/// line itself.
fn texts(input: &str) -> Result<Vec<Cow<'_, str>>> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.trim_start().starts_with('{') {
            let value: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("line {}: invalid JSON", i + 1))?;
            match value.get("text").and_then(serde_json::Value::as_str) {
                Some(t) => out.push(Cow::Owned(t.to_string())),
                None => bail!("line {}: a JSON line needs a string field `text`", i + 1),
            }
        } else {
            out.push(Cow::Borrowed(line));
        }
    }
    Ok(out)
}

pub fn run(args: EmbedArgs, json: bool) -> Result<()> {
    let mut raw = String::new();
    if args.input == "-" {
        std::io::stdin().read_to_string(&mut raw).context("reading standard input")?;
    } else {
        raw = std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input))?;
    }
    let texts = texts(&raw)?;
    if texts.is_empty() {
        bail!("{}: no texts to embed (empty input)", args.input);
    }
    let device = args.device.open(json)?;
    let embedder = BertEmbedder::from_dir(&args.model, args.dtype.resolve(&device), device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let refs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
    let start = std::time::Instant::now();
    let bar = crate::progress::bar(refs.len() as u64, "embedding", "texts", json);
    let mut vectors = Vec::with_capacity(refs.len());
    // The embedder sorts each call's texts by length before batching, so hand it many batches at
    // a time (the progress bar still moves); one batch per call would leave nothing to sort.
    for chunk in refs.chunks(args.batch_size.max(1).saturating_mul(64)) {
        vectors.extend(embedder.embed(chunk, args.batch_size)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let dim = embedder.model.dim();
    npy::write_f32(&args.out, &[vectors.len(), dim], &vectors.concat())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let secs = start.elapsed().as_secs_f64();
    if json {
        let report = serde_json::json!({
            "texts": vectors.len(), "dim": dim, "out": args.out.display().to_string(), "seconds": secs,
        });
        println!("{report}");
    } else {
        println!(
            "embedded {} texts into {} ({} dims) in {secs:.2} s",
            vectors.len(),
            args.out.display(),
            dim
        );
    }
    Ok(())
}
