//! The experiment's input, whatever its source: a corpus of passages to retrieve from and to
//! fine-tune on, the questions every arm answers, and the optional extras that some arms and
//! measurements need. The built-in world ([`crate::world`]) and a user's files
//! (`ragtune compare`) both become a [`Task`]; the arms only ever see this.
//!
//! Three kinds of task share the shape ([`TaskKind`]): knowledge QA (the corpus is what RAG
//! retrieves and FT learns; the questions ask about it), classification and house format. For
//! the last two the corpus is the labelled *training* set — each [`Passage`] an input with its
//! `target` (the label, or the output in the house format) — which RAG retrieves as
//! demonstrations and FT learns input → target from; each test item is a [`QaItem`] whose
//! `question` is the input and whose `answer` is the target (for classification also a choice
//! among the labels, so the label is scored by its log-likelihood).

use serde::{Deserialize, Serialize};

use crate::config::Arm;

/// A retrievable, trainable piece of text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// Unique within the task (a file name, a JSONL `id`, `doc-<entity>-<k>`).
    pub id: String,
    pub text: String,
    /// The input's target when the passage is a labelled training example (classification:
    /// the label; house format: the output); `None` for knowledge passages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Passage {
    /// A knowledge passage (no target).
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Passage {
        Passage { id: id.into(), text: text.into(), target: None }
    }
}

/// What the experiment adapts the model to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Questions about the facts of a corpus.
    #[default]
    Qa,
    /// A label per text, from a fixed label set.
    Classify,
    /// An output in a house format (a JSON object with fixed fields, or a template) per input.
    Format,
}

impl TaskKind {
    /// `qa`, `classify` or `format`, as configs and reports spell it.
    pub fn id(self) -> &'static str {
        match self {
            TaskKind::Qa => "qa",
            TaskKind::Classify => "classify",
            TaskKind::Format => "format",
        }
    }

    /// The arms this kind of task runs: QA has all six; classification and house format have
    /// no paraphrase rounds and no RAFT passages.
    pub fn arms(self) -> &'static [Arm] {
        match self {
            TaskKind::Qa => &Arm::ALL,
            TaskKind::Classify | TaskKind::Format => &[Arm::Base, Arm::Rag, Arm::Ft, Arm::FtRag],
        }
    }
}

/// The house format a `format` task's outputs follow, checked on every generated output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HouseFormat {
    /// A JSON object with these fields (those every training output has).
    Json { fields: Vec<String> },
    /// A template with `{field}` placeholders and literal text between them.
    Template { template: String },
}

/// A question with its reference answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QaItem {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// Options for multiple choice (empty: free answer only); `choices[correct]` is right.
    pub choices: Vec<String>,
    pub correct: Option<usize>,
    /// Ids of the passages that state the answer (for retrieval recall and RAFT's gold passage).
    pub sources: Vec<String>,
    /// `"seen"` or `"held-out"` phrasing, when known.
    pub phrasing: Option<String>,
    /// How many passages mention the question's subject, when known.
    pub popularity: Option<usize>,
}

/// Everything an experiment run answers and trains on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// What the task asks of the model (knowledge QA unless said otherwise).
    #[serde(default)]
    pub kind: TaskKind,
    /// Classification: the label set, in the order the data first names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// House format: the format outputs must follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<HouseFormat>,
    /// What RAG retrieves from and FT trains on.
    pub corpus: Vec<Passage>,
    /// The evaluation questions (about the corpus's knowledge): the test side of the dev/test
    /// split when there is one ([`crate::qgen::split_by_source`]).
    pub questions: Vec<QaItem>,
    /// The dev side of the split: for tuning (learning rate, epochs, `k`), never reported as
    /// the result. Empty when there is no split.
    #[serde(default)]
    pub dev_questions: Vec<QaItem>,
    /// Extra renderings of the corpus for FT-par, grouped by round: `paraphrases[i]` is the
    /// i-th extra paraphrase of (some of) the corpus. Empty: FT-par is not run.
    pub paraphrases: Vec<Vec<Passage>>,
    /// Question → answer pairs for RAFT-style training (their `sources` name the gold
    /// passage). Empty: RAFT is not run.
    pub raft_train: Vec<QaItem>,
    /// Questions about knowledge the base model already has, asked before and after
    /// fine-tuning to measure forgetting. Empty: forgetting is not measured.
    pub old_questions: Vec<QaItem>,
}
