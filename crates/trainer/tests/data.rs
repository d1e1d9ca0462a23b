//! JSONL training data: prompt masking, EOS on completions, truncation, right-padded batches,
//! the seeded order, and errors naming the line.

mod common;

use common::{tokenizer, write_jsonl};
use ragtune_trainer::data::{Example, Sampler, collate, pack, read_jsonl};

#[test]
fn prompts_are_masked_and_completions_end_with_eos() {
    let tok = tokenizer();
    let p = write_jsonl(
        "ok",
        "{\"prompt\": \"Question: why?\", \"completion\": \" Because.\"}\n\n{\"text\": \"The robot.\"}\n",
    );
    let ex = read_jsonl(&p, &tok, Some(1), 512).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(ex.len(), 2);
    let prompt: Vec<i32> =
        tok.encode("Question: why?", true).unwrap().into_iter().map(|t| t as i32).collect();
    let completion: Vec<i32> =
        tok.encode(" Because.", false).unwrap().into_iter().map(|t| t as i32).collect();
    assert_eq!(ex[0].ids, [prompt.clone(), completion.clone(), vec![1]].concat());
    assert!(ex[0].labels[..prompt.len()].iter().all(|&l| l == -100));
    assert_eq!(ex[0].labels[prompt.len()..], [completion, vec![1]].concat()[..]);
    assert_eq!(ex[1].ids, ex[1].labels);

    let batch = collate(&[&ex[0], &ex[1]], 3).unwrap();
    let seq = ex[0].ids.len().max(ex[1].ids.len());
    assert_eq!((batch.batch, batch.seq), (2, seq));
    // Row 1 is right-padded with id 3; its pads and its last real token predict nothing.
    let row1 = &batch.ids[seq..];
    assert!(row1[ex[1].ids.len()..].iter().all(|&t| t == 3));
    assert!(batch.targets[seq + ex[1].ids.len() - 1..].iter().all(|&t| t == -100));
    assert_eq!(batch.targets[seq], ex[1].ids[1]);
}

#[test]
fn bad_lines_are_named() {
    let tok = tokenizer();
    let p = write_jsonl("bad", "{\"text\": \"fine\"}\n{\"prompt\": \"no completion\"}\n");
    let err = read_jsonl(&p, &tok, None, 512).unwrap_err().to_string();
    assert!(err.contains(":2") && err.contains("completion"), "{err}");
    std::fs::write(&p, "{\"prompt\": \"a long prompt that fills everything\", \"completion\": \" x\"}\n")
        .unwrap();
    let err = read_jsonl(&p, &tok, None, 3).unwrap_err().to_string();
    assert!(err.contains("nothing to learn within 3 tokens"), "{err}");
    std::fs::write(&p, "not json\n").unwrap();
    let err = read_jsonl(&p, &tok, None, 8).unwrap_err().to_string();
    assert!(err.contains(":1") && err.contains("JSON"), "{err}");
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn the_sampler_visits_every_example_once_per_epoch_and_repeats_with_its_seed() {
    let mut a = Sampler::new(5, 7);
    let epoch: Vec<usize> = a.take(5);
    let mut sorted = epoch.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
    let next = a.take(7);
    assert_eq!(next.len(), 7);
    let mut b = Sampler::new(5, 7);
    assert_eq!(b.take(12), [epoch, next].concat());
}

#[test]
fn packing_lays_examples_end_to_end_in_full_rows() {
    let ex = |ids: &[i32], labels: &[i32]| Example { ids: ids.to_vec(), labels: labels.to_vec() };
    let examples = [ex(&[0, 5, 6], &[-100, 5, 6]), ex(&[0, 7], &[0, 7]), ex(&[0, 8, 9, 10], &[0, 8, 9, 10])];
    let rows = pack(&examples, 4);
    // 9 tokens: two rows of 4; the last single token has nothing to predict and is dropped.
    assert_eq!(rows, vec![ex(&[0, 5, 6, 0], &[-100, 5, 6, 0]), ex(&[7, 0, 8, 9], &[7, 0, 8, 9])]);
    assert!(pack(&examples, 0).is_empty());
}

#[test]
fn cutting_an_example_keeps_its_answer_and_first_token() {
    const I: i32 = -100;
    // BOS 1, a 6-token prompt 10..=15, a 2-token answer 20, 21.
    let prompted =
        Example { ids: vec![1, 10, 11, 12, 13, 14, 15, 20, 21], labels: vec![I, I, I, I, I, I, I, 20, 21] };
    let mut e = prompted.clone();
    e.cut_to(5);
    // The first token, the prompt's last token (it predicts the answer's first), the answer.
    assert_eq!(e.ids, vec![1, 14, 15, 20, 21]);
    assert_eq!(e.labels, vec![I, I, I, 20, 21]);
    // Long enough already: untouched.
    let mut e = prompted.clone();
    e.cut_to(9);
    assert_eq!(e, prompted);
    // An answer that cannot fit with a token before it: a plain cut from the end.
    let mut e = prompted.clone();
    e.cut_to(2);
    assert_eq!((e.ids, e.labels), (vec![1, 10], vec![I, I]));
    // A document (every token counted): a plain cut from the end.
    let mut doc = Example { ids: vec![1, 2, 3, 4, 5], labels: vec![1, 2, 3, 4, 5] };
    doc.cut_to(3);
    assert_eq!((doc.ids, doc.labels), (vec![1, 2, 3], vec![1, 2, 3]));
}
