//! [`ExperimentConfig`]: what `ragtune compare --config experiment.toml` runs — the model, the
//! embedder, the user's data files, the arms and their hyper-parameters.
//!
//! Unknown sections and keys are errors (a misspelt key would otherwise silently keep its
//! default), and so are values that cannot run: an unknown arm (the error lists the known
//! ones), an arm without its data (`ft-par` without paraphrases, `raft` without `raft_train`),
//! a missing file, `k = 0`. Every error names the config file and the line. Relative paths are
//! resolved against the config file's folder, so an experiment folder can be moved as a whole.
//! [`ExperimentConfig::task`] then reads the data files into a [`Task`](crate::task::Task) (see
//! [`crate::userdata`] for their formats and errors).
//!
//! Without `[data] qa`, the questions are generated from the corpus ([`crate::qgen`], tuned by
//! `[generate]`) and `ragtune compare` writes them to `OUT/generated/qa.jsonl`, a QA file to
//! read, edit and pass back as `qa = "…/generated/qa.jsonl"`. The questions are split into dev
//! (for tuning) and test (what the report is on) by source passage
//! ([`crate::qgen::split_by_source`]): generated ones always (`dev_share`, default
//! [`DEFAULT_DEV_SHARE`]), a user's file when `[generate] dev_share` is set or its lines carry
//! `split`.
//!
//! `task = "classify"` or `task = "format"` at the top switches from knowledge QA to a labelled
//! task ([`crate::labelled`]): `[data] train` and `test` replace the corpus and questions, the
//! arms are `base`, `rag`, `ft` and `ft+rag`, and `[format] template` names a house format
//! that is not JSON.
//!
//! A complete example ([`EXAMPLE`]), every key at its default unless marked optional:
//!
#![doc = "```toml"]
#![doc = include_str!("../experiment.example.toml")]
#![doc = "```"]

mod arm;
mod sections;
mod task;
mod validate;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use arm::Arm;
pub use sections::{
    DEFAULT_DEV_SHARE, DataSection, EmbedderKind, EmbedderSection, EvalSection, FinetuneSection,
    FormatSection, GenerateSection, ModelSection, RaftSection, RagSection, TuningSection, WeightDtype,
};

use crate::decision::DecisionInputs;
use crate::error::{EvalError, Result};
use crate::run::{LoraSettings, RunSettings};
use crate::task::TaskKind;

/// The example config of the module doc, every section filled in.
pub const EXAMPLE: &str = include_str!("../experiment.example.toml");

/// A checked experiment config with absolute (or config-relative resolved) paths.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExperimentConfig {
    /// The file it was read from.
    pub file: PathBuf,
    /// What the experiment adapts the model to: knowledge QA, classification or house format.
    pub task: TaskKind,
    pub model: ModelSection,
    pub embedder: EmbedderSection,
    pub data: DataSection,
    /// The arms to run, in the order of [`Arm::ALL`] when defaulted, as written otherwise.
    pub arms: Vec<Arm>,
    pub rag: RagSection,
    pub finetune: FinetuneSection,
    pub raft: RaftSection,
    pub eval: EvalSection,
    /// `[generate]`: questions from the corpus when `[data] qa` is absent; the dev/test split.
    pub generate: GenerateSection,
    /// `[decision]`: traffic, update rate, price, latency budget, horizon and accuracy floor
    /// for the report's "What to choose" ([`crate::decision`]).
    pub decision: DecisionInputs,
    /// `[format]`: a house format's template (`format` tasks whose outputs are not JSON).
    pub format: FormatSection,
    /// `[tuning]`: the grids tried on the dev split.
    pub tuning: TuningSection,
}

/// Where `ragtune compare --out OUT` writes generated questions: `OUT/generated/qa.jsonl`.
pub fn generated_qa_path(out: &Path) -> PathBuf {
    out.join("generated").join("qa.jsonl")
}

impl ExperimentConfig {
    /// Read and check `path` (see the module doc).
    pub fn from_file(path: &Path) -> Result<ExperimentConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        ExperimentConfig::parse(&text, path)
    }

    /// Whether the questions are generated from the corpus (no `[data] qa`).
    pub fn generates_questions(&self) -> bool {
        self.task == TaskKind::Qa && self.data.qa.is_none()
    }

    /// Whether the config runs `arm`.
    pub fn runs(&self, arm: Arm) -> bool {
        self.arms.contains(&arm)
    }

    /// The settings [`crate::run::run`] takes, from this config (progress bars on).
    pub fn run_settings(&self) -> RunSettings {
        let f = &self.finetune;
        RunSettings {
            arms: self.arms.clone(),
            rag_k: self.rag.k,
            raft_distractors: self.raft.distractors,
            raft_gold_share: self.raft.gold_share,
            lora: LoraSettings {
                r: f.r,
                alpha: f.alpha,
                targets: f.targets.clone(),
                lr: f.lr,
                epochs: f.epochs,
                raft_epochs: f.raft_epochs,
                batch_size: f.batch_size,
                max_seq: f.max_seq,
                seed: f.seed,
            },
            max_new_tokens: self.eval.max_new_tokens,
            bootstrap: self.eval.bootstrap,
            seed: self.eval.seed,
            paraphrase_curve: f.paraphrase_curve.clone(),
            quiet: false,
            seeds: self.eval.seeds,
            tuning: self.tuning.enabled.then(|| crate::run::TuningSettings {
                lr: self.tuning.lr.clone().unwrap_or_else(|| vec![f.lr, f.lr / 2.0]),
                rag_k: self.tuning.rag_k.clone(),
            }),
        }
    }
}
