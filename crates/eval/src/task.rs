//! The experiment's input, whatever its source: a corpus of passages to retrieve from and to
//! fine-tune on, the questions every arm answers, and the optional extras that some arms and
//! measurements need. The built-in world ([`crate::world`]) and a user's files
//! (`ragtune compare`) both become a [`Task`]; the arms only ever see this.

use serde::{Deserialize, Serialize};

/// A retrievable, trainable piece of text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// Unique within the task (a file name, a JSONL `id`, `doc-<entity>-<k>`).
    pub id: String,
    pub text: String,
}

/// A question with its reference answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
