//! Issue 17, item 7: mutation tests of the user's corpus and question readers
//! (`ragtune_eval::userdata`): a folder corpus (Markdown and text files damaged line by line,
//! cut at odd `max_words`), a JSONL corpus and a QA file (fields given extreme or wrongly typed
//! values, lines duplicated, removed or damaged), the QA file checked against the corpus it
//! cites. Each read gives passages/questions or an error: never a panic, an abort or more than
//! 1 GiB.

use std::cell::Cell;
use std::path::Path;

use ragtune_eval::userdata::{load_corpus_with, load_qa_for};
use ragtune_tests::fuzz::{CountingAlloc, Files, fuzz, mutate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const README: &[u8] = include_bytes!("fixtures/readmes/quillmark.md");
const NOTES: &[u8] =
    b"Tovin Ressa was born in Maelport. He works for Quarn Guild.\n\nQuarn Guild trades salt.\n";
const CORPUS_JSONL: &str = r#"{"id": "a", "text": "Tovin Ressa was born in Maelport."}
{"id": 7, "text": "Quarn Guild trades salt and amber along the coast."}
{"text": "A line without an id."}"#;
const QA: &str = r#"{"id": "q1", "question": "Where was Tovin Ressa born?", "answer": "Maelport", "choices": ["Maelport", "Dunhollow", "Saltmere"], "source": "notes/a.txt", "phrasing": "seen", "popularity": 3, "split": "test"}
{"question": "What does Quarn Guild trade?", "answer": "salt", "sources": ["notes/a.txt#1"], "meta": {"k": [1, 2]}}
{"question": "Which is right?", "choices": ["x", "y"], "correct": 1}"#;

/// Lines of JSONL, each mutated structurally, or the whole text damaged.
fn mutate_jsonl(rng: &mut ChaCha8Rng, text: &str) -> Vec<u8> {
    if rng.random() {
        return mutate::text(rng, text.as_bytes());
    }
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let pick = rng.random_range(0..lines.len());
    let out: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| if i == pick { mutate::json(rng, l).to_string() } else { l.to_string() })
        .collect();
    out.join("\n").into_bytes()
}

/// The folder corpus, one of its two files mutated.
fn folder(rng: &mut ChaCha8Rng) -> Files {
    let (mut readme, mut notes) = (README.to_vec(), NOTES.to_vec());
    if rng.random() {
        readme = mutate::text(rng, README)
    } else {
        notes = mutate::text(rng, NOTES)
    }
    vec![("corpus/docs/quillmark.md".into(), readme), ("corpus/notes/a.txt".into(), notes)]
}

#[test]
fn fuzz_corpus() {
    let max_words = Cell::new(120);
    fuzz(
        "corpus",
        26,
        |rng| {
            max_words.set(*mutate::pick(rng, &[1, 2, 7, 120, usize::MAX]));
            if rng.random() {
                folder(rng)
            } else {
                vec![("corpus.jsonl".into(), mutate_jsonl(rng, CORPUS_JSONL))]
            }
        },
        |dir| match dir.join("corpus").exists() {
            true => load_corpus_with(&dir.join("corpus"), max_words.get()),
            false => load_corpus_with(&dir.join("corpus.jsonl"), max_words.get()),
        },
    );
}

#[test]
fn fuzz_qa() {
    let dir = std::env::temp_dir().join(format!("ragtune-fuzz-qa-corpus-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("notes")).unwrap();
    std::fs::write(dir.join("notes/a.txt"), NOTES).unwrap();
    let corpus = load_corpus_with(&dir, 120).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let path = std::env::temp_dir().join(format!("ragtune-fuzz-qa-{}.jsonl", std::process::id()));
    std::fs::write(&path, QA).unwrap();
    let valid = load_qa_for(&path, &corpus, false);
    std::fs::remove_file(&path).unwrap();
    assert!(
        valid.is_ok(),
        "the unmutated file is valid: {:?} (corpus {:?})",
        valid.err(),
        corpus.iter().map(|p| &p.id).collect::<Vec<_>>()
    );
    let require = Cell::new(false);
    fuzz(
        "qa",
        27,
        |rng| {
            require.set(rng.random());
            vec![("qa.jsonl".into(), mutate_jsonl(rng, QA))]
        },
        |dir: &Path| load_qa_for(&dir.join("qa.jsonl"), &corpus, require.get()),
    );
}
