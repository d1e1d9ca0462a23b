//! [`Arm`]: the experiment's arms, each spelled once.

use serde::{Deserialize, Serialize};

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
