//! The fuzz engine (`ragtune_tests::fuzz`) itself: a panicking reader fails the run naming the
//! case and keeping its input; an allocation past the limit is refused (a fallible one becomes
//! the reader's error); cases are reproducible one by one; the mutations change their input and
//! keep JSON/TOML structure where they say they do.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ragtune_tests::fuzz::{CountingAlloc, alloc, case_rng, file, fuzz, mutate};
use rand::Rng;
use serde_json::json;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn a_panicking_reader_fails_the_run_and_its_input_is_kept() {
    let result = catch_unwind(AssertUnwindSafe(|| {
        fuzz(
            "engine-panics",
            1,
            |rng| file("x.bin", vec![rng.random_range(0..40u8)]),
            |dir| {
                let b = std::fs::read(dir.join("x.bin")).map_err(|e| e.to_string())?;
                assert!(b[0] != 3, "byte 3");
                if b[0] == 0 { Err("zero".to_string()) } else { Ok(()) }
            },
        )
    }));
    let message = result.expect_err("a run with panicking cases must fail");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("cases panicked") && text.contains("byte 3"), "{text}");
    let kept = text.split("input kept in ").nth(1).and_then(|s| s.split(')').next()).expect("a path");
    assert_eq!(std::fs::read(std::path::Path::new(kept).join("x.bin")).unwrap(), [3]);
}

#[test]
fn counts_add_up_and_an_allocation_past_the_limit_is_an_error() {
    let s = fuzz(
        "engine-memory",
        2,
        |rng| file("n", vec![rng.random_range(0..20u8)]),
        |dir| {
            let mut v: Vec<u8> = Vec::new();
            if std::fs::read(dir.join("n")).map_err(|e| e.to_string())?[0] == 1 {
                v.try_reserve(alloc::LIMIT + 1).map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(v.len())
        },
    );
    assert_eq!(s.ok + s.errors, s.cases);
    assert!(s.ok > 0 && s.errors > 0, "{s:?}");
    assert!(alloc::refused() >= s.errors, "every error was a refusal");
    assert!(s.peak < alloc::LIMIT);
    // Outside a case the limit does not apply (setup may load what it needs).
    let mut big: Vec<u8> = Vec::new();
    assert!(big.try_reserve(16 << 20).is_ok());
}

#[test]
fn cases_replay_alone_and_differ_from_each_other() {
    let input = br#"{"n": 12, "name": "abc", "list": [1, 2, 3]}"#;
    let one = |case| mutate::text(&mut case_rng(9, case), input);
    assert_eq!(one(5), one(5));
    let distinct: std::collections::HashSet<Vec<u8>> = (0..50).map(one).collect();
    assert!(distinct.len() > 30, "only {} distinct inputs of 50", distinct.len());
    assert!((0..50).all(|c| one(c) != input), "a mutation left the input as it was");
}

#[test]
fn structural_mutations_keep_the_format_and_change_a_field() {
    let v = json!({"n": 12, "name": "abc", "list": [1, 2, 3], "inner": {"r": 8}});
    let t: toml::Table =
        toml::from_str("[model]\npath = \"m\"\n[eval]\nbootstrap = 1000\nseed = 0\n").unwrap();
    for case in 0..100 {
        let m = mutate::json(&mut case_rng(3, case), &v);
        assert_ne!(m, v, "case {case}");
        let m = mutate::toml_table(&mut case_rng(3, case), &t);
        let text = toml::to_string(&m).expect("a mutated table still serializes");
        assert!(text.parse::<toml::Table>().is_ok() || text.contains("nan"), "case {case}: {text}");
        let b = mutate::bytes(&mut case_rng(3, case), b"0123456789abcdef", 16);
        assert_ne!(b, b"0123456789abcdef", "case {case}");
    }
}
