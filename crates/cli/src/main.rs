//! `ragtune`: the command-line program. One subcommand per job: `index`, `generate`, `embed`,
//! `finetune`, `merge`, `demo`, `compare`, `decide`, `doctor`. Errors print with their chain of
//! causes and exit non-zero; `--json` turns every report into one JSON object on stdout, for
//! scripts.

mod args;
mod decide;
mod demo;
mod doctor;
mod embed;
mod finetune;
mod generate;
mod index_cmd;
mod merge;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ragtune", version, about = "Measure RAG against fine-tuning on one fast stack")]
struct Cli {
    /// Print machine-readable JSON on stdout instead of text (progress bars are hidden).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Vector indexes: build one from a .npy file, search it, describe it.
    #[command(subcommand)]
    Index(index_cmd::IndexCommand),
    /// Generate text with a decoder (a Hugging Face folder or a .gguf file), streamed to stdout.
    Generate(generate::GenerateArgs),
    /// Sentence embeddings of texts with a BERT-family model, written as an .npy file.
    Embed(embed::EmbedArgs),
    /// LoRA fine-tuning on a JSONL file, writing a PEFT adapter folder.
    Finetune(finetune::FinetuneArgs),
    /// Merge a PEFT LoRA adapter into its base model, written as a Hugging Face folder.
    Merge(merge::MergeArgs),
    /// The RAG-vs-fine-tuning experiment on the built-in world and base model.
    Demo(demo::DemoArgs),
    /// The RAG-vs-fine-tuning experiment on your model and data (experiment.toml).
    Compare(demo::CompareArgs),
    /// Recompute a finished run's "What to choose" with other traffic, price or budgets.
    Decide(decide::DecideArgs),
    /// What this machine offers: CPU features, CUDA driver/NVRTC/cuBLAS, kernel compiles, GPU self-test.
    Doctor(doctor::DoctorArgs),
}

fn main() -> anyhow::Result<()> {
    ragtune_compute::cpu::alloc::keep_freed_memory();
    let cli = Cli::parse();
    // The whole command on the CPU pool's workers: ops hand their tasks to the other worker
    // instead of waking the pool and sleeping, once per op (ragtune_compute::cpu::pool).
    ragtune_compute::cpu::pool::in_pool(|| dispatch(cli))
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Index(cmd) => index_cmd::run(cmd, cli.json),
        Command::Generate(args) => generate::run(args, cli.json),
        Command::Embed(args) => embed::run(args, cli.json),
        Command::Finetune(args) => finetune::run(args, cli.json),
        Command::Merge(args) => merge::run(args, cli.json),
        Command::Demo(args) => demo::run_demo(args, cli.json),
        Command::Compare(args) => demo::run_compare(args, cli.json),
        Command::Decide(args) => decide::run(args, cli.json),
        Command::Doctor(args) => doctor::run(args, cli.json),
    }
}
