//! The crash-test harness (`ragtune_tests::kill`) itself: a writer that overwrites a file in
//! place (`std::fs::write`, not atomic) is caught leaving a torn file, and one that renames a
//! complete temporary into place is not — so the writers' kill tests can fail.

use std::path::Path;
use std::time::{Duration, Instant};

use ragtune_tests::kill;

const SIZE: usize = 16 << 20;

fn version(v: u8) -> Vec<u8> {
    vec![v; SIZE]
}

fn write_in_place(target: &Path, v: u8) {
    std::fs::write(target.join("data.bin"), version(v)).unwrap();
}

fn write_by_rename(target: &Path, v: u8) {
    let tmp = target.join(".data.bin.ragtune-tmp.test");
    std::fs::write(&tmp, version(v)).unwrap();
    std::fs::rename(&tmp, target.join("data.bin")).unwrap();
}

#[test]
fn child_writes() {
    kill::serve("in-place", |_| |target: &Path, new: bool| write_in_place(target, 1 + new as u8));
    kill::serve("rename", |_| |target: &Path, new: bool| write_by_rename(target, 1 + new as u8));
}

/// Kill `role`'s writer 8 times; the number of rounds that found a torn file.
fn torn_rounds(role: &str, write: fn(&Path, u8)) -> usize {
    let target = std::env::temp_dir().join(format!("ragtune-kill-engine-{role}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(&target).unwrap();
    let started = Instant::now();
    write(&target, 2);
    let one = started.elapsed();
    let new = kill::snapshot(&target);
    write(&target, 1);
    let old = kill::snapshot(&target);
    let mut torn = 0;
    kill::rounds("child_writes", role, &target, 8, 7, one * 3 + Duration::from_millis(1), |_| {
        let now = kill::snapshot(&target);
        let caught = std::panic::catch_unwind(|| kill::assert_old_or_new(role, &now, &old, &new));
        torn += caught.is_err() as usize;
    });
    std::fs::remove_dir_all(&target).unwrap();
    torn
}

#[test]
fn an_in_place_writer_is_caught_and_a_renaming_one_is_not() {
    assert!(torn_rounds("in-place", write_in_place) > 0, "a torn file went unnoticed");
    assert_eq!(torn_rounds("rename", write_by_rename), 0);
}
