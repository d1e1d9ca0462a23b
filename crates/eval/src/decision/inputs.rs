//! What the decision needs that a run cannot measure: the traffic, how often the knowledge
//! changes, what the machine costs, the latency budget, the horizon and an optional accuracy
//! floor. The `[decision]` table of an experiment config, `ragtune decide`'s flags, and the
//! `inputs` a report's decision was computed with.

use serde::{Deserialize, Serialize};

/// The decision's inputs. Money is in the currency of `price_per_hour` (shown as `$`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionInputs {
    /// Questions answered per month in production.
    pub queries_per_month: f64,
    /// Knowledge updates per month: each one edits part of the corpus, which the retrieval arms
    /// absorb by re-indexing the changed passages and the fine-tuned arms by training on them.
    pub updates_per_month: f64,
    /// What an hour of the machine the run measured costs.
    pub price_per_hour: f64,
    /// The most an answer may take at the 95th percentile (milliseconds).
    pub latency_budget_ms: f64,
    /// Months the choice is costed over.
    pub horizon_months: f64,
    /// The lowest acceptable accuracy on the run's main metric, as a fraction (0.8 for 80%).
    pub min_accuracy: Option<f64>,
}

impl Default for DecisionInputs {
    fn default() -> Self {
        DecisionInputs {
            queries_per_month: 100_000.0,
            updates_per_month: 4.0,
            price_per_hour: 1.0,
            latency_budget_ms: 2000.0,
            horizon_months: 12.0,
            min_accuracy: None,
        }
    }
}

/// An input that cannot be costed: `field` is the key's name (`price_per_hour`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field} {detail}")]
pub struct InputError {
    pub field: &'static str,
    pub detail: String,
}

impl DecisionInputs {
    /// Every input finite and in range: volumes and update rates ≥ 0; price, budget and
    /// horizon > 0; the accuracy floor within 0..=1.
    pub fn check(&self) -> Result<(), InputError> {
        let bad = |field: &'static str, x: f64, need: &str| {
            Err(InputError { field, detail: format!("must be {need} (got {x})") })
        };
        for (field, x) in
            [("queries_per_month", self.queries_per_month), ("updates_per_month", self.updates_per_month)]
        {
            if !x.is_finite() || x < 0.0 {
                return bad(field, x, "a finite number, 0 or more");
            }
        }
        if !self.price_per_hour.is_finite() || self.price_per_hour <= 0.0 {
            return bad(
                "price_per_hour",
                self.price_per_hour,
                "a positive, finite price: what an hour of the measured machine costs",
            );
        }
        if !self.latency_budget_ms.is_finite() || self.latency_budget_ms <= 0.0 {
            return bad(
                "latency_budget_ms",
                self.latency_budget_ms,
                "a positive, finite number of milliseconds",
            );
        }
        if !self.horizon_months.is_finite() || self.horizon_months <= 0.0 {
            return bad("horizon_months", self.horizon_months, "a positive, finite number of months");
        }
        if let Some(a) = self.min_accuracy
            && !(a.is_finite() && (0.0..=1.0).contains(&a))
        {
            return bad("min_accuracy", a, "a fraction between 0 and 1 (0.8 for 80%)");
        }
        Ok(())
    }

    /// Price of one second of the machine.
    pub fn price_per_second(&self) -> f64 {
        self.price_per_hour / 3600.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_each_bad_value_names_its_field() {
        DecisionInputs::default().check().unwrap();
        let d = DecisionInputs::default;
        let cases: [(DecisionInputs, &str); 8] = [
            (DecisionInputs { price_per_hour: -1.0, ..d() }, "price_per_hour"),
            (DecisionInputs { price_per_hour: f64::NAN, ..d() }, "price_per_hour"),
            (DecisionInputs { price_per_hour: 0.0, ..d() }, "price_per_hour"),
            (DecisionInputs { queries_per_month: -5.0, ..d() }, "queries_per_month"),
            (DecisionInputs { updates_per_month: f64::INFINITY, ..d() }, "updates_per_month"),
            (DecisionInputs { latency_budget_ms: 0.0, ..d() }, "latency_budget_ms"),
            (DecisionInputs { horizon_months: -2.0, ..d() }, "horizon_months"),
            (DecisionInputs { min_accuracy: Some(80.0), ..d() }, "min_accuracy"),
        ];
        for (inputs, field) in cases {
            let e = inputs.check().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
        // Zero traffic and no updates are legitimate.
        DecisionInputs { queries_per_month: 0.0, updates_per_month: 0.0, min_accuracy: Some(1.0), ..d() }
            .check()
            .unwrap();
    }
}
