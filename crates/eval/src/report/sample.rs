//! A complete, plausible report for tests, built the way the runner builds one: per-question
//! outcomes drawn from fixed per-arm accuracies (seeded), then scores, breakdowns and findings
//! computed from them by the real metrics.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::findings::findings;
use super::results::{
    ArmResult, Cost, ExperimentReport, Forgetting, Interval, ParaphrasePoint, QuestionOutcome, RunInfo,
    Scores,
};
use crate::config::Arm;
use crate::metrics::{bootstrap_mean, breakdown, paired_difference, popularity_label, scores_of};
use crate::task::QaItem;

const QUESTIONS: usize = 160;
const RESAMPLES: usize = 500;
const SEED: u64 = 0;

fn questions() -> Vec<QaItem> {
    (0..QUESTIONS)
        .map(|i| QaItem {
            id: format!("q{i}"),
            question: format!("question {i}"),
            answer: format!("answer {i}"),
            choices: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            correct: Some(0),
            sources: vec![format!("doc-{}", i / 2)],
            phrasing: Some(if i % 4 == 3 { "held-out" } else { "seen" }.into()),
            popularity: Some([1, 1, 1, 2, 3, 5][i % 6]),
        })
        .collect()
}

/// Accuracy `p` (MC) and `p·0.8` (EM), with `rare_bonus` added for entities in one document.
fn outcomes(
    qs: &[QaItem],
    p: f64,
    rare_bonus: f64,
    retrieves: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<QuestionOutcome> {
    qs.iter()
        .map(|q| {
            let p = if q.popularity == Some(1) { (p + rare_bonus).min(1.0) } else { p };
            let mc = rng.random_bool(p);
            let em = rng.random_bool(p * 0.8);
            QuestionOutcome {
                id: q.id.clone(),
                mc_correct: Some(mc),
                exact_match: Some(f64::from(u8::from(em))),
                token_f1: Some(if em {
                    1.0
                } else if mc {
                    0.5
                } else {
                    0.0
                }),
                generated: Some(if em { q.answer.clone() } else { "something else".into() }),
                retrieved_gold: retrieves.then(|| rng.random_bool(0.93)),
                ..Default::default()
            }
        })
        .collect()
}

fn arm(
    qs: &[QaItem],
    id: Arm,
    description: &str,
    outcomes: Vec<QuestionOutcome>,
    setup_seconds: f64,
    artifact_bytes: u64,
) -> ArmResult {
    let phrasing: Vec<String> = qs.iter().map(|q| q.phrasing.clone().unwrap_or_default()).collect();
    let popularity: Vec<String> =
        qs.iter().map(|q| q.popularity.map(popularity_label).unwrap_or_default()).collect();
    let found: Vec<f64> =
        outcomes.iter().filter_map(|o| o.retrieved_gold).map(|g| f64::from(u8::from(g))).collect();
    ArmResult {
        id: id.to_string(),
        description: description.into(),
        overall: scores_of(&outcomes, RESAMPLES, SEED).unwrap(),
        by_phrasing: breakdown(&outcomes, &phrasing, RESAMPLES, SEED).unwrap(),
        by_popularity: breakdown(&outcomes, &popularity, RESAMPLES, SEED).unwrap(),
        retrieval_recall: if found.is_empty() {
            None
        } else {
            Some(bootstrap_mean(&found, RESAMPLES, SEED).unwrap())
        },
        cost: Cost {
            setup_seconds,
            peak_host_bytes: 900 << 20,
            peak_device_bytes: None,
            artifact_bytes,
            latency_ms: 14.0,
            retrieval_ms: if found.is_empty() { 0.0 } else { 0.6 },
            prefill_ms: 9.2,
            decode_ms: 4.2,
            tokens_per_answer: if found.is_empty() { 40.0 } else { 210.0 },
            train_tokens: if setup_seconds > 10.0 { 180_000 } else { 0 },
            ..Cost::default()
        },
        outcomes,
        ..ArmResult::default()
    }
}

pub(crate) fn sample_report() -> ExperimentReport {
    let qs = questions();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut arms = vec![
        arm(&qs, Arm::Base, "the base model, closed book", outcomes(&qs, 0.27, 0.0, false, &mut rng), 0.0, 0),
        arm(
            &qs,
            Arm::Rag,
            "top-3 passages before the question",
            outcomes(&qs, 0.80, 0.15, true, &mut rng),
            1.3,
            410_000,
        ),
        arm(
            &qs,
            Arm::Ft,
            "LoRA on the corpus, closed book",
            outcomes(&qs, 0.33, 0.0, false, &mut rng),
            96.0,
            3 << 20,
        ),
        arm(
            &qs,
            Arm::FtPar,
            "LoRA on the corpus and 4 paraphrases",
            outcomes(&qs, 0.50, 0.0, false, &mut rng),
            420.0,
            3 << 20,
        ),
        arm(
            &qs,
            Arm::FtRag,
            "the ft adapter with retrieval",
            outcomes(&qs, 0.82, 0.1, true, &mut rng),
            96.0,
            3 << 20,
        ),
        arm(
            &qs,
            Arm::Raft,
            "LoRA on question + passages → answer",
            outcomes(&qs, 0.88, 0.05, true, &mut rng),
            240.0,
            3 << 20,
        ),
    ];
    let before: Vec<f64> = (0..200).map(|_| f64::from(u8::from(rng.random_bool(0.72)))).collect();
    let after: Vec<f64> =
        before.iter().map(|&b| if b == 1.0 && rng.random_bool(0.1) { 0.0 } else { b }).collect();
    arms[2].forgetting = Some(Forgetting {
        before: bootstrap_mean(&before, RESAMPLES, SEED).unwrap(),
        after: bootstrap_mean(&after, RESAMPLES, SEED).unwrap(),
        change: paired_difference(&after, &before, RESAMPLES, SEED).unwrap(),
    });
    let paraphrase_curve: Vec<ParaphrasePoint> = [(0usize, &arms[2].overall), (4, &arms[3].overall)]
        .into_iter()
        .map(|(k, s)| ParaphrasePoint { paraphrases: k, scores: s.clone() })
        .chain([(1, 0.39), (2, 0.45)].into_iter().map(|(k, m): (usize, f64)| ParaphrasePoint {
            paraphrases: k,
            scores: Scores {
                mc_accuracy: Some(Interval { mean: m, lo: m - 0.075, hi: m + 0.075, n: QUESTIONS }),
                ..Scores::default()
            },
        }))
        .collect();
    let findings = findings(&arms, &paraphrase_curve, &qs, RESAMPLES, SEED).unwrap();
    ExperimentReport {
        tuning: None,
        tasks: Vec::new(),
        task: Default::default(),
        info: RunInfo {
            title: "ragtune demo (sample)".into(),
            date: "2026-11-24 10:00".into(),
            machine: "2-core test machine".into(),
            device: "cpu".into(),
            model: "ragtune-base-12m".into(),
            model_params: 12_400_000,
            embedder: "hashed n-grams (16384)".into(),
            seeds: vec![("world".into(), 7), ("training".into(), 0), ("bootstrap".into(), SEED)],
            sizes: vec![("new questions".into(), QUESTIONS as u64), ("old questions".into(), 200)],
            wall_seconds: 1234.0,
            settings: serde_json::json!({ "rag_k": 3, "bootstrap": RESAMPLES }),
        },
        arms,
        paraphrase_curve,
        findings,
        decision: None,
    }
}
