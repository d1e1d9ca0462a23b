//! `compare` end to end on miniature classification and house-format sets, with the built-in
//! base model: every arm runs, the report carries the task's own metrics (accuracy and macro-F1
//! with a confusion matrix; format validity and field match), the numbers agree with each other
//! and with the per-question outcomes, and the decision is made on the task's metric.

use std::path::{Path, PathBuf};

use ragtune_eval::experiment::compare;
use ragtune_eval::report::ExperimentReport;
use ragtune_eval::task::TaskKind;

fn dir(case: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ragtune-labelled-{case}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const TOPICS: [(&str, [&str; 6]); 3] = [
    ("billing", ["refund", "invoice", "charged twice", "receipt", "payment failed", "price"]),
    ("bug", ["crashes", "error message", "freezes", "button broken", "blank screen", "slow to load"]),
    ("account", ["password reset", "login", "change email", "delete account", "two-factor", "username"]),
];

/// `(train, test)` JSONL texts: four training and two test lines per label.
fn classify_files() -> (String, String) {
    let (mut train, mut test) = (String::new(), String::new());
    for (label, words) in TOPICS {
        for (i, w) in words.iter().enumerate() {
            let line =
                serde_json::json!({ "text": format!("Ticket about {w}, please help."), "label": label });
            if i < 4 { &mut train } else { &mut test }.push_str(&format!("{line}\n"));
        }
    }
    (train, test)
}

/// A fresh [`dir`] with the classification files written as `train.jsonl` and `test.jsonl`.
fn classify_dir(case: &str) -> PathBuf {
    let d = dir(case);
    let (train, test) = classify_files();
    std::fs::write(d.join("train.jsonl"), train).unwrap();
    std::fs::write(d.join("test.jsonl"), test).unwrap();
    d
}

fn config(d: &Path, task: &str, extra: &str) -> PathBuf {
    let model = ragtune_eval::builtin::write_builtin(&d.join("model")).unwrap();
    let text = format!(
        "task = \"{task}\"\n\n[model]\npath = \"{}\"\ndevice = \"cpu\"\n\n[data]\ntrain = \"train.jsonl\"\ntest = \"test.jsonl\"\n\n\
         [rag]\nk = 2\n\n[finetune]\nepochs = 1\nbatch_size = 4\n\n[eval]\nbootstrap = 50\n{extra}",
        model.display()
    );
    let p = d.join("experiment.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn ids(report: &ExperimentReport) -> Vec<&str> {
    report.arms.iter().map(|a| a.id.as_str()).collect()
}

#[test]
fn classification_runs_every_arm_with_consistent_metrics() {
    let d = classify_dir("classify");
    let out = d.join("out");
    let report = compare(&config(&d, "classify", ""), &out, true).unwrap();
    assert_eq!(report.task, TaskKind::Classify);
    assert_eq!(ids(&report), ["base", "rag", "ft", "ft+rag"]);
    assert!(report.findings.is_empty(), "the QA literature's claims are not checked on a classification");
    for arm in &report.arms {
        let acc = arm.overall.mc_accuracy.expect("accuracy");
        let f1 = arm.overall.macro_f1.expect("macro-F1");
        let classes = arm.classes.as_ref().expect("a confusion matrix");
        assert_eq!(acc.n, 6);
        // The confusion matrix, the accuracy and the outcomes are three views of one run.
        let total: usize = classes.confusion.iter().flatten().sum();
        let diagonal: usize = (0..classes.labels.len()).map(|i| classes.confusion[i][i]).sum();
        assert_eq!(total, 6, "{}", arm.id);
        assert!((diagonal as f64 / 6.0 - acc.mean).abs() < 1e-12, "{}", arm.id);
        let right = arm.outcomes.iter().filter(|o| o.gold_label == o.predicted_label).count();
        assert_eq!(right, diagonal, "{}", arm.id);
        assert!((classes.macro_f1.mean - f1.mean).abs() < 1e-12, "{}", arm.id);
        let mean_f1 = classes.per_label.iter().map(|s| s.f1).sum::<f64>() / classes.per_label.len() as f64;
        assert!((mean_f1 - f1.mean).abs() < 1e-12, "{}", arm.id);
        assert!(f1.lo <= f1.mean && f1.mean <= f1.hi);
        for o in &arm.outcomes {
            let predicted = o.predicted_label.as_deref().expect("a predicted label");
            assert!(TOPICS.iter().any(|(l, _)| *l == predicted), "{predicted}");
        }
    }
    let decision = report.decision.as_ref().expect("a decision");
    assert_eq!(decision.metric, "accuracy");
    let said = [decision.reasons.clone(), decision.what_would_change.clone()].concat().join(" ");
    assert!(!said.contains("losed-book"), "QA's wording in a classification's decision: {said}");
    assert!(decision.recommendation.is_some());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for part in ["## What to choose", "macro-F1", "## Per-label F1", "## Confusion matrices", "confusion.svg"]
    {
        assert!(md.contains(part), "report.md lacks {part}");
    }
    assert!(out.join("confusion.svg").is_file());
    assert!(
        report.paraphrase_curve.is_empty() && !out.join("paraphrases.svg").exists(),
        "no paraphrase curve"
    );
    let back: ExperimentReport =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(back, report, "report.json reads back into the same report");
    // `ragtune decide`'s recomputation from report.json alone: the same metric, and with an
    // accuracy floor above every arm nothing can be chosen.
    let mut inputs = ragtune_eval::decision::DecisionInputs::default();
    let again = ragtune_eval::decision::decide(&back, &inputs, 50, 0).unwrap();
    assert_eq!(again.metric, "accuracy");
    let best = report.arms.iter().map(|a| a.overall.mc_accuracy.unwrap().mean).fold(0.0, f64::max);
    if best < 1.0 {
        inputs.min_accuracy = Some((best + 1.0) / 2.0);
        let floor = ragtune_eval::decision::decide(&back, &inputs, 50, 0).unwrap();
        assert_eq!(floor.recommendation, None, "no arm reaches {:?}", inputs.min_accuracy);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn house_format_runs_every_arm_and_checks_each_output() {
    let d = dir("format");
    let mut train = String::new();
    let mut test = String::new();
    for (i, (label, words)) in TOPICS.iter().enumerate() {
        for (j, w) in words.iter().enumerate() {
            let output = serde_json::json!({ "team": label, "urgent": j % 2 == 0 });
            let line = serde_json::json!({ "input": format!("Ticket {i}{j}: {w}"), "output": output });
            if j < 4 { &mut train } else { &mut test }.push_str(&format!("{line}\n"));
        }
    }
    std::fs::write(d.join("train.jsonl"), train).unwrap();
    std::fs::write(d.join("test.jsonl"), test).unwrap();
    let out = d.join("out");
    let report = compare(&config(&d, "format", "[arms]\nrun = [\"base\", \"ft\"]\n"), &out, true).unwrap();
    assert_eq!(report.task, TaskKind::Format);
    assert_eq!(ids(&report), ["base", "ft"]);
    for arm in &report.arms {
        let valid = arm.overall.format_valid.expect("format validity");
        let fields = arm.overall.field_match.expect("field match");
        assert_eq!((valid.n, fields.n), (6, 6));
        assert!(fields.mean <= valid.mean + 1e-12, "no field matches without a valid output");
        for o in &arm.outcomes {
            let text = o.generated.as_deref().expect("an output");
            let parses = serde_json::from_str::<serde_json::Value>(text)
                .is_ok_and(|v| v.get("team").is_some() && v.get("urgent").is_some());
            assert_eq!(o.format_valid, Some(parses), "{text:?}");
        }
    }
    assert_eq!(report.decision.as_ref().unwrap().metric, "field exact match");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("format valid") && md.contains("field exact match"), "{md}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn labelled_configs_refuse_what_does_not_apply() {
    let d = classify_dir("config");
    let cfg = config(&d, "classify", "[arms]\nrun = [\"base\", \"raft\"]\n");
    let e = compare(&cfg, &d.join("out"), true).unwrap_err().to_string();
    assert!(e.contains("experiment.toml:") && e.contains("\"raft\" is for knowledge QA"), "{e}");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("[arms]\nrun = [\"base\", \"raft\"]\n", "");
    std::fs::write(
        &cfg,
        text.replace("test = \"test.jsonl\"", "test = \"test.jsonl\"\ncorpus = \"train.jsonl\""),
    )
    .unwrap();
    let e = compare(&cfg, &d.join("out"), true).unwrap_err().to_string();
    assert!(e.contains("[data] corpus is for knowledge QA"), "{e}");
    std::fs::write(&cfg, text.replace("test = \"test.jsonl\"\n", "")).unwrap();
    let e = compare(&cfg, &d.join("out"), true).unwrap_err().to_string();
    assert!(e.contains("[data] test is missing"), "{e}");
    std::fs::write(&cfg, text.replace("task = \"classify\"", "task = \"sort\"")).unwrap();
    let e = compare(&cfg, &d.join("out"), true).unwrap_err().to_string();
    assert!(e.contains("experiment.toml:1") && e.contains("sort"), "{e}");
    assert!(!d.join("out/report.md").exists(), "nothing written by a refused config");
    // dtype = "stored" answers with the weights as stored but cannot train through them.
    let stored = text.replace("device = \"cpu\"", "device = \"cpu\"\ndtype = \"stored\"");
    std::fs::write(&cfg, &stored).unwrap();
    let e = compare(&cfg, &d.join("out"), true).unwrap_err().to_string();
    assert!(e.contains("experiment.toml:6") && e.contains("arm \"ft\" trains"), "{e}");
    std::fs::write(&cfg, format!("{stored}\n[arms]\nrun = [\"base\", \"rag\"]\n")).unwrap();
    let report = compare(&cfg, &d.join("out"), true).unwrap();
    assert_eq!(report.arms.len(), 2);
    let _ = std::fs::remove_dir_all(&d);
}
