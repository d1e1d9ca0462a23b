//! `ragtune demo`: the RAG-vs-fine-tuning experiment on the built-in world and base model, and
//! `ragtune compare`: the same on a user's model and data, from an experiment.toml. Both print
//! the main table and where the report went.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ragtune_eval::experiment::{self, DemoOptions};
use ragtune_eval::report::ExperimentReport;

use crate::generate::device;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Folder for report.md, report.json, the charts and the artifacts.
    #[arg(long, default_value = "ragtune-demo")]
    out: PathBuf,
    /// `auto` (a CUDA GPU when usable), `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: String,
    /// The world's seed (the training and bootstrap seeds follow it).
    #[arg(long)]
    seed: Option<u64>,
    /// A base model folder instead of the built-in one (e.g. from `cargo xtask demo-base`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Write the demo's task as files with an experiment.toml for `ragtune compare` into this
    /// folder, and stop (a worked example of compare's input formats).
    #[arg(long)]
    export: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct CompareArgs {
    /// The experiment description (see crates/eval/src/experiment.example.toml).
    #[arg(long)]
    config: PathBuf,
    /// Folder for report.md, report.json, the charts and the artifacts.
    #[arg(long, default_value = "ragtune-compare")]
    out: PathBuf,
}

pub fn run_demo(args: DemoArgs, json: bool) -> Result<()> {
    let mut opts = DemoOptions::new(args.out.clone(), device(&args.device, json)?);
    if let Some(seed) = args.seed {
        opts.seed = seed;
    }
    opts.settings.quiet = json;
    opts.model = args.model.clone();
    if let Some(dir) = &args.export {
        let model = match &args.model {
            Some(m) => std::fs::canonicalize(m).with_context(|| format!("--model {}", m.display()))?,
            None => {
                let m = dir.join("base-model");
                ragtune_eval::base::write_builtin(&m).context("writing the built-in base model")?;
                std::fs::canonicalize(m)?
            }
        };
        experiment::export_demo(&opts, &model, dir)
            .with_context(|| format!("exporting the demo task to {}", dir.display()))?;
        if !json {
            println!(
                "wrote the demo's task to {}; run it with: ragtune compare --config {}",
                dir.display(),
                dir.join("experiment.toml").display()
            );
        }
        return Ok(());
    }
    let report = experiment::demo(&opts).context("running the demo experiment")?;
    print(&report, &args.out, json)
}

pub fn run_compare(args: CompareArgs, json: bool) -> Result<()> {
    let report = experiment::compare(&args.config, &args.out, json)
        .with_context(|| format!("running the experiment {}", args.config.display()))?;
    print(&report, &args.out, json)
}

fn pct(i: Option<ragtune_eval::report::Interval>) -> String {
    i.map_or("—".to_string(), |i| {
        format!("{:.0}% [{:.0}–{:.0}]", 100.0 * i.mean, 100.0 * i.lo, 100.0 * i.hi)
    })
}

fn print(report: &ExperimentReport, out: &std::path::Path, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!("| arm | multiple choice | exact match | set-up s | latency ms |");
    println!("|---|---|---|---|---|");
    for a in &report.arms {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} |",
            a.id,
            pct(a.overall.mc_accuracy),
            pct(a.overall.exact_match),
            a.cost.setup_seconds,
            a.cost.latency_ms
        );
    }
    println!();
    for f in &report.findings {
        let mark = match f.holds {
            Some(true) => "holds",
            Some(false) => "does not hold",
            None => "cannot tell",
        };
        println!("- [{mark}] {}", f.sentence);
    }
    println!(
        "\nreport written to {} (report.md, report.json, charts) in {:.0} s",
        out.display(),
        report.info.wall_seconds
    );
    Ok(())
}
