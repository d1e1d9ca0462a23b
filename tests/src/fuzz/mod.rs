//! The mutation engine of ragtune's fuzz tests (issue 17, item 7), shared by every crate's
//! `tests/fuzz_*.rs` and driven at length by `cargo xtask fuzz`.
//!
//! A target is a name, a seed, a function that makes one case's input files from a seeded rng
//! (usually a valid input put through [`mutate`]), and the reader under test, called on the
//! folder those files were written to. [`fuzz`] runs cases until its case count or time budget
//! is spent; each must return `Ok` or `Err` — a panic is caught and counted, its input kept under
//! the temp folder as a reproducer — and no case may take the process's live memory past
//! [`alloc::LIMIT`] (the binary's [`CountingAlloc`] refuses it) or run longer than a minute (a
//! watchdog aborts the process naming the case). It prints one summary line,
//! `fuzz-summary <name> cases=… ok=… errors=… panics=… peak_mib=… peak_case=… seed=…`, which `cargo xtask
//! fuzz` reads, then fails the test on any panic.
//!
//! Case `i` draws from its own rng (the seed's ChaCha8 stream `i`), so one case replays alone:
//! `RAGTUNE_FUZZ_CASE=i` (which also keeps its input, as for a panic). The environment sets the run: `RAGTUNE_FUZZ_CASES=N` runs exactly N
//! cases without a time budget, `RAGTUNE_FUZZ_SEED=S` mixes S into every target's seed. Without
//! them (CI) a target runs up to [`CI_CASES`] cases within [`CI_BUDGET`].

pub mod alloc;
pub mod mutate;

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use alloc::CountingAlloc;

/// A target's cases in a plain `cargo test` run, at most.
pub const CI_CASES: usize = 400;
/// A target's time in a plain `cargo test` run (debug build), at most: with a dozen targets
/// the whole fuzz suite stays within its 60 s.
pub const CI_BUDGET: Duration = Duration::from_secs(3);
/// A single case running longer than this is a hang.
pub const HANG: Duration = Duration::from_secs(60);

/// One case's input: file names (relative to the case folder) and their bytes.
pub type Files = Vec<(String, Vec<u8>)>;

/// What a target's run saw.
#[derive(Debug, Default)]
pub struct Summary {
    pub cases: usize,
    pub ok: usize,
    pub errors: usize,
    /// (case, panic message) of each panicking case.
    pub panics: Vec<(u64, String)>,
    /// The most bytes live at once during a case, and that case.
    pub peak: usize,
    pub peak_case: u64,
}

struct Plan {
    seed: u64,
    cases: usize,
    budget: Option<Duration>,
    only: Option<u64>,
}

fn env_number(key: &str) -> Option<u64> {
    let v = std::env::var(key).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{key}={v:?} is not a whole number"),
    }
}

fn plan(seed: u64) -> Plan {
    let cases = env_number("RAGTUNE_FUZZ_CASES");
    Plan {
        // A mix, not a replacement: targets keep distinct streams under one `--seed`.
        seed: env_number("RAGTUNE_FUZZ_SEED").map_or(seed, |s| s.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed),
        cases: cases.map_or(CI_CASES, |n| n as usize),
        budget: if cases.is_some() { None } else { Some(CI_BUDGET) },
        only: env_number("RAGTUNE_FUZZ_CASE"),
    }
}

/// The rng of case `case` under `seed`: independent of every other case, so any replays alone.
pub fn case_rng(seed: u64, case: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(case);
    rng
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-text panic)".into())
}

fn write_files(dir: &Path, files: &Files) {
    for (name, bytes) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("the case folder is writable");
        }
        std::fs::write(&path, bytes).expect("the case folder is writable");
    }
}

/// Keep a panicking case's input where the report says, for a bug report or a regression test.
fn keep_reproducer(name: &str, seed: u64, case: u64, files: &Files) -> PathBuf {
    let dir =
        std::env::temp_dir().join("ragtune-fuzz-failures").join(format!("{name}-seed{seed}-case{case}"));
    let _ = std::fs::remove_dir_all(&dir);
    write_files(&dir, files);
    dir
}

/// A thread that aborts the process when no case finishes within [`HANG`]: a hanging reader
/// cannot be interrupted, and a test that never ends is worse than one that names its case.
fn watchdog(name: &'static str, seed: u64) -> mpsc::Sender<u64> {
    let (tx, rx) = mpsc::channel::<u64>();
    std::thread::spawn(move || {
        let mut case = 0;
        loop {
            match rx.recv_timeout(HANG) {
                Ok(next) => case = next,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!("fuzz {name}: case {case} (seed {seed}) ran over {HANG:?}: a hang");
                    std::process::abort();
                }
            }
        }
    });
    tx
}

/// Run target `name` (see the module doc): `make` builds case inputs, `read` reads them from
/// the folder they were written to. Prints the summary line and panics if any case panicked;
/// returns the summary for further checks.
pub fn fuzz<T, E: Display>(
    name: &str,
    seed: u64,
    mut make: impl FnMut(&mut ChaCha8Rng) -> Files,
    mut read: impl FnMut(&Path) -> Result<T, E>,
) -> Summary {
    assert!(
        alloc::installed(),
        "fuzz {name}: the test binary must install ragtune_tests::fuzz::CountingAlloc as its global allocator"
    );
    // The allocator's arming is process-wide: two runs in parallel test threads would disarm
    // each other's limit, so runs in one binary take turns.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let plan = plan(seed);
    let dir = std::env::temp_dir().join(format!("ragtune-fuzz-{name}-{}", std::process::id()));
    let start = Instant::now();
    let mut s = Summary::default();
    let beat = watchdog(name, plan.seed);
    let cases: Box<dyn Iterator<Item = u64>> = match plan.only {
        Some(c) => Box::new(std::iter::once(c)),
        None => Box::new(0..plan.cases as u64),
    };
    for case in cases {
        if plan.budget.is_some_and(|b| start.elapsed() > b) {
            break;
        }
        let files = make(&mut case_rng(plan.seed, case));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the temp folder is writable");
        write_files(&dir, &files);
        let _ = beat.send(case);
        alloc::set_case(case);
        alloc::reset_peak();
        alloc::arm(true, name, plan.seed);
        let outcome = catch_unwind(AssertUnwindSafe(|| read(&dir).map(drop).map_err(|e| e.to_string())));
        alloc::arm(false, name, plan.seed);
        if plan.only.is_some() {
            // A replayed case keeps its input whatever it did (a slow or memory-hungry one too).
            println!(
                "fuzz {name}: case {case}'s input is in {}",
                keep_reproducer(name, plan.seed, case, &files).display()
            );
        }
        if alloc::peak() > s.peak {
            (s.peak, s.peak_case) = (alloc::peak(), case);
        }
        s.cases += 1;
        match outcome {
            Ok(Ok(())) => s.ok += 1,
            Ok(Err(e)) => {
                assert!(
                    !e.trim().is_empty(),
                    "fuzz {name}: case {case} (seed {}) gave an empty error",
                    plan.seed
                );
                s.errors += 1;
            }
            Err(payload) => {
                let kept = keep_reproducer(name, plan.seed, case, &files);
                s.panics
                    .push((case, format!("{} (input kept in {})", panic_text(&*payload), kept.display())));
            }
        }
    }
    drop(beat);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "fuzz-summary {name} cases={} ok={} errors={} panics={} peak_mib={:.1} peak_case={} seconds={:.1} seed={}",
        s.cases,
        s.ok,
        s.errors,
        s.panics.len(),
        s.peak as f64 / (1 << 20) as f64,
        s.peak_case,
        start.elapsed().as_secs_f64(),
        plan.seed
    );
    let listed: Vec<String> = s.panics.iter().take(5).map(|(c, m)| format!("case {c}: {m}")).collect();
    assert!(
        s.panics.is_empty(),
        "fuzz {name}: {} of {} cases panicked (seed {}; replay one with RAGTUNE_FUZZ_CASE=N):\n{}",
        s.panics.len(),
        s.cases,
        plan.seed,
        listed.join("\n")
    );
    assert!(
        plan.only.is_some() || s.cases >= 10,
        "fuzz {name}: only {} cases ran within the budget",
        s.cases
    );
    s
}

/// A single file case: `files(name, bytes)`.
pub fn file(name: &str, bytes: Vec<u8>) -> Files {
    vec![(name.to_string(), bytes)]
}
