//! [`ExperimentConfig::parse`]: the TOML read into its sections, relative paths resolved
//! against the config's folder, then every check that spans sections (an arm without its data,
//! a labelled task with a corpus, numbers out of range), each error naming the file and line.

use std::path::{Path, PathBuf};

use super::sections::{DataSection, EmbedderSection, FormatSection, GenerateSection, RawConfig};
use super::{Arm, EmbedderKind, ExperimentConfig, WeightDtype};
use crate::error::{EvalError, Result};
use crate::task::TaskKind;

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
        let c = Checker { text, path };
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
        model.path = c.resolve(&model.path);
        c.must_exist(&model.path, "model", "path")?;
        c.embedder(&mut embedder)?;
        c.data(task, &mut data, &format, &mut generate)?;
        let arms = c.arms(task, arms.run, &data, &generate)?;
        let config = ExperimentConfig {
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
        };
        c.numbers(&config)?;
        Ok(config)
    }
}

/// Where a config's errors point (its text, for line numbers, and its path) and what its
/// relative paths are relative to.
struct Checker<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Checker<'_> {
    /// An error at `[section] key` (its line; the section's header when the key is missing).
    fn err(&self, section: &str, key: Option<&str>, detail: String) -> EvalError {
        let place = match line_of(self.text, section, key) {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        };
        EvalError::data(place, detail)
    }

    /// `p` against the config's folder when it is relative.
    fn resolve(&self, p: &Path) -> PathBuf {
        let base = self.path.parent().unwrap_or(Path::new("."));
        if p.is_relative() { base.join(p) } else { p.to_path_buf() }
    }

    fn must_exist(&self, p: &Path, section: &str, key: &str) -> Result<()> {
        if p.exists() {
            Ok(())
        } else {
            Err(self.err(
                section,
                Some(key),
                format!(
                    "[{section}] {key}: {} does not exist (relative paths are relative to the config's folder)",
                    p.display()
                ),
            ))
        }
    }

    /// `[embedder]`: a path only for BERT (and then required, and existing), a width only for
    /// the hashed embedder, within bounds.
    fn embedder(&self, embedder: &mut EmbedderSection) -> Result<()> {
        embedder.path = embedder.path.as_deref().map(|p| self.resolve(p));
        match (embedder.kind, &embedder.path, embedder.dim) {
            (EmbedderKind::Bert, None, _) => {
                return Err(self.err(
                    "embedder",
                    Some("kind"),
                    "kind = \"bert\" needs path = \"<a sentence-transformers folder>\"".into(),
                ));
            }
            (EmbedderKind::Bert, _, Some(_)) => {
                return Err(self.err(
                    "embedder",
                    Some("dim"),
                    "dim is for kind = \"hashed\"; a BERT model has its own width: remove it".into(),
                ));
            }
            (EmbedderKind::Hashed, Some(_), _) => {
                return Err(self.err(
                    "embedder",
                    Some("path"),
                    "path is for kind = \"bert\"; the hashed embedder needs no files: remove it or set kind = \"bert\""
                        .into(),
                ));
            }
            (EmbedderKind::Hashed, None, Some(0)) => {
                return Err(self.err(
                    "embedder",
                    Some("dim"),
                    "dim must be at least 1 (the default is 16384)".into(),
                ));
            }
            // dim sizes every hashed vector (dim × 4 bytes per passage): bounded before use.
            (EmbedderKind::Hashed, None, Some(d)) if d > 1 << 20 => {
                return Err(self.err(
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
            self.must_exist(p, "embedder", "path")?;
        }
        Ok(())
    }

    /// `[data]` (and `[generate] model`): the files the task kind reads, existing, and none it
    /// does not read.
    fn data(
        &self,
        task: TaskKind,
        data: &mut DataSection,
        format: &FormatSection,
        generate: &mut GenerateSection,
    ) -> Result<()> {
        data.corpus = data.corpus.as_deref().map(|p| self.resolve(p));
        data.train = data.train.as_deref().map(|p| self.resolve(p));
        data.test = data.test.as_deref().map(|p| self.resolve(p));
        data.qa = data.qa.as_deref().map(|p| self.resolve(p));
        data.old_qa = data.old_qa.as_deref().map(|p| self.resolve(p));
        data.raft_train = data.raft_train.as_deref().map(|p| self.resolve(p));
        data.paraphrases = data.paraphrases.iter().map(|p| self.resolve(p)).collect();
        let kind_name = task.id();
        match task {
            TaskKind::Qa => {
                let Some(corpus) = &data.corpus else {
                    return Err(self.err(
                        "data",
                        None,
                        "[data] corpus is missing: a knowledge-QA experiment retrieves from and trains on a corpus                          (a folder of .txt/.md files, a .jsonl file or one text file); for labelled data set                          task = \"classify\" or \"format\" with [data] train and test"
                            .into(),
                    ));
                };
                self.must_exist(corpus, "data", "corpus")?;
                for (set, key) in [(data.train.is_some(), "train"), (data.test.is_some(), "test")] {
                    if set {
                        return Err(self.err(
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
                    return Err(self.err(
                        "format",
                        Some("template"),
                        "[format] is for task = \"format\": remove it or set the task".into(),
                    ));
                }
            }
            TaskKind::Classify | TaskKind::Format => {
                for (path, key) in [(&data.train, "train"), (&data.test, "test")] {
                    match path {
                        Some(p) => self.must_exist(p, "data", key)?,
                        None => {
                            return Err(self.err(
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
                        return Err(self.err(
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
                    return Err(self.err(
                        "format",
                        Some("template"),
                        "[format] is for task = \"format\": remove it".into(),
                    ));
                }
            }
        }
        generate.model = generate.model.as_deref().map(|p| self.resolve(p));
        if let Some(p) = &generate.model {
            self.must_exist(p, "generate", "model")?;
        }
        for (p, key) in [(&data.qa, "qa"), (&data.old_qa, "old_qa"), (&data.raft_train, "raft_train")] {
            if let Some(p) = p {
                self.must_exist(p, "data", key)?;
            }
        }
        for p in &data.paraphrases {
            self.must_exist(p, "data", "paraphrases")?;
        }
        if data.max_words == 0 {
            return Err(self.err(
                "data",
                Some("max_words"),
                "[data] max_words must be at least 1 (the default is 120)".into(),
            ));
        }
        Ok(())
    }

    /// `[arms] run`, or by default every arm whose data is there; each listed arm once, of the
    /// task's kind, with its data.
    fn arms(
        &self,
        task: TaskKind,
        run: Option<Vec<Arm>>,
        data: &DataSection,
        generate: &GenerateSection,
    ) -> Result<Vec<Arm>> {
        let has_data = |arm: Arm| {
            if arm.uses_paraphrases() {
                !data.paraphrases.is_empty() || generate.model.is_some()
            } else if arm.uses_raft_train() {
                data.raft_train.is_some()
            } else {
                task.arms().contains(&arm)
            }
        };
        Ok(match run {
            None => Arm::ALL.into_iter().filter(|&a| has_data(a)).collect(),
            Some(run) => {
                let arm_err = |detail: String| self.err("arms", Some("run"), detail);
                if run.is_empty() {
                    return Err(arm_err(format!(
                        "run = [] runs nothing: list some of {}",
                        Arm::list(&Arm::ALL)
                    )));
                }
                for (i, a) in run.iter().enumerate() {
                    if run[..i].contains(a) {
                        return Err(arm_err(format!("arm \"{a}\" is listed twice")));
                    }
                    if !task.arms().contains(a) {
                        return Err(arm_err(format!(
                            "arm \"{a}\" is for knowledge QA; a {} task runs {}",
                            task.id(),
                            Arm::list(task.arms())
                        )));
                    }
                    if !has_data(*a) {
                        return Err(arm_err(if a.uses_paraphrases() {
                            format!(
                                "arm \"{a}\" needs [data] paraphrases = [\"<corpus>\", ...], or [generate] \
                                 model = \"<instruct model>\" to write them: add one or drop the arm"
                            )
                        } else {
                            format!(
                                "arm \"{a}\" needs [data] raft_train = \"<qa.jsonl with sources>\": add it or drop \
                                 the arm"
                            )
                        }));
                    }
                }
                run
            }
        })
    }

    /// The numbers of every section within their bounds, and `dtype = "stored"` only with arms
    /// that do not train.
    fn numbers(&self, c: &ExperimentConfig) -> Result<()> {
        let ExperimentConfig {
            model, arms, rag, finetune, data, raft, generate, eval, tuning, decision, ..
        } = c;
        if model.dtype == WeightDtype::Stored
            && let Some(a) = arms.iter().find(|a| a.fine_tuned())
        {
            return Err(self.err(
                "model",
                Some("dtype"),
                format!(
                    "dtype = \"stored\" keeps the weights as the file stores them (a GGUF's quantized blocks), which LoRA training cannot run through: \
                     arm \"{a}\" trains; use dtype = \"f32\" (or \"bf16\"), or run only base and rag"
                ),
            ));
        }
        if rag.k == 0 {
            return Err(self.err(
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
                return Err(self.err("finetune", Some(key), format!("[finetune] {key} must be {need}")));
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
            return Err(self.err("finetune", Some("paraphrase_curve"), detail));
        }
        if !(0.0..=1.0).contains(&raft.gold_share) {
            return Err(self.err(
                "raft",
                Some("gold_share"),
                "[raft] gold_share must be between 0 and 1".into(),
            ));
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
                return Err(self.err("generate", Some(key), format!("[generate] {key} must be {need}")));
            }
        }
        if eval.bootstrap == 0 || eval.bootstrap > 1_000_000 {
            return Err(self.err(
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
            return Err(self.err(
                "eval",
                Some("seeds"),
                format!(
                    "[eval] seeds = {} must be from 1 to 10 (each seed trains every fine-tuned arm once more)",
                    eval.seeds
                ),
            ));
        }
        if eval.limit == Some(0) {
            return Err(self.err(
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
                return Err(self.err("tuning", Some(key), format!("[tuning] {key} must be {need}")));
            }
        }

        if let Err(e) = decision.check() {
            return Err(self.err("decision", Some(e.field), format!("[decision] {e}")));
        }
        Ok(())
    }
}
