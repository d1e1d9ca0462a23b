//! What an experiment run produces, as plain data: per-arm scores with bootstrap intervals,
//! breakdowns, costs, per-question outcomes (for paired comparisons), the paraphrase curve and
//! the computed findings. `report.json` is this, serialized; `report.md` and the charts are
//! rendered from it.

use serde::{Deserialize, Serialize};

use crate::config::Arm;

/// A mean with its bootstrap 95% interval over `n` items.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

/// The task metrics of one arm over one set of questions. `None` where the metric was not
/// measured (no choices in the QA file, or free answers switched off).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Multiple choice, by the log-likelihood of each option.
    pub mc_accuracy: Option<Interval>,
    /// Generated answers (greedy), after normalisation.
    pub exact_match: Option<Interval>,
    pub token_f1: Option<Interval>,
    /// Classification: the unweighted mean of the per-label F1 (labels that occur or are
    /// predicted), bootstrap over questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<Interval>,
    /// House format: the share of outputs that follow the format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_valid: Option<Interval>,
    /// House format: the share of the reference's fields reproduced exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_match: Option<Interval>,
}

/// Scores on a named subset of the questions (`"seen phrasing"`, `"popularity 1"`, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    pub label: String,
    pub scores: Scores,
}

/// One question's outcome under one arm; the order of questions is the same in every arm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuestionOutcome {
    pub id: String,
    /// Whether the highest-likelihood option was the right one.
    pub mc_correct: Option<bool>,
    pub exact_match: Option<f64>,
    pub token_f1: Option<f64>,
    /// The generated answer, as text.
    pub generated: Option<String>,
    /// Whether retrieval put the question's source document in the top k.
    pub retrieved_gold: Option<bool>,
    /// The question's cluster for resampling (its source passage), so a finished report can be
    /// re-analysed without the task; `None` (older reports): the question is its own cluster.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Classification: the gold label and the highest-likelihood label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_label: Option<String>,
    /// House format: whether the output followed the format, and the share of the reference's
    /// fields it reproduced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_valid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_match: Option<f64>,
}

/// What an arm cost to set up and to run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Wall time to prepare the arm: building the index, training the adapter (seconds).
    pub setup_seconds: f64,
    /// Peak resident host memory while setting up and answering (bytes).
    pub peak_host_bytes: u64,
    /// Peak device memory, when a GPU was used.
    pub peak_device_bytes: Option<u64>,
    /// Bytes of what the arm adds to the base model: the index file, the adapter.
    pub artifact_bytes: u64,
    /// Mean wall time per question: retrieval + prefill + decode (milliseconds).
    pub latency_ms: f64,
    pub retrieval_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// Mean tokens processed per answered question: prompt + generated.
    pub tokens_per_answer: f64,
    /// Training tokens processed while setting up (0 for arms without training).
    pub train_tokens: u64,
    /// Median and 95th percentile of the wall time per question (milliseconds); absent from
    /// reports written before they were measured.
    #[serde(default)]
    pub latency_p50_ms: Option<f64>,
    #[serde(default)]
    pub latency_p95_ms: Option<f64>,
    /// What one knowledge update cost this arm, measured; absent from older reports.
    #[serde(default)]
    pub update: Option<UpdateCost>,
}

/// One knowledge update, measured: a seeded 10% of the corpus passages edited, then absorbed
/// the way the arm absorbs knowledge (re-embedding and re-indexing the changed passages, or
/// training on them, or both).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateCost {
    /// Wall time of the update (seconds).
    pub seconds: f64,
    /// Corpus passages the update changed.
    pub changed_passages: usize,
    /// Training tokens processed by the update (0 without training).
    pub train_tokens: u64,
    /// How the arm absorbed it, in words.
    pub how: String,
}

/// Old-population closed-book accuracy before and after an arm's fine-tuning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forgetting {
    pub before: Interval,
    pub after: Interval,
    /// after − before, paired bootstrap over the same questions.
    pub change: Interval,
}

/// One arm: `id` is an [`Arm`]'s id as `report.json` spells it (or, in a report edited by
/// hand, any name: the report is re-read by `ragtune decide`, and an unknown name is reported
/// as written rather than refused).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    pub id: String,
    pub description: String,
    pub overall: Scores,
    pub by_phrasing: Vec<Breakdown>,
    pub by_popularity: Vec<Breakdown>,
    /// Recall@k of the retriever (arms that retrieve).
    pub retrieval_recall: Option<Interval>,
    pub forgetting: Option<Forgetting>,
    pub cost: Cost,
    /// `[eval] seeds` > 1: each training seed's mean of the main metric (the intervals of
    /// `overall` then span seeds and questions); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_means: Vec<f64>,
    /// Classification: the confusion matrix and per-label scores; absent for other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<crate::metrics::ClassReport>,
    pub outcomes: Vec<QuestionOutcome>,
}

impl ArmResult {
    /// The arm `id` names; `None` for a name that is no arm's.
    pub fn as_arm(&self) -> Option<Arm> {
        Arm::from_id(&self.id)
    }

    /// Whether this is `arm`'s result.
    pub fn is(&self, arm: Arm) -> bool {
        self.id == arm.as_str()
    }
}

/// Fine-tuning accuracy against the number of extra paraphrases per document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParaphrasePoint {
    pub paraphrases: usize,
    pub scores: Scores,
}

/// A claim from the literature, checked against this run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Short name: `"rag-beats-ft"`, …
    pub id: String,
    /// The claim, as the literature states it.
    pub claim: String,
    /// The measured difference (paired bootstrap), when both sides were measured.
    pub difference: Option<Interval>,
    /// `Some(true)`: the interval excludes zero in the claimed direction; `Some(false)`: it
    /// excludes zero in the other; `None`: inconclusive or not measured.
    pub holds: Option<bool>,
    /// One sentence computed from the numbers.
    pub sentence: String,
    /// Arm-vs-arm on right/wrong scores: discordant questions, exact McNemar p and the minimum
    /// detectable difference at this n; absent elsewhere and from older reports.
    #[serde(default)]
    pub paired_test: Option<crate::metrics::PairedTest>,
    /// Source-passage clusters the interval resampled (= questions when none has a source).
    #[serde(default)]
    pub clusters: Option<usize>,
}

/// The model, embedder and machine the run used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub title: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub date: String,
    pub machine: String,
    pub device: String,
    pub model: String,
    pub model_params: u64,
    pub embedder: String,
    /// Seeds that reproduce the run: world, training, bootstrap.
    pub seeds: Vec<(String, u64)>,
    /// Questions per population and split, and other sizes worth stating.
    pub sizes: Vec<(String, u64)>,
    pub wall_seconds: f64,
    /// The settings (arms and their hyper-parameters), echoed.
    pub settings: serde_json::Value,
}

/// Everything `report.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// What the run adapted the model to (`qa` in reports written before there were others).
    #[serde(default)]
    pub task: crate::task::TaskKind,
    pub info: RunInfo,
    pub arms: Vec<ArmResult>,
    pub paraphrase_curve: Vec<ParaphrasePoint>,
    pub findings: Vec<Finding>,
    /// What to choose, from the measurements and the decision inputs; absent from reports
    /// written before it was computed.
    #[serde(default)]
    pub decision: Option<crate::decision::Decision>,
    /// The demo's overview: one line per task it ran (this report's and the others', each with
    /// its own report folder); empty for a single-task run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSummary>,
    /// The grids tried on the dev split and what was chosen; absent when the run did not tune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<crate::run::Tuning>,
}

/// One task of a multi-task run, as the overview table shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// What the task is, in words ("knowledge QA about the world's new people").
    pub task: String,
    pub kind: crate::task::TaskKind,
    /// The recommended arm, when one meets every constraint.
    pub recommendation: Option<String>,
    /// The decision's first reason.
    pub why: String,
    /// The task's `report.md`, relative to this report's folder.
    pub report: String,
}
