//! The decision on hand-built reports, with totals computed by hand. Price 3600 an hour makes
//! one second cost exactly 1, so every cost below is a number of seconds:
//!
//! | arm  | latency | set-up | update | correct of 100 |
//! |------|---------|--------|--------|----------------|
//! | base | 8 ms    | 0 s    | 0 s    | 25             |
//! | rag  | 20 ms   | 1 s    | 0.5 s  | 90             |
//! | ft   | 10 ms   | 100 s  | 10 s   | 88             |
//!
//! At 1000 queries and 2 updates a month over 12 months:
//! rag = 1 + 2·12·0.5 + 1000·12·0.020 = 1 + 12 + 240 = 253;
//! ft = 100 + 2·12·10 + 1000·12·0.010 = 100 + 240 + 120 = 460;
//! base = 0 + 0 + 1000·12·0.008 = 96.
//! Break-even rag/ft: fixed 13 vs 340, slope 12·0.02 = 0.24 vs 0.12 per monthly query:
//! (340 − 13) / (0.24 − 0.12) = 2725 queries a month.

use super::*;
use crate::report::{Cost, ExperimentReport, QuestionOutcome, Scores, UpdateCost};

const N: usize = 100;

/// `correct` of the first questions right, the rest wrong; `shift` moves the right ones so two
/// arms differ on a few questions.
fn outcomes(correct: usize, shift: usize) -> Vec<QuestionOutcome> {
    (0..N)
        .map(|i| QuestionOutcome {
            id: format!("q{i}"),
            mc_correct: Some((i + N - shift) % N < correct),
            ..QuestionOutcome::default()
        })
        .collect()
}

fn arm(
    id: &str,
    latency_ms: f64,
    setup: f64,
    update: Option<f64>,
    correct: usize,
    shift: usize,
) -> ArmResult {
    let outcomes = outcomes(correct, shift);
    let values: Vec<f64> = outcomes.iter().map(|o| f64::from(u8::from(o.mc_correct.unwrap()))).collect();
    ArmResult {
        id: id.into(),
        overall: Scores {
            mc_accuracy: Some(metrics::bootstrap_mean(&values, 500, 0).unwrap()),
            ..Scores::default()
        },
        cost: Cost {
            setup_seconds: setup,
            latency_ms,
            latency_p50_ms: Some(latency_ms * 0.9),
            latency_p95_ms: Some(latency_ms * 1.5),
            update: update.map(|seconds| UpdateCost {
                seconds,
                changed_passages: 3,
                train_tokens: 0,
                how: "by hand".into(),
            }),
            ..Cost::default()
        },
        outcomes,
        ..ArmResult::default()
    }
}

fn report() -> ExperimentReport {
    ExperimentReport {
        arms: vec![
            arm("base", 8.0, 0.0, Some(0.0), 25, 0),
            arm("rag", 20.0, 1.0, Some(0.5), 90, 0),
            // 88 right, shifted by 3: wrong on 5 questions rag gets right, right on 3 it misses.
            arm("ft", 10.0, 100.0, Some(10.0), 88, 3),
        ],
        ..ExperimentReport::default()
    }
}

fn inputs(queries_per_month: f64) -> DecisionInputs {
    DecisionInputs {
        queries_per_month,
        updates_per_month: 2.0,
        price_per_hour: 3600.0,
        latency_budget_ms: 1000.0,
        horizon_months: 12.0,
        min_accuracy: None,
    }
}

fn arm_of<'a>(d: &'a Decision, id: &str) -> &'a ArmDecision {
    d.arms.iter().find(|a| a.arm == id).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn totals_are_the_hand_computed_ones() {
    let d = decide(&report(), &inputs(1000.0), 500, 0).unwrap();
    for (id, total, per_1000, setup, update) in
        [("base", 96.0, 8.0, 0.0, 0.0), ("rag", 253.0, 20.0, 1.0, 0.5), ("ft", 460.0, 10.0, 100.0, 10.0)]
    {
        let a = arm_of(&d, id);
        assert!(close(a.total_cost, total), "{id}: total {} vs {total}", a.total_cost);
        assert!(close(a.cost_per_1000_queries, per_1000), "{id}: {}", a.cost_per_1000_queries);
        assert!(close(a.setup_cost, setup) && close(a.update_cost, update), "{id}: {a:?}");
        assert!(close(a.setup_cost + a.updates_cost + a.queries_cost, a.total_cost));
        assert!(a.update_measured);
    }
    assert_eq!(d.most_accurate.as_deref(), Some("rag"));
    // base is the cheapest but 65 points behind rag: significantly worse, not recommended.
    let base = arm_of(&d, "base");
    assert!(!base.not_significantly_worse && base.versus_best.unwrap().hi < 0.0, "{base:?}");
    let ft = arm_of(&d, "ft");
    assert!(ft.not_significantly_worse, "2 points behind on 100 questions: {:?}", ft.versus_best);
    assert_eq!(d.recommendation.as_deref(), Some("rag"));
    assert!(
        d.reasons.iter().any(|r| r.starts_with(
            "The base model would cost less, $96.00, but it is significantly less accurate than RAG"
        )),
        "{:#?}",
        d.reasons
    );
    assert!(d.reasons[0].starts_with("RAG costs the least of the 2 arms"), "{}", d.reasons[0]);
}

#[test]
fn training_dominates_at_10_queries_and_answering_at_1e10_so_the_order_flips() {
    let low = decide(&report(), &inputs(10.0), 500, 0).unwrap();
    let high = decide(&report(), &inputs(1e10), 500, 0).unwrap();
    let (rag_lo, ft_lo) = (arm_of(&low, "rag"), arm_of(&low, "ft"));
    let (rag_hi, ft_hi) = (arm_of(&high, "rag"), arm_of(&high, "ft"));
    // At 10 a month, set-up and updates are most of ft's total; at 1e10, answering is.
    assert!(ft_lo.setup_cost + ft_lo.updates_cost > 0.99 * ft_lo.total_cost);
    assert!(ft_hi.queries_cost > 0.99 * ft_hi.total_cost);
    assert!(rag_lo.total_cost < ft_lo.total_cost, "{} vs {}", rag_lo.total_cost, ft_lo.total_cost);
    assert!(ft_hi.total_cost < rag_hi.total_cost, "{} vs {}", ft_hi.total_cost, rag_hi.total_cost);
    assert_eq!(low.recommendation.as_deref(), Some("rag"));
    assert_eq!(high.recommendation.as_deref(), Some("ft"));
    // Hand-computed: rag 1 + 12 + 10·12·0.02 = 15.4; ft 100 + 240 + 1.2 = 341.2.
    assert!(close(rag_lo.total_cost, 15.4) && close(ft_lo.total_cost, 341.2));
}

#[test]
fn break_even_is_the_hand_computed_division() {
    let d = decide(&report(), &inputs(1000.0), 500, 0).unwrap();
    let be = d.break_even.as_ref().unwrap();
    assert_eq!((be.retrieval_arm.as_str(), be.fine_tuned_arm.as_str()), ("rag", "ft"));
    assert!(close(be.queries_per_month.unwrap(), 2725.0), "{be:?}");
    assert_eq!((be.cheaper_below.as_str(), be.cheaper_above.as_str()), ("rag", "ft"));
    assert!(be.sentence.contains("2.7"), "{}", be.sentence);
    // The break-even does not depend on today's volume.
    let other = decide(&report(), &inputs(5e6), 500, 0).unwrap();
    assert!(close(other.break_even.unwrap().queries_per_month.unwrap(), 2725.0));
    // What would change: above the break-even ft wins; below it (at high volume) rag does.
    assert!(
        d.what_would_change
            .iter()
            .any(|s| s.starts_with("Above 2.7") && s.contains("closed-book FT would cost less than RAG")),
        "{:#?}",
        d.what_would_change
    );
    assert!(
        other
            .what_would_change
            .iter()
            .any(|s| s.starts_with("Below 2.7") && s.contains("RAG would cost less")),
        "{:#?}",
        other.what_would_change
    );
    // Update rate: ft absorbs an update for 10, rag for 0.5; with fewer updates ft gets cheaper
    // at 5M queries? No: ft is already the choice there; rag wins above u* where
    // 100 + 12·10·u + 5e6·12·0.01 = 1 + 12·0.5·u + 5e6·12·0.02 → u* = (1.2e6 − 6e5 − 99) / 114.
    assert_eq!(other.recommendation.as_deref(), Some("ft"));
    let u = (1.2e6 - 6e5 - 99.0) / 114.0;
    let needle = format!("With more than {} updates a month, RAG would cost less", text::volume(u));
    assert!(
        other.what_would_change.iter().any(|s| s.starts_with(&needle)),
        "{needle}\n{:#?}",
        other.what_would_change
    );
}

#[test]
fn they_never_cross_when_one_is_cheaper_in_both_parts() {
    let mut r = report();
    r.arms[2].cost.latency_ms = 30.0; // ft now costs more per query as well
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    let be = d.break_even.unwrap();
    assert_eq!(be.queries_per_month, None);
    assert_eq!((be.cheaper_below.as_str(), be.cheaper_above.as_str()), ("rag", "rag"));
    assert!(be.sentence.contains("no break-even"), "{}", be.sentence);
}

#[test]
fn a_latency_budget_excludes_an_arm() {
    let mut r = report();
    r.arms[2].cost.latency_p95_ms = Some(1500.0);
    let d = decide(&r, &inputs(1e10), 500, 0).unwrap();
    let ft = arm_of(&d, "ft");
    assert!(!ft.meets_latency && !ft.eligible());
    assert_eq!(d.recommendation.as_deref(), Some("rag"), "ft would be cheaper at 1e10 but is too slow");
    assert!(
        d.reasons.iter().any(|s| s.contains("its p95 latency, 1500 ms, exceeds the 1000 ms budget")),
        "{:#?}",
        d.reasons
    );
    assert!(
        d.what_would_change
            .iter()
            .any(|s| s.starts_with("A p95 latency budget of 1500 ms or more would let closed-book FT win"))
    );
    // Without a p95 (an older report) the mean stands in.
    r.arms[2].cost.latency_p95_ms = None;
    let d = decide(&r, &DecisionInputs { latency_budget_ms: 9.0, ..inputs(1e10) }, 500, 0).unwrap();
    assert!(!arm_of(&d, "ft").meets_latency, "mean 10 ms > 9 ms");
}

#[test]
fn an_accuracy_floor_excludes_an_arm() {
    let d = decide(&report(), &DecisionInputs { min_accuracy: Some(0.89), ..inputs(1e10) }, 500, 0).unwrap();
    assert!(!arm_of(&d, "ft").meets_min_accuracy && arm_of(&d, "rag").meets_min_accuracy);
    assert_eq!(d.recommendation.as_deref(), Some("rag"));
    assert!(
        d.what_would_change
            .iter()
            .any(|s| s.starts_with("An accuracy floor at or below 88% would let closed-book FT win")),
        "{:#?}",
        d.what_would_change
    );
}

#[test]
fn no_arm_eligible_gives_no_recommendation_and_says_why() {
    let d = decide(&report(), &DecisionInputs { latency_budget_ms: 1.0, ..inputs(1000.0) }, 500, 0).unwrap();
    assert_eq!(d.recommendation, None);
    assert!(d.reasons[0].starts_with("No arm can meet"), "{:#?}", d.reasons);
    assert!(d.what_would_change.iter().any(|s| s.contains("would admit")), "{:#?}", d.what_would_change);
}

#[test]
fn missing_arms_and_metrics_are_handled() {
    // Only base and rag: no break-even, a sentence that says why.
    let mut r = report();
    r.arms.truncate(2);
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    assert_eq!(d.break_even, None);
    assert_eq!(d.recommendation.as_deref(), Some("rag"));
    assert!(d.reasons.iter().any(|s| s.contains("no closed-book fine-tuned arm")), "{:#?}", d.reasons);
    // Only ft: no retrieval arm.
    let mut r = report();
    r.arms.drain(..2);
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    assert_eq!(d.recommendation.as_deref(), Some("ft"));
    assert!(d.reasons.iter().any(|s| s.contains("no retrieval arm")));
    // No arm at all.
    let mut r = report();
    r.arms.clear();
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    assert_eq!((d.recommendation, d.arms.len()), (None, 0));
    assert!(d.reasons[0].contains("No arm was run"));
    // No accuracy measured anywhere: cost decides (base, the cheapest).
    let mut r = report();
    for a in &mut r.arms {
        a.overall = Scores::default();
        a.outcomes.clear();
    }
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    assert_eq!((d.recommendation.as_deref(), d.metric.as_str()), (Some("base"), ""));
    assert!(d.reasons.iter().any(|s| s.contains("No accuracy was measured")));
    // No per-question outcomes: the intervals are compared unpaired.
    let mut r = report();
    for a in &mut r.arms {
        a.outcomes.clear();
    }
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    assert_eq!(arm_of(&d, "ft").versus_best, None);
    assert!(arm_of(&d, "ft").not_significantly_worse && !arm_of(&d, "base").not_significantly_worse);
    // Token F1 stands in when there is no multiple choice.
    let mut r = report();
    for a in &mut r.arms {
        a.overall.token_f1 = a.overall.mc_accuracy.take();
        for o in &mut a.outcomes {
            o.token_f1 = o.mc_correct.take().map(|c| f64::from(u8::from(c)));
        }
    }
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    assert_eq!((d.metric.as_str(), d.recommendation.as_deref()), ("token F1", Some("rag")));
    assert!(arm_of(&d, "ft").versus_best.is_some());
}

#[test]
fn an_unmeasured_update_falls_back_to_the_set_up_time() {
    let mut r = report();
    for a in &mut r.arms {
        a.cost.update = None;
    }
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    let ft = arm_of(&d, "ft");
    assert!(!ft.update_measured && close(ft.update_cost, 100.0), "{ft:?}");
    let base = arm_of(&d, "base");
    assert!(base.update_measured && base.update_cost == 0.0);
    assert!(text::markdown(&d).contains("(estimated)"));
}

#[test]
fn bad_inputs_are_an_error_naming_the_field() {
    let e = decide(&report(), &DecisionInputs { price_per_hour: -1.0, ..inputs(10.0) }, 500, 0).unwrap_err();
    assert!(e.to_string().contains("price_per_hour"), "{e}");
}

#[test]
fn money_and_volumes_read_well() {
    assert_eq!(text::money(0.0), "$0");
    assert_eq!(text::money(0.004213), "$0.0042");
    assert_eq!(text::money(12.345), "$12.35");
    assert_eq!(text::money(1234.4), "$1,234");
    assert_eq!(text::money(2_500_000.0), "$2.50M");
    assert_eq!(text::volume(10.0), "10");
    assert_eq!(text::volume(2725.0), "2.73k");
    assert_eq!(text::volume(1e10), "10B");
    assert_eq!(text::volume(100_000.0), "100k");
    assert_eq!(text::months(1.0), "1 month");
}

#[test]
fn the_report_carries_the_decision_and_old_reports_still_load() {
    let mut r = report();
    r.decision = Some(decide(&r, &inputs(1000.0), 500, 0).unwrap());
    let json = serde_json::to_string_pretty(&r).unwrap();
    let back: ExperimentReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["decision"]["recommendation"], "rag");
    assert!(v["decision"]["reasons"].as_array().unwrap().len() >= 3);
    assert_eq!(v["decision"]["arms"][1]["arm"], "rag");
    assert!(v["decision"]["arms"][1]["total_cost"].as_f64().is_some());
    assert!(v["decision"]["break_even"]["queries_per_month"].as_f64().is_some());
    // A report.json from before: no decision, no latency percentiles, no update.
    let mut old = v.clone();
    old.as_object_mut().unwrap().remove("decision");
    for a in old["arms"].as_array_mut().unwrap() {
        let cost = a["cost"].as_object_mut().unwrap();
        for k in ["latency_p50_ms", "latency_p95_ms", "update"] {
            cost.remove(k);
        }
    }
    let old: ExperimentReport = serde_json::from_value(old).unwrap();
    assert_eq!(old.decision, None);
    assert_eq!((old.arms[1].cost.latency_p95_ms, &old.arms[1].cost.update), (None, &None));
    let d = decide(&old, &inputs(1000.0), 500, 0).unwrap();
    assert_eq!(d.recommendation.as_deref(), Some("rag"));
}

#[test]
fn report_md_opens_with_what_to_choose_and_draws_the_cost_chart() {
    let mut r = report();
    r.info.title = "t".into();
    r.decision = Some(decide(&r, &inputs(1000.0), 500, 0).unwrap());
    let md = crate::report::render_markdown(&r);
    assert!(md.starts_with("# t\n\n## What to choose\n\n**Choose `rag`**"), "{}", &md[..200.min(md.len())]);
    assert!(md.find("## What to choose").unwrap() < md.find("## Run").unwrap_or(usize::MAX));
    assert!(md.contains("![Total cost over the horizon against monthly queries](decision.svg)"));
    assert!(md.contains("| rag **←** | 90%"), "{md}");
    let charts = crate::report::render_charts(&r).unwrap();
    let chart = charts.iter().find(|c| c.file_name == "decision.svg").unwrap();
    for s in ["break-even: 2.73k", "your volume: 1k", ">\nrag\n</text>", "queries per month"] {
        assert!(chart.svg.contains(s) || chart.svg.contains(&s.replace('\n', "")), "decision.svg lacks {s}");
    }
    // Without a decision there is no chart and no section.
    r.decision = None;
    assert!(!crate::report::render_markdown(&r).contains("What to choose"));
    assert!(crate::report::render_charts(&r).unwrap().iter().all(|c| c.file_name != "decision.svg"));
}

#[test]
fn the_break_even_pairs_the_cheapest_eligible_arm_of_each_family() {
    // ft+rag: the most accurate retrieval arm, but dearer than rag in every part.
    let mut r = report();
    r.arms.push(arm("ft+rag", 22.0, 101.0, Some(10.5), 91, 0));
    let d = decide(&r, &inputs(1000.0), 500, 0).unwrap();
    assert_eq!(d.most_accurate.as_deref(), Some("ft+rag"));
    let be = d.break_even.unwrap();
    assert_eq!((be.retrieval_arm.as_str(), be.fine_tuned_arm.as_str()), ("rag", "ft"));
    assert!(close(be.queries_per_month.unwrap(), 2725.0));
}
