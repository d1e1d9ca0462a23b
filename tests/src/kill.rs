//! Crash tests of writers (issue 17, item 7): a child process writes two versions of a target
//! over and over, is killed with SIGKILL at a seeded random moment, and the target must then be
//! the old version or the new one — never torn — and the next successful write must leave no
//! temporaries behind.
//!
//! The child is the test binary itself, re-executed to run one `#[test]` function with
//! [`ROLE_ENV`] and [`DIR_ENV`] set; that function is one call of [`serve`], which in a normal
//! test run (the variables unset) returns at once. The parent side is [`check_writer`] for a
//! writer whose every file must be old or new, or [`rounds`] for one with its own check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

/// The role a re-executed child plays.
pub const ROLE_ENV: &str = "RAGTUNE_KILL_ROLE";
/// The folder (or file) a re-executed child writes.
pub const DIR_ENV: &str = "RAGTUNE_KILL_TARGET";
/// A child gives up after this long, should its parent be gone.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// In a re-executed child playing `role`: the target it writes. `None` in a normal test run.
pub fn child(role: &str) -> Option<PathBuf> {
    (std::env::var(ROLE_ENV).ok()? == role)
        .then(|| PathBuf::from(std::env::var_os(DIR_ENV).unwrap_or_default()))
}

/// The marker a child creates once set up, beside (not inside) its target.
fn ready_marker(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".child-ready");
    PathBuf::from(name)
}

/// Tell the parent that set-up is over: its random delay starts now.
pub fn ready(target: &Path) {
    std::fs::write(ready_marker(target), b"").expect("the target's folder is writable");
}

/// Whether a child should keep writing (false after a minute: the parent would have killed it).
pub fn alive() -> bool {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed() < CHILD_LIFETIME
}

/// A child's whole life when this process is the child for `role`: `setup` (given the target)
/// makes the writer, called with `true` for the new version and `false` for the old one, which
/// then alternates (new first) until the parent kills it. Otherwise nothing.
pub fn serve<W: FnMut(&Path, bool)>(role: &str, setup: impl FnOnce(&Path) -> W) {
    let Some(target) = child(role) else { return };
    let mut write = setup(&target);
    ready(&target);
    while alive() {
        write(&target, true);
        write(&target, false);
    }
}

/// The parent side for a writer of files that must each be old or new: write the new version
/// and the old one (timing the first), kill a [`serve`]ing child (test `child_test`, `role`) ten
/// times at random moments within four writes, checking after each that every file is old or
/// new ([`assert_old_or_new`]) and `check` (what loading it says); then the old version once
/// more, which must leave exactly the old files and no temporaries ([`leftovers`]).
pub fn check_writer(
    child_test: &str,
    role: &str,
    target: &Path,
    seed: u64,
    mut write: impl FnMut(bool),
    mut check: impl FnMut(usize),
) {
    let started = Instant::now();
    write(true);
    let one = started.elapsed();
    let new = snapshot(target);
    write(false);
    let old = snapshot(target);
    assert_ne!(old, new, "{role}: the two versions must differ");
    let mut saw_new = 0;
    rounds(child_test, role, target, 10, seed, one * 4, |round| {
        let now = snapshot(target);
        assert_old_or_new(&format!("{role}, round {round}"), &now, &old, &new);
        check(round);
        saw_new += now.iter().any(|(n, b)| new.get(n) == Some(b) && old.get(n) != Some(b)) as usize;
    });
    assert!(saw_new > 0, "{role}: no kill landed after the child's first write: the test measured nothing");
    write(false);
    assert_eq!(snapshot(target), old, "{role}: a write after the kills");
    assert_eq!(leftovers(target), Vec::<String>::new(), "{role}: temporaries stay behind");
}

/// Every file under `dir` (recursively), by path relative to it, with its bytes. A file `dir`
/// is listed under its own name.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(at) else { return };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().into_owned();
                out.insert(rel, bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.is_file() {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        out.insert(name, std::fs::read(dir).unwrap_or_default());
    } else {
        walk(dir, dir, &mut out);
    }
    out
}

/// Whether a path names a writer's temporary: `atomic_file`'s `.NAME.ragtune-tmp.*`, or a
/// checkpoint's `.tmp`/`.old` side folder.
pub fn is_temporary(rel: &str) -> bool {
    rel.split('/')
        .any(|part| part.contains(".ragtune-tmp.") || part.ends_with(".tmp") || part.ends_with(".old"))
}

/// Assert that every file of `now` (temporaries aside) is byte for byte the same file of `old`
/// or of `new`, and that no file both versions hold is missing: a file half-written, or one
/// deleted before its replacement was in place, fails.
#[track_caller]
pub fn assert_old_or_new(
    what: &str,
    now: &BTreeMap<String, Vec<u8>>,
    old: &BTreeMap<String, Vec<u8>>,
    new: &BTreeMap<String, Vec<u8>>,
) {
    for (name, bytes) in now.iter().filter(|(n, _)| !is_temporary(n)) {
        let same = |v: &BTreeMap<String, Vec<u8>>| v.get(name) == Some(bytes);
        assert!(
            same(old) || same(new),
            "{what}: {name} ({} bytes) is neither the old nor the new one",
            bytes.len()
        );
    }
    for name in old.keys().filter(|n| new.contains_key(*n)) {
        assert!(now.contains_key(name), "{what}: {name} is missing");
    }
}

/// Every temporary (file or folder) beside `target` and under it — writers put side folders
/// next to their target: what a successful write must have cleaned up.
pub fn leftovers(target: &Path) -> Vec<String> {
    fn walk(base: &Path, at: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(at) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().into_owned();
            if is_temporary(&rel) {
                out.push(rel);
            } else if path.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let parent = target.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    walk(parent, parent, &mut out);
    out
}

/// Run `rounds` kills of a child that runs test `child_test` of this binary as `role` on
/// `target`: each round waits for the child's [`ready`], sleeps a random delay in `0..max_delay`
/// (seeded by `seed`), kills it with SIGKILL and calls `check(round)`.
pub fn rounds(
    child_test: &str,
    role: &str,
    target: &Path,
    rounds: usize,
    seed: u64,
    max_delay: Duration,
    mut check: impl FnMut(usize),
) {
    let mut rng = crate::rng(seed);
    let exe = std::env::current_exe().expect("the test binary's path");
    let marker = ready_marker(target);
    for round in 0..rounds {
        let _ = std::fs::remove_file(&marker);
        let mut child = Command::new(&exe)
            .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env(DIR_ENV, target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("re-execute the test binary");
        let start = Instant::now();
        while !marker.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{role}: the child exited ({status}) before it was ready");
            }
            assert!(start.elapsed() < Duration::from_secs(120), "{role}: the child never got ready");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(max_delay.mul_f64(rng.random_range(0.0..1.0)));
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        let _ = std::fs::remove_file(&marker);
        check(round);
    }
}
