//! The parts of `report.md` for the labelled tasks: the results table of a classification
//! (accuracy and macro-F1) or house-format run (format validity, field exact match, token F1),
//! per-label F1, and each arm's confusion matrix as a table.

use std::fmt::Write as _;

use super::format::number;
use super::markdown::{cell, opt, row, setup};
use super::results::ExperimentReport;
use crate::task::TaskKind;

/// The results table of a classification or house-format report (nothing for QA).
pub fn results(md: &mut String, report: &ExperimentReport) {
    let classify = match report.task {
        TaskKind::Qa => return,
        kind => kind == TaskKind::Classify,
    };
    md.push_str("## Results\n\n");
    if report.arms.is_empty() {
        md.push_str("No arm was run.\n\n");
        return;
    }
    if classify {
        md.push_str(
            "| arm | accuracy [95% CI] | macro-F1 [95% CI] | set-up | latency ms |\n|---|---|---|---|---|\n",
        );
    } else {
        md.push_str(
            "| arm | format valid [95% CI] | field exact match [95% CI] | exact match | token F1 | set-up | latency ms |\n\
             |---|---|---|---|---|---|---|\n",
        );
    }
    for a in &report.arms {
        let s = &a.overall;
        let setup = setup(a.cost.setup_seconds);
        let latency = number(a.cost.latency_ms);
        let scores = if classify {
            vec![opt(s.mc_accuracy), opt(s.macro_f1)]
        } else {
            vec![opt(s.format_valid), opt(s.field_match), opt(s.exact_match), opt(s.token_f1)]
        };
        row(md, &[vec![cell(&a.id)], scores, vec![setup, latency]].concat());
    }
    md.push_str(if classify {
        "\nAccuracy: the label with the highest log-likelihood after the prompt is the prediction. Macro-F1: \
         the unweighted mean of the per-label F1, so a rare label counts as much as a common one. Brackets: \
         bootstrap 95% intervals over the test examples.\n\n"
    } else {
        "\nFormat valid: the greedy output parses in the house format. Field exact match: the share of the \
         reference's fields reproduced exactly (0 for an output that does not parse). Brackets: bootstrap 95% \
         intervals over the test examples.\n\n"
    });
    if classify {
        per_label(md, report);
        confusion_tables(md, report);
    }
}

/// Per-label F1, one column per arm.
fn per_label(md: &mut String, report: &ExperimentReport) {
    let arms: Vec<_> = report.arms.iter().filter_map(|a| Some((a, a.classes.as_ref()?))).collect();
    let Some((_, first)) = arms.first() else { return };
    md.push_str("## Per-label F1\n\n");
    let ids: Vec<String> = arms.iter().map(|(a, _)| cell(&a.id)).collect();
    let _ = writeln!(md, "| label | support | {} |", ids.join(" | "));
    let _ = writeln!(md, "|---|---|{}", "---|".repeat(arms.len()));
    for (i, label) in first.per_label.iter().enumerate() {
        let cells: Vec<String> = arms
            .iter()
            .map(|(_, c)| {
                c.per_label
                    .iter()
                    .find(|s| s.label == label.label)
                    .or_else(|| c.per_label.get(i))
                    .map(|s| format!("{:.2}", s.f1))
                    .unwrap_or_else(|| "—".into())
            })
            .collect();
        let _ = writeln!(md, "| {} | {} | {} |", cell(&label.label), label.support, cells.join(" | "));
    }
    md.push('\n');
}

/// Each arm's confusion matrix: rows gold, columns predicted.
fn confusion_tables(md: &mut String, report: &ExperimentReport) {
    let arms: Vec<_> = report.arms.iter().filter_map(|a| Some((a, a.classes.as_ref()?))).collect();
    if arms.is_empty() {
        return;
    }
    md.push_str("## Confusion matrices\n\nRows: the gold label; columns: the predicted label.\n\n");
    for (a, c) in arms {
        let _ = writeln!(md, "**{}**\n", cell(&a.id));
        let head: Vec<String> = c.labels.iter().map(|l| cell(l)).collect();
        let _ = writeln!(md, "| gold \\ predicted | {} |", head.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(c.labels.len()));
        for (label, row) in c.labels.iter().zip(&c.confusion) {
            let counts: Vec<String> = row.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(md, "| {} | {} |", cell(label), counts.join(" | "));
        }
        md.push('\n');
    }
}
