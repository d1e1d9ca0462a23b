//! `ragtune demo`: the RAG-vs-fine-tuning experiment on the built-in world and base model, and
//! `ragtune compare`: the same on a user's model and data, from an experiment.toml. Both print
//! the main table and where the report went.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ragtune_eval::experiment::{self, DemoOptions};
use ragtune_eval::report::ExperimentReport;
use ragtune_eval::task::TaskKind;

use crate::args::DeviceArg;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Folder for report.md, report.json, the charts and the artifacts.
    #[arg(long, default_value = "ragtune-demo")]
    out: PathBuf,
    /// `auto` (a CUDA GPU when usable), `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: DeviceArg,
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
    /// Print the number of questions, the training tokens per arm and an estimated wall time
    /// (from a short measured calibration), and stop before anything runs.
    #[arg(long)]
    dry_run: bool,
}

pub fn run_demo(args: DemoArgs, json: bool) -> Result<()> {
    let mut opts = DemoOptions::new(args.out.clone(), args.device.open(json)?);
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
                ragtune_eval::builtin::write_builtin(&m).context("writing the built-in base model")?;
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
    if args.dry_run {
        let d = ragtune_eval::dryrun::dry_run(&args.config)
            .with_context(|| format!("dry run of {}", args.config.display()))?;
        if json {
            println!("{}", serde_json::to_string(&d)?);
            return Ok(());
        }
        println!("dry run of {} (nothing was trained or written)", args.config.display());
        println!("questions: {}, corpus passages: {}", d.questions, d.corpus_passages);
        println!(
            "calibration: {:.1} ms per answer closed book, {:.1} ms with retrieved passages, {:.3} ms per training token",
            d.closed_book_answer_ms,
            d.rag_answer_ms,
            d.train_seconds_per_token * 1e3
        );
        println!("| arm | training tokens | estimated time |");
        println!("|---|---|---|");
        for a in &d.arms {
            println!("| {} | {} | {:.0} s |", a.arm, a.train_tokens, a.seconds);
        }
        println!(
            "estimated wall time: {:.0} s ({:.1} min), besides loading the model",
            d.estimated_seconds,
            d.estimated_seconds / 60.0
        );
        return Ok(());
    }
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
    let (first, second, metrics): (&str, &str, fn(&ragtune_eval::report::Scores) -> _) = match report.task {
        TaskKind::Qa => ("multiple choice", "exact match", |s| (s.mc_accuracy, s.exact_match)),
        TaskKind::Classify => ("accuracy", "macro-F1", |s| (s.mc_accuracy, s.macro_f1)),
        TaskKind::Format => ("format valid", "field exact match", |s| (s.format_valid, s.field_match)),
    };
    println!("| arm | {first} | {second} | set-up s | latency ms |");
    println!("|---|---|---|---|---|");
    for a in &report.arms {
        let (x, y) = metrics(&a.overall);
        println!(
            "| {} | {} | {} | {:.1} | {:.1} |",
            a.id,
            pct(x),
            pct(y),
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
    if let Some(d) = &report.decision {
        match &d.recommendation {
            Some(r) => println!("\nWhat to choose: {r}"),
            None => println!("\nWhat to choose: no arm meets every constraint"),
        }
        for r in d.reasons.iter().take(2) {
            println!("  {r}");
        }
    }
    if !report.tasks.is_empty() {
        println!("\n| task | recommended | report |\n|---|---|---|");
        for t in &report.tasks {
            let r = t.recommendation.as_deref().unwrap_or("none meets every constraint");
            println!("| {} | {r} | {} |", t.task, out.join(&t.report).display());
        }
    }
    println!(
        "\nreport written to {} (report.md, report.json, charts) in {:.0} s",
        out.display(),
        report.info.wall_seconds
    );
    Ok(())
}
