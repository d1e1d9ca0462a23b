//! Every arm of the experiment, end to end, on a miniature world with the built-in base model:
//! the report has every arm with one outcome per question, intervals that bracket their means,
//! costs where the arm has them, the files on disk, and a JSON that reads back to the same
//! report. `demo --export` + `compare` runs the same task through a user's config.

use std::path::PathBuf;

use ragtune_compute::{DType, Device};
use ragtune_eval::builtin;
use ragtune_eval::config::Arm;
use ragtune_eval::embed::{HashedConfig, HashedEmbedder};
use ragtune_eval::experiment::{self, DemoOptions};
use ragtune_eval::report::ExperimentReport;
use ragtune_eval::run::{self, RunSettings};
use ragtune_eval::world::{DemoTaskOptions, World, WorldConfig, demo_task};
use ragtune_runtime::load_causal_lm;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ragtune-eval-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn miniature(out: PathBuf) -> DemoOptions {
    let mut opts = DemoOptions::new(out, Device::Cpu);
    opts.world = WorldConfig {
        old_people: 12,
        old_orgs: 3,
        new_people: 5,
        new_orgs: 2,
        reading_people: 4,
        reading_orgs: 2,
        places: 8,
        ..WorldConfig::default()
    };
    opts.task = DemoTaskOptions { paraphrase_rounds: 2, raft_per_fact: 1, old_question_limit: 8 };
    let s = &mut opts.settings;
    s.lora.epochs = 1;
    s.lora.raft_epochs = 1;
    s.max_new_tokens = 4;
    s.bootstrap = 50;
    s.paraphrase_curve = vec![1];
    s.quiet = true;
    // RAGTUNE_DEMO_MODEL: try another base model folder.
    opts.model = std::env::var_os("RAGTUNE_DEMO_MODEL").map(PathBuf::from);
    opts
}

#[test]
fn every_arm_runs_on_a_miniature_world() {
    let out = scratch("demo");
    let report = experiment::demo(&miniature(out.clone())).expect("the demo runs");
    let ids: Vec<&str> = report.arms.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["base", "rag", "ft", "ft-par", "ft+rag", "raft"]);
    let n = report.arms[0].outcomes.len();
    assert!(n > 0);
    for arm in &report.arms {
        assert_eq!(arm.outcomes.len(), n, "{}: one outcome per question", arm.id);
        let mc = arm.overall.mc_accuracy.expect("multiple choice measured");
        assert!(mc.lo <= mc.mean && mc.mean <= mc.hi && (0.0..=1.0).contains(&mc.mean), "{}: {mc:?}", arm.id);
        assert_eq!(mc.n, n);
        assert!(arm.overall.exact_match.is_some() && arm.overall.token_f1.is_some());
        assert!(arm.cost.latency_ms > 0.0 && arm.cost.tokens_per_answer > 0.0, "{}", arm.id);
        let retrieves = matches!(arm.id.as_str(), "rag" | "ft+rag" | "raft");
        assert_eq!(arm.retrieval_recall.is_some(), retrieves, "{}", arm.id);
        assert_eq!(arm.cost.retrieval_ms > 0.0, retrieves, "{}", arm.id);
        let trains = arm.id.starts_with("ft") || arm.id == "raft";
        assert_eq!(arm.forgetting.is_some(), trains, "{}", arm.id);
        assert_eq!(arm.cost.train_tokens > 0, trains, "{}", arm.id);
        if arm.id != "base" {
            assert!(arm.cost.artifact_bytes > 0 && arm.cost.setup_seconds > 0.0, "{}", arm.id);
        }
        assert!(!arm.by_phrasing.is_empty() && !arm.by_popularity.is_empty(), "{}", arm.id);
        assert_eq!(arm.cost.peak_device_bytes, None, "{}: a CPU run has no device memory", arm.id);
    }
    // Retrieval on a handful of entities with hashed n-grams of their names finds the source.
    let recall = report.arms[1].retrieval_recall.unwrap();
    assert!(recall.mean >= 0.9, "recall@3 {recall:?}");
    // The curve: 0, 1 and 2 rounds of paraphrases.
    let rounds: Vec<usize> = report.paraphrase_curve.iter().map(|p| p.paraphrases).collect();
    assert_eq!(rounds, [0, 1, 2]);
    assert!(!report.findings.is_empty());
    for f in ["report.md", "report.json", "accuracy.svg", "paraphrases.svg", "cost.svg"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    let back: ExperimentReport =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).expect("report.json parses");
    assert_eq!(back.arms.len(), report.arms.len());
    assert_eq!(back.findings, report.findings);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for f in &report.findings {
        assert!(md.contains(&f.sentence), "report.md states: {}", f.sentence);
    }
    // The decision: latency percentiles and one measured update per arm, and "What to choose"
    // first in report.md with its chart.
    for arm in &report.arms {
        let (p50, p95) = (arm.cost.latency_p50_ms.unwrap(), arm.cost.latency_p95_ms.unwrap());
        assert!(0.0 < p50 && p50 <= p95, "{}: p50 {p50} p95 {p95}", arm.id);
        let update = arm.cost.update.as_ref().unwrap_or_else(|| panic!("{}: no update measured", arm.id));
        assert_eq!(update.seconds > 0.0, arm.id != "base", "{}: {update:?}", arm.id);
        assert_eq!(
            update.train_tokens > 0,
            ["ft", "ft-par", "ft+rag"].contains(&arm.id.as_str()),
            "{}",
            arm.id
        );
    }
    let decision = report.decision.as_ref().expect("the report has a decision");
    assert_eq!(decision.arms.len(), report.arms.len());
    assert!(decision.recommendation.is_some() && !decision.reasons.is_empty(), "{decision:?}");
    assert_eq!(back.decision, report.decision);
    assert!(md.starts_with(&format!("# {}\n\n## Tasks\n", report.info.title)), "{}", &md[..300]);
    assert!(md.contains("\n## What to choose\n"));
    assert!(out.join("decision.svg").is_file());
    // The second task: routing requests (classification), its own report and recommendation,
    // one line per task in the overview.
    assert_eq!(report.tasks.len(), 2);
    assert_eq!(report.tasks[0].recommendation, decision.recommendation);
    let routed: ExperimentReport =
        serde_json::from_slice(&std::fs::read(out.join("routing/report.json")).unwrap()).unwrap();
    assert_eq!(routed.task, ragtune_eval::task::TaskKind::Classify);
    // The routing recipe, not the QA one, trained its arms (and the report says so).
    let lora = &routed.info.settings["run"]["lora"];
    assert_eq!(lora["lr"].as_f64(), Some(f64::from(ragtune_eval::experiment::ROUTING_LR)), "{lora}");
    assert_eq!((lora["epochs"].as_u64(), lora["batch_size"].as_u64()), (Some(10), Some(4)), "{lora}");
    let routed_ids: Vec<&str> = routed.arms.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(routed_ids, ["base", "rag", "ft", "ft+rag"]);
    assert!(routed.arms.iter().all(|a| a.overall.macro_f1.is_some() && a.classes.is_some()));
    let routed_choice = routed.decision.as_ref().and_then(|d| d.recommendation.clone());
    assert_eq!(report.tasks[1].recommendation, routed_choice);
    assert_eq!(report.tasks[1].report, "routing/report.md");
    assert!(md.contains("(routing/report.md)"), "the overview links the routing report");
    let _ = std::fs::remove_dir_all(&out);
}

/// The RAG arm on a kernel device (the CPU emulation of the CUDA kernels: every op of the model
/// and the index runs through `kernels/*.cu`), on two questions of the miniature world: the arm
/// reports its peak device memory, which holds at least the model's f32 weights.
#[test]
fn a_kernel_device_run_reports_peak_device_memory() {
    let out = scratch("device");
    let opts = miniature(out.clone());
    let device = Device::from_backend(std::sync::Arc::new(ragtune_kernel_emu::EmuBackend::default()));
    let model_dir = out.join("base-model");
    builtin::write_builtin(&model_dir).unwrap();
    let (mut model, tok) = load_causal_lm(&model_dir, DType::F32, device).unwrap();
    let world = World::generate(opts.world.clone());
    let mut task = demo_task(&world, &opts.task);
    task.questions.truncate(2);
    let texts: Vec<&str> = task.corpus.iter().map(|p| p.text.as_str()).collect();
    let embedder = HashedEmbedder::fit(&texts, HashedConfig { dim: 512, ..HashedConfig::default() }).unwrap();
    let settings = RunSettings { arms: vec![Arm::Rag], rag_k: 1, max_new_tokens: 1, ..opts.settings.clone() };
    let output = run::run(&mut model, &tok, &task, &embedder, &settings, &out.join("artifacts")).unwrap();
    let weights = 4 * model.num_params() as u64;
    let peak = output.arms[0].cost.peak_device_bytes.expect("a device peak");
    assert!(peak >= weights, "device peak {peak} below the {weights} bytes of f32 weights");
    assert!(peak < 16 * weights, "device peak {peak} out of proportion to {weights}");
    let _ = std::fs::remove_dir_all(&out);
}
