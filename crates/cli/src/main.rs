//! `ragtune`: the command-line program. One subcommand per job; this issue brings `index`
//! (build, search, info). Errors print with their chain of causes and exit non-zero; `--json`
//! turns every report into one JSON object on stdout, for scripts.

mod index_cmd;
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Index(cmd) => index_cmd::run(cmd, cli.json),
    }
}
