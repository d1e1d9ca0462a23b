//! `[eval] seeds = N`: each fine-tuned arm is trained N times, with training seeds `seed`,
//! `seed + 1`, …, and every adapter answers the test questions. The arm's intervals then come
//! from a two-stage bootstrap over seeds and question clusters
//! ([`crate::metrics::seeded_cluster_mean`]), so they hold the seed-to-seed spread of training
//! as well as the question sampling; the per-seed means are reported beside them. The first
//! seed's adapter is the one saved, costed and compared question by question (paired tests need
//! one answer per question).

use ragtune_trainer::data::Example;

use super::train::LoraSettings;
use super::{Retrieved, Runner};
use crate::config::Arm;
use crate::error::Result;
use crate::metrics::{self, ClusterKeys};
use crate::report::{Interval, QuestionOutcome, Scores};

impl Runner<'_> {
    /// Train the extra seeds of `arms[0]`'s adapter with `lora` and record, for each arm in
    /// `arms` (with its retrieval, if any), every extra seed's outcomes.
    pub(super) fn extra_seeds(
        &mut self,
        examples: &[Example],
        pack: bool,
        lora: &LoraSettings,
        arms: &[(Arm, Option<&Retrieved>)],
    ) -> Result<()> {
        for extra in 1..self.settings.seeds.max(1) {
            let lora = LoraSettings { seed: lora.seed.wrapping_add(extra as u64), ..lora.clone() };
            let label = format!("{}, seed {}", arms[0].0, lora.seed);
            let trained = self.train_with(&label, examples.to_vec(), pack, &lora)?;
            self.attach(&trained.adapter)?;
            for &(arm, retrieved) in arms {
                let (outcomes, _) = self.evaluate(&format!("{arm}, seed {}", lora.seed), retrieved)?;
                match self.seed_outcomes.iter_mut().find(|(a, _)| *a == arm) {
                    Some((_, sets)) => sets.push(outcomes),
                    None => self.seed_outcomes.push((arm, vec![outcomes])),
                }
            }
            self.detach();
        }
        Ok(())
    }

    /// `first`'s scores with every metric's interval over `arm`'s seeds (unchanged with one),
    /// and each seed's mean of the main metric.
    pub(super) fn seeded_scores(
        &self,
        arm: Arm,
        first: &[QuestionOutcome],
        scores: Scores,
    ) -> Result<(Scores, Vec<f64>)> {
        let Some((_, extra)) = self.seed_outcomes.iter().find(|(a, _)| *a == arm) else {
            return Ok((scores, Vec::new()));
        };
        let sets: Vec<&[QuestionOutcome]> =
            std::iter::once(first).chain(extra.iter().map(Vec::as_slice)).collect();
        let keys = ClusterKeys::of(&self.task.questions);
        let ids = keys.keys(first.iter().map(|o| o.id.as_str()));
        let (n, seed) = (self.settings.bootstrap, self.settings.seed);
        let fold = |metric: fn(&QuestionOutcome) -> Option<f64>,
                    old: Option<Interval>|
         -> Result<Option<Interval>> {
            let per_seed: Option<Vec<Vec<f64>>> =
                sets.iter().map(|set| set.iter().map(metric).collect::<Option<Vec<f64>>>()).collect();
            match (old, per_seed) {
                (Some(_), Some(per_seed)) if !per_seed[0].is_empty() => {
                    Ok(Some(metrics::seeded_cluster_mean(&per_seed, &ids, n, seed)?))
                }
                (old, _) => Ok(old),
            }
        };
        let main: fn(&QuestionOutcome) -> Option<f64> = if first.iter().all(|o| o.mc_correct.is_some()) {
            |o| o.mc_correct.map(|c| f64::from(u8::from(c)))
        } else if first.iter().all(|o| o.field_match.is_some()) {
            |o| o.field_match
        } else {
            |o| o.token_f1
        };
        let means = sets
            .iter()
            .filter_map(|set| {
                let v: Vec<f64> = set.iter().filter_map(main).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            })
            .collect();
        Ok((
            Scores {
                mc_accuracy: fold(|o| o.mc_correct.map(|c| f64::from(u8::from(c))), scores.mc_accuracy)?,
                exact_match: fold(|o| o.exact_match, scores.exact_match)?,
                token_f1: fold(|o| o.token_f1, scores.token_f1)?,
                format_valid: fold(|o| o.format_valid.map(|v| f64::from(u8::from(v))), scores.format_valid)?,
                field_match: fold(|o| o.field_match, scores.field_match)?,
                macro_f1: scores.macro_f1,
            },
            means,
        ))
    }
}
