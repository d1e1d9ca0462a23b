//! [`ExperimentConfig::task`]: the config's data files read into a [`Task`] — the corpus, the
//! questions (loaded, or generated and written back), their dev/test split, the paraphrase
//! rounds (loaded, or written by `[generate] model`), RAFT's training questions and the
//! forgetting probe.

use std::path::Path;

use ragtune_compute::DType;

use super::{Arm, DEFAULT_DEV_SHARE, ExperimentConfig, generated_qa_path};
use crate::error::{EvalError, Result};
use crate::qgen::model::generate_with_model;
use crate::qgen::{Split, generate, split_by_source};
use crate::task::{Passage, Task, TaskKind};
use crate::userdata::{load_corpus_layout, load_corpus_with, load_qa, load_qa_for, load_qa_with_splits};

impl ExperimentConfig {
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
                format!(
                    "arm {}: no paraphrase written by [generate] model kept every name and number of its passage; \
                     give [data] paraphrases, use a larger instruct model, or drop the arm",
                    Arm::FtPar
                ),
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
}
