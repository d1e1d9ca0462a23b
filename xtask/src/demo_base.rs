//! `cargo xtask demo-base`: regenerate the built-in base model (crates/eval/assets/demo-base).
//!
//! The work runs in the release example `crates/demo-base/examples/demo_base.rs` (training must run
//! optimised, and xtask stays light: it does not link the trainer), which gathers the demo
//! world, trains the tokenizer, pretrains the model in full mode, validates it and writes the
//! Hugging Face folder with its TRAINING.md. The same `--tokens` and `--seed` give the same files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args)]
pub struct DemoBaseArgs {
    /// Output folder (relative paths are taken from the workspace root).
    #[arg(long, default_value = "crates/eval/assets/demo-base")]
    out: PathBuf,
    /// Training tokens (rows × row length); the default fits ~25 minutes on an idle 2-core CPU.
    #[arg(long)]
    tokens: Option<u64>,
    /// Seeds the initialisation and the mixture (the world keeps its own seed).
    #[arg(long)]
    seed: Option<u64>,
    /// More flags for the example (`--lr`, `--batch`, `--doc-share`, ...), after `--`.
    #[arg(last = true)]
    extra: Vec<String>,
}

pub fn run(root: &Path, a: DemoBaseArgs) -> Result<()> {
    let out = if a.out.is_absolute() { a.out.clone() } else { root.join(&a.out) };
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .args(["run", "--release", "-p", "ragtune-demo-base", "--example", "demo_base", "--"])
        .arg("--out")
        .arg(&out);
    if let Some(t) = a.tokens {
        cmd.args(["--tokens", &t.to_string()]);
    }
    if let Some(s) = a.seed {
        cmd.args(["--seed", &s.to_string()]);
    }
    cmd.args(&a.extra);
    let status = cmd.status().context("running cargo (is it on PATH?)")?;
    if !status.success() {
        bail!("the demo_base example failed ({status}); its output above says why");
    }
    println!("base model written to {}", out.display());
    Ok(())
}
