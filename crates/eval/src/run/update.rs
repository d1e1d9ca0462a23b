//! One knowledge update, measured for real: a seeded 10% of the corpus passages gets a marked
//! edit, and each arm absorbs the edit the way it absorbs knowledge:
//!
//! - `rag`: re-embed and re-index the changed passages (the fitted embedder is kept);
//! - `ft`: train on the changed passages with the set-up's recipe (same epochs, batch size,
//!   learning rate — those chosen on dev when the run tuned). That is what continuing the deployed adapter's training on the edits
//!   costs — the same steps on the same tokens; re-training on the whole corpus instead would
//!   cost the set-up time again, which the report also shows;
//! - `ft-par`: the same on the changed passages and the same share of every paraphrase round;
//! - `ft+rag`: `ft`'s training plus `rag`'s re-index (one measurement each, shared);
//! - `raft`: `rag`'s re-index: its adapter learned to read retrieved passages, not the facts,
//!   so new facts reach it through the index;
//! - `base`: nothing to rebuild (and nothing learned).
//!
//! In a classification or house-format task the "passages" are the labelled training
//! examples: an update is 10% of them new or changed, `rag` re-indexes them and `ft` trains on
//! them as labelled examples.
//!
//! The update's adapters are thrown away: only their time is kept. Per-question latency
//! percentiles ([`percentile`]) live here too, as the other half of what the decision needs.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Runner;
use super::train::document_example;
use crate::config::Arm;
use crate::error::Result;
use crate::report::{ArmResult, UpdateCost};
use crate::retrieve::Retriever;
use crate::task::{Passage, TaskKind};

/// The share of the corpus one update changes.
pub const UPDATE_SHARE: f64 = 0.1;

const UPDATE_SALT: u64 = 0x5550_4441_5445;

/// The marked edit an update makes to a passage.
pub fn edit(text: &str) -> String {
    format!("{text} (Revised: this passage was updated.)")
}

/// A seeded [`UPDATE_SHARE`] of `passages` (at least one), in corpus order, edited.
pub fn changed(passages: &[Passage], seed: u64) -> Vec<Passage> {
    if passages.is_empty() {
        return Vec::new();
    }
    let n = ((passages.len() as f64 * UPDATE_SHARE).ceil() as usize).clamp(1, passages.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ UPDATE_SALT);
    let mut picked = rand::seq::index::sample(&mut rng, passages.len(), n).into_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| Passage { text: edit(&passages[i].text), ..passages[i].clone() }).collect()
}

/// The `q`-quantile (0..=1) of `values`, interpolating linearly between order statistics;
/// `None` without values.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = pos.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    Some(sorted[below] + (sorted[above] - sorted[below]) * (pos - below as f64))
}

impl Runner<'_> {
    /// Time one update for every arm in `arms` and record it in their costs.
    pub(super) fn measure_updates(&mut self, arms: &mut [ArmResult]) -> Result<()> {
        if arms.is_empty() {
            return Ok(());
        }
        let s = self.settings;
        let changed = changed(&self.task.corpus, s.seed);
        let n = changed.len();
        let run: Vec<Arm> = arms.iter().filter_map(ArmResult::as_arm).collect();
        let has = |arm: Arm| run.contains(&arm);
        let reindex = if run.iter().any(|a| a.retrieves()) {
            let start = Instant::now();
            let index = Retriever::build(self.embedder, &changed, &self.model.device)?;
            let seconds = start.elapsed().as_secs_f64();
            drop(index);
            Some(seconds)
        } else {
            None
        };
        // ft+rag answers with ft's adapter: one training serves both.
        let ft = if run.iter().any(|a| a.adapter_of() == Some(Arm::Ft)) {
            let t = if self.task.kind == TaskKind::Qa {
                let docs = changed
                    .iter()
                    .map(|p| document_example(self.tok, &p.text, self.eos))
                    .collect::<Result<_>>()?;
                self.train_with("update: ft", docs, true, &self.recipe(Arm::Ft))?
            } else {
                let examples = self.labelled_examples(&changed)?;
                self.train_with("update: ft", examples, false, &self.recipe(Arm::Ft))?
            };
            Some((t.seconds, t.tokens))
        } else {
            None
        };
        let ft_par = if has(Arm::FtPar) {
            let mut passages = changed.clone();
            for (r, round) in self.task.paraphrases.iter().enumerate() {
                passages.extend(self::changed(round, s.seed.wrapping_add(r as u64 + 1)));
            }
            let docs = passages
                .iter()
                .map(|p| document_example(self.tok, &p.text, self.eos))
                .collect::<Result<_>>()?;
            let t = self.train_with("update: ft-par", docs, true, &self.recipe(Arm::FtPar))?;
            Some((t.seconds, t.tokens, passages.len() - n))
        } else {
            None
        };
        let epochs = self.recipe(Arm::Ft).epochs;
        let par_epochs = self.recipe(Arm::FtPar).epochs;
        let index_how = format!("re-embed and re-index the {n} changed passages");
        let train_how = format!(
            "train on the {n} changed passages with the set-up's recipe ({epochs} epochs), what continuing the \
             adapter's training on them costs"
        );
        for arm in arms.iter_mut() {
            let Some(kind) = arm.as_arm() else { continue };
            let update = match (kind, reindex, ft, ft_par) {
                (Arm::Base, ..) => UpdateCost {
                    seconds: 0.0,
                    changed_passages: n,
                    train_tokens: 0,
                    how: "nothing to rebuild (the base model does not learn the change)".into(),
                },
                (Arm::Rag, Some(ix), ..) => {
                    UpdateCost { seconds: ix, changed_passages: n, train_tokens: 0, how: index_how.clone() }
                }
                (Arm::Ft, _, Some((sec, tokens)), _) => UpdateCost {
                    seconds: sec,
                    changed_passages: n,
                    train_tokens: tokens,
                    how: train_how.clone(),
                },
                (Arm::FtRag, Some(ix), Some((sec, tokens)), _) => UpdateCost {
                    seconds: sec + ix,
                    changed_passages: n,
                    train_tokens: tokens,
                    how: format!("{train_how}, then {index_how}"),
                },
                (Arm::FtPar, _, _, Some((sec, tokens, extra))) => UpdateCost {
                    seconds: sec,
                    changed_passages: n,
                    train_tokens: tokens,
                    how: format!(
                        "train on the {n} changed passages and {extra} of their paraphrases with the set-up's \
                         recipe ({par_epochs} epochs)"
                    ),
                },
                (Arm::Raft, Some(ix), ..) => UpdateCost {
                    seconds: ix,
                    changed_passages: n,
                    train_tokens: 0,
                    how: format!(
                        "{index_how}; the adapter is kept (it learned to read passages, not the facts)"
                    ),
                },
                _ => continue,
            };
            arm.cost.update = Some(update);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_order_statistics() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        // 1..=20: position 0.95·19 = 18.05 → 19 + 0.05·(20 − 19).
        let v: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert!((percentile(&v, 0.95).unwrap() - 19.05).abs() < 1e-12);
        assert_eq!(percentile(&v, 0.5), Some(10.5));
    }

    #[test]
    fn an_update_edits_a_seeded_tenth_of_the_corpus() {
        let corpus: Vec<Passage> =
            (0..35).map(|i| Passage::new(format!("p{i}"), format!("text {i}"))).collect();
        let a = changed(&corpus, 3);
        assert_eq!(a.len(), 4, "ceil(10% of 35)");
        assert_eq!(a, changed(&corpus, 3), "deterministic by seed");
        assert_ne!(a, changed(&corpus, 4));
        for p in &a {
            let original = corpus.iter().find(|c| c.id == p.id).unwrap();
            assert_eq!(p.text, edit(&original.text));
            assert_ne!(p.text, original.text);
        }
        assert_eq!(changed(&corpus[..3], 0).len(), 1, "at least one passage");
        assert!(changed(&[], 0).is_empty());
    }
}
