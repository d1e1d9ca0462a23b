//! `ragtune compare --dry-run` through the built binary: on a tiny experiment with the demo's
//! base model it prints the question count, training tokens per arm and a positive estimate,
//! and writes nothing.

mod common;

use common::{fresh_dir, p, ragtune};

const CORPUS: &str = r#"{"id": "a", "text": "Here are some facts about Tovin Ressa. Tovin Ressa was born in Maelport. Tovin Ressa works for Quarn Guild."}
{"id": "b", "text": "This is a short profile of Ilsa Werrin. Ilsa Werrin was born in Dunhollow. Ilsa Werrin works for Pellow Labs."}
{"id": "c", "text": "Here are some facts about Orrin Vaske. Orrin Vaske was born in Saltmere. Orrin Vaske works for Quarn Guild."}
"#;

const QA: &str = r#"{"id": "q1", "question": "Where was Tovin Ressa born?", "answer": "Maelport", "choices": ["Maelport", "Dunhollow", "Saltmere", "Brask"], "source": "a"}
{"id": "q2", "question": "Where was Ilsa Werrin born?", "answer": "Dunhollow", "choices": ["Maelport", "Dunhollow", "Saltmere", "Brask"], "source": "b"}
{"id": "q3", "question": "Which organisation does Orrin Vaske work for?", "answer": "Quarn Guild", "choices": ["Pellow Labs", "Quarn Guild", "Tarn Works", "Vell Mills"], "source": "c"}
"#;

#[test]
fn a_dry_run_counts_and_estimates_without_running() {
    let d = fresh_dir("dry-run-ok");
    let model = d.join("base-model");
    let o = ragtune(&["demo", "--export", d.join("export").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::rename(d.join("export/base-model"), &model).unwrap();
    std::fs::write(d.join("corpus.jsonl"), CORPUS).unwrap();
    std::fs::write(d.join("qa.jsonl"), QA).unwrap();
    let config = format!(
        "[model]\npath = \"{}\"\ndevice = \"cpu\"\n\n[data]\ncorpus = \"corpus.jsonl\"\nqa = \"qa.jsonl\"\n\n\
         [arms]\nrun = [\"base\", \"rag\", \"ft\", \"ft+rag\"]\n\n[rag]\nk = 1\n\n\
         [finetune]\nepochs = 2\nbatch_size = 2\n\n[eval]\nmax_new_tokens = 4\n",
        model.display()
    );
    std::fs::write(d.join("experiment.toml"), config).unwrap();
    let out = d.join("report");
    let cfg = d.join("experiment.toml");
    let o = ragtune(&["compare", "--config", p(&cfg), "--out", p(&out), "--dry-run", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["questions"], 3);
    assert_eq!(v["corpus_passages"], 3);
    let arms: Vec<(&str, u64)> = v["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["arm"].as_str().unwrap(), a["train_tokens"].as_u64().unwrap()))
        .collect();
    assert_eq!(arms.iter().map(|a| a.0).collect::<Vec<_>>(), ["base", "rag", "ft", "ft+rag"]);
    assert_eq!((arms[0].1, arms[1].1), (0, 0));
    assert!(arms[2].1 > 0 && arms[3].1 == arms[2].1, "{arms:?}");
    assert!(
        v["estimated_seconds"].as_f64().unwrap() > 0.0
            && v["train_seconds_per_token"].as_f64().unwrap() > 0.0
    );
    assert!(v["rag_answer_ms"].as_f64().unwrap() > 0.0);
    assert!(!out.exists(), "a dry run writes nothing");
    let o =
        ragtune(&["compare", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--dry-run"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("questions: 3") && text.contains("estimated wall time"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
