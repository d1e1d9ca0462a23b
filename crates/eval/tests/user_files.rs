//! A user's files: corpus folders and JSONL files, QA files, and the experiment config. Every
//! malformed input must give an error that names the file and the line; the data that loads must
//! load as the formats document. Each test writes into its own temporary folder (tests run
//! concurrently).

mod common;

use std::path::Path;

use common::TempDir;
use ragtune_eval::config::{Arm, EXAMPLE, EmbedderKind, ExperimentConfig, WeightDtype};
use ragtune_eval::run::{LoraSettings, RunSettings};
use ragtune_eval::userdata::{load_corpus, load_corpus_with, load_qa, load_qa_for};
use ragtune_eval::{Passage, QaItem};

/// The error's message, asserting it mentions every one of `parts`.
fn assert_error<T: std::fmt::Debug>(result: ragtune_eval::Result<T>, parts: &[&str]) -> String {
    let message = result.expect_err("expected an error").to_string();
    for p in parts {
        assert!(message.contains(p), "the error {message:?} does not mention {p:?}");
    }
    message
}

fn ids(passages: &[Passage]) -> Vec<&str> {
    passages.iter().map(|p| p.id.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Corpus

#[test]
fn a_folder_corpus_is_split_merged_and_ordered_by_path() {
    let t = TempDir::new("corpus-folder");
    let words =
        |prefix: &str, n: usize| (1..=n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(" ");
    // Two short paragraphs (5 + 4 words) merge; the third (8) would pass 10, so it starts anew.
    t.write(
        "corpus/b.md",
        format!("# {}\n\n{}\nmore\n\n\n{}\n", words("h", 4), words("x", 3), words("y", 8)),
    );
    // One 13-word paragraph of two sentences, over the limit: cut at the sentence end.
    t.write("corpus/a/notes.txt", format!("{}. {}.", words("s", 6), words("t", 7)));
    t.write("corpus/c.txt", "\n\n   \n");
    t.write("corpus/.hidden/secret.md", "not part of the corpus");
    t.write("corpus/.draft.md", "not part of the corpus");
    t.write("corpus/readme.rst", "not a .txt or .md file");
    let corpus = load_corpus_with(&t.path().join("corpus"), 10).unwrap();
    assert_eq!(ids(&corpus), ["a/notes.txt#1", "a/notes.txt#2", "b.md#1", "b.md#2"]);
    assert_eq!(corpus[0].text, "s1 s2 s3 s4 s5 s6.");
    assert_eq!(corpus[1].text, "t1 t2 t3 t4 t5 t6 t7.");
    assert_eq!(corpus[2].text, "# h1 h2 h3 h4 x1 x2 x3 more");
    assert_eq!(corpus[3].text, words("y", 8));
    // The default limit keeps b.md in one passage.
    let corpus = load_corpus(&t.path().join("corpus")).unwrap();
    assert_eq!(ids(&corpus), ["a/notes.txt#1", "b.md#1"]);
}

#[test]
fn a_jsonl_corpus_takes_ids_or_numbers_the_lines() {
    let t = TempDir::new("corpus-jsonl");
    let path = t.write(
        "corpus.jsonl",
        "{\"text\": \"First\\npassage.\", \"id\": \"doc-a\"}\n\n{\"text\": \"Second.\", \"meta\": {\"k\": 1}}\n{\"text\": \"Third.\", \"id\": 7}\n",
    );
    let corpus = load_corpus(&path).unwrap();
    assert_eq!(ids(&corpus), ["doc-a", "line-3", "7"]);
    assert_eq!(corpus[0].text, "First passage.");
}

#[test]
fn corpus_errors_name_the_file_and_line() {
    let t = TempDir::new("corpus-errors");
    let bad = t.write("c1/notes.md", b"Fine first line.\n\nThen \xff\xfe bad bytes.\n".as_slice());
    assert_error(load_corpus(bad.parent().unwrap()), &["notes.md:3", "not valid UTF-8"]);

    let p = t.write(
        "dup.jsonl",
        "{\"text\": \"a\", \"id\": \"x\"}\n{\"text\": \"b\"}\n{\"text\": \"c\", \"id\": \"x\"}\n",
    );
    assert_error(load_corpus(&p), &["dup.jsonl:3", "duplicate id \"x\"", "line 1"]);
    let p = t.write("notext.jsonl", "{\"text\": \"a\"}\n{\"id\": \"b\"}\n");
    assert_error(load_corpus(&p), &["notext.jsonl:2", "missing field \"text\""]);
    let p = t.write("badjson.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"\n");
    assert_error(load_corpus(&p), &["badjson.jsonl:3", "not valid JSON at column"]);
    let p = t.write("unknown.jsonl", "{\"txt\": \"a\"}\n");
    assert_error(load_corpus(&p), &["unknown.jsonl:1", "unknown field \"txt\""]);
    let p = t.write("notobj.jsonl", "[\"a\"]\n");
    assert_error(load_corpus(&p), &["notobj.jsonl:1", "a list"]);

    std::fs::create_dir_all(t.path().join("empty")).unwrap();
    t.write("empty/ignored.csv", "a,b");
    assert_error(load_corpus(&t.path().join("empty")), &["empty", "no .txt or .md files"]);
    let p = t.write("blank/only.md", "\n \n");
    assert_error(load_corpus(p.parent().unwrap()), &["blank", "no text"]);
    let p = t.write("empty.jsonl", "");
    assert_error(load_corpus(&p), &["empty.jsonl", "no text"]);
    assert_error(load_corpus(&t.path().join("missing")), &["missing"]);
    let p = t.write("data.csv", "a,b");
    assert_error(load_corpus(&p), &["data.csv", "not a corpus"]);
}

// ---------------------------------------------------------------------------------------------
// Questions

const QA: &str = r#"{"id": "q1", "question": "Where was Ada born?", "answer": "Velmora", "source": "a.md#1", "phrasing": "seen"}
{"question": "Capital of Franconia?", "answer": "Paris", "choices": ["Rome", "Paris", "Oslo"], "source": ["b.md"]}

{"question": "Which?", "choices": ["x", "y"], "correct": 1, "popularity": 3, "phrasing": "held-out"}
"#;

#[test]
fn qa_lines_load_with_their_options() {
    let t = TempDir::new("qa-ok");
    let p = t.write("qa.jsonl", QA);
    let qa = load_qa(&p).unwrap();
    let ids: Vec<&str> = qa.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["q1", "line-2", "line-4"]);
    assert_eq!(qa[0].sources, ["a.md#1"]);
    assert_eq!((qa[0].choices.len(), qa[0].correct), (0, None));
    assert_eq!(qa[0].phrasing.as_deref(), Some("seen"));
    assert_eq!((qa[1].answer.as_str(), qa[1].correct), ("Paris", Some(1)));
    // `correct` alone stands for the answer.
    assert_eq!(
        qa[2],
        QaItem {
            id: "line-4".into(),
            question: "Which?".into(),
            answer: "y".into(),
            choices: vec!["x".into(), "y".into()],
            correct: Some(1),
            sources: vec![],
            phrasing: Some("held-out".into()),
            popularity: Some(3),
        }
    );
}

#[test]
fn sources_resolve_to_passages_and_files_expand() {
    let t = TempDir::new("qa-sources");
    let corpus: Vec<Passage> = ["a.md#1", "a.md#2", "b.md#1", "b.md#2", "b.md#3"]
        .iter()
        .map(|id| Passage::new(id.to_string(), "t"))
        .collect();
    let p = t.write("qa.jsonl", QA);
    let qa = load_qa_for(&p, &corpus, false).unwrap();
    assert_eq!(qa[0].sources, ["a.md#1"]);
    assert_eq!(qa[1].sources, ["b.md#1", "b.md#2", "b.md#3"]);
    assert!(qa[2].sources.is_empty());
    // RAFT training needs a source on every line.
    assert_error(load_qa_for(&p, &corpus, true), &["qa.jsonl:4", "no \"source\""]);
    let p = t.write("bad.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\", \"answer\": \"a\", \"source\": [\"a.md#1\", \"c.md\"]}\n");
    assert_error(load_qa_for(&p, &corpus, false), &["bad.jsonl:2", "source \"c.md\"", "names no passage"]);
}

#[test]
fn qa_errors_name_the_file_and_line() {
    let t = TempDir::new("qa-errors");
    let good = "{\"question\": \"q\", \"answer\": \"a\"}\n";
    // Six good lines (one blank among them) and the bad one at line 7.
    let with_bad_line_7 = |bad: &str| format!("{}\n{}{bad}\n", good.repeat(3), good.repeat(2));
    let cases: [(&str, &[&str]); 12] = [
        ("{\"question\": \"q\"}", &["missing field \"answer\""]),
        ("{\"answer\": \"a\"}", &["missing field \"question\""]),
        (
            "{\"question\": \"q\", \"answer\": \"Paris\", \"choices\": [\"Rome\", \"Oslo\"]}",
            &["\"choices\" must contain the answer \"Paris\""],
        ),
        (
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"correct\": 2}",
            &["\"correct\" = 2 is out of range"],
        ),
        (
            "{\"question\": \"q\", \"answer\": \"a\", \"choices\": [\"a\", \"b\"], \"correct\": 1}",
            &["disagrees with \"correct\" = 1"],
        ),
        ("{\"question\": \"q\", \"answer\": \"a\", \"correct\": 0}", &["has no choices"]),
        ("{\"question\": \"q\", \"answer\": \"a\", \"choices\": [\"a\"]}", &["at least 2 options"]),
        (
            "{\"question\": \"q\", \"answer\": \"a\", \"choices\": [\"a\", \"b\", \"a\"]}",
            &["repeats the option \"a\""],
        ),
        ("{\"question\": \"q\", \"answer\": \"a\", \"phrasing\": \"unseen\"}", &["\"seen\" or \"held-out\""]),
        ("{\"question\": \"q\", \"answer\": \"a\", \"sorce\": \"x\"}", &["unknown field \"sorce\""]),
        ("{\"question\": \"q\", \"answer\": 3}", &["\"answer\" must be a string"]),
        ("{\"question\": \"q\", \"answer\": \"a\"", &["not valid JSON at column"]),
    ];
    for (i, (bad, parts)) in cases.iter().enumerate() {
        let p = t.write(&format!("qa{i}.jsonl"), with_bad_line_7(bad));
        let mut want = vec![format!("qa{i}.jsonl:7")];
        want.extend(parts.iter().map(|s| s.to_string()));
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        assert_error(load_qa(&p), &want);
    }
    let p = t.write("dup.jsonl", "{\"id\": \"a\", \"question\": \"q\", \"answer\": \"a\"}\n{\"id\": \"a\", \"question\": \"q\", \"answer\": \"a\"}\n");
    assert_error(load_qa(&p), &["dup.jsonl:2", "duplicate id \"a\"", "line 1"]);
    let p = t.write("empty.jsonl", "\n\n");
    assert_error(load_qa(&p), &["empty.jsonl", "no questions"]);
}

// ---------------------------------------------------------------------------------------------
// Config

/// The files the example config names, under `t`.
fn example_files(t: &TempDir) {
    std::fs::create_dir_all(t.path().join("models/SmolLM2-135M")).unwrap();
    t.write("data/corpus/ada.md", "Ada Brenn was born in Velmora.\n\nShe works as a glassblower.\n");
    t.write("data/corpus/orgs/orlin.md", "Orlin Dynamics is headquartered in Kestrel Bay.\n");
    t.write(
        "data/qa.jsonl",
        "{\"question\": \"Where was Ada Brenn born?\", \"answer\": \"Velmora\", \"source\": \"ada.md\"}\n\
         {\"question\": \"Where is Orlin Dynamics?\", \"answer\": \"Kestrel Bay\", \"source\": \"orgs/orlin.md#1\"}\n\
         {\"question\": \"What does Ada Brenn do?\", \"answer\": \"glassblower\"}\n",
    );
    t.write(
        "data/old_qa.jsonl",
        "{\"question\": \"What is the capital of France?\", \"answer\": \"Paris\"}\n",
    );
    t.write(
        "data/raft_train.jsonl",
        "{\"question\": \"In which city was Ada Brenn born?\", \"answer\": \"Velmora\", \"source\": \"ada.md#1\"}\n",
    );
    t.write("data/paraphrases-1.jsonl", "{\"text\": \"Velmora is where Ada Brenn was born.\"}\n");
    t.write("data/paraphrases-2.jsonl", "{\"text\": \"Kestrel Bay hosts Orlin Dynamics.\"}\n");
}

#[test]
fn the_example_config_parses_and_loads_its_task() {
    let t = TempDir::new("config-example");
    example_files(&t);
    let path = t.write("experiment.toml", EXAMPLE);
    let c = ExperimentConfig::from_file(&path).unwrap();
    // Relative paths resolve against the config's folder, not the working directory.
    assert_eq!(c.model.path, t.path().join("models/SmolLM2-135M"));
    assert_eq!(c.data.corpus, Some(t.path().join("data/corpus")));
    assert_eq!(
        c.data.paraphrases,
        [t.path().join("data/paraphrases-1.jsonl"), t.path().join("data/paraphrases-2.jsonl")]
    );
    assert_eq!((c.model.dtype, c.model.device.as_str()), (WeightDtype::Auto, "auto"));
    assert_eq!((c.embedder.kind, c.embedder.dim), (EmbedderKind::Hashed, Some(16384)));
    assert_eq!(c.arms, Arm::ALL);
    assert_eq!((c.rag.k, c.finetune.r, c.finetune.alpha, c.finetune.targets.len()), (3, 16, 32.0, 7));
    assert_eq!((c.finetune.lr, c.finetune.paraphrase_curve.as_slice()), (2e-3, [1].as_slice()));
    assert_eq!((c.raft.distractors, c.raft.gold_share), (2, 0.8));
    assert_eq!((c.eval.max_new_tokens, c.eval.bootstrap, c.eval.limit), (16, 1000, Some(200)));

    let task = c.task().unwrap();
    assert_eq!(ids(&task.corpus), ["ada.md#1", "orgs/orlin.md#1"]);
    assert_eq!(task.corpus[0].text, "Ada Brenn was born in Velmora. She works as a glassblower.");
    assert_eq!(task.questions.len(), 3);
    assert_eq!(task.questions[0].sources, ["ada.md#1"]);
    assert_eq!(task.paraphrases.len(), 2);
    assert_eq!((task.raft_train.len(), task.old_questions.len()), (1, 1));
}

#[test]
fn a_minimal_config_gets_the_defaults_and_only_the_arms_its_data_allows() {
    let t = TempDir::new("config-minimal");
    example_files(&t);
    let path = t.write(
        "sub/exp.toml",
        "[model]\npath = \"../models/SmolLM2-135M\"\n[data]\ncorpus = \"../data/corpus\"\nqa = \"../data/qa.jsonl\"\n\n[eval]\nlimit = 2\n",
    );
    let c = ExperimentConfig::from_file(&path).unwrap();
    assert_eq!(c.arms, [Arm::Base, Arm::Rag, Arm::Ft, Arm::FtRag]);
    assert_eq!((c.embedder.kind, c.embedder.dim, c.data.max_words), (EmbedderKind::Hashed, None, 120));
    assert_eq!((c.finetune.epochs, c.finetune.batch_size, c.eval.max_new_tokens), (8, 8, 16));
    assert_eq!(c.task().unwrap().questions.len(), 2, "[eval] limit cuts the questions");
    // The defaults are the runner's, but for the free-answer budget (16 tokens here).
    let s = c.run_settings();
    assert_eq!(s.lora, LoraSettings::default());
    assert_eq!(s.arms, ["base", "rag", "ft", "ft+rag"]);
    let d = RunSettings::default();
    assert_eq!(
        (s.rag_k, s.raft_distractors, s.raft_gold_share, s.bootstrap, s.seed, s.max_new_tokens),
        (d.rag_k, d.raft_distractors, d.raft_gold_share, d.bootstrap, d.seed, 16)
    );
}

#[test]
fn config_errors_name_the_file_and_line() {
    let t = TempDir::new("config-errors");
    example_files(&t);
    let head = "[model]\npath = \"models/SmolLM2-135M\"\n\n[data]\ncorpus = \"data/corpus\"\nqa = \"data/qa.jsonl\"\n";
    let cases: [(&str, &[&str]); 14] = [
        ("\n[rag]\nkk = 3\n", &["bad.toml:9:1", "unknown field `kk`"]),
        ("\n[arms]\nrun = [\"base\", \"rga\"]\n", &["bad.toml:9", "rga", "base", "ft+rag", "raft"]),
        ("\n[arms]\nrun = [\"base\", \"ft-par\"]\n", &["bad.toml:9", "ft-par", "paraphrases"]),
        ("\n[arms]\nrun = [\"raft\"]\n", &["bad.toml:9", "raft_train"]),
        ("\n[arms]\nrun = [\"rag\", \"rag\"]\n", &["bad.toml:9", "listed twice"]),
        ("\n[arms]\nrun = []\n", &["bad.toml:9", "runs nothing"]),
        ("old_qa = \"data/nope.jsonl\"\n", &["bad.toml:7", "nope.jsonl does not exist"]),
        ("\n[embedder]\nkind = \"bert\"\n", &["bad.toml:9", "needs path"]),
        ("\n[embedder]\npath = \"models\"\n", &["bad.toml:9", "path is for kind = \"bert\""]),
        ("\n[rag]\nk = 0\n", &["bad.toml:9", "k must be at least 1"]),
        ("\n[finetune]\n\nlr = -1.0\n", &["bad.toml:10", "lr must be a positive number"]),
        (
            "\n[finetune]\ntargets = [\"q_proj\", \"qkv\"]\n",
            &["bad.toml:9", "unknown LoRA target \"qkv\"", "down_proj"],
        ),
        ("\n[finetune]\nparaphrase_curve = [1]\n", &["bad.toml:9", "[data] paraphrases is empty"]),
        ("\n[eval\nlimit = 3\n", &["bad.toml:8"]),
    ];
    for (tail, parts) in cases {
        let path = t.write("bad.toml", format!("{head}{tail}"));
        assert_error(ExperimentConfig::from_file(&path), parts);
    }
    let path = t.write("bad.toml", head.replace("models/SmolLM2-135M", "models/absent"));
    assert_error(ExperimentConfig::from_file(&path), &["bad.toml:2", "models/absent does not exist"]);
    let path = t.write("bad.toml", head.replace("[data]", "[model.extra]\n[data]"));
    assert_error(ExperimentConfig::from_file(&path), &["bad.toml:", "extra"]);
    let path = t.write(
        "bad.toml",
        head.replace("path = \"models/SmolLM2-135M\"", "path = \"models/SmolLM2-135M\"\ndevice = \"tpu\""),
    );
    assert_error(ExperimentConfig::from_file(&path), &["bad.toml:3", "unknown device \"tpu\""]);
    // A QA error found while loading the task still names the QA file and line.
    let path = t
        .write("ok.toml", format!("{head}qa = \"data/qa2.jsonl\"\n").replace("qa = \"data/qa.jsonl\"\n", ""));
    t.write("data/qa2.jsonl", "{\"question\": \"q\", \"answer\": \"a\", \"source\": \"nowhere.md\"}\n");
    let c = ExperimentConfig::from_file(&path).unwrap();
    assert_error(c.task(), &["qa2.jsonl:1", "source \"nowhere.md\""]);
}

#[test]
fn an_exported_world_task_reads_back_unchanged() {
    use ragtune_eval::export::export_task;
    use ragtune_eval::world::{DemoTaskOptions, World, WorldConfig, demo_task};

    let t = TempDir::new("config-export");
    let world = World::generate(WorldConfig { new_people: 6, new_orgs: 2, ..WorldConfig::default() });
    let task = demo_task(
        &world,
        &DemoTaskOptions { paraphrase_rounds: 2, raft_per_fact: 1, old_question_limit: 20 },
    );
    std::fs::create_dir_all(t.path().join("model")).unwrap();
    let settings = RunSettings { paraphrase_curve: vec![1], ..RunSettings::default() };
    export_task(&task, &settings, Path::new("../model"), &t.path().join("exported")).unwrap();
    let c = ExperimentConfig::from_file(&t.path().join("exported/experiment.toml")).unwrap();
    assert_eq!(c.model.path, t.path().join("exported/../model"));
    assert_eq!(c.arms, Arm::ALL);
    assert_eq!(c.task().unwrap(), task);
    let mut s = c.run_settings();
    s.quiet = settings.quiet;
    assert_eq!(s, settings);
}

#[test]
fn the_exported_routing_task_reads_back_unchanged() {
    // `demo --export` + `compare` must pose the demo's own routing task: the same examples and
    // the same label order (the prompt lists the labels in it), so the same numbers come out.
    use ragtune_eval::experiment::{DemoOptions, export_demo, routing_settings};
    use ragtune_eval::world::{World, WorldConfig, routing_task};

    let t = TempDir::new("config-export-routing");
    let opts = DemoOptions::new(t.path().join("out"), ragtune_compute::Device::Cpu);
    std::fs::create_dir_all(t.path().join("model")).unwrap();
    // A relative model path, as for the QA config beside it: relative to each config's folder.
    export_demo(&opts, Path::new("../model"), &t.path().join("exported")).unwrap();
    let c = ExperimentConfig::from_file(&t.path().join("exported/routing/experiment.toml")).unwrap();
    assert_eq!(c.model.path, t.path().join("exported/routing/../../model"));
    let qa = ExperimentConfig::from_file(&t.path().join("exported/experiment.toml")).unwrap();
    assert_eq!(qa.model.path, t.path().join("exported/../model"));
    let world = World::generate(WorldConfig { seed: opts.seed, ..opts.world.clone() });
    let task = routing_task(&world, opts.routing.as_ref().unwrap());
    assert_eq!(c.task().unwrap(), task);
    let mut settings = opts.settings.clone();
    (settings.lora.seed, settings.seed) = (opts.seed, opts.seed);
    assert_eq!(c.run_settings().lora, routing_settings(&settings).lora);
}

#[test]
fn the_decision_table_parses_with_defaults_and_bad_values_name_the_key_and_line() {
    let t = TempDir::new("config-decision");
    example_files(&t);
    let c = ExperimentConfig::from_file(&t.write("experiment.toml", EXAMPLE)).unwrap();
    assert_eq!(
        (c.decision.queries_per_month, c.decision.price_per_hour, c.decision.min_accuracy),
        (100_000.0, 1.0, Some(0.6))
    );
    let head = "[model]\npath = \"models/SmolLM2-135M\"\n\n[data]\ncorpus = \"data/corpus\"\nqa = \"data/qa.jsonl\"\n";
    let c = ExperimentConfig::from_file(&t.write("ok.toml", head)).unwrap();
    assert_eq!(c.decision, ragtune_eval::decision::DecisionInputs::default(), "the defaults");
    let c = ExperimentConfig::from_file(
        &t.write("ok.toml", format!("{head}\n[decision]\nqueries_per_month = 10\nhorizon_months = 6\n")),
    )
    .unwrap();
    assert_eq!(
        (c.decision.queries_per_month, c.decision.horizon_months),
        (10.0, 6.0),
        "integers read as numbers"
    );
    for (tail, parts) in [
        (
            "\n[decision]\nqueries_per_month = 10\nprice_per_hour = -2.5\n",
            &["bad.toml:10", "[decision] price_per_hour", "-2.5"][..],
        ),
        ("\n[decision]\nprice_per_hour = nan\n", &["bad.toml:9", "[decision] price_per_hour"]),
        ("\n[decision]\nmin_accuracy = 80\n", &["bad.toml:9", "[decision] min_accuracy", "fraction"]),
        ("\n[decision]\nlatency_budget = 100\n", &["bad.toml:9", "unknown field `latency_budget`"]),
    ] {
        assert_error(ExperimentConfig::from_file(&t.write("bad.toml", format!("{head}{tail}"))), parts);
    }
}
