//! The decision's sentences, each computed from the numbers: why the recommended arm, why not
//! the cheaper ones, the break-even volume, and what would change the answer.

use super::text::{money, months, ms, volume};
use super::{ArmDecision, BreakEven, Decision, DecisionInputs, crossing, volume_line};
use crate::config::Arm;
use crate::report::format::{arm_name, negated, percent, percent_number, points, signed_points};

/// `RAG`, `The base model`: an arm's name at the start of a sentence.
fn cap(id: &str) -> String {
    let n = arm_name(id);
    let mut c = n.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => n,
    }
}

fn name(id: &str) -> String {
    arm_name(id)
}

fn pct(x: f64) -> String {
    format!("{}%", percent_number(x, 1).trim_end_matches(".0"))
}

fn find<'a>(d: &'a Decision, id: &str) -> Option<&'a ArmDecision> {
    d.arms.iter().find(|a| a.arm == id)
}

/// "the 2000 ms p95 latency budget, the 80% accuracy floor and are not significantly less
/// accurate than RAFT".
fn constraints(d: &Decision) -> String {
    let i = &d.inputs;
    let mut parts = vec![format!("meet the {} ms p95 latency budget", ms(i.latency_budget_ms))];
    if let Some(f) = i.min_accuracy {
        parts.push(format!("the {} accuracy floor", pct(f)));
    }
    let mut s = parts.join(" and ");
    if let Some(best) = &d.most_accurate {
        s.push_str(&format!(
            " without being significantly less accurate than the most accurate arm, {}",
            name(best)
        ));
    }
    s
}

fn scope(i: &DecisionInputs) -> String {
    format!(
        "over {} at {} queries and {} updates a month",
        months(i.horizon_months),
        volume(i.queries_per_month),
        volume(i.updates_per_month)
    )
}

/// Why `a` cannot be chosen, as a clause ("its p95 latency, 2400 ms, exceeds …").
fn why_not(a: &ArmDecision, d: &Decision) -> String {
    let i = &d.inputs;
    let mut why = Vec::new();
    if !a.meets_latency {
        let which = if a.latency_p95_ms.is_some() { "p95" } else { "mean" };
        why.push(format!(
            "its {which} latency, {} ms, exceeds the {} ms budget",
            ms(a.budget_latency_ms()),
            ms(i.latency_budget_ms)
        ));
    }
    match a.accuracy {
        None if !a.meets_min_accuracy || !a.not_significantly_worse => {
            why.push("its accuracy was not measured".into());
        }
        None => {}
        Some(acc) => {
            if !a.meets_min_accuracy {
                why.push(format!(
                    "its {}, {}, is below the {} floor",
                    d.metric,
                    pct(acc.mean),
                    pct(i.min_accuracy.unwrap_or(0.0))
                ));
            }
            if !a.not_significantly_worse {
                let best = d.most_accurate.as_deref().unwrap_or("the most accurate arm");
                match a.versus_best {
                    Some(diff) => why.push(format!(
                        "it is significantly less accurate than {}: {}",
                        name(best),
                        signed_points(&diff)
                    )),
                    None => why.push(format!("its interval lies below {}'s", name(best))),
                }
            }
        }
    }
    why.join(", and ")
}

/// The reasons for the recommendation (or for having none).
pub(super) fn reasons(d: &Decision) -> Vec<String> {
    let i = &d.inputs;
    let mut out = Vec::new();
    if d.arms.is_empty() {
        out.push("No arm was run, so there is nothing to choose from.".into());
        return out;
    }
    let Some(r) = d.recommendation.as_deref().and_then(|id| find(d, id)) else {
        out.push(format!("No arm can {} {}.", constraints(d), scope(i)));
        for a in &d.arms {
            out.push(format!("{} cannot: {}.", cap(&a.arm), why_not(a, d)));
        }
        if let Some(be) = &d.break_even {
            out.push(be.sentence.clone());
        }
        return out;
    };
    let eligible = d.arms.iter().filter(|a| a.eligible()).count();
    if eligible == 1 {
        out.push(format!(
            "{} is the only arm that can {}; it costs {} in all {}.",
            cap(&r.arm),
            constraints(d),
            money(r.total_cost),
            scope(i)
        ));
    } else {
        out.push(format!(
            "{} costs the least of the {eligible} arms that {}: {} in all {}.",
            cap(&r.arm),
            constraints(d),
            money(r.total_cost),
            scope(i)
        ));
    }
    match (r.accuracy, d.most_accurate.as_deref().and_then(|b| find(d, b))) {
        (None, _) | (_, None) => {
            out.push("No accuracy was measured, so cost and latency alone decide.".into());
        }
        (Some(acc), Some(best)) if best.arm == r.arm => {
            out.push(format!("It is the most accurate arm: {} {}.", percent(&acc), d.metric));
        }
        (Some(acc), Some(best)) => {
            let best_acc = best.accuracy.map(|b| percent(&b)).unwrap_or_default();
            out.push(match r.versus_best {
                Some(diff) => format!(
                    "Its {}, {}, is not significantly below {}'s {}: the paired difference is {}, an \
                     interval that reaches 0.",
                    d.metric,
                    percent(&acc),
                    name(&best.arm),
                    best_acc,
                    signed_points(&diff)
                ),
                None => format!(
                    "Its {}, {}, overlaps {}'s {} (no per-question outcomes to pair, so the intervals are \
                     compared).",
                    d.metric,
                    percent(&acc),
                    name(&best.arm),
                    best_acc
                ),
            });
        }
    }
    out.push(match (r.latency_p50_ms, r.latency_p95_ms) {
        (p50, Some(p95)) => format!(
            "Its p95 latency, {} ms{}, is within the {} ms budget.",
            ms(p95),
            p50.map(|p| format!(" (p50 {} ms)", ms(p))).unwrap_or_default(),
            ms(i.latency_budget_ms)
        ),
        _ => format!(
            "Its mean latency, {} ms, is within the {} ms budget (this report has no p95).",
            ms(r.latency_ms),
            ms(i.latency_budget_ms)
        ),
    });
    let n_updates = i.updates_per_month * i.horizon_months;
    out.push(format!(
        "Of that total, {} is the set-up, {} the {} updates at {} each, and {} answering {} queries at {} per \
         1,000.",
        money(r.setup_cost),
        money(r.updates_cost),
        volume(n_updates),
        money(r.update_cost),
        money(r.queries_cost),
        volume(i.queries_per_month * i.horizon_months),
        money(r.cost_per_1000_queries),
    ));
    let mut cheaper: Vec<&ArmDecision> = d.arms.iter().filter(|a| a.total_cost < r.total_cost).collect();
    cheaper.sort_by(|a, b| a.total_cost.total_cmp(&b.total_cost));
    for a in cheaper {
        out.push(format!("{} would cost less, {}, but {}.", cap(&a.arm), money(a.total_cost), why_not(a, d)));
    }
    match &d.break_even {
        Some(be) => out.push(be.sentence.clone()),
        None => {
            let has = |member: fn(Arm) -> bool| d.arms.iter().any(|a| a.as_arm().is_some_and(member));
            let family = |member: fn(Arm) -> bool| {
                let arms: Vec<Arm> = Arm::ALL.into_iter().filter(|&a| member(a)).collect();
                Arm::list(&arms)
            };
            let (retrieval, fine_tuned) =
                (Arm::retrieves as fn(Arm) -> bool, Arm::fine_tuned_closed_book as fn(Arm) -> bool);
            let missing = match (has(retrieval), has(fine_tuned)) {
                (false, false) => "neither a retrieval arm nor a closed-book fine-tuned arm".to_string(),
                (false, true) => format!("no retrieval arm ({})", family(retrieval)),
                _ => format!("no closed-book fine-tuned arm ({})", family(fine_tuned)),
            };
            out.push(format!(
                "This run had {missing}, so there is no break-even volume between retrieval and fine-tuning."
            ));
        }
    }
    out
}

/// The break-even sentence of `be`, between the retrieval arm `r` and the fine-tuned `f`.
pub(super) fn break_even(be: &BreakEven, r: &ArmDecision, f: &ArmDecision, i: &DecisionInputs) -> String {
    let per_1000 = |a: &ArmDecision| money(a.cost_per_1000_queries);
    let fixed = |a: &ArmDecision| money(volume_line(a, i).0);
    let (below, above) = if be.cheaper_below == r.arm { (r, f) } else { (f, r) };
    match be.queries_per_month {
        Some(q) => format!(
            "Break-even: {} and {} cost the same over {} at {} queries a month. Below that {} is cheaper (set-up \
             and updates {} against {}), above it {} ({} against {} per 1,000 queries).",
            name(&r.arm),
            name(&f.arm),
            months(i.horizon_months),
            volume(q),
            name(&below.arm),
            fixed(below),
            fixed(above),
            name(&above.arm),
            per_1000(above),
            per_1000(below),
        ),
        None => {
            let other = if below.arm == r.arm { f } else { r };
            format!(
                "{} costs no more than {} at any monthly volume over {}: its set-up and updates ({} against {}) \
                 and its answers ({} against {} per 1,000 queries) both cost less or the same, so there is no \
                 break-even.",
                cap(&below.arm),
                name(&other.arm),
                months(i.horizon_months),
                fixed(below),
                fixed(other),
                per_1000(below),
                per_1000(other),
            )
        }
    }
}

/// Only `a`'s listed failure: `latency`, `floor` or `significance`.
fn fails_only(a: &ArmDecision, what: &str) -> bool {
    let fails = [
        (!a.meets_latency, "latency"),
        (!a.meets_min_accuracy, "floor"),
        (!a.not_significantly_worse, "significance"),
    ];
    fails.iter().filter(|(f, _)| *f).count() == 1 && fails.iter().any(|(f, w)| *f && *w == what)
}

/// The nearest value at which an arm overtakes the recommended one, with that arm.
type Crossing<'a> = Option<(f64, &'a ArmDecision)>;

/// Where another arm's total crosses `r`'s as one variable (`line` gives an arm's total as
/// `fixed + slope × variable`) moves from `now`: the nearest crossing above `now` of an arm that
/// grows more slowly (cheaper beyond it), and the nearest below of one that grows faster
/// (cheaper under it).
fn nearest_crossings<'a>(
    r: &ArmDecision,
    others: &[&'a ArmDecision],
    line: impl Fn(&ArmDecision) -> (f64, f64),
    now: f64,
) -> (Crossing<'a>, Crossing<'a>) {
    let (fr, sr) = line(r);
    let (mut above, mut below): (Crossing, Crossing) = (None, None);
    for &a in others {
        let (fa, sa) = line(a);
        if let Some(x) = crossing(fr, sr, fa, sa) {
            if sa < sr && x >= now && above.is_none_or(|(y, _)| x < y) {
                above = Some((x, a));
            } else if sa > sr && x <= now && below.is_none_or(|(y, _)| x > y) {
                below = Some((x, a));
            }
        }
    }
    (above, below)
}

/// The volumes, update rates, floors and budgets at which another arm would be chosen.
pub(super) fn what_would_change(d: &Decision) -> Vec<String> {
    let i = &d.inputs;
    let mut out = Vec::new();
    let Some(r) = d.recommendation.as_deref().and_then(|id| find(d, id)) else {
        // Nothing eligible: the least relaxation of each constraint that admits an arm.
        let lat = d
            .arms
            .iter()
            .filter(|a| fails_only(a, "latency"))
            .min_by(|a, b| a.budget_latency_ms().total_cmp(&b.budget_latency_ms()));
        if let Some(a) = lat {
            out.push(format!(
                "A p95 latency budget of {} ms or more would admit {}.",
                ms(a.budget_latency_ms()),
                name(&a.arm)
            ));
        }
        let floor =
            d.arms.iter().filter(|a| fails_only(a, "floor") && a.accuracy.is_some()).max_by(|a, b| {
                a.accuracy.map_or(0.0, |x| x.mean).total_cmp(&b.accuracy.map_or(0.0, |x| x.mean))
            });
        if let Some(a) = floor {
            out.push(format!(
                "An accuracy floor at or below {} would admit {}.",
                pct(a.accuracy.map_or(0.0, |x| x.mean)),
                name(&a.arm)
            ));
        }
        return out;
    };
    let (q, u, m) = (i.queries_per_month, i.updates_per_month, i.horizon_months);
    let others: Vec<&ArmDecision> = d.arms.iter().filter(|a| a.eligible() && a.arm != r.arm).collect();

    // Monthly volume: the nearest crossing above and below today's volume.
    let fr = volume_line(r, i).0;
    let (above, below) = nearest_crossings(r, &others, |a| volume_line(a, i), q);
    // "<past what>, <arm> would cost less than <r> (<because>)."
    let cheaper_past = |past: String, a: &ArmDecision, because: String| {
        format!("{past}, {} would cost less than {} ({because}).", name(&a.arm), name(&r.arm))
    };
    if let Some((x, a)) = above {
        let per_1000 = format!(
            "its answers cost {} per 1,000, against {}",
            money(a.cost_per_1000_queries),
            money(r.cost_per_1000_queries)
        );
        out.push(cheaper_past(format!("Above {} queries a month", volume(x)), a, per_1000));
    }
    if let Some((x, a)) = below {
        let fixed =
            format!("its set-up and updates cost {}, against {}", money(volume_line(a, i).0), money(fr));
        out.push(cheaper_past(format!("Below {} queries a month", volume(x)), a, fixed));
    }
    if above.is_none() && below.is_none() && !others.is_empty() {
        out.push(format!("No monthly volume would make another eligible arm cheaper than {}.", name(&r.arm)));
    }

    // Update rate: the same with the updates per month as the variable.
    let upd_line = |a: &ArmDecision| (a.setup_cost + q * m * a.cost_per_query(), m * a.update_cost);
    let (more, fewer) = nearest_crossings(r, &others, upd_line, u);
    for (crossing, side) in [(more, "more"), (fewer, "fewer")] {
        if let Some((x, a)) = crossing {
            let update =
                format!("one update costs it {}, against {}", money(a.update_cost), money(r.update_cost));
            out.push(cheaper_past(format!("With {side} than {} updates a month", volume(x)), a, update));
        }
    }

    // Constraints: the cheapest cheaper arm held back by exactly one of them.
    let cheapest_held = |what: &str| {
        d.arms
            .iter()
            .filter(|a| a.total_cost < r.total_cost && fails_only(a, what))
            .min_by(|a, b| a.total_cost.total_cmp(&b.total_cost))
    };
    if let Some(a) = cheapest_held("floor")
        && let Some(acc) = a.accuracy
    {
        out.push(format!(
            "An accuracy floor at or below {} would let {} win, at {} instead of {}.",
            pct(acc.mean),
            name(&a.arm),
            money(a.total_cost),
            money(r.total_cost)
        ));
    }
    if let Some(a) = cheapest_held("significance")
        && let (Some(diff), Some(best)) = (a.versus_best, &d.most_accurate)
    {
        out.push(format!(
            "Accepting a loss of {} against {} would make {} the choice, at {} instead of {}.",
            points(&negated(&diff)),
            name(best),
            name(&a.arm),
            money(a.total_cost),
            money(r.total_cost)
        ));
    }
    if let Some(a) = cheapest_held("latency") {
        out.push(format!(
            "A p95 latency budget of {} ms or more would let {} win, at {} instead of {}.",
            ms(a.budget_latency_ms()),
            name(&a.arm),
            money(a.total_cost),
            money(r.total_cost)
        ));
    }
    if let Some(acc) = r.accuracy {
        // A floor above the recommended arm's accuracy: the cheapest arm left.
        let next = d
            .arms
            .iter()
            .filter(|a| {
                a.arm != r.arm
                    && a.meets_latency
                    && a.not_significantly_worse
                    && a.accuracy.is_some_and(|x| x.mean > acc.mean)
            })
            .min_by(|a, b| a.total_cost.total_cmp(&b.total_cost));
        out.push(match next {
            Some(a) => format!(
                "An accuracy floor above {} would rule out {}; {} would then be chosen, at {}.",
                pct(acc.mean),
                name(&r.arm),
                name(&a.arm),
                money(a.total_cost)
            ),
            None => format!(
                "No arm is both more accurate than {} ({}) and within the constraints.",
                name(&r.arm),
                pct(acc.mean)
            ),
        });
    }
    if r.latency_p95_ms.is_some() {
        out.push(format!(
            "A p95 latency budget under {} ms would rule out {}.",
            ms(r.budget_latency_ms()),
            name(&r.arm)
        ));
    }
    out
}
