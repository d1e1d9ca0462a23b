//! How the decision reads: money, volumes and milliseconds in sentences, and the "What to
//! choose" section that opens `report.md` (and that `ragtune decide` prints).

use std::fmt::Write as _;

use super::{ArmDecision, Decision};
use crate::report::format::{METRIC_SUFFIXES, number, percent, signed_points, thousands, with_suffix};

/// Money in the currency of `price_per_hour`: `$0.0042`, `$12.34`, `$1,234`, `$1.23M`.
pub fn money(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let a = x.abs();
    let digits = if a == 0.0 {
        "0".to_string()
    } else if a < 0.01 {
        // Two significant digits.
        let d = (-a.log10().floor()) as usize + 1;
        format!("{a:.d$}")
    } else if a < 1000.0 {
        format!("{a:.2}")
    } else if a < 1e6 {
        thousands(a.round() as u64)
    } else if a < 1e9 {
        format!("{:.2}M", a / 1e6)
    } else if a < 1e12 {
        format!("{:.2}B", a / 1e9)
    } else {
        format!("{a:.3e}")
    };
    format!("{}${digits}", if x < 0.0 { "−" } else { "" })
}

/// A volume of queries or updates: `3.5`, `640`, `12k`, `1.25M`, `10B`.
pub fn volume(q: f64) -> String {
    if !q.is_finite() {
        return "—".into();
    }
    if q < 1000.0 {
        return trim(number(q));
    }
    let (value, suffix) = with_suffix(q, &METRIC_SUFFIXES).expect("q is at least 1000");
    let s = if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    format!("{}{suffix}", trim(s))
}

/// `2.50` → `2.5`, `3.00` → `3`.
fn trim(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// Milliseconds: `0.42`, `14.3`, `1250`.
pub fn ms(x: f64) -> String {
    number(x)
}

/// `12 months`, `1 month`.
pub fn months(m: f64) -> String {
    let n = trim(number(m));
    if n == "1" { "1 month".into() } else { format!("{n} months") }
}

/// Why an arm cannot be recommended, in a few words for a table cell ("✔" when it can).
pub fn verdict(a: &ArmDecision) -> String {
    let mut why = Vec::new();
    if !a.meets_latency {
        why.push("over the latency budget");
    }
    if !a.meets_min_accuracy {
        why.push("below the accuracy floor");
    }
    if !a.not_significantly_worse {
        why.push(if a.accuracy.is_some() { "significantly less accurate" } else { "accuracy not measured" });
    }
    if why.is_empty() { "✔".into() } else { why.join("; ") }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The "What to choose" section, as Markdown (a `##` heading first).
pub fn markdown(d: &Decision) -> String {
    let mut md = String::new();
    let i = &d.inputs;
    md.push_str("## What to choose\n\n");
    match &d.recommendation {
        Some(r) => {
            let _ = write!(md, "**Choose `{}`**", cell(r));
        }
        None => md.push_str("**No arm meets every constraint**"),
    }
    let floor =
        i.min_accuracy.map(|f| format!(", accuracy ≥ {}%", trim(number(f * 100.0)))).unwrap_or_default();
    let _ = writeln!(
        md,
        " — for {} queries and {} updates a month over {}, at {} an hour, p95 latency ≤ {} ms{floor}.\n",
        volume(i.queries_per_month),
        volume(i.updates_per_month),
        months(i.horizon_months),
        money(i.price_per_hour),
        ms(i.latency_budget_ms),
    );
    for r in &d.reasons {
        let _ = writeln!(md, "- {r}");
    }
    if !d.reasons.is_empty() {
        md.push('\n');
    }
    if !d.arms.is_empty() {
        let metric = if d.metric.is_empty() { "accuracy".to_string() } else { d.metric.clone() };
        let _ = writeln!(
            md,
            "| arm | {metric} [95% CI] | vs most accurate | latency p50 / p95 ms | per 1,000 queries | set-up | one update | total over {} | can be chosen |",
            months(i.horizon_months)
        );
        md.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for a in &d.arms {
            let latency = match (a.latency_p50_ms, a.latency_p95_ms) {
                (Some(p50), Some(p95)) => format!("{} / {}", ms(p50), ms(p95)),
                _ => format!("mean {}", ms(a.latency_ms)),
            };
            let update = if a.update_measured {
                money(a.update_cost)
            } else {
                format!("{} (estimated)", money(a.update_cost))
            };
            let _ = writeln!(
                md,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&a.arm),
                if d.recommendation.as_deref() == Some(a.arm.as_str()) { " **←**" } else { "" },
                a.accuracy.map(|iv| percent(&iv)).unwrap_or_else(|| "—".into()),
                a.versus_best.map(|iv| signed_points(&iv)).unwrap_or_else(|| "—".into()),
                latency,
                money(a.cost_per_1000_queries),
                money(a.setup_cost),
                update,
                money(a.total_cost),
                verdict(a),
            );
        }
        md.push_str(
            "\nCosts are the run's measured times priced per hour of the machine it ran on, one question at a \
             time: an answer's mean wall time, the set-up time, and one update (an edit of 10% of the corpus: \
             re-indexing the changed passages for the retrieval arms, training on them for the fine-tuned \
             ones). \"vs most accurate\": the paired bootstrap difference with the most accurate arm.\n\n",
        );
        for a in &d.arms {
            if !a.update_how.is_empty() {
                let _ = writeln!(md, "- `{}` update: {}", cell(&a.arm), cell(&a.update_how));
            }
        }
        md.push('\n');
    }
    if !d.what_would_change.is_empty() {
        md.push_str("What would change the answer:\n\n");
        for s in &d.what_would_change {
            let _ = writeln!(md, "- {s}");
        }
        md.push('\n');
    }
    md
}
