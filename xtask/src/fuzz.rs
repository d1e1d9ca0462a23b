//! `cargo xtask fuzz [--cases N] [--seed S] [--reader NAME]`: the fuzz tests of issue 17 at
//! length — N (default 10,000) mutated inputs per reader instead of CI's few hundred within a
//! time budget — in a release build, one reader at a time so each one's peak memory is its own.
//!
//! The readers' targets live in the crates' `tests/fuzz_*.rs` on the shared engine
//! (`ragtune_tests::fuzz`); this runs those test binaries through `cargo test --release` with
//! `RAGTUNE_FUZZ_CASES`/`RAGTUNE_FUZZ_SEED` set (xtask stays light: it links none of the
//! readers) and reads the engine's `fuzz-summary` lines into one table of cases, ok, errors and
//! panics per reader. A binary that dies by a signal is an abort (an allocation past the
//! engine's 1 GiB limit, or the hang watchdog), and a reader that prints no summary is a failure
//! too. Without `--reader`, each binary's ignored tests run as well: they are the reproducers
//! of panics found before and not yet fixed. Exits non-zero on any panic, abort or failure.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::seconds;

#[derive(Args)]
pub struct FuzzArgs {
    /// Mutated inputs per reader.
    #[arg(long, default_value_t = 10_000)]
    cases: u64,
    /// Mixed into every reader's own seed (the same seed replays the same inputs).
    #[arg(long)]
    seed: Option<u64>,
    /// Only this reader (see the list in the error for an unknown name).
    #[arg(long)]
    reader: Option<String>,
}

/// (reader, package, test binary, test function).
const READERS: &[(&str, &str, &str, &str)] = &[
    ("npy", "ragtune-index", "fuzz_readers", "fuzz_npy"),
    ("index-flat", "ragtune-index", "fuzz_readers", "fuzz_index_flat"),
    ("index-ivf", "ragtune-index", "fuzz_readers", "fuzz_index_ivf"),
    ("config-json", "ragtune-runtime", "fuzz_readers", "fuzz_config_json"),
    ("safetensors", "ragtune-runtime", "fuzz_readers", "fuzz_safetensors"),
    ("tokenizer-json", "ragtune-runtime", "fuzz_tokenizer", "fuzz_tokenizer_json"),
    ("gguf", "ragtune-runtime", "fuzz_gguf", "fuzz_gguf"),
    ("adapter", "ragtune-trainer", "fuzz_readers", "fuzz_adapter"),
    ("jsonl", "ragtune-trainer", "fuzz_readers", "fuzz_jsonl"),
    ("experiment-toml", "ragtune-eval", "fuzz_experiment", "fuzz_experiment_toml"),
    ("corpus", "ragtune-eval", "fuzz_userdata", "fuzz_corpus"),
    ("qa", "ragtune-eval", "fuzz_userdata", "fuzz_qa"),
];

/// One reader's counts, from its `fuzz-summary` line.
#[derive(Default)]
struct Row {
    cases: u64,
    ok: u64,
    errors: u64,
    panics: u64,
    peak_mib: f64,
    /// The case that reached the peak (replay it with `RAGTUNE_FUZZ_CASE`).
    peak_case: u64,
    seconds: f64,
}

/// The counts in a `fuzz-summary` line; the test harness may have printed `test NAME ... `
/// before it on the same line.
fn parse_summary(line: &str) -> Option<(String, Row)> {
    let at = line.find("fuzz-summary ")?;
    let mut words = line[at + "fuzz-summary ".len()..].split_whitespace();
    let name = words.next()?.to_string();
    let mut row = Row::default();
    for w in words {
        let (k, v) = w.split_once('=')?;
        match k {
            "cases" => row.cases = v.parse().ok()?,
            "ok" => row.ok = v.parse().ok()?,
            "errors" => row.errors = v.parse().ok()?,
            "panics" => row.panics = v.parse().ok()?,
            "peak_mib" => row.peak_mib = v.parse().ok()?,
            "peak_case" => row.peak_case = v.parse().ok()?,
            "seconds" => row.seconds = v.parse().ok()?,
            _ => {}
        }
    }
    Some((name, row))
}

/// How a test binary ended, beyond its summaries.
fn ending(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig} (an abort: allocation past the limit, or a hang)");
        }
    }
    format!("{status}")
}

pub fn run(root: &Path, a: FuzzArgs) -> Result<()> {
    let chosen: Vec<_> = match &a.reader {
        None => READERS.to_vec(),
        Some(r) => {
            let found: Vec<_> = READERS.iter().copied().filter(|x| x.0 == r).collect();
            if found.is_empty() {
                let names: Vec<&str> = READERS.iter().map(|x| x.0).collect();
                bail!("--reader {r}: unknown; the readers are {}", names.join(", "));
            }
            found
        }
    };
    // One run per test binary (its readers one after another), or per reader with --reader.
    let mut binaries: Vec<(&str, &str, Option<&str>)> = Vec::new();
    for (_, package, test, function) in &chosen {
        let filter = a.reader.as_ref().map(|_| *function);
        if !binaries.contains(&(package, test, filter)) {
            binaries.push((package, test, filter));
        }
    }
    let start = Instant::now();
    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (package, test, filter) in binaries {
        println!("==> cargo test --release -p {package} --test {test} ({} cases per reader)", a.cases);
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root)
            .args(["test", "--release", "-q", "-p", package, "--test", test, "--"])
            .args(["--nocapture", "--test-threads=1"])
            .env("RAGTUNE_FUZZ_CASES", a.cases.to_string())
            .env("RUST_BACKTRACE", "0");
        match filter {
            Some(f) => cmd.args(["--exact", f]),
            None => cmd.arg("--include-ignored"),
        };
        if let Some(s) = a.seed {
            cmd.env("RAGTUNE_FUZZ_SEED", s.to_string());
        }
        let out = cmd.output().context("running cargo (is it on PATH?)")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let before = rows.len();
        rows.extend(stdout.lines().filter_map(parse_summary));
        for (name, row) in &rows[before..] {
            println!(
                "    {name}: {} cases, {} ok, {} errors, {} panics",
                row.cases, row.ok, row.errors, row.panics
            );
        }
        if !out.status.success() {
            let tail: Vec<&str> = stderr.lines().chain(stdout.lines()).filter(|l| !l.is_empty()).collect();
            let tail = tail[tail.len().saturating_sub(30)..].join("\n    ");
            failures.push(format!("{package} {test}: {}\n    {tail}", ending(out.status)));
        }
    }
    for (reader, ..) in &chosen {
        if !rows.iter().any(|(n, _)| n == reader) {
            failures.push(format!("{reader}: no summary (its test did not finish; see above)"));
        }
    }
    println!(
        "\n{:<16} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8} {:>8}",
        "reader", "cases", "ok", "errors", "panics", "peak MiB", "at case", "seconds"
    );
    for (name, r) in &rows {
        println!(
            "{name:<16} {:>8} {:>8} {:>8} {:>7} {:>9.1} {:>8} {:>8.1}",
            r.cases, r.ok, r.errors, r.panics, r.peak_mib, r.peak_case, r.seconds
        );
    }
    let panics: u64 = rows.iter().map(|(_, r)| r.panics).sum();
    let cases: u64 = rows.iter().map(|(_, r)| r.cases).sum();
    println!("{cases} cases, {panics} panics in {}", seconds(start.elapsed()));
    if panics > 0 || !failures.is_empty() {
        bail!("fuzz found problems:\n{}", failures.join("\n"));
    }
    Ok(())
}
