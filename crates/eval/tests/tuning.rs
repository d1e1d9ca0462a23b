//! Tuning on the dev split, end to end on a miniature world with the built-in base model: RAG's
//! k and each fine-tuned arm's learning rate and epochs are chosen by their dev scores (checked
//! against the recorded grid), the arms then use the choice, the report shows the grid and its
//! chart, and a run without dev questions does not tune.

use std::path::PathBuf;

mod common;

use common::{builtin_model, small_world};
use ragtune_eval::config::Arm;
use ragtune_eval::embed::{HashedConfig, HashedEmbedder};
use ragtune_eval::run::{self, RunSettings, TuningSettings};
use ragtune_eval::world::{DemoTaskOptions, demo_task};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ragtune-tuning-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn knobs_are_chosen_on_dev_and_used_on_test() {
    let out = scratch("grid");
    let (mut model, tok) = builtin_model(&out.join("model"));
    let world = small_world(6);
    let mut task =
        demo_task(&world, &DemoTaskOptions { paraphrase_rounds: 0, raft_per_fact: 0, old_question_limit: 0 });
    // Every third question is dev.
    let all = std::mem::take(&mut task.questions);
    for (i, q) in all.into_iter().enumerate() {
        if i % 3 == 0 { &mut task.dev_questions } else { &mut task.questions }.push(q);
    }
    let texts: Vec<&str> = task.corpus.iter().map(|p| p.text.as_str()).collect();
    let embedder = HashedEmbedder::fit(&texts, HashedConfig { dim: 512, ..HashedConfig::default() }).unwrap();
    let mut settings = RunSettings {
        arms: vec![Arm::Base, Arm::Rag, Arm::Ft, Arm::FtRag],
        max_new_tokens: 2,
        bootstrap: 20,
        quiet: true,
        tuning: Some(TuningSettings { lr: vec![2e-3, 5e-4], rag_k: vec![1, 2] }),
        ..RunSettings::default()
    };
    settings.lora.epochs = 2;
    settings.lora.batch_size = 4;
    let output = run::run(&mut model, &tok, &task, &embedder, &settings, &out.join("artifacts")).unwrap();
    let tuning = output.tuning.expect("a run with dev questions tunes");
    assert_eq!(tuning.dev_questions, task.dev_questions.len());
    assert_eq!(tuning.metric, "multiple-choice accuracy");
    // RAG's k: the best dev score, a tie going to the smaller k.
    let ks: Vec<usize> = tuning.rag.iter().map(|t| t.k).collect();
    assert_eq!(ks, [1, 2]);
    let best = tuning.rag.iter().map(|t| t.dev_score).fold(f64::MIN, f64::max);
    let first_best = tuning.rag.iter().find(|t| t.dev_score == best).unwrap().k;
    assert_eq!(tuning.rag_k, Some(first_best));
    let rag = output.arms.iter().find(|a| a.id == "rag").unwrap();
    assert!(rag.description.contains(&format!("top-{first_best} ")), "{}", rag.description);
    // ft: two learning rates × two epochs, the best dev score chosen.
    assert_eq!(tuning.arms.len(), 1);
    let ft = &tuning.arms[0];
    assert_eq!(ft.arm, "ft");
    let cells: Vec<(f32, usize)> = ft.trials.iter().map(|t| (t.lr, t.epoch)).collect();
    assert_eq!(cells, [(2e-3, 1), (2e-3, 2), (5e-4, 1), (5e-4, 2)]);
    let top = ft.trials.iter().map(|t| t.dev_score).fold(f64::MIN, f64::max);
    let chosen = ft.trials.iter().find(|t| t.lr == ft.chosen_lr && t.epoch == ft.chosen_epoch).unwrap();
    assert_eq!(chosen.dev_score, top, "{ft:?}");
    assert!(ft.trials.iter().all(|t| t.dev_loss.is_finite() && t.dev_loss > 0.0 && t.train_loss.is_finite()));
    let arm = output.arms.iter().find(|a| a.id == "ft").unwrap();
    assert!(arm.description.contains("chosen on dev"), "{}", arm.description);
    assert!(arm.cost.setup_seconds > 0.0 && arm.cost.setup_seconds <= ft.seconds);
    // The report shows the grid, and its chart is drawn.
    let report = ragtune_eval::report::ExperimentReport {
        tuning: Some(tuning.clone()),
        arms: output.arms.clone(),
        ..Default::default()
    };
    let md = ragtune_eval::report::render_markdown(&report);
    assert!(md.contains("## Tuning on dev") && md.contains("tuning.svg"), "{md}");
    let charts = ragtune_eval::report::render_charts(&report).unwrap();
    assert!(charts.iter().any(|c| c.file_name == "tuning.svg" && c.svg.contains("held-out loss")));

    // Without dev questions nothing is tuned and the settings are used as given.
    task.dev_questions.clear();
    settings.arms = vec![Arm::Rag];
    let output = run::run(&mut model, &tok, &task, &embedder, &settings, &out.join("artifacts")).unwrap();
    assert!(output.tuning.is_none());
    assert!(output.arms[0].description.contains("top-3 "), "{}", output.arms[0].description);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_tuning_table_has_defaults_and_named_errors() {
    let dir = scratch("config");
    std::fs::create_dir_all(dir.join("model")).unwrap();
    std::fs::write(dir.join("corpus.txt"), "Ada Brenn was born in Velmora in 1931.\n").unwrap();
    let head = "[model]\npath = \"model\"\n\n[data]\ncorpus = \"corpus.txt\"\n\n[finetune]\nlr = 2e-3\n";
    let parse = |extra: &str| {
        let p = dir.join("experiment.toml");
        std::fs::write(&p, format!("{head}{extra}")).unwrap();
        ragtune_eval::config::ExperimentConfig::from_file(&p)
    };
    let tuning = parse("").unwrap().run_settings().tuning.expect("on by default");
    assert_eq!((tuning.lr, tuning.rag_k), (vec![2e-3, 1e-3], vec![1, 3, 5]));
    let tuning = parse("\n[tuning]\nlr = [1e-4]\nrag_k = [2]\n").unwrap().run_settings().tuning.unwrap();
    assert_eq!((tuning.lr, tuning.rag_k), (vec![1e-4], vec![2]));
    assert!(parse("\n[tuning]\nenabled = false\n").unwrap().run_settings().tuning.is_none());
    for (extra, key) in [
        ("lr = [-1.0]", "lr"),
        ("lr = []", "lr"),
        ("rag_k = [0]", "rag_k"),
        ("rag_k = [1, 2, 3, 4, 5, 6, 7, 8, 9]", "rag_k"),
    ] {
        let e = parse(&format!("\n[tuning]\n{extra}\n")).unwrap_err().to_string();
        assert!(
            e.contains("experiment.toml:11") && e.contains(&format!("[tuning] {key} must be")),
            "{extra}: {e}"
        );
    }
    let e = parse("\n[eval]\nseeds = 0\n").unwrap_err().to_string();
    assert!(e.contains("experiment.toml:11") && e.contains("[eval] seeds = 0 must be from 1 to 10"), "{e}");
    assert_eq!(parse("\n[eval]\nseeds = 3\n").unwrap().run_settings().seeds, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seeds_retrain_each_fine_tuned_arm_and_fold_into_its_interval() {
    let out = scratch("seeds");
    let (mut model, tok) = builtin_model(&out.join("model"));
    let world = small_world(2);
    let task =
        demo_task(&world, &DemoTaskOptions { paraphrase_rounds: 0, raft_per_fact: 0, old_question_limit: 0 });
    let texts: Vec<&str> = task.corpus.iter().map(|p| p.text.as_str()).collect();
    let embedder = HashedEmbedder::fit(&texts, HashedConfig { dim: 512, ..HashedConfig::default() }).unwrap();
    let mut settings = RunSettings {
        arms: vec![Arm::Rag, Arm::Ft, Arm::FtRag],
        max_new_tokens: 0,
        bootstrap: 50,
        quiet: true,
        seeds: 2,
        ..RunSettings::default()
    };
    settings.lora.epochs = 1;
    settings.lora.batch_size = 4;
    let output = run::run(&mut model, &tok, &task, &embedder, &settings, &out.join("artifacts")).unwrap();
    for arm in &output.arms {
        let mc = arm.overall.mc_accuracy.unwrap();
        if arm.id == "rag" {
            assert!(arm.seed_means.is_empty(), "rag does not train");
            continue;
        }
        assert_eq!(arm.seed_means.len(), 2, "{}", arm.id);
        // Same questions for every seed: the grand mean is the mean of the seeds' means, and the
        // first seed's outcomes are the ones kept for paired comparisons.
        let avg = arm.seed_means.iter().sum::<f64>() / 2.0;
        assert!((mc.mean - avg).abs() < 1e-12, "{}: {mc:?} vs {:?}", arm.id, arm.seed_means);
        let first = arm.outcomes.iter().filter(|o| o.mc_correct == Some(true)).count() as f64
            / arm.outcomes.len() as f64;
        assert!((first - arm.seed_means[0]).abs() < 1e-12, "{}", arm.id);
        assert!(mc.lo <= mc.mean && mc.mean <= mc.hi);
    }
    let _ = std::fs::remove_dir_all(&out);
}
