//! `--baseline FILE`: this run's rows against a previous report.json, matched by
//! [`Row::id`](crate::report::Row::id). A row whose median grew by more than the threshold (5% by
//! default) is a regression and makes `cargo xtask bench` exit non-zero; rows only in one of the
//! two reports are listed, not errors, so adding or retiring a benchmark never fails a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{Report, duration};

/// The default slow-down that counts as a regression.
pub const REGRESSION_THRESHOLD: f64 = 0.05;

/// One row present in both reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub id: String,
    pub baseline_s: f64,
    pub current_s: f64,
}

impl Change {
    /// current / baseline − 1: +0.10 is 10% slower.
    pub fn slowdown(&self) -> f64 {
        self.current_s / self.baseline_s - 1.0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub threshold: f64,
    /// Slower by more than the threshold, worst first.
    pub regressions: Vec<Change>,
    /// Every other row present in both, in report order.
    pub within: Vec<Change>,
    /// In the baseline, not in this run.
    pub missing: Vec<String>,
    /// In this run, not in the baseline.
    pub new: Vec<String>,
}

/// Compares `current` with `baseline`; a row regresses when its median exceeds the baseline's by
/// more than `threshold` (a fraction).
pub fn compare(baseline: &Report, current: &Report, threshold: f64) -> Comparison {
    let base: BTreeMap<String, f64> = baseline.rows.iter().map(|r| (r.id(), r.median_s)).collect();
    let mut regressions = Vec::new();
    let mut within = Vec::new();
    let mut new = Vec::new();
    for r in &current.rows {
        let id = r.id();
        match base.get(&id) {
            Some(&b) => {
                let c = Change { id, baseline_s: b, current_s: r.median_s };
                // A zero or broken baseline time cannot be compared; treat it as a regression
                // so it is looked at rather than silently passed.
                if b.is_nan() || b <= 0.0 || c.slowdown() > threshold {
                    regressions.push(c)
                } else {
                    within.push(c)
                }
            }
            None => new.push(id),
        }
    }
    let seen: std::collections::BTreeSet<String> = current.rows.iter().map(|r| r.id()).collect();
    let missing = baseline.rows.iter().map(|r| r.id()).filter(|id| !seen.contains(id)).collect();
    regressions.sort_by(|a, b| b.slowdown().total_cmp(&a.slowdown()));
    Comparison { threshold, regressions, within, missing, new }
}

impl Comparison {
    pub fn has_regressions(&self) -> bool {
        !self.regressions.is_empty()
    }

    /// The "Against the baseline" section of report.md.
    pub fn to_markdown(&self, baseline_path: &str, baseline: &Report) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Against the baseline\n");
        let _ = writeln!(
            s,
            "Baseline {baseline_path} ({}, {}); a row is flagged when its median is more than {:.0}% above \
             the baseline's.\n",
            baseline.started_utc,
            baseline.machine,
            100.0 * self.threshold
        );
        if self.regressions.is_empty() {
            let _ = writeln!(s, "**No regressions** ({} rows compared).\n", self.within.len());
        } else {
            let _ = writeln!(s, "**{} regression(s):**\n", self.regressions.len());
        }
        if !self.regressions.is_empty() || !self.within.is_empty() {
            let _ = writeln!(s, "| row | baseline | now | change | |\n|---|---|---|---|---|");
            for (c, flag) in self
                .regressions
                .iter()
                .map(|c| (c, "**REGRESSION**"))
                .chain(self.within.iter().map(|c| (c, "")))
            {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:+.1}% | {flag} |",
                    c.id.replace('|', "\\|"),
                    duration(c.baseline_s),
                    duration(c.current_s),
                    100.0 * c.slowdown()
                );
            }
        }
        for (title, ids) in [("Missing from this run", &self.missing), ("New in this run", &self.new)] {
            if !ids.is_empty() {
                let _ = writeln!(s, "\n{title}:\n");
                for id in ids {
                    let _ = writeln!(s, "- {id}");
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Ceilings, Row, SCHEMA};

    fn report(rows: &[(&str, f64)]) -> Report {
        let c = Ceilings {
            compute_name: "c".into(),
            compute_flops: 1e11,
            bandwidth_name: "b".into(),
            bandwidth_bytes: 1e10,
        };
        Report {
            schema: SCHEMA.into(),
            started_utc: "2025-01-01T00:00:00Z".into(),
            machine: "m".into(),
            threads: 2,
            quick: true,
            suites: vec!["gemm".into()],
            wall_s: 1.0,
            rows: rows.iter().map(|&(n, t)| Row::new("gemm", n, "s", t, 3, 1e9, 0.0, &c).unwrap()).collect(),
            ceilings: c,
            notes: vec![],
        }
    }

    #[test]
    fn a_six_percent_slowdown_is_flagged_and_a_four_percent_one_is_not() {
        let base = report(&[("a", 1.0), ("b", 1.0), ("c", 1.0), ("gone", 1.0)]);
        let now = report(&[("a", 1.06), ("b", 1.04), ("c", 0.5), ("fresh", 1.0)]);
        let cmp = compare(&base, &now, REGRESSION_THRESHOLD);
        assert!(cmp.has_regressions());
        assert_eq!(cmp.regressions.len(), 1);
        assert_eq!(cmp.regressions[0].id, "gemm/a [s]");
        assert!((cmp.regressions[0].slowdown() - 0.06).abs() < 1e-12);
        let within: Vec<&str> = cmp.within.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(within, ["gemm/b [s]", "gemm/c [s]"]);
        assert_eq!(cmp.missing, ["gemm/gone [s]"]);
        assert_eq!(cmp.new, ["gemm/fresh [s]"]);
        let md = cmp.to_markdown("old/report.json", &base);
        assert!(md.contains("| gemm/a [s] | 1.00 s | 1.06 s | +6.0% | **REGRESSION** |"), "{md}");
        assert!(md.contains("| gemm/b [s] | 1.00 s | 1.04 s | +4.0% |  |"), "{md}");
        assert!(md.contains("Missing from this run:\n\n- gemm/gone [s]"), "{md}");
        assert!(md.contains("New in this run:\n\n- gemm/fresh [s]"), "{md}");
    }

    #[test]
    fn identical_runs_and_speed_ups_pass() {
        let base = report(&[("a", 2.0), ("b", 1.0)]);
        let cmp = compare(&base, &report(&[("a", 2.0), ("b", 0.9)]), REGRESSION_THRESHOLD);
        assert!(!cmp.has_regressions() && cmp.missing.is_empty() && cmp.new.is_empty());
        assert!(cmp.to_markdown("b.json", &base).contains("**No regressions** (2 rows compared)"));
    }

    #[test]
    fn regressions_are_listed_worst_first() {
        let base = report(&[("a", 1.0), ("b", 1.0)]);
        let cmp = compare(&base, &report(&[("a", 1.1), ("b", 1.5)]), REGRESSION_THRESHOLD);
        let ids: Vec<&str> = cmp.regressions.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["gemm/b [s]", "gemm/a [s]"]);
    }
}
