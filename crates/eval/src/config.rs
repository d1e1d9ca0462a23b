//! [`ExperimentConfig`]: what `ragtune compare --config experiment.toml` runs — the model, the
//! embedder, the user's data files, the arms and their hyper-parameters.
//!
//! Unknown sections and keys are errors (a misspelt key would otherwise silently keep its
//! default), and so are values that cannot run: an unknown arm (the error lists the known
//! ones), an arm without its data (`ft-par` without paraphrases, `raft` without `raft_train`),
//! a missing file, `k = 0`. Every error names the config file and the line. Relative paths are
//! resolved against the config file's folder, so an experiment folder can be moved as a whole.
//! [`ExperimentConfig::task`] then reads the data files into a [`Task`] (see
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
#![doc = include_str!("experiment.example.toml")]
#![doc = "```"]

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_runtime::loader::Precision;
use serde::{Deserialize, Deserializer, Serialize};

use crate::decision::DecisionInputs;
use crate::embed::{BertEmbedder, Embedder, HashedConfig, HashedEmbedder};
use crate::error::{EvalError, Result};
use crate::qgen::model::generate_with_model;
use crate::qgen::{GenerateSettings, Split, generate, split_by_source};
use crate::run::{LoraSettings, RunSettings};
use crate::task::{Passage, Task, TaskKind};
use crate::userdata::{
    DEFAULT_MAX_WORDS, load_corpus_layout, load_corpus_with, load_qa, load_qa_for, load_qa_with_splits,
};

/// The example config of the module doc, every section filled in.
pub const EXAMPLE: &str = include_str!("experiment.example.toml");

/// One arm of the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Arm {
    /// Closed book: the base model alone.
    #[serde(rename = "base")]
    Base,
    /// The base model with retrieved passages in the prompt.
    #[serde(rename = "rag")]
    Rag,
    /// LoRA fine-tuned on the corpus, closed book.
    #[serde(rename = "ft")]
    Ft,
    /// LoRA fine-tuned on the corpus and its paraphrases, closed book.
    #[serde(rename = "ft-par")]
    FtPar,
    /// The `ft` adapter with retrieved passages.
    #[serde(rename = "ft+rag")]
    FtRag,
    /// LoRA fine-tuned on question + gold and distractor passages → answer, then with retrieval.
    #[serde(rename = "raft")]
    Raft,
}

impl Arm {
    pub const ALL: [Arm; 6] = [Arm::Base, Arm::Rag, Arm::Ft, Arm::FtPar, Arm::FtRag, Arm::Raft];

    /// The id used in configs and reports (`ft+rag`).
    pub fn id(self) -> &'static str {
        match self {
            Arm::Base => "base",
            Arm::Rag => "rag",
            Arm::Ft => "ft",
            Arm::FtPar => "ft-par",
            Arm::FtRag => "ft+rag",
            Arm::Raft => "raft",
        }
    }
}

/// Weight dtype of the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    #[default]
    F32,
    Bf16,
    F16,
    /// A GGUF's quantized blocks kept as stored and multiplied with 8-bit activations (CPU
    /// only; the arms that answer, not those that train through the weights).
    Stored,
}

impl WeightDtype {
    /// How the runtime loads the model.
    pub fn precision(self) -> Precision {
        match self {
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
                Ok(Box::new(BertEmbedder::load(dir, device)?))
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
struct ArmsSection {
    run: Option<Vec<Arm>>,
}

/// The file's layout, before defaults that depend on other sections and before checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    task: TaskKind,
    model: ModelSection,
    #[serde(default)]
    embedder: EmbedderSection,
    data: DataSection,
    #[serde(default)]
    arms: ArmsSection,
    #[serde(default)]
    rag: RagSection,
    #[serde(default)]
    finetune: FinetuneSection,
    #[serde(default)]
    raft: RaftSection,
    #[serde(default)]
    eval: EvalSection,
    #[serde(default)]
    generate: GenerateSection,
    #[serde(default)]
    decision: DecisionInputs,
    #[serde(default)]
    format: FormatSection,
    #[serde(default)]
    tuning: TuningSection,
}

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

/// The 1-based line of `key` in `[section]` of a TOML text, else of the `[section]` header
/// (for a key that is missing), else `None`. Enough for the flat layout of an experiment
/// config; errors found after parsing point there.
fn line_of(text: &str, section: &str, key: Option<&str>) -> Option<usize> {
    let mut current = String::new();
    let mut header = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
            if current == section {
                header = Some(i + 1);
            }
            continue;
        }
        let is_key =
            |key: &str| line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='));
        if current == section && key.is_some_and(is_key) {
            return Some(i + 1);
        }
    }
    header
}

impl ExperimentConfig {
    /// Read and check `path` (see the module doc).
    pub fn from_file(path: &Path) -> Result<ExperimentConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        ExperimentConfig::parse(&text, path)
    }

    /// Parse and check a config's `text` as if read from `path` (whose folder relative paths
    /// are resolved against; the files they name must exist).
    pub fn parse(text: &str, path: &Path) -> Result<ExperimentConfig> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let place = match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!("{}:{line}:{col}", path.display())
                }
                None => path.display().to_string(),
            };
            EvalError::data(place, e.message().trim_end())
        })?;
        let err = |section: &str, key: Option<&str>, detail: String| {
            let place = match line_of(text, section, key) {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            };
            EvalError::data(place, detail)
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| if p.is_relative() { base.join(p) } else { p.to_path_buf() };
        let must_exist = |p: &Path, section: &str, key: &str| -> Result<()> {
            if p.exists() {
                Ok(())
            } else {
                Err(err(
                    section,
                    Some(key),
                    format!(
                        "[{section}] {key}: {} does not exist (relative paths are relative to the config's folder)",
                        p.display()
                    ),
                ))
            }
        };

        let RawConfig {
            task,
            format,
            tuning,
            mut model,
            mut embedder,
            mut data,
            arms,
            rag,
            finetune,
            raft,
            eval,
            decision,
            mut generate,
        } = raw;
        model.path = resolve(&model.path);
        must_exist(&model.path, "model", "path")?;

        embedder.path = embedder.path.as_deref().map(resolve);
        match (embedder.kind, &embedder.path, embedder.dim) {
            (EmbedderKind::Bert, None, _) => {
                return Err(err(
                    "embedder",
                    Some("kind"),
                    "kind = \"bert\" needs path = \"<a sentence-transformers folder>\"".into(),
                ));
            }
            (EmbedderKind::Bert, _, Some(_)) => {
                return Err(err(
                    "embedder",
                    Some("dim"),
                    "dim is for kind = \"hashed\"; a BERT model has its own width: remove it".into(),
                ));
            }
            (EmbedderKind::Hashed, Some(_), _) => {
                return Err(err(
                    "embedder",
                    Some("path"),
                    "path is for kind = \"bert\"; the hashed embedder needs no files: remove it or set kind = \"bert\""
                        .into(),
                ));
            }
            (EmbedderKind::Hashed, None, Some(0)) => {
                return Err(err(
                    "embedder",
                    Some("dim"),
                    "dim must be at least 1 (the default is 16384)".into(),
                ));
            }
            // dim sizes every hashed vector (dim × 4 bytes per passage): bounded before use.
            (EmbedderKind::Hashed, None, Some(d)) if d > 1 << 20 => {
                return Err(err(
                    "embedder",
                    Some("dim"),
                    format!(
                        "dim = {d} is above the limit of 1048576 (2^20): each vector takes dim × 4 bytes per \
                         passage; the default is 16384"
                    ),
                ));
            }
            _ => {}
        }
        if let Some(p) = &embedder.path {
            must_exist(p, "embedder", "path")?;
        }

        data.corpus = data.corpus.as_deref().map(resolve);
        data.train = data.train.as_deref().map(resolve);
        data.test = data.test.as_deref().map(resolve);
        data.qa = data.qa.as_deref().map(resolve);
        data.old_qa = data.old_qa.as_deref().map(resolve);
        data.raft_train = data.raft_train.as_deref().map(resolve);
        data.paraphrases = data.paraphrases.iter().map(|p| resolve(p)).collect();
        let kind_name = task.id();
        match task {
            TaskKind::Qa => {
                let Some(corpus) = &data.corpus else {
                    return Err(err(
                        "data",
                        None,
                        "[data] corpus is missing: a knowledge-QA experiment retrieves from and trains on a corpus                          (a folder of .txt/.md files, a .jsonl file or one text file); for labelled data set                          task = \"classify\" or \"format\" with [data] train and test"
                            .into(),
                    ));
                };
                must_exist(corpus, "data", "corpus")?;
                for (set, key) in [(data.train.is_some(), "train"), (data.test.is_some(), "test")] {
                    if set {
                        return Err(err(
                            "data",
                            Some(key),
                            format!(
                                "[data] {key} is for labelled tasks: set task = \"classify\" or \"format\" at the \
                                 top of the file, or remove it"
                            ),
                        ));
                    }
                }
                if format.template.is_some() {
                    return Err(err(
                        "format",
                        Some("template"),
                        "[format] is for task = \"format\": remove it or set the task".into(),
                    ));
                }
            }
            TaskKind::Classify | TaskKind::Format => {
                for (path, key) in [(&data.train, "train"), (&data.test, "test")] {
                    match path {
                        Some(p) => must_exist(p, "data", key)?,
                        None => {
                            return Err(err(
                                "data",
                                None,
                                format!(
                                    "[data] {key} is missing: a {kind_name} task reads labelled JSONL files \
                                     [data] train and test"
                                ),
                            ));
                        }
                    }
                }
                for (set, key) in [
                    (data.corpus.is_some(), "corpus"),
                    (data.qa.is_some(), "qa"),
                    (data.old_qa.is_some(), "old_qa"),
                    (data.raft_train.is_some(), "raft_train"),
                    (!data.paraphrases.is_empty(), "paraphrases"),
                ] {
                    if set {
                        return Err(err(
                            "data",
                            Some(key),
                            format!(
                                "[data] {key} is for knowledge QA; a {kind_name} task reads [data] train and test \
                                 (its training examples are what rag retrieves and ft learns): remove it"
                            ),
                        ));
                    }
                }
                if task == TaskKind::Classify && format.template.is_some() {
                    return Err(err(
                        "format",
                        Some("template"),
                        "[format] is for task = \"format\": remove it".into(),
                    ));
                }
            }
        }
        generate.model = generate.model.as_deref().map(resolve);
        if let Some(p) = &generate.model {
            must_exist(p, "generate", "model")?;
        }
        for (p, key) in [(&data.qa, "qa"), (&data.old_qa, "old_qa"), (&data.raft_train, "raft_train")] {
            if let Some(p) = p {
                must_exist(p, "data", key)?;
            }
        }
        for p in &data.paraphrases {
            must_exist(p, "data", "paraphrases")?;
        }
        if data.max_words == 0 {
            return Err(err(
                "data",
                Some("max_words"),
                "[data] max_words must be at least 1 (the default is 120)".into(),
            ));
        }

        let has_data = |arm: Arm| match arm {
            Arm::FtPar => !data.paraphrases.is_empty() || generate.model.is_some(),
            Arm::Raft => data.raft_train.is_some(),
            _ => task.arms().contains(&arm.id()),
        };
        let arms = match arms.run {
            None => Arm::ALL.into_iter().filter(|&a| has_data(a)).collect(),
            Some(run) => {
                let arm_err = |detail: String| err("arms", Some("run"), detail);
                if run.is_empty() {
                    let known: Vec<&str> = Arm::ALL.iter().map(|a| a.id()).collect();
                    return Err(arm_err(format!("run = [] runs nothing: list some of {}", known.join(", "))));
                }
                for (i, a) in run.iter().enumerate() {
                    if run[..i].contains(a) {
                        return Err(arm_err(format!("arm \"{}\" is listed twice", a.id())));
                    }
                    if !task.arms().contains(&a.id()) {
                        return Err(arm_err(format!(
                            "arm \"{}\" is for knowledge QA; a {kind_name} task runs {}",
                            a.id(),
                            task.arms().join(", ")
                        )));
                    }
                    if !has_data(*a) {
                        return Err(arm_err(match a {
                            Arm::FtPar => "arm \"ft-par\" needs [data] paraphrases = [\"<corpus>\", ...], or [generate] \
                                           model = \"<instruct model>\" to write them: add one or drop the arm"
                                .into(),
                            _ => "arm \"raft\" needs [data] raft_train = \"<qa.jsonl with sources>\": add it or drop \
                                  the arm"
                                .into(),
                        }));
                    }
                }
                run
            }
        };

        if model.dtype == WeightDtype::Stored
            && let Some(a) = arms.iter().find(|a| !matches!(a, Arm::Base | Arm::Rag))
        {
            return Err(err(
                "model",
                Some("dtype"),
                format!(
                    "dtype = \"stored\" keeps the weights as the file stores them (a GGUF's quantized blocks), which LoRA training cannot run through: \
                     arm \"{}\" trains; use dtype = \"f32\" (or \"bf16\"), or run only base and rag",
                    a.id()
                ),
            ));
        }
        if rag.k == 0 {
            return Err(err(
                "rag",
                Some("k"),
                "[rag] k must be at least 1 (passages retrieved per question)".into(),
            ));
        }
        let f = &finetune;
        for (key, ok, need) in [
            (
                "r",
                (1..=1024).contains(&f.r),
                "between 1 and 1024 (LoRA ranks are usually 4 .. 256; r is also checked against the model's hidden size)",
            ),
            ("alpha", f.alpha.is_finite() && f.alpha > 0.0, "a positive number"),
            ("epochs", f.epochs >= 1, "at least 1"),
            ("raft_epochs", f.raft_epochs >= 1, "at least 1"),
            ("lr", f.lr.is_finite() && f.lr > 0.0, "a positive number"),
            ("batch_size", f.batch_size >= 1, "at least 1"),
            ("max_seq", f.max_seq >= 2, "at least 2"),
        ] {
            if !ok {
                return Err(err("finetune", Some(key), format!("[finetune] {key} must be {need}")));
            }
        }
        let rounds = data.paraphrases.len();
        if let Some(&n) = f.paraphrase_curve.iter().find(|&&n| n == 0 || n > rounds) {
            let detail = if rounds == 0 {
                "[finetune] paraphrase_curve counts paraphrase rounds, but [data] paraphrases is empty: add \
                 paraphrases or remove paraphrase_curve"
                    .to_string()
            } else {
                format!(
                    "[finetune] paraphrase_curve holds {n}, but each value must be a number of paraphrase rounds \
                     in 1..={rounds} ([data] paraphrases lists {rounds})"
                )
            };
            return Err(err("finetune", Some("paraphrase_curve"), detail));
        }
        if !(0.0..=1.0).contains(&raft.gold_share) {
            return Err(err("raft", Some("gold_share"), "[raft] gold_share must be between 0 and 1".into()));
        }
        for (key, ok, need) in [
            ("per_passage", generate.per_passage >= 1, "at least 1"),
            ("paraphrase_rounds", (1..=8).contains(&generate.paraphrase_rounds), "from 1 to 8"),
            ("max_questions", generate.max_questions >= 1, "at least 1"),
            (
                "dev_share",
                generate.dev_share.is_none_or(|s| (0.0..1.0).contains(&s)),
                "at least 0 and below 1 (the share of questions held out for tuning; the default is 0.3)",
            ),
        ] {
            if !ok {
                return Err(err("generate", Some(key), format!("[generate] {key} must be {need}")));
            }
        }
        if eval.bootstrap == 0 || eval.bootstrap > 1_000_000 {
            return Err(err(
                "eval",
                Some("bootstrap"),
                format!(
                    "[eval] bootstrap = {} must be between 1 and 1000000 (resamples; each costs a pass over the \
                     answers and memory for its score; try 1000)",
                    eval.bootstrap
                ),
            ));
        }
        if !(1..=10).contains(&eval.seeds) {
            return Err(err(
                "eval",
                Some("seeds"),
                format!(
                    "[eval] seeds = {} must be from 1 to 10 (each seed trains every fine-tuned arm once more)",
                    eval.seeds
                ),
            ));
        }
        if eval.limit == Some(0) {
            return Err(err(
                "eval",
                Some("limit"),
                "[eval] limit = 0 answers no question: remove it or raise it".into(),
            ));
        }

        let lrs = tuning.lr.as_deref().unwrap_or_default();
        for (key, ok, need) in [
            (
                "lr",
                lrs.len() <= 8
                    && lrs.iter().all(|l| l.is_finite() && *l > 0.0)
                    && tuning.lr.as_ref().is_none_or(|l| !l.is_empty()),
                "a list of 1 to 8 positive learning rates (each is a full training run per fine-tuned arm)",
            ),
            (
                "rag_k",
                tuning.rag_k.len() <= 8 && tuning.rag_k.iter().all(|k| (1..=64).contains(k)),
                "a list of at most 8 values, each from 1 to 64 passages",
            ),
        ] {
            if !ok {
                return Err(err("tuning", Some(key), format!("[tuning] {key} must be {need}")));
            }
        }

        if let Err(e) = decision.check() {
            return Err(err("decision", Some(e.field), format!("[decision] {e}")));
        }

        Ok(ExperimentConfig {
            file: path.to_path_buf(),
            task,
            format,
            tuning,
            model,
            embedder,
            data,
            arms,
            rag,
            finetune,
            raft,
            eval,
            generate,
            decision,
        })
    }

    /// Read the data files into a [`Task`]: the corpus, the questions (their sources checked
    /// against the corpus; generated from the corpus without `[data] qa`; split into test and
    /// dev, test cut to `[eval] limit`), and the optional forgetting probe, RAFT training
    /// questions (each must have a source) and paraphrase rounds. Nothing is written.
    pub fn task(&self) -> Result<Task> {
        self.task_writing(None)
    }

    /// [`ExperimentConfig::task`]; when the questions are generated and `out` is given, they
    /// are also written to [`generated_qa_path`]`(out)` (atomically), dev and test, each line
    /// with its `split`.
    pub fn task_writing(&self, out: Option<&Path>) -> Result<Task> {
        let d = &self.data;
        if self.task != TaskKind::Qa {
            let (train, test) = match (&d.train, &d.test) {
                (Some(train), Some(test)) => (train, test),
                _ => return Err(EvalError::config("a labelled task needs [data] train and test")),
            };
            let mut task = match self.task {
                TaskKind::Classify => crate::labelled::classify_task(train, test)?,
                _ => crate::labelled::format_task(train, test, self.format.template.as_deref())?,
            };
            if let Some(n) = self.eval.limit {
                task.questions.truncate(n);
            }
            return Ok(task);
        }
        let corpus_path = d
            .corpus
            .as_deref()
            .ok_or_else(|| EvalError::config("[data] corpus is missing (knowledge QA needs it)"))?;
        let corpus = load_corpus_with(corpus_path, d.max_words)?;
        let (all, pinned, share) = match &d.qa {
            Some(qa) => {
                let (questions, pinned) = load_qa_with_splits(qa, &corpus, false)?;
                (questions, pinned, self.generate.dev_share.unwrap_or(0.0))
            }
            None => {
                let layout = load_corpus_layout(corpus_path, d.max_words)?;
                let questions = match &self.generate.model {
                    None => generate(&layout, &self.generate.settings()),
                    Some(path) => {
                        let (model, tok) =
                            ragtune_runtime::load_causal_lm(path, DType::F32, self.model.device()?)?;
                        generate_with_model(&layout, &model, &tok, &self.generate.settings())?
                    }
                };
                if questions.is_empty() {
                    return Err(EvalError::data(
                        corpus_path.display(),
                        format!(
                            "no question could be generated from the corpus ({} passages): it has no sentence that \
                             states a fact with a name, number, version or defined term in it; write a QA file \
                             and set [data] qa",
                            corpus.len()
                        ),
                    ));
                }
                (questions, Vec::new(), self.generate.dev_share.unwrap_or(DEFAULT_DEV_SHARE))
            }
        };
        let splits = split_by_source(&all, &pinned, share, self.generate.seed);
        if d.qa.is_none()
            && let Some(out) = out
        {
            let path = generated_qa_path(out);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
            }
            crate::report::write::write_atomically(&path, crate::qgen::to_jsonl(&all, &splits).as_bytes())?;
        }
        let mut questions = Vec::new();
        let mut dev_questions = Vec::new();
        for (q, split) in all.into_iter().zip(&splits) {
            match split {
                Split::Dev => dev_questions.push(q),
                Split::Test => questions.push(q),
            }
        }
        if questions.is_empty() {
            return Err(EvalError::data(
                d.qa.as_deref().unwrap_or(corpus_path).display(),
                "every question is on the dev side of the split: leave some for the test the report is on \
                 (fewer \"split\": \"dev\" lines, or a lower [generate] dev_share)",
            ));
        }
        if let Some(n) = self.eval.limit {
            // The dev side is cut too: tuning answers it once per knob setting.
            questions.truncate(n);
            dev_questions.truncate(n);
        }
        let paraphrases = if d.paraphrases.is_empty() && self.runs(Arm::FtPar) {
            self.written_paraphrases(&corpus, out)?
        } else {
            d.paraphrases.iter().map(|p| load_corpus_with(p, d.max_words)).collect::<Result<_>>()?
        };
        let raft_train = match &d.raft_train {
            Some(p) => load_qa_for(p, &corpus, true)?,
            None => Vec::new(),
        };
        let old_questions = match &d.old_qa {
            Some(p) => load_qa(p)?,
            None => Vec::new(),
        };
        Ok(Task {
            corpus,
            questions,
            dev_questions,
            paraphrases,
            raft_train,
            old_questions,
            ..Task::default()
        })
    }

    /// `ft-par`'s paraphrase rounds written by `[generate] model` (see
    /// [`crate::qgen::paraphrase`]), also saved as `OUT/generated/paraphrases-N.jsonl` when `out`
    /// is given.
    fn written_paraphrases(&self, corpus: &[Passage], out: Option<&Path>) -> Result<Vec<Vec<Passage>>> {
        let Some(path) = &self.generate.model else { return Ok(Vec::new()) };
        let (model, tok) = ragtune_runtime::load_causal_lm(path, DType::F32, self.model.device()?)?;
        let mut writer = crate::qgen::paraphrase::ModelParaphraser::new(&model, &tok);
        let (rounds, kept) =
            crate::qgen::paraphrase::paraphrase_rounds(corpus, &mut writer, self.generate.paraphrase_rounds)?;
        if kept == 0 {
            return Err(EvalError::data(
                path.display(),
                "arm ft-par: no paraphrase written by [generate] model kept every name and number of its passage; \
                 give [data] paraphrases, use a larger instruct model, or drop the arm",
            ));
        }
        if let Some(out) = out {
            for (i, round) in rounds.iter().enumerate() {
                let file = out.join("generated").join(format!("paraphrases-{}.jsonl", i + 1));
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
                }
                let text: String = round
                    .iter()
                    .map(|p| serde_json::json!({ "id": p.id, "text": p.text }).to_string() + "\n")
                    .collect();
                crate::report::write::write_atomically(&file, text.as_bytes())?;
            }
        }
        Ok(rounds)
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
            arms: self.arms.iter().map(|a| a.id().to_string()).collect(),
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
