//! [`Arm`]: the experiment's arms. Each arm's id (`ft+rag`) is spelled once, in
//! [`Arm::as_str`]; configs, `report.json`, `report.md`, chart labels and adapter folder names
//! all go through it (serde, [`Display`](std::fmt::Display), [`FromStr`]), and the code that
//! runs, costs and reports the arms asks the predicates ([`Arm::retrieves`],
//! [`Arm::fine_tuned`], …) rather than comparing names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One arm of the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arm {
    /// Closed book: the base model alone.
    Base,
    /// The base model with retrieved passages in the prompt.
    Rag,
    /// LoRA fine-tuned on the corpus, closed book.
    Ft,
    /// LoRA fine-tuned on the corpus and its paraphrases, closed book.
    FtPar,
    /// The `ft` adapter with retrieved passages.
    FtRag,
    /// LoRA fine-tuned on question + gold and distractor passages → answer, then with retrieval.
    Raft,
}

impl Arm {
    /// Every arm, in the order they run and are reported.
    pub const ALL: [Arm; 6] = [Arm::Base, Arm::Rag, Arm::Ft, Arm::FtPar, Arm::FtRag, Arm::Raft];

    /// The id used in configs, reports and file names (`ft+rag`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Arm::Base => "base",
            Arm::Rag => "rag",
            Arm::Ft => "ft",
            Arm::FtPar => "ft-par",
            Arm::FtRag => "ft+rag",
            Arm::Raft => "raft",
        }
    }

    /// The arm whose id is `id`, if any.
    pub fn from_id(id: &str) -> Option<Arm> {
        Arm::ALL.into_iter().find(|a| a.as_str() == id)
    }

    /// How the arm is named in the report's sentences ("closed-book FT").
    pub const fn prose_name(self) -> &'static str {
        match self {
            Arm::Base => "the base model",
            Arm::Rag => "RAG",
            Arm::Ft => "closed-book FT",
            Arm::FtPar => "FT with paraphrases",
            Arm::FtRag => "FT+RAG",
            Arm::Raft => "RAFT",
        }
    }

    /// Whether it answers with retrieved passages (or, on a labelled task, demonstrations).
    pub const fn retrieves(self) -> bool {
        matches!(self, Arm::Rag | Arm::FtRag | Arm::Raft)
    }

    /// Whether it answers with a LoRA adapter attached (trained for it or, for `ft+rag`,
    /// `ft`'s).
    pub const fn fine_tuned(self) -> bool {
        !matches!(self, Arm::Base | Arm::Rag)
    }

    /// Fine-tuned and answering closed book (`ft`, `ft-par`): the other side of the
    /// retrieval-vs-fine-tuning break-even.
    pub const fn fine_tuned_closed_book(self) -> bool {
        self.fine_tuned() && !self.retrieves()
    }

    /// Whether it trains on the corpus's paraphrase rounds (`ft-par`).
    pub const fn uses_paraphrases(self) -> bool {
        matches!(self, Arm::FtPar)
    }

    /// Whether it trains on RAFT's question → answer pairs with sources (`raft`).
    pub const fn uses_raft_train(self) -> bool {
        matches!(self, Arm::Raft)
    }

    /// The arm whose adapter it answers with: `ft+rag` answers with `ft`'s; a fine-tuned arm
    /// with its own; `None` without an adapter.
    pub const fn adapter_of(self) -> Option<Arm> {
        match self {
            Arm::Base | Arm::Rag => None,
            Arm::FtRag => Some(Arm::Ft),
            a => Some(a),
        }
    }

    /// The ids of `arms`, comma-separated (`base, rag, ft`), for messages.
    pub fn list(arms: &[Arm]) -> String {
        arms.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An id that names no arm; its message lists the arms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownArm(pub String);

impl fmt::Display for UnknownArm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown arm `{}`, expected one of {}", self.0, Arm::list(&Arm::ALL))
    }
}

impl std::error::Error for UnknownArm {}

impl FromStr for Arm {
    type Err = UnknownArm;

    fn from_str(s: &str) -> Result<Arm, UnknownArm> {
        Arm::from_id(s).ok_or_else(|| UnknownArm(s.to_string()))
    }
}

/// Tests and callers may compare arms with ids as written in reports.
impl PartialEq<&str> for Arm {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Arm {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl Serialize for Arm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Arm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Arm, D::Error> {
        let id = String::deserialize(d)?;
        id.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids as the configs, reports and adapter folders of earlier runs spell them.
    const WRITTEN: [&str; 6] = ["base", "rag", "ft", "ft-par", "ft+rag", "raft"];

    #[test]
    fn ids_round_trip_through_str_display_and_serde() {
        for (arm, id) in Arm::ALL.into_iter().zip(WRITTEN) {
            assert_eq!(arm.as_str(), id);
            assert_eq!(arm.to_string(), id);
            assert_eq!(id.parse::<Arm>(), Ok(arm));
            assert_eq!(serde_json::to_string(&arm).unwrap(), format!("\"{id}\""));
            assert_eq!(serde_json::from_str::<Arm>(&format!("\"{id}\"")).unwrap(), arm);
        }
    }

    #[test]
    fn an_unknown_id_names_itself_and_the_arms() {
        let e = "rga".parse::<Arm>().unwrap_err().to_string();
        assert!(e.contains("`rga`") && WRITTEN.iter().all(|id| e.contains(id)), "{e}");
        let e = serde_json::from_str::<Arm>("\"FT\"").unwrap_err().to_string();
        assert!(e.contains("`FT`") && e.contains("ft+rag"), "{e}");
    }

    #[test]
    fn predicates_match_the_arm_definitions() {
        let with =
            |p: fn(Arm) -> bool| Arm::ALL.into_iter().filter(|&a| p(a)).map(Arm::as_str).collect::<Vec<_>>();
        assert_eq!(with(Arm::retrieves), ["rag", "ft+rag", "raft"]);
        assert_eq!(with(Arm::fine_tuned), ["ft", "ft-par", "ft+rag", "raft"]);
        assert_eq!(with(Arm::fine_tuned_closed_book), ["ft", "ft-par"]);
        assert_eq!(with(Arm::uses_paraphrases), ["ft-par"]);
        assert_eq!(with(Arm::uses_raft_train), ["raft"]);
        assert_eq!(Arm::FtRag.adapter_of(), Some(Arm::Ft));
        assert_eq!(Arm::Rag.adapter_of(), None);
    }
}
