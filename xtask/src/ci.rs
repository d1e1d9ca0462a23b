//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.
//!
//! `.ci/run` installs what a fresh machine lacks and then calls this, so a developer runs the
//! very same checks with one command. The commands are constants, so the README can quote them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::seconds;

/// The test command the README gives.
pub const TEST_COMMAND: &str = "cargo test --workspace";
/// The emulator's own tests under AddressSanitizer: out-of-bounds accesses and use after free in
/// its scheduler show up on a CPU. The same target dir as the plain run: only `ragtune-kernel-emu`
/// (whose build script watches `RAGTUNE_EMU_SANITIZE`) and the test binaries linking it rebuild,
/// not the dependency tree.
pub const ASAN_EMU_COMMAND: &str = "cargo test -p ragtune-kernel-emu";
/// The test binaries that launch `kernels/*.cu` on the emulator, under AddressSanitizer: an
/// overrun in a kernel is reported with its `.cu` line. The other `ragtune-tests` and
/// `ragtune-bench` binaries launch no kernel, so sanitizing them would only cost time.
pub const ASAN_KERNELS_COMMAND: &str = "cargo test -p ragtune-tests -p ragtune-bench --test kernels_emulated \
     --test memory_emulated --test attention_head_dims_emulated --test selftest_emulated --test clip_grad_emulated \
     --test gpu_bench --test device_checks_emulated";
/// The environment of the AddressSanitizer runs. Leak checking is off because the test harness keeps
/// allocations alive at exit; `verify_asan_link_order=0` because the ASan runtime is loaded by a
/// Rust test binary, not linked first.
pub const ASAN_ENV: &[(&str, &str)] =
    &[("RAGTUNE_EMU_SANITIZE", "address"), ("ASAN_OPTIONS", "detect_leaks=0:verify_asan_link_order=0")];

enum Step {
    /// A command line, split on spaces, with extra environment.
    Command(&'static str, &'static [(&'static str, &'static str)]),
    /// `cargo xtask kernels`, run in this process.
    Kernels,
}

const STEPS: &[(&str, Step)] = &[
    ("format", Step::Command("cargo fmt --all --check", &[])),
    ("clippy", Step::Command("cargo clippy --workspace --all-targets -- -D warnings", &[])),
    // Intra-doc links stay valid: a renamed item breaks the build here, not a reader's click.
    ("docs", Step::Command("cargo doc --workspace --no-deps -q", &[("RUSTDOCFLAGS", "-D warnings")])),
    ("tests", Step::Command(TEST_COMMAND, &[])),
    ("asan emulator", Step::Command(ASAN_EMU_COMMAND, ASAN_ENV)),
    ("asan kernels", Step::Command(ASAN_KERNELS_COMMAND, ASAN_ENV)),
    ("kernels", Step::Kernels),
];

pub fn run(root: &Path) -> Result<()> {
    let start = Instant::now();
    let mut done: Vec<(&str, Duration)> = Vec::new();
    for (name, step) in STEPS {
        let shown = match step {
            Step::Command(cmd, env) => env.iter().map(|(k, v)| format!("{k}={v} ")).collect::<String>() + cmd,
            Step::Kernels => "cargo xtask kernels".to_string(),
        };
        println!("\n==> [{}/{}] {name}: {shown}", done.len() + 1, STEPS.len());
        let t = Instant::now();
        let result = match step {
            Step::Command(cmd, env) => run_command(root, cmd, env),
            Step::Kernels => crate::kernels::run(root),
        };
        let took = t.elapsed();
        if let Err(e) = result {
            print_summary(&done);
            bail!("CI step `{name}` failed after {}: {e:#}\nreproduce with: {shown}", seconds(took));
        }
        println!("<== {name} ok ({})", seconds(took));
        done.push((name, took));
    }
    print_summary(&done);
    println!("ci ok in {}", seconds(start.elapsed()));
    Ok(())
}

fn run_command(root: &Path, cmd: &str, env: &[(&str, &str)]) -> Result<()> {
    let mut words = cmd.split_whitespace();
    let program = words.next().context("empty command")?;
    let status = Command::new(program)
        .args(words)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("starting `{program}`"))?;
    if !status.success() {
        bail!("`{cmd}` exited with {status}");
    }
    Ok(())
}

fn print_summary(done: &[(&str, Duration)]) {
    if done.is_empty() {
        return;
    }
    println!("\nstep durations:");
    for (name, took) in done {
        println!("  {name:<14} {:>9}", seconds(*took));
    }
}
