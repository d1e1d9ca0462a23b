//! `ragtune demo --export` and `ragtune compare` through the built binary: the export writes a
//! complete compare input (task files, experiment.toml, the base model); a small hand-written
//! experiment on that model runs its arms and writes the report; a malformed config or QA line
//! fails naming the file and line.

mod common;

use common::{compare_json, fresh_dir, ragtune, stderr};

const CORPUS: &str = r#"{"id": "a", "text": "Here are some facts about Tovin Ressa. Tovin Ressa was born in Maelport. Tovin Ressa works for Quarn Guild."}
{"id": "b", "text": "This is a short profile of Ilsa Werrin. Ilsa Werrin was born in Dunhollow. Ilsa Werrin works for Pellow Labs."}
{"id": "c", "text": "Here are some facts about Orrin Vaske. Orrin Vaske was born in Saltmere. Orrin Vaske works for Quarn Guild."}
"#;

const QA: &str = r#"{"id": "q1", "question": "Where was Tovin Ressa born?", "answer": "Maelport", "choices": ["Maelport", "Dunhollow", "Saltmere", "Brask"], "source": "a", "phrasing": "seen"}
{"id": "q2", "question": "Where was Ilsa Werrin born?", "answer": "Dunhollow", "choices": ["Maelport", "Dunhollow", "Saltmere", "Brask"], "source": "b", "phrasing": "held-out"}
{"id": "q3", "question": "Which organisation does Orrin Vaske work for?", "answer": "Quarn Guild", "choices": ["Pellow Labs", "Quarn Guild", "Tarn Works", "Vell Mills"], "source": "c", "phrasing": "seen"}
"#;

#[test]
fn export_then_compare_runs_the_arms_and_writes_the_report() {
    let d = fresh_dir("compare-ok");
    let export = d.join("export");
    let o = ragtune(&["demo", "--export", export.to_str().unwrap()]);
    assert!(o.status.success(), "demo --export failed: {}", stderr(&o));
    for f in [
        "experiment.toml",
        "corpus.jsonl",
        "qa.jsonl",
        "raft_train.jsonl",
        "old_qa.jsonl",
        "paraphrases-1.jsonl",
    ] {
        assert!(export.join(f).is_file(), "{f} exported");
    }
    assert!(export.join("base-model/model.safetensors").is_file());
    let exported = std::fs::read_to_string(export.join("experiment.toml")).unwrap();
    assert!(exported.contains("raft_train = \"raft_train.jsonl\""), "{exported}");

    std::fs::write(d.join("corpus.jsonl"), CORPUS).unwrap();
    std::fs::write(d.join("qa.jsonl"), QA).unwrap();
    let config = format!(
        "[model]\npath = \"{}\"\ndevice = \"cpu\"\n\n[data]\ncorpus = \"corpus.jsonl\"\nqa = \"qa.jsonl\"\n\n\
         [arms]\nrun = [\"base\", \"rag\", \"ft\", \"ft+rag\"]\n\n[rag]\nk = 1\n\n\
         [finetune]\nepochs = 1\nbatch_size = 2\n\n[eval]\nmax_new_tokens = 4\nbootstrap = 50\n",
        export.join("base-model").display()
    );
    let (report, out) = compare_json(&d, &config);
    let arms: Vec<&str> =
        report["arms"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(arms, ["base", "rag", "ft", "ft+rag"]);
    let rag = &report["arms"][1];
    assert_eq!(rag["retrieval_recall"]["n"], 3);
    assert_eq!(rag["outcomes"].as_array().unwrap().len(), 3);
    assert!(
        out.join("report.md").is_file()
            && out.join("report.json").is_file()
            && out.join("accuracy.svg").is_file()
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_malformed_config_or_qa_line_names_the_file_and_line() {
    let d = fresh_dir("compare-bad");
    std::fs::write(d.join("corpus.jsonl"), CORPUS).unwrap();
    std::fs::write(d.join("qa.jsonl"), QA).unwrap();
    let cfg = d.join("experiment.toml");
    std::fs::write(
        &cfg,
        "[model]\npath = \"m\"\n\n[data]\ncorpus = \"corpus.jsonl\"\nqa = \"qa.jsonl\"\n\n[rag]\nkk = 3\n",
    )
    .unwrap();
    let o = ragtune(&["compare", "--config", cfg.to_str().unwrap(), "--out", d.join("r").to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("experiment.toml:9") && e.contains("kk"), "{e}");

    std::fs::create_dir_all(d.join("m")).unwrap();
    std::fs::write(&cfg, "[model]\npath = \"m\"\n\n[data]\ncorpus = \"corpus.jsonl\"\nqa = \"qa.jsonl\"\n")
        .unwrap();
    let bad_qa = QA.replacen("\"answer\": \"Dunhollow\", ", "", 1);
    std::fs::write(d.join("qa.jsonl"), bad_qa).unwrap();
    let o = ragtune(&["compare", "--config", cfg.to_str().unwrap(), "--out", d.join("r").to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("qa.jsonl:2") && e.contains("answer"), "{e}");
    assert!(!d.join("r/report.md").exists(), "no report from a failed run");
    let _ = std::fs::remove_dir_all(&d);
}
