//! Helpers shared by the CLI integration tests (each `tests/*.rs` is its own crate and says
//! `mod common;`): the fixture paths, a scratch folder per case, and running the built
//! `ragtune` binary with its output checked.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository's shared test fixtures (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The tiny llama-gqa model (safetensors, config.json, tokenizer.json).
pub fn model_dir() -> PathBuf {
    fixtures().join("runtime/llama-gqa/model")
}

/// A scratch folder for `case`, unique to this test process; kept if it exists, so tests that
/// share one (by passing the same name) may run in parallel.
pub fn dir(case: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ragtune-cli-{case}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// [`dir`], emptied first: for a test that checks what a command writes there.
pub fn fresh_dir(case: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ragtune-cli-{case}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The built binary; `RUST_BACKTRACE=0` keeps an error's stderr what a user would see.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ragtune"));
    c.env("RUST_BACKTRACE", "0");
    c
}

/// Run `ragtune args…` to completion.
pub fn ragtune(args: &[&str]) -> Output {
    command().args(args).output().expect("run ragtune")
}

/// Run `ragtune args…` with `stdin` as its standard input.
pub fn ragtune_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ragtune");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ragtune args…`'s stdout; fails the test (with stderr) unless it succeeded.
pub fn ok(args: &[&str]) -> String {
    let out = ragtune(args);
    assert!(out.status.success(), "ragtune {args:?} failed:\n{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `ragtune args…`'s stderr; fails the test unless it failed.
pub fn fails(args: &[&str]) -> String {
    let out = ragtune(args);
    assert!(!out.status.success(), "ragtune {args:?} should fail");
    stderr(&out)
}

/// A path as a command-line argument.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `ragtune finetune` on the fixture model ([`model_dir`]) with `data`, writing `out`, on the
/// CPU, then `extra`.
pub fn finetune_on_fixture(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let model = model_dir();
    let mut args =
        vec!["finetune", "--model", p(&model), "--data", p(data), "--out", p(out), "--device", "cpu"];
    args.extend_from_slice(extra);
    ragtune(&args)
}

/// Write `config` as `dir/experiment.toml` and run `ragtune compare --json` on it into
/// `dir/report`; fails the test unless it succeeded. The printed report, and the output folder.
pub fn compare_json(dir: &Path, config: &str) -> (serde_json::Value, PathBuf) {
    let cfg = dir.join("experiment.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = dir.join("report");
    let o = ragtune(&["compare", "--config", p(&cfg), "--out", p(&out), "--json"]);
    assert!(o.status.success(), "compare failed: {}", stderr(&o));
    (serde_json::from_slice(&o.stdout).expect("--json prints the report"), out)
}
