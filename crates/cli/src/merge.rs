//! `ragtune merge`: fold a PEFT LoRA adapter into its base model and write a Hugging Face
//! folder (`model.safetensors` in the base's dtypes, with the config and tokenizer files copied),
//! which loads anywhere without the adapter.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ragtune_runtime::ModelConfig;
use ragtune_runtime::adapter::merge::merge_to_folder;
use ragtune_runtime::adapter::peft::load_adapter;

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The base model: a Hugging Face folder (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter folder trained on that model.
    #[arg(long)]
    adapter: PathBuf,
    /// The folder for the merged model.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: MergeArgs, json: bool) -> Result<()> {
    let config_path = args.model.join("config.json");
    if !config_path.is_file() {
        bail!(
            "--model {}: merge needs a Hugging Face folder with config.json (a .gguf file cannot be rewritten)",
            args.model.display()
        );
    }
    let config = match ModelConfig::from_file(&config_path)? {
        ModelConfig::Llama(c) => c,
        ModelConfig::Bert(_) => {
            bail!("--model {}: a BERT encoder has no LoRA adapters to merge", args.model.display())
        }
    };
    let adapter = load_adapter(&args.adapter, &config, &ragtune_compute::Device::Cpu)
        .with_context(|| format!("loading the adapter {}", args.adapter.display()))?;
    merge_to_folder(&args.model, &adapter, &args.out)
        .with_context(|| format!("writing the merged model to {}", args.out.display()))?;
    let modules = adapter.iter().count();
    if json {
        println!(
            "{}",
            serde_json::json!({ "out": args.out.display().to_string(), "merged_modules": modules })
        );
    } else {
        println!("merged {modules} LoRA modules into {}", args.out.display());
    }
    Ok(())
}
