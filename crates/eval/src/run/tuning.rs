//! A fair fight: each arm's knobs are chosen on the dev split and the arm is reported on test.
//!
//! - **RAG's k**: the base model answers every dev question with the top-k passages for each k
//!   of the grid (one search per question at the largest k; smaller k take its prefix); the best
//!   dev score wins, a tie goes to the smaller k (a shorter prompt is cheaper); a k whose dev
//!   prompts overflow the model's context is not tried. Every retrieving arm then uses that k.
//! - **Fine-tuning**: for each learning rate of the grid the arm trains for the configured
//!   epochs, and the adapter is snapshotted at the end of every epoch; each snapshot answers the
//!   dev questions, giving the dev score and the held-out loss (the mean per-token negative
//!   log-likelihood of the reference answer) per epoch. The best (learning rate, epoch) by dev
//!   score — ties: lower held-out loss, then fewer epochs — is the arm's adapter: early stopping
//!   within one cosine schedule. Its set-up cost is that run's time and tokens up to the chosen
//!   epoch (what reproducing the recipe costs); the tuning itself is reported beside it.
//! - **Overfitting**: when the chosen learning rate's held-out loss ends at least
//!   [`OVERFIT_RISE`] above its minimum while the training loss kept falling, the report says
//!   fine-tuning overfits after the epoch of that minimum.
//!
//! Nothing here runs without dev questions (the demo's world task has none; generated
//! questions have a dev side by default).

use serde::{Deserialize, Serialize};

use ragtune_compute::Tensor;
use ragtune_trainer::LoraAdapter;
use ragtune_trainer::data::Example;

use super::Runner;
use super::answer::answer;
use super::train::{LoraSettings, Trained, train_lora_epochs};
use crate::config::Arm;
use crate::error::Result;
use crate::metrics;
use crate::prompt;
use crate::task::{QaItem, TaskKind};

/// The held-out loss's rise over its minimum (relative) that counts as overfitting.
pub const OVERFIT_RISE: f64 = 0.05;

/// `[tuning]`: the grids tried on the dev split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuningSettings {
    /// Learning rates each fine-tuned arm tries (each a full training run).
    pub lr: Vec<f32>,
    /// Passages per question RAG tries.
    pub rag_k: Vec<usize>,
}

/// One epoch of one training run, scored on dev.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochTrial {
    pub lr: f32,
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f32,
    /// Mean per-token negative log-likelihood of the dev answers.
    pub dev_loss: f64,
    /// The dev score (the run's main metric, 0..=1).
    pub dev_score: f64,
}

/// A fine-tuned arm's grid and choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmTuning {
    pub arm: Arm,
    pub trials: Vec<EpochTrial>,
    pub chosen_lr: f32,
    pub chosen_epoch: usize,
    /// Wall time of every training run and dev evaluation of the grid (seconds).
    pub seconds: f64,
    /// A sentence when the chosen run's held-out loss rose after its minimum.
    pub overfit: Option<String>,
}

/// RAG's k on dev.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KTrial {
    pub k: usize,
    pub dev_score: f64,
}

/// What was tried on dev and what was chosen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The dev score's metric, in words.
    pub metric: String,
    pub dev_questions: usize,
    pub rag: Vec<KTrial>,
    pub rag_k: Option<usize>,
    pub arms: Vec<ArmTuning>,
}

/// A deep copy of `adapter` (training updates its tensors in place).
fn snapshot(adapter: &LoraAdapter) -> Result<LoraAdapter> {
    let copy = |t: &Tensor| -> Result<Tensor> {
        Ok(Tensor::from_slice(&t.to_vec_f32()?, t.shape())?.to_device(&t.device())?)
    };
    let mut out = adapter.clone();
    for slots in &mut out.modules {
        for m in slots.iter_mut().flatten() {
            m.a = copy(&m.a)?;
            m.b = copy(&m.b)?;
        }
    }
    Ok(out)
}

/// The best trial: highest dev score, then lowest dev loss, then earliest.
fn best(trials: &[EpochTrial]) -> Option<&EpochTrial> {
    trials.iter().min_by(|a, b| {
        b.dev_score
            .total_cmp(&a.dev_score)
            .then(a.dev_loss.total_cmp(&b.dev_loss))
            .then(a.epoch.cmp(&b.epoch))
            .then(a.lr.total_cmp(&b.lr))
    })
}

/// The overfitting sentence for one run's trials (in epoch order), if its held-out loss ends
/// [`OVERFIT_RISE`] above its minimum while the training loss fell.
pub fn overfit_sentence(arm: &str, trials: &[EpochTrial]) -> Option<String> {
    let (low, last) = (trials.iter().min_by(|a, b| a.dev_loss.total_cmp(&b.dev_loss))?, trials.last()?);
    let rose = last.dev_loss > low.dev_loss * (1.0 + OVERFIT_RISE) && last.epoch > low.epoch;
    (rose && last.train_loss < low.train_loss).then(|| {
        format!(
            "{arm} overfits after epoch {}: its held-out loss rose from {:.3} to {:.3} by epoch {} while its \
             training loss fell from {:.3} to {:.3}",
            low.epoch, low.dev_loss, last.dev_loss, last.epoch, low.train_loss, last.train_loss
        )
    })
}

impl Runner<'_> {
    /// Whether tuning runs: a grid is set and there are dev questions.
    pub(super) fn tuning(&self) -> bool {
        self.settings.tuning.is_some() && !self.task.dev_questions.is_empty()
    }

    /// The dev score and held-out loss of the model as it stands (adapter attached or not),
    /// each dev question shown the corpus passages `shown(i)`.
    pub(super) fn dev_score(&mut self, shown: &dyn Fn(usize) -> Vec<usize>) -> Result<(f64, f64)> {
        let dev: &[QaItem] = &self.task.dev_questions;
        let (mut score, mut loss) = (0.0, 0.0);
        for (i, q) in dev.iter().enumerate() {
            let text = self.prompt(q, &shown(i));
            // Scored options: the question's own, or the reference alone (for its likelihood).
            let (choices, generate) = if q.choices.is_empty() {
                (vec![q.answer.clone()], self.answer_budget.max(1))
            } else {
                (q.choices.clone(), 0)
            };
            let a = answer(self.model, self.tok, &text, &choices, generate, &self.stops)?;
            let gold = if q.choices.is_empty() { 0 } else { q.correct.unwrap_or(0) };
            let tokens = self.tok.encode(&prompt::answer(&choices[gold]), false)?.len() + 1;
            loss += -a.log_likelihoods.get(gold).copied().unwrap_or(0.0) / tokens as f64;
            score += match (&a.text, &self.task.format) {
                _ if !q.choices.is_empty() => f64::from(u8::from(a.choice == q.correct)),
                (Some(t), Some(format)) => metrics::house::score_output(format, t, &q.answer).1,
                (Some(t), None) => metrics::token_f1(t, &q.answer),
                (None, _) => 0.0,
            };
        }
        let n = dev.len().max(1) as f64;
        Ok((score / n, loss / n))
    }

    /// The dev metric's name.
    pub(super) fn dev_metric(&self) -> &'static str {
        match (self.task.kind, self.task.dev_questions.iter().all(|q| !q.choices.is_empty())) {
            (TaskKind::Classify, _) => "accuracy",
            (_, true) => "multiple-choice accuracy",
            (TaskKind::Format, _) => "field exact match",
            _ => "token F1",
        }
    }

    /// Choose RAG's k on dev (see the module doc); `hits[i]` are dev question i's passages at
    /// the largest k of the grid.
    pub(super) fn tune_k(&mut self, hits: &[Vec<usize>], grid: &[usize]) -> Result<Vec<KTrial>> {
        let mut trials = Vec::new();
        for &k in grid {
            // A k whose prompts overflow the model's context cannot be served: not a candidate.
            if !self.fits(hits, k)? {
                continue;
            }
            let (score, _) = self.dev_score(&|i| hits[i].iter().take(k).copied().collect())?;
            trials.push(KTrial { k, dev_score: score });
        }
        Ok(trials)
    }

    /// Whether every dev question's prompt with its top `k` passages, plus its longest scored
    /// option or the answer budget, fits the model's context.
    fn fits(&self, hits: &[Vec<usize>], k: usize) -> Result<bool> {
        for (i, q) in self.task.dev_questions.iter().enumerate() {
            let shown: Vec<usize> =
                hits.get(i).map(|h| h.iter().take(k).copied().collect()).unwrap_or_default();
            let prompt = self.tok.encode(&self.prompt(q, &shown), true)?.len();
            let mut longest = self.answer_budget.max(1);
            for c in q.choices.iter().chain([&q.answer]) {
                longest = longest.max(self.tok.encode(&prompt::answer(c), false)?.len() + 1);
            }
            if prompt + longest > self.model.max_context() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Train `arm` over the learning-rate grid with per-epoch dev scores and return the chosen
    /// adapter (with the set-up cost of its recipe) and the record. `shown(i)`: the passages dev
    /// question i is answered with (none for closed-book arms).
    pub(super) fn train_tuned(
        &mut self,
        arm: Arm,
        examples: Vec<Example>,
        pack: bool,
        lora: &LoraSettings,
        shown: &dyn Fn(usize) -> Vec<usize>,
    ) -> Result<(Trained, ArmTuning)> {
        let grid = self.settings.tuning.as_ref().map(|t| t.lr.clone()).unwrap_or_default();
        let grid = if grid.is_empty() { vec![lora.lr] } else { grid };
        let start = std::time::Instant::now();
        let mut trials = Vec::new();
        let mut chosen: Option<(Trained, EpochTrial)> = None;
        for &lr in &grid {
            let settings = LoraSettings { lr, ..lora.clone() };
            let mut snaps: Vec<(usize, f32, LoraAdapter)> = Vec::new();
            let bar = self.bar(0, &format!("tuning {arm}, lr {lr:e}"));
            let trained = train_lora_epochs(
                self.model,
                examples.clone(),
                pack,
                settings.epochs,
                &settings,
                |step, total, loss| {
                    bar.set_length(total as u64);
                    bar.set_position(step as u64);
                    bar.set_message(format!("loss {loss:.3}"));
                },
                |epoch, adapter, loss| {
                    snaps.push((epoch, loss, snapshot(adapter)?));
                    Ok(())
                },
            )?;
            bar.finish_and_clear();
            let epochs = settings.epochs.max(1) as f64;
            for (epoch, train_loss, adapter) in snaps {
                adapter.attach(self.model)?;
                let (dev_score, dev_loss) = self.dev_score(shown)?;
                self.detach();
                let trial = EpochTrial { lr, epoch, train_loss, dev_loss, dev_score };
                trials.push(trial.clone());
                if best(&trials) == Some(&trial) {
                    let share = epoch as f64 / epochs;
                    let cost = Trained {
                        adapter,
                        seconds: trained.seconds * share,
                        tokens: (trained.tokens as f64 * share).round() as u64,
                        first_loss: trained.first_loss,
                        last_loss: train_loss,
                    };
                    chosen = Some((cost, trial));
                }
            }
        }
        let (trained, pick) =
            chosen.ok_or_else(|| crate::error::EvalError::training("no epoch was trained"))?;
        let run: Vec<EpochTrial> = trials.iter().filter(|t| t.lr == pick.lr).cloned().collect();
        let record = ArmTuning {
            arm,
            overfit: overfit_sentence(arm.as_str(), &run),
            trials,
            chosen_lr: pick.lr,
            chosen_epoch: pick.epoch,
            seconds: start.elapsed().as_secs_f64(),
        };
        Ok((trained, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(epoch: usize, train_loss: f32, dev_loss: f64, dev_score: f64) -> EpochTrial {
        EpochTrial { lr: 1e-3, epoch, train_loss, dev_loss, dev_score }
    }

    #[test]
    fn the_best_trial_is_the_highest_score_then_the_lowest_loss_then_the_earliest() {
        let ts = [trial(1, 2.0, 1.0, 0.5), trial(2, 1.5, 0.8, 0.6), trial(3, 1.0, 0.9, 0.6)];
        assert_eq!(best(&ts).unwrap().epoch, 2, "a tie on score goes to the lower loss");
        let ts = [trial(1, 2.0, 1.0, 0.6), trial(2, 1.5, 1.0, 0.6)];
        assert_eq!(best(&ts).unwrap().epoch, 1, "then to fewer epochs");
    }

    #[test]
    fn overfitting_is_a_rising_held_out_loss_under_a_falling_training_loss() {
        let ts = [trial(1, 2.0, 1.00, 0.5), trial(2, 1.0, 0.80, 0.6), trial(3, 0.5, 0.90, 0.55)];
        let s = overfit_sentence("ft", &ts).expect("0.90 is 12.5% above 0.80");
        assert!(s.contains("after epoch 2") && s.contains("0.800 to 0.900"), "{s}");
        let flat = [trial(1, 2.0, 1.00, 0.5), trial(2, 1.0, 0.80, 0.6), trial(3, 0.5, 0.83, 0.6)];
        assert_eq!(overfit_sentence("ft", &flat), None, "a 3.75% rise is within the noise");
        let both = [trial(1, 1.0, 0.80, 0.5), trial(2, 1.2, 0.95, 0.4)];
        assert_eq!(overfit_sentence("ft", &both), None, "both losses rose: divergence, not overfitting");
    }
}
