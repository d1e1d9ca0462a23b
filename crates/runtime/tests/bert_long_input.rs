//! Issue 17, item 2, for BERT: a 20 MB line is cut before it is tokenized, so embedding it costs
//! memory in proportion to the embedder's `max_tokens`, not to the line, and gives the same
//! vector as a short prefix of the line (the line is the prefix repeated: its first tokens are
//! the prefix's). Its own binary, with the counting allocator, so the peak is this test's alone.

mod common;

use common::fixtures;
use ragtune_compute::{DType, Device};
use ragtune_runtime::BertEmbedder;
use ragtune_tests::fuzz::{CountingAlloc, alloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// `f`'s result and the most bytes it held live at once beyond what was live before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = alloc::live();
    alloc::reset_peak();
    let out = f();
    (out, alloc::peak().saturating_sub(before))
}

#[test]
fn a_huge_line_embeds_in_bounded_memory_as_its_prefix_does() {
    let emb = BertEmbedder::from_dir(&fixtures().join("bert-mini/model"), DType::F32, Device::Cpu).unwrap();
    let sentence = "The robot watered twelve plants in the greenhouse, then it rested. ";
    // 10 sentences are ~130 tokens, over the fixture's 64: the prefix already fills the input.
    let prefix = sentence.repeat(10);
    let huge = sentence.repeat(20_000_000 / sentence.len());
    assert!(huge.len() > 19_000_000);

    // The reference ids: the whole prefix tokenized by the plain encoder, cut by hand to
    // max_tokens keeping the final [SEP].
    let mut want = emb.tokenizer.encode(&prefix, true).unwrap();
    assert!(want.len() > emb.max_tokens, "the prefix must fill the input ({} tokens)", want.len());
    let sep = *want.last().unwrap();
    want.truncate(emb.max_tokens - 1);
    want.push(sep);
    assert_eq!(emb.tokenize(&huge).unwrap(), want);

    // Once first, so one-time set-up (thread pools, lazy tables) counts in neither peak.
    emb.embed(&[&prefix], 1).unwrap();
    let (small, small_peak) = peak_of(|| emb.embed(&[&prefix], 1).unwrap());
    let started = std::time::Instant::now();
    let (big, big_peak) = peak_of(|| emb.embed(&[&huge], 1).unwrap());
    let secs = started.elapsed().as_secs_f64();
    println!("20 MB line: peak {big_peak} B above the text ({small_peak} B for the prefix), {secs:.3} s");
    assert_eq!(big, small, "the huge line's vector is its prefix's");
    // Tokenizing the whole line would hold tens of bytes per byte of it (hundreds of MB); cut,
    // it holds what the prefix's embedding does, plus the cut head (max_tokens · 32 bytes).
    assert!(
        big_peak <= small_peak + 2 * emb.max_tokens * 32 + (1 << 20),
        "the huge line held {big_peak} B at its peak, the prefix {small_peak} B"
    );
}
