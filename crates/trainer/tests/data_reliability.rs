//! Issue 17: training data a user would call normal is accepted (a one-token line is skipped
//! and counted, not fatal), and a huge line costs memory in proportion to max_len (the text is
//! cut before it is tokenized, and the cut does not change the ids kept).

mod common;

use common::{tokenizer, write_jsonl};
use ragtune_trainer::data::{read_jsonl, read_jsonl_counted};

#[test]
fn a_one_token_line_is_skipped_and_counted() {
    let tok = tokenizer();
    // Does this tokenizer add a BOS? Then "}" alone is 2 tokens and has something to learn;
    // an empty text is the one-token case either way.
    let one = if tok.encode("}", true).unwrap().len() <= 1 { "}" } else { "" };
    let mut text = String::new();
    for i in 0..34 {
        text.push_str(&format!("{{\"text\": \"The robot {i} walks home.\"}}\n"));
    }
    text.push_str(&format!("{{\"text\": \"{one}\"}}\n"));
    let p = write_jsonl("short", &text);
    let data = read_jsonl_counted(&p, &tok, None, 512).unwrap();
    assert_eq!((data.examples.len(), data.skipped, data.lines), (34, 1, 35));
    let note = data.skipped_note().unwrap();
    assert!(note.starts_with("skipped 1 of 35 examples: too short"), "{note}");
    // Every line skipped: an error naming the file.
    std::fs::write(&p, format!("{{\"text\": \"{one}\"}}\n{{\"text\": \"{one}\"}}\n")).unwrap();
    let e = read_jsonl(&p, &tok, None, 512).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()) && e.contains("all 2 lines"), "{e}");
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn a_huge_line_is_cut_before_tokenizing_and_keeps_the_same_first_tokens() {
    let tok = tokenizer();
    let sentence = "The quick robot walks to the old library and reads a book about rivers. ";
    let huge = sentence.repeat(2_000_000 / sentence.len());
    let p = write_jsonl("huge", &format!("{}\n", serde_json::json!({ "text": huge })));
    let start = std::time::Instant::now();
    let ex = read_jsonl(&p, &tok, None, 32).unwrap();
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&p).unwrap();
    let expected: Vec<i32> =
        tok.encode(&huge[..4000], true).unwrap().into_iter().take(32).map(|t| t as i32).collect();
    assert_eq!(ex[0].ids, expected);
    // Tokenizing 2 MB takes seconds in a debug build; 1 KB takes milliseconds.
    assert!(secs < 2.0, "{secs} s: the whole line was tokenized");
}

#[test]
fn skipping_draws_equals_taking_them() {
    use ragtune_trainer::data::Sampler;
    for k in [0usize, 1, 4, 5, 6, 10, 23] {
        let mut a = Sampler::new(5, 7);
        let all = a.take(k + 9);
        let mut b = Sampler::new(5, 7);
        b.skip(k as u64);
        assert_eq!(b.take(9), all[k..], "k = {k}");
    }
    Sampler::new(0, 1).skip(u64::MAX);
}
