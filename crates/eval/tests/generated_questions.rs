//! Questions generated from documents ([`ragtune_eval::qgen`]) on a realistic README, and
//! `[data] qa` left out of a config: the questions written to `OUT/generated/qa.jsonl`, read back
//! as a QA file, split into dev and test by source passage; bad corpora named in the error.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use common::TempDir;
use ragtune_eval::config::{ExperimentConfig, generated_qa_path};
use ragtune_eval::qgen::{GenerateSettings, generate};
use ragtune_eval::userdata::{DEFAULT_MAX_WORDS, load_corpus_layout, load_corpus_with, load_qa, load_qa_for};

const README: &str = include_str!("fixtures/readmes/quillmark.md");

/// A second document, so that names and terms find distractors in other passages.
/// (The CLI's tests use the fixture as it is; here one line more gives the team a second mention.)
const NOTES: &str = concat!(
    include_str!("fixtures/notes/tessera.md"),
    "Tessera is maintained by the Harbor Analytics Data Team.\n"
);

fn readme_corpus(t: &TempDir) -> PathBuf {
    t.write("docs/quillmark/README.md", README);
    t.write("docs/tessera/NOTES.md", NOTES);
    t.path().join("docs")
}

#[test]
fn a_readme_yields_questions_whose_answers_are_in_their_source() {
    let t = TempDir::new("readme");
    let dir = readme_corpus(&t);
    let corpus = load_corpus_with(&dir, DEFAULT_MAX_WORDS).unwrap();
    let layout = load_corpus_layout(&dir, DEFAULT_MAX_WORDS).unwrap();
    assert_eq!(corpus.len(), layout.len());
    for (flat, laid) in corpus.iter().zip(&layout) {
        assert_eq!(flat.id, laid.id);
        assert_eq!(flat.text, laid.text.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let settings = GenerateSettings { per_passage: 6, ..GenerateSettings::default() };
    let qs = generate(&layout, &settings);
    assert!(qs.len() >= 12, "{} questions: {qs:#?}", qs.len());
    let by_id: HashMap<&str, &str> = corpus.iter().map(|p| (p.id.as_str(), p.text.as_str())).collect();
    let found = qs.iter().filter(|q| by_id[q.sources[0].as_str()].contains(&q.answer)).count();
    assert_eq!(found, qs.len(), "every answer is a span of its source passage");
    assert!(found * 5 >= qs.len() * 4);
    // The README's facts are asked about; its code, tables, badges, HTML and comments are not.
    let answers: BTreeSet<&str> = qs.iter().map(|q| q.answer.as_str()).collect();
    let expected = ["Quillmark", "Helena Marsh", "Northwind Labs", "2019", "2.4.1", "1.74.0", "180 MB"];
    let hits = expected.iter().filter(|a| answers.contains(*a)).count();
    assert!(hits >= 4, "answers {answers:?}");
    for q in &qs {
        let text = format!("{} {}", q.question, q.choices.join(" "));
        for noise in
            ["badge", "println", "[dependencies]", "TODO", "stable", "Hello", "<", "](", "```", "**", "|"]
        {
            assert!(!text.contains(noise), "{noise:?} in {q:?}");
        }
        assert_eq!(q.choices.len(), 4);
        assert!(!q.question.starts_with("Fill in the blank: Add") && !q.question.contains("cargo add"));
    }
    // At most per_passage questions from one passage.
    let mut per: HashMap<&str, usize> = HashMap::new();
    for q in &qs {
        *per.entry(&q.sources[0]).or_default() += 1;
    }
    assert!(per.values().all(|&n| n <= 6), "{per:?}");
    assert!(generate(&layout, &GenerateSettings::default()).len() <= 3 * layout.len());
}

fn model_dir(t: &TempDir) -> PathBuf {
    let m = t.path().join("model");
    std::fs::create_dir_all(&m).unwrap();
    m
}

fn config(t: &TempDir, data: &str, extra: &str) -> ExperimentConfig {
    model_dir(t);
    let text = format!("[model]\npath = \"model\"\n\n[data]\n{data}\n{extra}");
    let p = t.write("experiment.toml", text);
    ExperimentConfig::from_file(&p).unwrap()
}

#[test]
fn without_qa_the_questions_are_generated_written_and_read_back() {
    let t = TempDir::new("config");
    readme_corpus(&t);
    let c = config(&t, "corpus = \"docs\"", "[generate]\nseed = 3\n");
    assert!(c.data.qa.is_none() && c.generates_questions());
    let out = t.path().join("out");
    let task = c.task_writing(Some(&out)).unwrap();
    let file = generated_qa_path(&out);
    assert_eq!(file, out.join("generated/qa.jsonl"));
    let written = load_qa(&file).unwrap();
    assert_eq!(written.len(), task.questions.len() + task.dev_questions.len());
    assert!(!task.questions.is_empty() && !task.dev_questions.is_empty());
    let text = std::fs::read_to_string(&file).unwrap();
    let dev_lines = text.lines().filter(|l| l.contains("\"split\": \"dev\"")).count();
    assert_eq!(dev_lines, task.dev_questions.len());
    // Every question has its source, the sources are the corpus's passages.
    let reread = load_qa_for(&file, &task.corpus, true).unwrap();
    assert!(reread.iter().all(|q| q.sources.len() == 1));
    // No passage on both sides.
    let dev_sources: BTreeSet<&String> = task.dev_questions.iter().flat_map(|q| &q.sources).collect();
    assert!(task.questions.iter().flat_map(|q| &q.sources).all(|s| !dev_sources.contains(s)));
    // Nothing is written without an output folder, and nothing temporary is left behind.
    let again = c.task().unwrap();
    assert_eq!(again, task, "same config, same task");
    let left: Vec<_> =
        std::fs::read_dir(out.join("generated")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("qa.jsonl")]);

    // The written file, passed back as [data] qa, gives the same test and dev questions.
    let c2 = config(&t, "corpus = \"docs\"\nqa = \"out/generated/qa.jsonl\"", "");
    let task2 = c2.task().unwrap();
    assert_eq!(task2.questions, task.questions);
    assert_eq!(task2.dev_questions, task.dev_questions);
    // [eval] limit cuts the test questions, and the dev ones tuning answers to the same number.
    let c3 = config(&t, "corpus = \"docs\"", "[generate]\nseed = 3\n\n[eval]\nlimit = 2\n");
    let task3 = c3.task().unwrap();
    assert!(task.dev_questions.len() > 2);
    assert_eq!((task3.questions.len(), task3.dev_questions.len()), (2, 2));
    assert_eq!(task3.dev_questions[..], task.dev_questions[..2]);
}

#[test]
fn a_qa_file_is_split_only_when_asked() {
    let t = TempDir::new("user-split");
    let mut qa = String::new();
    for i in 0..20 {
        t.write(&format!("docs/d{i:02}.md"), format!("Fact number {i} about the Orlin Works.\n"));
        qa.push_str(&format!(
            "{{\"id\": \"q{i}\", \"question\": \"What is fact {i}?\", \"answer\": \"{i}\", \"source\": \"d{i:02}.md\"}}\n"
        ));
    }
    t.write("qa.jsonl", &qa);
    let plain = config(&t, "corpus = \"docs\"\nqa = \"qa.jsonl\"", "").task().unwrap();
    assert_eq!((plain.questions.len(), plain.dev_questions.len()), (20, 0));
    let split =
        config(&t, "corpus = \"docs\"\nqa = \"qa.jsonl\"", "[generate]\ndev_share = 0.25\n").task().unwrap();
    assert_eq!(split.dev_questions.len(), 5);
    assert_eq!(split.questions.len(), 15);
}

#[test]
fn bad_corpora_and_settings_are_named() {
    let err = |t: &TempDir, data: &str, extra: &str| {
        model_dir(t);
        let p = t.write("experiment.toml", format!("[model]\npath = \"model\"\n\n[data]\n{data}\n{extra}"));
        match ExperimentConfig::from_file(&p).and_then(|c| c.task()) {
            Ok(_) => panic!("{data} {extra}: no error"),
            Err(e) => e.to_string(),
        }
    };
    // An empty folder, a folder of binary files: the folder is named.
    let t = TempDir::new("bad");
    std::fs::create_dir_all(t.path().join("empty")).unwrap();
    let e = err(&t, "corpus = \"empty\"", "");
    assert!(e.contains("empty") && e.contains("no .txt or .md files"), "{e}");
    t.write("binary/logo.png", [0x89u8, b'P', b'N', b'G', 0, 0, 1, 2]);
    t.write("binary/data.bin", [0u8, 159, 146, 150]);
    let e = err(&t, "corpus = \"binary\"", "");
    assert!(e.contains("binary") && e.contains("no .txt or .md files"), "{e}");
    // A binary file with a text name: that file is named.
    t.write("mixed/notes.md", "Quillmark was started by Helena Marsh in 2019.\n");
    t.write("mixed/image.md", [b'G', b'I', b'F', b'\n', 0u8, 7, 8]);
    let e = err(&t, "corpus = \"mixed\"", "");
    assert!(e.contains("image.md:2") && e.contains("binary"), "{e}");
    // Text with no fact to ask about: the corpus is named.
    t.write("plain/a.md", "# Title\n\n```\ncode only\n```\n\nRun it now.\n");
    let e = err(&t, "corpus = \"plain\"", "");
    assert!(e.contains("plain") && e.contains("no question could be generated"), "{e}");
    // [generate] values that cannot run name the line.
    readme_corpus(&t);
    let e = err(&t, "corpus = \"docs\"", "[generate]\ndev_share = 1.5\n");
    assert!(e.contains("experiment.toml:7") && e.contains("dev_share"), "{e}");
    let e = err(&t, "corpus = \"docs\"", "[generate]\nper_passage = 0\n");
    assert!(e.contains("experiment.toml:7") && e.contains("per_passage"), "{e}");
    let e = err(&t, "corpus = \"docs\"", "[generate]\nper_pasage = 2\n");
    assert!(e.contains("per_pasage"), "{e}");
    let e = err(&t, "corpus = \"docs\"", "[generate]\nmodel = \"models/nope.gguf\"\n");
    assert!(e.contains("experiment.toml:7") && e.contains("nope.gguf does not exist"), "{e}");
}

/// `ft-par` without `[data] paraphrases`: `[generate] model` writes the rounds. The built-in
/// demo model is no instruct model, so its rewrites may all fail the filter: then the error
/// names the model and the fixes; whatever is kept sits under its passage's id, keeps the
/// passage's numbers, and is written to OUT/generated/paraphrases-1.jsonl.
#[test]
fn ft_par_gets_paraphrases_written_by_the_generate_model() {
    let t = TempDir::new("paraphrase");
    readme_corpus(&t);
    let model = ragtune_eval::builtin::write_builtin(&t.path().join("writer")).unwrap();
    let c = config(
        &t,
        "corpus = \"docs\"",
        &format!("\n[arms]\nrun = [\"ft-par\"]\n\n[generate]\nmodel = \"{}\"\n", model.display()),
    );
    let out = t.path().join("out");
    let corpus = load_corpus_with(&t.path().join("docs"), DEFAULT_MAX_WORDS).unwrap();
    match c.task_writing(Some(&out)) {
        Ok(task) => {
            assert_eq!(task.paraphrases.len(), 1);
            let written = std::fs::read_to_string(out.join("generated/paraphrases-1.jsonl")).unwrap();
            assert_eq!(written.lines().count(), task.paraphrases[0].len());
            for p in &task.paraphrases[0] {
                let source = corpus.iter().find(|c| c.id == p.id).expect("a corpus id");
                for number in source.text.split_whitespace().filter(|w| w.chars().all(|c| c.is_ascii_digit()))
                {
                    assert!(p.text.contains(number), "{number} kept in {:?}", p.text);
                }
            }
        }
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("no paraphrase") && e.contains("[data] paraphrases"), "{e}");
        }
    }
    // Without a model, ft-par still needs paraphrases.
    let e = ExperimentConfig::parse(
        "[model]\npath = \"model\"\n\n[data]\ncorpus = \"docs\"\n\n[arms]\nrun = [\"ft-par\"]\n",
        &t.path().join("experiment.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("[generate] model"), "{e}");
}
