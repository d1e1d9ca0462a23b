//! `ragtune generate`: load a decoder (a Hugging Face folder or a `.gguf` file) and, with
//! `--adapter`, a PEFT LoRA adapter applied without merging; encode the prompt, and stream the
//! continuation to stdout as it is sampled; `--json` prints one object with the prompt ids,
//! output ids and text at the end instead.
//!
//! With `--prompts FILE.jsonl` (lines `{"prompt": ..., "adapter": NAME | null}`) and named
//! adapters (`--adapter NAME=DIR`, repeatable), every prompt picks its adapter (or the base):
//! the adapters are stacked into the model's adapter banks and the prompts run in mixed
//! batches, one adapter id per row. One JSON line per prompt comes out, in the file's order.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ragtune_runtime::adapter::peft::load_adapter;
use ragtune_runtime::adapter::{LoraAdapter, attach_bank};
use ragtune_runtime::loader::load_causal_lm_as;
use ragtune_runtime::{
    FinishReason, GenerateOptions, LlamaModel, SamplingParams, StreamDecoder, Tokenizer, generate,
    generate_with_adapters,
};

use crate::args::{DeviceArg, WeightPrecision};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A model folder (config.json, safetensors, tokenizer.json) or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    #[arg(long, required_unless_present = "prompts", conflicts_with = "prompts")]
    prompt: Option<String>,
    /// A JSONL file of prompts, one `{"prompt": "...", "adapter": "NAME"}` per line (`adapter`
    /// null or absent = the base model); prints one JSON line per prompt (prompt, adapter, text,
    /// output_ids, finish). Greedy outputs equal each prompt run alone; with sampling, a row's
    /// random stream follows --seed and its place in its batch.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// With --prompts: how many prompts run together in one batch (mixed adapters).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Most new tokens to generate (generation also stops at the model's end-of-sequence ids).
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this total probability.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Keep only the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Weight dtype: auto (bf16 on a GPU, f32 on the CPU), f32, bf16 or f16; or `stored`: a GGUF file's quant blocks (Q8_0, Q4_0,
    /// Q4_1, Q4_K, Q6_K) kept as stored and multiplied on the CPU with activations quantized to
    /// 8 bits plus an 8-bit residual (`stored-q8`: plain 8 bits, as llama.cpp); a model folder
    /// loads in its own dtype.
    #[arg(long, value_enum, ignore_case = true, default_value = "auto")]
    dtype: WeightPrecision,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: DeviceArg,
    /// A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors), applied
    /// without merging. With --prompts, name each one: --adapter NAME=DIR (repeatable), and
    /// each prompt line picks one by name.
    #[arg(long)]
    adapter: Vec<String>,
}

/// `--adapter` as `(name, folder)`: `NAME=DIR` when the part before the first `=` is a plain
/// name (letters, digits, `_`, `-`, `.`), otherwise the whole value is a folder.
fn parse_adapter(spec: &str) -> (Option<String>, PathBuf) {
    let named = spec.split_once('=').filter(|(name, dir)| {
        !name.is_empty()
            && !dir.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    });
    match named {
        Some((name, dir)) => (Some(name.to_string()), PathBuf::from(dir)),
        None => (None, PathBuf::from(spec)),
    }
}

fn load(dir: &Path, model: &LlamaModel) -> Result<LoraAdapter> {
    load_adapter(dir, &model.config, &model.device)
        .with_context(|| format!("loading the adapter {}", dir.display()))
}

fn options(args: &GenerateArgs, model: &LlamaModel) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: Some(args.top_k).filter(|&k| k > 0),
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_tokens: model.config.eos_token_ids.clone(),
    }
}

fn finish_name(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop(_) => "stop",
        FinishReason::Length => "length",
        FinishReason::Context => "context",
    }
}

/// The ids of a prompt that must fit the model's context of `context` tokens, tokenizing at
/// most `context · 32` bytes of it ([`Tokenizer::encode_prefix`]): a 2M-word prompt costs what a
/// context-sized one costs, and is refused as too long.
fn encode_prompt(tokenizer: &Tokenizer, text: &str, context: usize, what: &str) -> Result<Vec<u32>> {
    let (ids, cut) = tokenizer.encode_prefix(text, context.saturating_add(1), true)?;
    if cut || ids.len() > context {
        bail!(
            "{what} is longer than the model's context of {context} tokens (max_position_embeddings): it is {} \
             bytes{}; shorten it",
            text.len(),
            if cut { String::new() } else { format!(", {} tokens", ids.len()) }
        );
    }
    Ok(ids)
}

pub fn run(args: GenerateArgs, json: bool) -> Result<()> {
    let device = args.device.open(json)?;
    let (mut model, tokenizer) = load_causal_lm_as(&args.model, args.dtype.precision(&device), device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    if let Some(path) = &args.prompts {
        return run_prompts(&args, path, &mut model, &tokenizer);
    }
    let prompt = args.prompt.as_deref().context("--prompt or --prompts is required")?;
    match args.adapter.as_slice() {
        [] => {}
        [one] => {
            let dir = parse_adapter(one).1;
            load(&dir, &model)?
                .attach(&mut model)
                .with_context(|| format!("applying the adapter {}", dir.display()))?;
        }
        _ => {
            bail!("--prompt takes one --adapter; to give prompts different adapters use --prompts FILE.jsonl")
        }
    }
    let prompt_ids = encode_prompt(&tokenizer, prompt, model.max_context(), "--prompt")?;
    let options = options(&args, &model);
    let mut stream = StreamDecoder::new();
    let mut stdout = std::io::stdout().lock();
    let out = generate(&model, std::slice::from_ref(&prompt_ids), &options, |_, token| {
        if !json {
            let piece = stream.push(&tokenizer, token)?;
            // A closed pipe (`| head`) is not worth failing the generation over.
            let _ = stdout.write_all(piece.as_bytes()).and_then(|()| stdout.flush());
        }
        Ok(())
    })
    .with_context(|| format!("generating with the model {}", args.model.display()))?;
    let generated = &out[0];
    let text = tokenizer.decode(&generated.tokens, true)?;
    let finish = finish_name(generated.finish);
    if json {
        let report = serde_json::json!({
            "prompt_ids": prompt_ids,
            "output_ids": generated.tokens,
            "text": text,
            "finish": finish,
        });
        writeln!(stdout, "{report}")?;
    } else {
        writeln!(stdout)?;
    }
    Ok(())
}

/// One line of a `--prompts` file.
struct PromptLine {
    prompt: String,
    adapter: Option<String>,
}

fn read_prompts(path: &Path) -> Result<Vec<PromptLine>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{} line {}", path.display(), i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not valid JSON", at()))?;
        let Some(prompt) = v.get("prompt").and_then(|p| p.as_str()) else {
            bail!("{}: needs a string field \"prompt\"", at());
        };
        let adapter = match v.get("adapter") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(name)) => Some(name.clone()),
            Some(other) => bail!(
                "{}: \"adapter\" must be a name given with --adapter NAME=DIR or null, not {other}",
                at()
            ),
        };
        out.push(PromptLine { prompt: prompt.to_string(), adapter });
    }
    if out.is_empty() {
        bail!("{} holds no prompts", path.display());
    }
    Ok(out)
}

/// `--prompts`: every prompt with its own adapter (or the base), in mixed batches through the
/// model's adapter banks; one JSON line per prompt on stdout.
fn run_prompts(
    args: &GenerateArgs,
    path: &Path,
    model: &mut LlamaModel,
    tokenizer: &Tokenizer,
) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let mut names: Vec<String> = Vec::new();
    let mut adapters: Vec<LoraAdapter> = Vec::new();
    for spec in &args.adapter {
        let (Some(name), dir) = parse_adapter(spec) else {
            bail!("--adapter {spec}: with --prompts, name each adapter: --adapter NAME=DIR");
        };
        if names.contains(&name) {
            bail!("--adapter {spec}: the name `{name}` is given twice");
        }
        adapters.push(load(&dir, model)?);
        names.push(name);
    }
    let lines = read_prompts(path)?;
    let ids: Vec<i32> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| match &line.adapter {
            None => Ok(-1),
            Some(name) => match names.iter().position(|n| n == name) {
                Some(k) => Ok(k as i32),
                None => bail!(
                    "{} prompt {}: adapter `{name}` was not given; pass --adapter {name}=DIR (given: {})",
                    path.display(),
                    i + 1,
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ),
            },
        })
        .collect::<Result<_>>()?;
    if !adapters.is_empty() {
        attach_bank(&adapters.iter().collect::<Vec<_>>(), model).context("stacking the adapters")?;
    }
    let encoded = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            encode_prompt(
                tokenizer,
                &l.prompt,
                model.max_context(),
                &format!("{} prompt {}", path.display(), i + 1),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let options = options(args, model);
    let mut stdout = std::io::stdout().lock();
    for (start, chunk) in (0..lines.len())
        .step_by(args.batch_size)
        .map(|s| (s, &encoded[s..(s + args.batch_size).min(lines.len())]))
    {
        let rows = &ids[start..start + chunk.len()];
        let out = if adapters.is_empty() {
            generate(model, chunk, &options, |_, _| Ok(()))
        } else {
            generate_with_adapters(model, chunk, Some(rows), &options, |_, _| Ok(()))
        }
        .with_context(|| format!("generating with the model {}", args.model.display()))?;
        for (k, generated) in out.iter().enumerate() {
            let line = &lines[start + k];
            let report = serde_json::json!({
                "prompt": line.prompt,
                "adapter": line.adapter,
                "text": tokenizer.decode(&generated.tokens, true)?,
                "output_ids": generated.tokens,
                "finish": finish_name(generated.finish),
            });
            writeln!(stdout, "{report}")?;
        }
    }
    Ok(())
}
