//! `ragtune generate`: load a decoder (a Hugging Face folder or a `.gguf` file) and, with
//! `--adapter`, a PEFT LoRA adapter applied without merging; encode the prompt, and stream the continuation to stdout as it is sampled; `--json` prints one object
//! with the prompt ids, output ids and text at the end instead.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ragtune_compute::{DType, Device};
use ragtune_runtime::{
    FinishReason, GenerateOptions, SamplingParams, StreamDecoder, generate, load_causal_lm,
};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A model folder (config.json, safetensors, tokenizer.json) or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    prompt: String,
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
    /// Weight dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors), applied
    /// without merging.
    #[arg(long)]
    adapter: Option<PathBuf>,
}

/// The device for `spec`; says on stderr why the CPU was chosen under `auto`.
pub(crate) fn device(spec: &str, json: bool) -> Result<Device> {
    if spec.trim().eq_ignore_ascii_case("auto") {
        let choice = Device::auto();
        if let (Some(why), false) = (&choice.cpu_reason, json) {
            eprintln!("running on the CPU: {why}");
        }
        return Ok(choice.device);
    }
    Device::from_spec(spec).with_context(|| format!("--device {spec}"))
}

/// A float dtype for `--dtype`.
pub(crate) fn dtype(spec: &str) -> Result<DType> {
    match DType::parse(spec) {
        Some(d) if d.is_float() => Ok(d),
        _ => bail!("--dtype {spec}: use f32, bf16 or f16"),
    }
}

pub fn run(args: GenerateArgs, json: bool) -> Result<()> {
    let device = device(&args.device, json)?;
    let (mut model, tokenizer) = load_causal_lm(&args.model, dtype(&args.dtype)?, device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    if let Some(dir) = &args.adapter {
        let adapter = ragtune_trainer::peft::load_adapter(dir, &model.config, &model.device)
            .with_context(|| format!("loading the adapter {}", dir.display()))?;
        adapter.attach(&mut model).with_context(|| format!("applying the adapter {}", dir.display()))?;
    }
    let prompt_ids = tokenizer.encode(&args.prompt, true)?;
    let options = GenerateOptions {
        max_new_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: Some(args.top_k).filter(|&k| k > 0),
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_tokens: model.config.eos_token_ids.clone(),
    };
    let mut stream = StreamDecoder::new();
    let mut stdout = std::io::stdout().lock();
    let out = generate(&model, std::slice::from_ref(&prompt_ids), &options, |_, token| {
        if !json {
            let piece = stream.push(&tokenizer, token)?;
            // A closed pipe (`| head`) is not worth failing the generation over.
            let _ = stdout.write_all(piece.as_bytes()).and_then(|()| stdout.flush());
        }
        Ok(())
    })?;
    let generated = &out[0];
    let text = tokenizer.decode(&generated.tokens, true)?;
    let finish = match generated.finish {
        FinishReason::Stop(_) => "stop",
        FinishReason::Length => "length",
        FinishReason::Context => "context",
    };
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
