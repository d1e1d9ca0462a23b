//! The TOML sections of an experiment config, as written: each `[section]`'s struct with its
//! defaults and the checks serde runs while reading it (device specs, LoRA targets). What
//! depends on other sections is checked later ([`super::validate`]).

use std::path::PathBuf;

use ragtune_compute::{DType, Device};
use ragtune_runtime::loader::Precision;
use serde::{Deserialize, Deserializer, Serialize};

use super::Arm;
use crate::decision::DecisionInputs;
use crate::embed::{BertEmbedder, Embedder, HashedConfig, HashedEmbedder};
use crate::error::{EvalError, Result};
use crate::qgen::GenerateSettings;
use crate::task::{Passage, TaskKind};
use crate::userdata::DEFAULT_MAX_WORDS;

/// Weight dtype of the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    /// The device's choice: bf16 on a GPU, f32 on the CPU (`Device::default_weight_dtype`).
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
    /// A GGUF's quantized blocks kept as stored and multiplied with 8-bit activations (CPU
    /// only; the arms that answer, not those that train through the weights).
    Stored,
}

impl WeightDtype {
    /// How the runtime loads the model on `device`.
    pub fn precision(self, device: &Device) -> Precision {
        match self {
            WeightDtype::Auto => Precision::Dtype(device.default_weight_dtype()),
            WeightDtype::F32 => Precision::Dtype(DType::F32),
            WeightDtype::Bf16 => Precision::Dtype(DType::BF16),
            WeightDtype::F16 => Precision::Dtype(DType::F16),
            WeightDtype::Stored => Precision::Stored,
        }
    }
}

/// `[model]`: the language model every arm uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face folder or a `.gguf` file.
    pub path: PathBuf,
    #[serde(default)]
    pub dtype: WeightDtype,
    /// `auto`, `cpu`, `cuda` or `cuda:N` (checked when read).
    #[serde(default = "default_device", deserialize_with = "device_spec")]
    pub device: String,
}

impl ModelSection {
    /// The device the config asks for: `auto` falls back to the CPU, an explicit `cuda` fails
    /// with the reason when that GPU cannot be used.
    pub fn device(&self) -> Result<Device> {
        Ok(Device::from_spec(&self.device)?)
    }

    /// Whether the model is a GGUF file rather than a Hugging Face folder.
    pub fn is_gguf(&self) -> bool {
        self.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    }
}

/// Which embedder retrieval uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    #[default]
    Hashed,
    Bert,
}

/// `[embedder]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderSection {
    #[serde(default)]
    pub kind: EmbedderKind,
    /// The sentence-transformers folder (`bert` only).
    pub path: Option<PathBuf>,
    /// The vectors' width (`hashed` only; default [`HashedConfig::default`]'s).
    pub dim: Option<usize>,
}

impl EmbedderSection {
    /// The embedder, fitted on `corpus` when it is the hashed one; a BERT model is loaded in
    /// f32 onto `device`.
    pub fn build(&self, corpus: &[Passage], device: &Device) -> Result<Box<dyn Embedder>> {
        match self.kind {
            EmbedderKind::Hashed => {
                let defaults = HashedConfig::default();
                let config = HashedConfig { dim: self.dim.unwrap_or(defaults.dim), ..defaults };
                let texts: Vec<&str> = corpus.iter().map(|p| p.text.as_str()).collect();
                Ok(Box::new(HashedEmbedder::fit(&texts, config)?))
            }
            EmbedderKind::Bert => {
                let dir = self.path.as_deref().ok_or_else(|| {
                    EvalError::config(
                        "[embedder] kind = \"bert\" needs path = \"<sentence-transformers folder>\"",
                    )
                })?;
                Ok(Box::new(BertEmbedder::from_dir(dir, DType::F32, device.clone())?))
            }
        }
    }
}

/// `[data]`: the user's files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A folder of `.txt`/`.md`, a `.jsonl` file or one text file (knowledge QA; required there).
    pub corpus: Option<PathBuf>,
    /// Labelled training examples (classification, house format): JSONL.
    pub train: Option<PathBuf>,
    /// Labelled test examples (classification, house format): JSONL.
    pub test: Option<PathBuf>,
    /// The evaluation questions (JSONL); absent: generated from the corpus (`[generate]`).
    pub qa: Option<PathBuf>,
    /// Questions on knowledge the model already has, for the forgetting probe.
    pub old_qa: Option<PathBuf>,
    /// Training questions with sources, for RAFT.
    pub raft_train: Option<PathBuf>,
    /// Rewrites of the corpus, one corpus per augmentation round, for FT-par.
    #[serde(default)]
    pub paraphrases: Vec<PathBuf>,
    /// Words per passage, at most, when a folder or text file is split.
    #[serde(default = "default_max_words")]
    pub max_words: usize,
}

/// The share of questions held out as dev when `[generate] dev_share` is not given and the
/// questions are generated.
pub const DEFAULT_DEV_SHARE: f64 = 0.3;

/// `[generate]`: the questions built from the corpus when `[data] qa` is absent, and the
/// dev/test split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateSection {
    /// Most questions from one passage.
    pub per_passage: usize,
    /// Most questions in all.
    pub max_questions: usize,
    /// Seeds the questions' choice, options and order, and the split.
    pub seed: u64,
    /// Share of the questions held out as dev, by source passage, in `[0, 1)`: default
    /// [`DEFAULT_DEV_SHARE`] for generated questions; a user's QA file is split only when this
    /// is set (or its lines carry `split`).
    pub dev_share: Option<f64>,
    /// An instruct model (a Hugging Face folder or a `.gguf` file) that writes the questions
    /// instead of the built-in generator ([`crate::qgen::model`]); it runs on `[model]`'s device.
    /// With `ft-par` and no `[data] paraphrases`, it also writes the paraphrase rounds
    /// ([`crate::qgen::paraphrase`]).
    pub model: Option<PathBuf>,
    /// Paraphrase rounds the model writes for `ft-par` when `[data] paraphrases` is empty.
    pub paraphrase_rounds: usize,
}

impl Default for GenerateSection {
    fn default() -> Self {
        let d = GenerateSettings::default();
        GenerateSection {
            per_passage: d.per_passage,
            max_questions: d.max_questions,
            seed: d.seed,
            dev_share: None,
            model: None,
            paraphrase_rounds: 1,
        }
    }
}

impl GenerateSection {
    /// The generator's settings.
    pub fn settings(&self) -> GenerateSettings {
        GenerateSettings { per_passage: self.per_passage, max_questions: self.max_questions, seed: self.seed }
    }
}

/// `[format]`: the house format of a `format` task, when its outputs are not JSON objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormatSection {
    /// Literal text with `{field}` placeholders, e.g. `"Ticket {id}: {summary}"`.
    pub template: Option<String>,
}

/// `[tuning]`: the grids each arm tries on the dev split (only when there are dev questions:
/// generated ones always have a dev side; a QA file's when `[generate] dev_share` is set or
/// its lines carry `split`). The choice is made on dev and the report is on test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuningSection {
    /// `false`: no tuning; the `[rag]` and `[finetune]` values are used as they are.
    pub enabled: bool,
    /// Learning rates each fine-tuned arm tries, each a full training run whose every epoch is
    /// scored on dev (so the epochs are chosen too); default: `[finetune] lr` and half of it.
    pub lr: Option<Vec<f32>>,
    /// Passages per question RAG tries; the best on dev is used by every retrieving arm.
    pub rag_k: Vec<usize>,
}

impl Default for TuningSection {
    fn default() -> Self {
        TuningSection { enabled: true, lr: None, rag_k: vec![1, 3, 5] }
    }
}

/// `[rag]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RagSection {
    /// Passages retrieved per question.
    pub k: usize,
}

impl Default for RagSection {
    fn default() -> Self {
        RagSection { k: 3 }
    }
}

/// `[finetune]`: LoRA hyper-parameters of every fine-tuning arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneSection {
    pub r: usize,
    pub alpha: f32,
    /// PEFT module names (`q_proj` … `down_proj`), checked when read.
    #[serde(deserialize_with = "lora_targets")]
    pub targets: Vec<String>,
    /// Passes over the corpus (ft, ft-par).
    pub epochs: usize,
    /// Passes over the RAFT training questions.
    pub raft_epochs: usize,
    pub lr: f32,
    /// Sequences per optimizer step.
    pub batch_size: usize,
    /// Tokens per training sequence.
    pub max_seq: usize,
    pub seed: u64,
    /// Extra FT runs on the corpus plus the first `n` paraphrase rounds (accuracy vs
    /// paraphrases); each `n` in `1..=paraphrases`.
    pub paraphrase_curve: Vec<usize>,
}

impl Default for FinetuneSection {
    fn default() -> Self {
        FinetuneSection {
            r: 16,
            alpha: 32.0,
            targets: ragtune_trainer::Target::ALL.iter().map(|t| t.name().to_string()).collect(),
            epochs: 8,
            raft_epochs: 2,
            lr: 2e-3,
            batch_size: 8,
            max_seq: 256,
            seed: 0,
            paraphrase_curve: Vec::new(),
        }
    }
}

/// `[raft]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// Distractor passages per training example.
    pub distractors: usize,
    /// Share of training examples whose passages include the gold one.
    pub gold_share: f64,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection { distractors: 2, gold_share: 0.8 }
    }
}

/// `[eval]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Free-answer budget in tokens (0: multiple choice only).
    pub max_new_tokens: usize,
    /// Bootstrap resamples for every interval.
    pub bootstrap: usize,
    pub seed: u64,
    /// Answer only the first `limit` test questions (and tune on at most `limit` dev ones).
    pub limit: Option<usize>,
    /// Training seeds per fine-tuned arm: each is trained this many times and its intervals
    /// span the seeds as well as the questions (1 to 10).
    pub seeds: usize,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection { max_new_tokens: 16, bootstrap: 1000, seed: 0, limit: None, seeds: 1 }
    }
}

/// `[arms]` as written; the default depends on `[data]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ArmsSection {
    pub(super) run: Option<Vec<Arm>>,
}

/// The file's layout, before defaults that depend on other sections and before checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) task: TaskKind,
    pub(super) model: ModelSection,
    #[serde(default)]
    pub(super) embedder: EmbedderSection,
    pub(super) data: DataSection,
    #[serde(default)]
    pub(super) arms: ArmsSection,
    #[serde(default)]
    pub(super) rag: RagSection,
    #[serde(default)]
    pub(super) finetune: FinetuneSection,
    #[serde(default)]
    pub(super) raft: RaftSection,
    #[serde(default)]
    pub(super) eval: EvalSection,
    #[serde(default)]
    pub(super) generate: GenerateSection,
    #[serde(default)]
    pub(super) decision: DecisionInputs,
    #[serde(default)]
    pub(super) format: FormatSection,
    #[serde(default)]
    pub(super) tuning: TuningSection,
}

fn default_device() -> String {
    "auto".into()
}

fn default_max_words() -> usize {
    DEFAULT_MAX_WORDS
}

fn device_spec<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let spec = String::deserialize(d)?;
    Device::parse_spec(&spec).map_err(|_| {
        serde::de::Error::custom(format!(
            "unknown device \"{spec}\": use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\""
        ))
    })?;
    Ok(spec)
}

fn lora_targets<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let known = || ragtune_trainer::Target::ALL.map(|t| t.name()).join(", ");
    if names.is_empty() {
        return Err(serde::de::Error::custom(format!("no LoRA target: name at least one of {}", known())));
    }
    for n in &names {
        if ragtune_trainer::Target::from_name(n).is_none() {
            return Err(serde::de::Error::custom(format!(
                "unknown LoRA target \"{n}\": the targets are {}",
                known()
            )));
        }
    }
    Ok(names)
}
