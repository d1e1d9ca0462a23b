//! From measurements to "choose this, because": per arm, what it costs to set up, to keep up to
//! date and to answer, summed over a horizon, and a recommendation — the cheapest arm that meets
//! the latency budget and the accuracy floor and is not significantly less accurate than the
//! most accurate arm — with its reasons, the break-even volume between retrieval and
//! fine-tuning, and what would change the answer.
//!
//! The costs come from the run's own measurements, priced at `price_per_hour` of the machine
//! the run used (one question at a time, as the run answered them):
//!
//! - per query: the measured mean wall time per answer (retrieval + prefill + decode);
//! - set-up: the arm's measured set-up time (index build, adapter training);
//! - one update: the measured time to absorb an edit of 10% of the corpus
//!   ([`crate::report::UpdateCost`]); reports from before it was measured fall back to the
//!   set-up time (a full rebuild), and say so;
//! - over the horizon: `total = set-up + updates_per_month × update × months +
//!   queries_per_month × per-query × months`.
//!
//! Accuracy is the run's main metric: multiple-choice accuracy when measured, else token F1.
//! "Not significantly worse" is the paired cluster bootstrap
//! ([`crate::metrics::cluster_paired_difference`], clusters = the questions' source passages)
//! of the arm minus the most accurate arm over the same questions: its interval's upper end is
//! at least 0. Everything here is a function of the report and the inputs, so `ragtune decide`
//! recomputes it from `report.json` without re-running an arm.

mod inputs;
mod sentences;
#[cfg(test)]
mod tests;
pub mod text;

use serde::{Deserialize, Serialize};

pub use inputs::{DecisionInputs, InputError};

use crate::config::Arm;
use crate::error::{EvalError, Result};
use crate::metrics;
use crate::report::{ArmResult, ExperimentReport, Interval};

/// One arm, costed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmDecision {
    pub arm: String,
    /// The main metric with its 95% interval; `None` where the arm did not measure it.
    pub accuracy: Option<Interval>,
    /// This arm minus the most accurate arm, paired bootstrap over the same questions (`None`
    /// for the most accurate arm itself and where it could not be computed).
    pub versus_best: Option<Interval>,
    /// Mean, median and 95th-percentile wall time per answer (milliseconds); the percentiles
    /// are `None` in reports that predate them.
    pub latency_ms: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// Money per 1,000 answers: measured time per answer × price.
    pub cost_per_1000_queries: f64,
    /// Money to set the arm up once: measured set-up time × price.
    pub setup_cost: f64,
    /// Seconds and money to absorb one knowledge update, and how it is done.
    pub update_seconds: f64,
    pub update_cost: f64,
    pub update_how: String,
    /// `false`: the report had no update measurement and the set-up time stands in.
    pub update_measured: bool,
    /// Over the horizon: all updates, all answers, and everything (set-up included).
    pub updates_cost: f64,
    pub queries_cost: f64,
    pub total_cost: f64,
    /// p95 (or, without it, mean) latency within the budget.
    pub meets_latency: bool,
    /// Accuracy at or above `min_accuracy` (true when no floor is set).
    pub meets_min_accuracy: bool,
    /// Not significantly less accurate than the most accurate arm.
    pub not_significantly_worse: bool,
}

impl ArmDecision {
    /// The arm `arm` names; `None` for a name that is no arm's (a report edited by hand).
    pub fn as_arm(&self) -> Option<Arm> {
        Arm::from_id(&self.arm)
    }

    /// Whether the arm may be recommended.
    pub fn eligible(&self) -> bool {
        self.meets_latency && self.meets_min_accuracy && self.not_significantly_worse
    }

    /// The latency the budget is checked against: p95, else the mean.
    pub fn budget_latency_ms(&self) -> f64 {
        self.latency_p95_ms.unwrap_or(self.latency_ms)
    }

    /// Money per answer.
    pub fn cost_per_query(&self) -> f64 {
        self.cost_per_1000_queries / 1000.0
    }

    /// Total over the horizon at `queries` a month and `updates` updates a month.
    pub fn total_at(&self, queries: f64, updates: f64, months: f64) -> f64 {
        self.setup_cost + updates * months * self.update_cost + queries * months * self.cost_per_query()
    }
}

/// Where the best retrieval arm and the best closed-book fine-tuned arm cost the same ("best":
/// the cheapest of the family that may be chosen, else its most accurate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakEven {
    pub retrieval_arm: String,
    pub fine_tuned_arm: String,
    /// Monthly queries at which their totals over the horizon are equal; `None`: they never
    /// cross (one is cheaper at every volume).
    pub queries_per_month: Option<f64>,
    /// The cheaper one below the break-even volume (the lower fixed cost) and above it (the
    /// lower cost per query); equal when one is cheaper everywhere.
    pub cheaper_below: String,
    pub cheaper_above: String,
    pub sentence: String,
}

/// The decision as `report.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub inputs: DecisionInputs,
    /// The accuracy metric: `"multiple-choice accuracy"`, `"token F1"`, or `""` when none was
    /// measured.
    pub metric: String,
    /// The recommended arm's id; `None` when no arm meets the constraints.
    pub recommendation: Option<String>,
    /// Why, as sentences computed from the numbers.
    pub reasons: Vec<String>,
    /// The volumes, update rates, accuracy floors or budgets at which another arm would win.
    pub what_would_change: Vec<String>,
    /// The most accurate arm, the one the others are tested against.
    pub most_accurate: Option<String>,
    pub arms: Vec<ArmDecision>,
    pub break_even: Option<BreakEven>,
    /// The paired bootstrap's resamples and seed.
    pub resamples: usize,
    pub seed: u64,
}

/// The main metric of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Choice,
    /// House format: the share of the reference's fields reproduced.
    Field,
    F1,
}

impl Metric {
    fn of(report: &ExperimentReport) -> Option<Metric> {
        if report.arms.iter().any(|a| a.overall.mc_accuracy.is_some()) {
            Some(Metric::Choice)
        } else if report.arms.iter().any(|a| a.overall.field_match.is_some()) {
            Some(Metric::Field)
        } else if report.arms.iter().any(|a| a.overall.token_f1.is_some()) {
            Some(Metric::F1)
        } else {
            None
        }
    }

    fn name(self, task: crate::task::TaskKind) -> &'static str {
        match self {
            Metric::Choice if task == crate::task::TaskKind::Classify => "accuracy",
            Metric::Choice => "multiple-choice accuracy",
            Metric::Field => "field exact match",
            Metric::F1 => "token F1",
        }
    }

    fn interval(self, arm: &ArmResult) -> Option<Interval> {
        match self {
            Metric::Choice => arm.overall.mc_accuracy,
            Metric::Field => arm.overall.field_match,
            Metric::F1 => arm.overall.token_f1,
        }
    }

    /// One value per question, when every outcome has it.
    fn values(self, arm: &ArmResult) -> Option<Vec<f64>> {
        let v: Option<Vec<f64>> = arm
            .outcomes
            .iter()
            .map(|o| match self {
                Metric::Choice => o.mc_correct.map(|c| f64::from(u8::from(c))),
                Metric::Field => o.field_match,
                Metric::F1 => o.token_f1,
            })
            .collect();
        v.filter(|v| !v.is_empty())
    }
}

/// How an arm absorbs a knowledge update when the report did not measure it.
fn fallback_update(arm: &ArmResult) -> (f64, String) {
    if arm.is(Arm::Base) {
        (0.0, "nothing to rebuild (the base model does not learn the change)".into())
    } else {
        (
            arm.cost.setup_seconds,
            "not measured in this run: a full rebuild (the set-up time) stands in".into(),
        )
    }
}

/// The decision for `report` under `inputs`; the paired bootstrap draws `resamples` resamples
/// seeded with `seed`.
pub fn decide(
    report: &ExperimentReport,
    inputs: &DecisionInputs,
    resamples: usize,
    seed: u64,
) -> Result<Decision> {
    inputs.check().map_err(|e| EvalError::config(format!("decision inputs: {e}")))?;
    let resamples = resamples.max(1);
    let metric = Metric::of(report);
    let accuracy = |a: &ArmResult| metric.and_then(|m| m.interval(a));
    let most_accurate = report.arms.iter().filter_map(|a| Some((a, accuracy(a)?))).fold(
        None::<(&ArmResult, Interval)>,
        |best, (a, iv)| match best {
            Some((_, b)) if b.mean >= iv.mean => best,
            _ => Some((a, iv)),
        },
    );
    let (pps, months) = (inputs.price_per_second(), inputs.horizon_months);
    let mut arms = Vec::with_capacity(report.arms.len());
    for a in &report.arms {
        let acc = accuracy(a);
        let versus_best = match (metric, most_accurate) {
            (Some(m), Some((best, _))) if best.id != a.id && acc.is_some() => {
                paired(m, a, best, resamples, seed)?
            }
            _ => None,
        };
        let not_significantly_worse = match (acc, most_accurate) {
            // No accuracy measured anywhere: cost and latency decide.
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(_), Some((best, _))) if best.id == a.id => true,
            (Some(iv), Some((_, best))) => match versus_best {
                Some(d) => d.hi >= 0.0,
                // Unpaired: the intervals overlap.
                None => iv.hi >= best.lo,
            },
        };
        let meets_min_accuracy = match inputs.min_accuracy {
            None => true,
            Some(floor) => acc.is_some_and(|iv| iv.mean >= floor),
        };
        let (update_seconds, update_how, update_measured) = match &a.cost.update {
            Some(u) => (u.seconds, u.how.clone(), true),
            None => {
                let (s, how) = fallback_update(a);
                (s, how, a.is(Arm::Base))
            }
        };
        // (latency_ms / 1000) seconds per answer × 1000 answers × price per second.
        let cost_per_1000_queries = a.cost.latency_ms * pps;
        let setup_cost = a.cost.setup_seconds * pps;
        let update_cost = update_seconds * pps;
        let updates_cost = inputs.updates_per_month * months * update_cost;
        let queries_cost = inputs.queries_per_month * months * cost_per_1000_queries / 1000.0;
        let mut d = ArmDecision {
            arm: a.id.clone(),
            accuracy: acc,
            versus_best,
            latency_ms: a.cost.latency_ms,
            latency_p50_ms: a.cost.latency_p50_ms,
            latency_p95_ms: a.cost.latency_p95_ms,
            cost_per_1000_queries,
            setup_cost,
            update_seconds,
            update_cost,
            update_how,
            update_measured,
            updates_cost,
            queries_cost,
            total_cost: setup_cost + updates_cost + queries_cost,
            meets_latency: true,
            meets_min_accuracy,
            not_significantly_worse,
        };
        d.meets_latency = d.budget_latency_ms() <= inputs.latency_budget_ms;
        arms.push(d);
    }
    let recommendation = cheapest(arms.iter().filter(|a| a.eligible())).map(|a| a.arm.clone());
    let break_even = break_even(&arms, inputs);
    let mut decision = Decision {
        inputs: inputs.clone(),
        metric: metric.map(|m| m.name(report.task).to_string()).unwrap_or_default(),
        recommendation,
        reasons: Vec::new(),
        what_would_change: Vec::new(),
        most_accurate: most_accurate.map(|(a, _)| a.id.clone()),
        arms,
        break_even,
        resamples,
        seed,
    };
    decision.reasons = sentences::reasons(&decision);
    decision.what_would_change = sentences::what_would_change(&decision);
    if report.task != crate::task::TaskKind::Qa {
        // "Closed book" is knowledge QA's word; a labelled task's `ft` answers without
        // demonstrations, and the sentences name it plainly.
        let plain = |s: &String| s.replace("Closed-book FT", "FT").replace("closed-book FT", "FT");
        decision.reasons = decision.reasons.iter().map(plain).collect();
        decision.what_would_change = decision.what_would_change.iter().map(plain).collect();
    }
    Ok(decision)
}

/// `a − best` over the same questions, when both have one value per question for the same
/// question ids.
fn paired(
    m: Metric,
    a: &ArmResult,
    best: &ArmResult,
    resamples: usize,
    seed: u64,
) -> Result<Option<Interval>> {
    let same_questions = a.outcomes.len() == best.outcomes.len()
        && a.outcomes.iter().zip(&best.outcomes).all(|(x, y)| x.id == y.id);
    match (m.values(a), m.values(best)) {
        (Some(x), Some(y)) if same_questions => {
            // Questions about one passage move together: resample passages, not questions.
            let keys: Vec<&str> = a.outcomes.iter().map(|o| o.cluster.as_deref().unwrap_or(&o.id)).collect();
            Ok(Some(metrics::cluster_paired_difference(&x, &y, &keys, resamples, seed)?))
        }
        _ => Ok(None),
    }
}

/// The cheapest arm; ties go to the more accurate one, then to the earlier one.
fn cheapest<'a>(arms: impl Iterator<Item = &'a ArmDecision>) -> Option<&'a ArmDecision> {
    arms.fold(None, |best: Option<&ArmDecision>, a| match best {
        Some(b)
            if b.total_cost < a.total_cost
                || (b.total_cost == a.total_cost
                    && b.accuracy.map_or(0.0, |i| i.mean) >= a.accuracy.map_or(0.0, |i| i.mean)) =>
        {
            Some(b)
        }
        _ => Some(a),
    })
}

/// The best arm of a family (the arms `member` holds for), by the decision's own rule: the
/// cheapest that may be chosen; when none may, the most accurate (ties: the earlier one;
/// without accuracy: the first).
fn best_of(arms: &[ArmDecision], member: fn(Arm) -> bool) -> Option<&ArmDecision> {
    let family = || arms.iter().filter(|a| a.as_arm().is_some_and(member));
    cheapest(family().filter(|a| a.eligible())).or_else(|| {
        family().fold(None, |best, a| match best {
            Some(b) if b.accuracy.map_or(0.0, |i| i.mean) >= a.accuracy.map_or(0.0, |i| i.mean) => Some(b),
            _ => Some(a),
        })
    })
}

/// Where two lines `a₁ + b₁·x` and `a₂ + b₂·x` cross at a positive, finite `x`.
pub(crate) fn crossing(a1: f64, b1: f64, a2: f64, b2: f64) -> Option<f64> {
    let x = (a2 - a1) / (b1 - b2);
    (x.is_finite() && x > 0.0).then_some(x)
}

/// The fixed part (set-up and updates over the horizon) and the per-query slope (per monthly
/// query, over the horizon) of an arm's total.
pub(crate) fn volume_line(a: &ArmDecision, inputs: &DecisionInputs) -> (f64, f64) {
    let m = inputs.horizon_months;
    (a.setup_cost + inputs.updates_per_month * m * a.update_cost, m * a.cost_per_query())
}

fn break_even(arms: &[ArmDecision], inputs: &DecisionInputs) -> Option<BreakEven> {
    let r = best_of(arms, Arm::retrieves)?;
    let f = best_of(arms, Arm::fine_tuned_closed_book)?;
    let (fixed_r, slope_r) = volume_line(r, inputs);
    let (fixed_f, slope_f) = volume_line(f, inputs);
    let q = crossing(fixed_r, slope_r, fixed_f, slope_f);
    let lower_fixed = if fixed_r <= fixed_f { r } else { f };
    let lower_slope = if slope_r <= slope_f { r } else { f };
    let (below, above) = match q {
        Some(_) => (lower_fixed, lower_slope),
        // Never crossing: one is cheaper at every volume (the one with the lower total now).
        None => {
            let now = if r.total_cost <= f.total_cost { r } else { f };
            (now, now)
        }
    };
    let mut be = BreakEven {
        retrieval_arm: r.arm.clone(),
        fine_tuned_arm: f.arm.clone(),
        queries_per_month: q,
        cheaper_below: below.arm.clone(),
        cheaper_above: above.arm.clone(),
        sentence: String::new(),
    };
    be.sentence = sentences::break_even(&be, r, f, inputs);
    Some(be)
}
