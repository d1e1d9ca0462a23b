//! Pretrain the built-in base model and write it as a Hugging Face folder (what
//! `cargo xtask demo-base` runs, in release):
//!
//! ```text
//! cargo run --release -p ragtune-demo-base --example demo_base -- \
//!     [--out crates/eval/assets/demo-base] [--tokens N] [--seed S]
//! ```
//!
//! Further flags for experiments (each changes the model, and is recorded in TRAINING.md's
//! command): `--lr`, `--batch`, `--seq`, `--hidden`, `--layers`, `--intermediate`,
//! `--doc-share`, `--throwaway-doc-share`, `--qa-share`, `--old-reading-share`, `--reading-worlds`, `--max-distractors`, `--excerpt-share`, `--paired-share`,
//! `--paraphrase-rounds`, `--warmup`, `--reading-loss-everywhere true|false`, `--validation-limit`,
//! `--f32` (store f32 weights).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ragtune_demo_base::{BaseOptions, Event, build_base};

fn parse<T: FromStr>(flag: &str, v: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| anyhow::anyhow!("{flag} {v}: {e}"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = BaseOptions::default();
    let mut out = PathBuf::from("crates/eval/assets/demo-base");
    let mut recorded = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--f32" {
            opts.bf16 = false;
            recorded.push(flag.to_string());
            i += 1;
            continue;
        }
        let v = args.get(i + 1).with_context(|| format!("{flag} needs a value"))?;
        match flag {
            "--out" => out = PathBuf::from(v),
            "--tokens" => opts.tokens = parse(flag, v)?,
            "--seed" => opts.seed = parse(flag, v)?,
            "--lr" => opts.train.lr = parse(flag, v)?,
            "--batch" => opts.train.batch = parse(flag, v)?,
            "--seq" => opts.train.seq = parse(flag, v)?,
            "--hidden" => opts.shape.hidden = parse(flag, v)?,
            "--layers" => opts.shape.layers = parse(flag, v)?,
            "--intermediate" => opts.shape.intermediate = parse(flag, v)?,
            "--doc-share" => opts.mixture.doc_share = parse(flag, v)?,
            "--qa-share" => opts.mixture.qa_share = parse(flag, v)?,
            "--throwaway-doc-share" => opts.mixture.throwaway_doc_share = parse(flag, v)?,
            "--old-reading-share" => opts.mixture.old_reading_share = parse(flag, v)?,
            "--reading-worlds" => opts.mixture.reading_worlds = parse(flag, v)?,
            "--max-distractors" => opts.mixture.max_distractors = parse(flag, v)?,
            "--excerpt-share" => opts.mixture.excerpt_share = parse(flag, v)?,
            "--paired-share" => opts.mixture.paired_share = parse(flag, v)?,
            "--paraphrase-rounds" => opts.mixture.paraphrase_rounds = parse(flag, v)?,
            "--warmup" => opts.train.warmup = parse(flag, v)?,
            "--reading-loss-everywhere" => opts.mixture.reading_loss_everywhere = parse(flag, v)?,
            "--validation-limit" => opts.validation_limit = parse(flag, v)?,
            other => {
                bail!("unknown flag `{other}`; see the doc comment of crates/demo-base/examples/demo_base.rs")
            }
        }
        if flag != "--out" {
            recorded.push(format!("{flag} {v}"));
        }
        i += 2;
    }
    let command = format!(
        "cargo xtask demo-base --tokens {} --seed {}{}",
        opts.tokens,
        opts.seed,
        recorded
            .iter()
            .filter(|r| !r.starts_with("--tokens") && !r.starts_with("--seed"))
            .map(|r| format!(" {r}"))
            .collect::<String>()
    );
    let machine = ragtune_eval::machine::describe();
    eprintln!("{command}\n{machine}");
    let start = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let built = build_base(&opts, &out, &command, &machine, &mut |e| match e {
        Event::Stage(s) => {
            if let Some(b) = bar.take() {
                b.finish();
            }
            eprintln!("[{:>6.1}s] {s}", start.elapsed().as_secs_f64());
        }
        Event::Steps(n) => {
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps, {msg}, elapsed {elapsed_precise}, ETA {eta_precise}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar = Some(ProgressBar::new(n as u64).with_style(style));
        }
        Event::Step(s) => {
            if let Some(b) = &bar {
                b.set_position(s.step as u64);
                b.set_message(format!(
                    "loss {:.3}, lr {:.2e}, {:.0} tokens/s",
                    s.loss,
                    s.lr,
                    s.tokens as f64 / s.seconds.max(1e-9)
                ));
                // Plain lines too, every 5%, for logs (indicatif draws nothing off a terminal).
                if s.step % (s.steps / 20).max(1) == 0 {
                    let line = format!(
                        "step {}/{}: loss {:.4}, {:.0} tokens/s, {:.0} s, ETA {:.0} s",
                        s.step,
                        s.steps,
                        s.loss,
                        s.tokens as f64 / s.seconds.max(1e-9),
                        s.seconds,
                        s.seconds / s.step as f64 * (s.steps - s.step) as f64
                    );
                    // `println` prints nothing while the bar is hidden (stderr is not a terminal).
                    if b.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        b.println(line);
                    }
                }
            }
        }
    })?;
    if let Some(b) = bar.take() {
        b.finish();
    }
    println!("\n{}", std::fs::read_to_string(out.join("TRAINING.md")).unwrap_or_default());
    eprintln!("wrote {} in {:.0} s", out.display(), built.seconds);
    Ok(())
}
