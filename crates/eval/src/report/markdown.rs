//! `report.md`: the run's set-up, the tables (scores, breakdowns, forgetting, the paraphrase
//! curve, costs), "What this means" from the computed findings, and links to the charts. A
//! classification or house-format run gets its own results tables ([`super::labelled`]).
//!
//! Every figure comes from the [`ExperimentReport`]; nothing is recomputed here. Percentages
//! carry the decimals their interval warrants ([`super::format`]), a missing measurement is
//! "—", and user-supplied text (arm names, descriptions) is escaped for table cells.

use std::fmt::Write as _;

use super::charts::{DECISION, chart_files};
use super::format::{bytes, count, duration, number, percent, points};
use super::results::{ArmResult, Breakdown, ExperimentReport, Interval, Scores};

/// The whole report as Markdown.
pub fn render_markdown(report: &ExperimentReport) -> String {
    let mut md = String::new();
    let title =
        if report.info.title.trim().is_empty() { "ragtune experiment" } else { report.info.title.trim() };
    let _ = writeln!(md, "# {}\n", one_line(title));
    tasks_overview(&mut md, report);
    what_to_choose(&mut md, report);
    run_info(&mut md, report);
    arms(&mut md, report);
    if report.task == crate::task::TaskKind::Qa {
        main_table(&mut md, report);
    } else {
        super::labelled::results(&mut md, report);
    }
    breakdowns(&mut md, report, "By question phrasing", |a| &a.by_phrasing);
    breakdowns(&mut md, report, "By entity popularity", |a| &a.by_popularity);
    super::tuning::section(&mut md, report);
    forgetting(&mut md, report);
    paraphrase_curve(&mut md, report);
    cost_table(&mut md, report);
    what_this_means(&mut md, report);
    charts(&mut md, report);
    settings(&mut md, report);
    md
}

/// A multi-task run's overview: task → recommended arm → why, each linking its report.
fn tasks_overview(md: &mut String, report: &ExperimentReport) {
    if report.tasks.is_empty() {
        return;
    }
    md.push_str("## Tasks\n\n| task | recommended | why | report |\n|---|---|---|---|\n");
    for t in &report.tasks {
        let _ = writeln!(
            md,
            "| {} ({}) | {} | {} | [{}]({}) |",
            cell(&t.task),
            t.kind.id(),
            t.recommendation
                .as_deref()
                .map(|r| format!("`{}`", cell(r)))
                .unwrap_or_else(|| "none meets every constraint".into()),
            cell(&t.why),
            cell(&t.report),
            t.report
        );
    }
    md.push_str("\nEach task has its own arms, numbers and recommendation; the sections below are the first task's.\n\n");
}

/// The decision first: the recommendation, its reasons, the per-arm costs and the cost chart.
fn what_to_choose(md: &mut String, report: &ExperimentReport) {
    let Some(d) = &report.decision else { return };
    md.push_str(&crate::decision::text::markdown(d));
    if let Some((file, title)) = chart_files(report).into_iter().find(|(f, _)| *f == DECISION.0) {
        let _ = writeln!(md, "![{title}]({file})\n");
    }
    md.push_str(
        "Recompute with other traffic, update rate, price or budget, without re-running an arm: `ragtune \
         decide --report report.json --queries-per-month N --updates-per-month N --price-per-hour P \
         --latency-budget-ms L`.\n\n",
    );
}

fn run_info(md: &mut String, report: &ExperimentReport) {
    let i = &report.info;
    md.push_str("## Run\n\n");
    let mut line = |label: &str, value: String| {
        if !value.trim().is_empty() {
            let _ = writeln!(md, "- {label}: {}", one_line(&value));
        }
    };
    line("Date (UTC)", i.date.clone());
    line("Machine", i.machine.clone());
    line("Device", i.device.clone());
    let params =
        if i.model_params > 0 { format!(" ({} parameters)", count(i.model_params)) } else { String::new() };
    line("Model", if i.model.is_empty() { String::new() } else { format!("{}{params}", i.model) });
    line("Embedder", i.embedder.clone());
    line("Seeds", pairs(&i.seeds));
    line("Sizes", pairs(&i.sizes));
    line("Wall time", if i.wall_seconds > 0.0 { duration(i.wall_seconds) } else { String::new() });
    md.push('\n');
}

fn pairs(items: &[(String, u64)]) -> String {
    items.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

fn arms(md: &mut String, report: &ExperimentReport) {
    if report.arms.iter().all(|a| a.description.trim().is_empty()) {
        return;
    }
    md.push_str("## Arms\n\n");
    for a in &report.arms {
        let seeds = if a.seed_means.is_empty() {
            String::new()
        } else {
            let means: Vec<String> = a.seed_means.iter().map(|m| format!("{:.1}%", 100.0 * m)).collect();
            format!(
                " — {} training seeds, each seed's score: {}; its intervals span the seeds",
                means.len(),
                means.join(", ")
            )
        };
        let _ = writeln!(md, "- `{}`: {}{seeds}", one_line(&a.id), one_line(&a.description));
    }
    md.push('\n');
}

fn main_table(md: &mut String, report: &ExperimentReport) {
    md.push_str("## Results\n\n");
    if report.arms.is_empty() {
        md.push_str("No arm was run.\n\n");
        return;
    }
    let k = report.info.settings.get("rag_k").and_then(|k| k.as_u64());
    let recall = k.map(|k| format!("recall@{k}")).unwrap_or_else(|| "recall@k".into());
    let _ = writeln!(
        md,
        "| arm | MC accuracy [95% CI] | EM | F1 | {recall} | set-up | artifact | latency ms | tokens/answer |"
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for a in &report.arms {
        let s = &a.overall;
        row(
            md,
            &[
                cell(&a.id),
                opt(s.mc_accuracy),
                opt(s.exact_match),
                opt(s.token_f1),
                opt(a.retrieval_recall),
                setup(a.cost.setup_seconds),
                artifact(a.cost.artifact_bytes),
                number(a.cost.latency_ms),
                format!("{:.0}", a.cost.tokens_per_answer),
            ],
        );
    }
    md.push_str(
        "\nMC accuracy: the option with the highest log-likelihood is the answer. EM and F1: greedy answers \
         against the reference after SQuAD normalisation. Recall: the question's source passage among the \
         retrieved ones. Brackets: bootstrap 95% intervals over the questions.\n\n",
    );
}

pub(super) fn opt(iv: Option<Interval>) -> String {
    iv.map(|iv| percent(&iv)).unwrap_or_else(|| "—".into())
}

/// "—" for an arm with nothing to set up (the base model).
pub(super) fn setup(seconds: f64) -> String {
    if seconds == 0.0 { "—".into() } else { duration(seconds) }
}

fn artifact(b: u64) -> String {
    if b == 0 { "—".into() } else { bytes(b) }
}

/// The breakdown's metric: multiple choice when any arm has it, else exact match.
fn breakdown_metric(report: &ExperimentReport) -> (fn(&Scores) -> Option<Interval>, &'static str) {
    let any_choice = report.arms.iter().any(|a| {
        a.overall.mc_accuracy.is_some() || a.by_phrasing.iter().any(|b| b.scores.mc_accuracy.is_some())
    });
    if any_choice {
        (|s| s.mc_accuracy, "Multiple-choice accuracy")
    } else {
        (|s| s.exact_match, "Exact match")
    }
}

fn breakdowns(
    md: &mut String,
    report: &ExperimentReport,
    heading: &str,
    of: fn(&ArmResult) -> &Vec<Breakdown>,
) {
    // Columns: every label, in the order the arms first show them.
    let mut labels: Vec<&str> = Vec::new();
    for a in &report.arms {
        for b in of(a) {
            if !labels.contains(&b.label.as_str()) {
                labels.push(&b.label);
            }
        }
    }
    if labels.is_empty() {
        return;
    }
    let (metric, name) = breakdown_metric(report);
    let _ = writeln!(md, "## {heading}\n\n{name} [95% CI]; n = questions in the group.\n");
    let header: Vec<String> = labels
        .iter()
        .map(|l| {
            let n = report
                .arms
                .iter()
                .flat_map(of)
                .find(|b| b.label == *l)
                .and_then(|b| metric(&b.scores))
                .map(|iv| iv.n);
            match n {
                Some(n) => format!("{} (n = {n})", cell(l)),
                None => cell(l),
            }
        })
        .collect();
    let _ = writeln!(md, "| arm | {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(labels.len()));
    for a in &report.arms {
        if of(a).is_empty() {
            continue;
        }
        let cells: Vec<String> = labels
            .iter()
            .map(|l| opt(of(a).iter().find(|b| b.label == *l).and_then(|b| metric(&b.scores))))
            .collect();
        let _ = writeln!(md, "| {} | {} |", cell(&a.id), cells.join(" | "));
    }
    md.push('\n');
}

fn forgetting(md: &mut String, report: &ExperimentReport) {
    let rows: Vec<_> = report.arms.iter().filter_map(|a| Some((a, a.forgetting.as_ref()?))).collect();
    if rows.is_empty() {
        return;
    }
    md.push_str(
        "## Forgetting\n\nClosed-book accuracy on facts the base model already knew, before and after the \
         arm's fine-tuning; the change is a paired bootstrap over the same questions.\n\n",
    );
    md.push_str("| arm | before | after | change |\n|---|---|---|---|\n");
    for (a, f) in rows {
        row(md, &[cell(&a.id), percent(&f.before), percent(&f.after), points(&f.change)]);
    }
    md.push('\n');
}

fn paraphrase_curve(md: &mut String, report: &ExperimentReport) {
    if report.paraphrase_curve.is_empty() {
        return;
    }
    let mut curve = report.paraphrase_curve.clone();
    curve.sort_by_key(|p| p.paraphrases);
    md.push_str("## Accuracy against paraphrases\n\nClosed-book FT trained on the corpus plus extra paraphrases of each document.\n\n");
    md.push_str("| extra paraphrases per document | MC accuracy | EM | F1 |\n|---|---|---|---|\n");
    for p in &curve {
        let s = &p.scores;
        row(md, &[p.paraphrases.to_string(), opt(s.mc_accuracy), opt(s.exact_match), opt(s.token_f1)]);
    }
    md.push('\n');
}

fn cost_table(md: &mut String, report: &ExperimentReport) {
    if report.arms.is_empty() {
        return;
    }
    md.push_str("## Cost\n\n");
    md.push_str(
        "| arm | set-up | train tokens | peak host MiB | device MiB | artifact | latency ms (retrieval / prefill / decode) | tokens/answer |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    const MIB: f64 = 1024.0 * 1024.0;
    for a in &report.arms {
        let c = &a.cost;
        let latency = format!(
            "{} ({} / {} / {})",
            number(c.latency_ms),
            number(c.retrieval_ms),
            number(c.prefill_ms),
            number(c.decode_ms)
        );
        row(
            md,
            &[
                cell(&a.id),
                setup(c.setup_seconds),
                if c.train_tokens == 0 { "—".into() } else { count(c.train_tokens) },
                format!("{:.0}", c.peak_host_bytes as f64 / MIB),
                c.peak_device_bytes.map(|b| format!("{:.0}", b as f64 / MIB)).unwrap_or_else(|| "—".into()),
                artifact(c.artifact_bytes),
                latency,
                format!("{:.0}", c.tokens_per_answer),
            ],
        );
    }
    md.push('\n');
    let on_device = report.arms.iter().any(|a| a.cost.peak_device_bytes.is_some());
    md.push_str(if on_device {
        "Peaks are per arm (set-up and answering; retrieving arms include the index build). Device \
         MiB counts ragtune's own allocations (weights, caches, activations, scratch), not the CUDA \
         context or cuBLAS's workspace.\n\n"
    } else {
        "Peaks are per arm (set-up and answering; retrieving arms include the index build). Device \
         MiB is — because this run used the CPU: everything is in host memory.\n\n"
    });
}

fn what_this_means(md: &mut String, report: &ExperimentReport) {
    md.push_str("## What this means\n\n");
    if report.findings.is_empty() {
        md.push_str("No claim from the literature could be checked: the arms it compares were not run.\n\n");
        return;
    }
    for f in &report.findings {
        let mark = match f.holds {
            Some(true) => "✔",
            Some(false) => "✘",
            None => "?",
        };
        let _ = writeln!(md, "- {mark} {}", one_line(&f.sentence));
    }
    md.push_str(
        "\n✔ the run agrees with the literature's claim, ✘ it contradicts it (the 95% interval excludes zero), \
         ? it cannot tell. Arm-against-arm differences are paired over the same questions; the popularity \
         and phrasing differences compare different questions and resample each group separately.\n\n",
    );
    md.push_str("<details><summary>The claims checked</summary>\n\n");
    for f in &report.findings {
        let _ = writeln!(md, "- `{}`: {}", one_line(&f.id), one_line(&f.claim));
    }
    md.push_str("\n</details>\n\n");
}

fn charts(md: &mut String, report: &ExperimentReport) {
    let files = chart_files(report);
    if files.is_empty() {
        return;
    }
    md.push_str("## Charts\n\n");
    for (file, title) in files {
        let _ = writeln!(md, "![{title}]({file})\n");
    }
}

fn settings(md: &mut String, report: &ExperimentReport) {
    if report.info.settings.is_null() {
        return;
    }
    let json = serde_json::to_string_pretty(&report.info.settings).unwrap_or_default();
    let _ = writeln!(md, "<details><summary>Settings</summary>\n\n```json\n{json}\n```\n\n</details>");
}

/// Text safe inside a table cell: one line, pipes escaped.
pub(super) fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

/// One table row of already formatted `cells`: `| a | b | c |` and a newline.
pub(super) fn row(md: &mut String, cells: &[String]) {
    let _ = writeln!(md, "| {} |", cells.join(" | "));
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::{Cost, Finding, Forgetting, ParaphrasePoint, RunInfo};

    fn iv(mean: f64, half: f64) -> Interval {
        Interval { mean, lo: mean - half, hi: mean + half, n: 160 }
    }

    fn arm(id: &str, acc: f64) -> ArmResult {
        let scores = Scores {
            macro_f1: None,
            format_valid: None,
            field_match: None,
            mc_accuracy: Some(iv(acc, 0.05)),
            exact_match: Some(iv(acc * 0.8, 0.06)),
            token_f1: None,
        };
        ArmResult {
            seed_means: Vec::new(),
            classes: None,
            id: id.into(),
            description: format!("the {id} arm"),
            overall: scores.clone(),
            by_phrasing: vec![
                Breakdown {
                    label: "seen".into(),
                    scores: Scores { mc_accuracy: Some(iv(acc, 0.07)), ..Scores::default() },
                },
                Breakdown {
                    label: "held-out".into(),
                    scores: Scores { mc_accuracy: Some(iv(acc - 0.1, 0.07)), ..Scores::default() },
                },
            ],
            by_popularity: Vec::new(),
            retrieval_recall: (id == "rag").then(|| iv(0.95, 0.03)),
            forgetting: (id == "ft").then(|| Forgetting {
                before: iv(0.7, 0.05),
                after: iv(0.64, 0.05),
                change: iv(-0.06, 0.03),
            }),
            cost: Cost {
                setup_seconds: 95.0,
                peak_host_bytes: 512 << 20,
                artifact_bytes: 3 << 20,
                latency_ms: 12.5,
                retrieval_ms: 0.4,
                prefill_ms: 8.1,
                decode_ms: 4.0,
                tokens_per_answer: 180.0,
                train_tokens: 250_000,
                ..Cost::default()
            },
            outcomes: Vec::new(),
        }
    }

    fn report() -> ExperimentReport {
        ExperimentReport {
            tuning: None,
            tasks: Vec::new(),
            task: Default::default(),
            info: RunInfo {
                title: "ragtune demo".into(),
                date: "2026-11-24 10:00".into(),
                machine: "test box".into(),
                device: "cpu".into(),
                model: "ragtune-base".into(),
                model_params: 12_400_000,
                embedder: "hashed".into(),
                seeds: vec![("world".into(), 7), ("bootstrap".into(), 0)],
                sizes: vec![("new questions".into(), 160)],
                wall_seconds: 725.0,
                settings: serde_json::json!({ "rag_k": 3 }),
            },
            arms: ["base", "rag", "ft", "ft-par", "ft+rag", "raft"]
                .iter()
                .zip([0.25, 0.91, 0.31, 0.47, 0.86, 0.93])
                .map(|(id, a)| arm(id, a))
                .collect(),
            paraphrase_curve: vec![ParaphrasePoint {
                paraphrases: 2,
                scores: Scores { mc_accuracy: Some(iv(0.4, 0.05)), ..Scores::default() },
            }],
            findings: vec![
                Finding {
                    id: "rag-beats-ft".into(),
                    claim: "RAG beats FT.".into(),
                    difference: Some(iv(0.6, 0.07)),
                    holds: Some(true),
                    sentence: "RAG answered 91% (86–96%) …, as the literature reports.".into(),
                    paired_test: None,
                    clusters: None,
                },
                Finding {
                    id: "raft-beats-rag".into(),
                    claim: "RAFT beats RAG.".into(),
                    difference: Some(iv(0.02, 0.04)),
                    holds: None,
                    sentence: "RAFT … so this run cannot tell.".into(),
                    paired_test: None,
                    clusters: None,
                },
                Finding {
                    id: "ft-rag-adds".into(),
                    claim: "Gains add.".into(),
                    difference: Some(iv(-0.05, 0.03)),
                    holds: Some(false),
                    sentence: "FT+RAG … hurt the use of retrieved context.".into(),
                    paired_test: None,
                    clusters: None,
                },
            ],
            decision: None,
        }
    }

    #[test]
    fn every_arm_has_a_row_and_every_finding_its_marked_sentence() {
        let r = report();
        let md = render_markdown(&r);
        assert!(md.starts_with("# ragtune demo\n"));
        for a in &r.arms {
            let row = format!("| {} | {} | ", a.id, percent(&a.overall.mc_accuracy.unwrap()));
            assert!(md.contains(&row), "no main row for {}: {row}\n{md}", a.id);
        }
        assert!(md.contains("- ✔ RAG answered 91% (86–96%) …, as the literature reports."));
        assert!(md.contains("- ? RAFT … so this run cannot tell."));
        assert!(md.contains("- ✘ FT+RAG … hurt the use of retrieved context."));
        assert!(md.contains("| recall@3 |"), "k from the settings");
        assert!(
            md.contains(
                "| rag | 91% (86–96%) | 73% (67–79%) | — | 95% (92–98%) | 1 min 35 s | 3.0 MiB | 12.5 | 180 |"
            ),
            "{md}"
        );
        // Cost, forgetting, breakdown and curve tables.
        assert!(
            md.contains("| ft | 1 min 35 s | 250k | 512 | — | 3.0 MiB | 12.5 (0.40 / 8.10 / 4.00) | 180 |"),
            "{md}"
        );
        assert!(md.contains("| ft | 70% (65–75%) | 64% (59–69%) | −6 points (−9 to −3) |"), "{md}");
        assert!(md.contains("| arm | seen (n = 160) | held-out (n = 160) |"), "{md}");
        assert!(md.contains("| 2 | 40% (35–45%) | — | — |"));
        assert!(!md.contains("## By entity popularity"), "no popularity labels, no table");
        // Run information.
        for s in [
            "2026-11-24 10:00",
            "test box",
            "ragtune-base (12.4M parameters)",
            "world 7, bootstrap 0",
            "12 min 05 s",
        ] {
            assert!(md.contains(s), "{s} missing");
        }
        assert!(md.contains("![Accuracy per arm, with 95% intervals](accuracy.svg)"));
        assert!(md.contains("(paraphrases.svg)") && md.contains("(cost.svg)"));
    }

    #[test]
    fn the_device_column_says_what_it_counts() {
        let mut r = report();
        let md = render_markdown(&r);
        assert!(md.contains("this run used the CPU"), "{md}");
        r.arms[0].cost.peak_device_bytes = Some(3 << 20);
        let md = render_markdown(&r);
        let cost = md.split("## Cost").nth(1).and_then(|c| c.split("\n## ").next()).unwrap();
        let row = cost.lines().find(|l| l.starts_with(&format!("| {} | ", r.arms[0].id))).unwrap();
        assert!(row.contains("| 3 |"), "the 3 MiB peak is in the cost row: {row}");
        assert!(md.contains("not the CUDA context"), "{md}");
    }

    #[test]
    fn user_text_cannot_break_the_tables() {
        let mut r = report();
        r.arms[0].id = "mine|yours\nnext".into();
        let md = render_markdown(&r);
        assert!(md.contains("| mine\\|yours next |"), "{md}");
    }

    #[test]
    fn an_empty_report_still_renders() {
        let md = render_markdown(&ExperimentReport {
            tuning: None,
            tasks: Vec::new(),
            task: Default::default(),
            info: RunInfo::default(),
            arms: Vec::new(),
            paraphrase_curve: Vec::new(),
            findings: Vec::new(),
            decision: None,
        });
        assert!(md.starts_with("# ragtune experiment"));
        assert!(
            md.contains("No arm was run.") && md.contains("No claim from the literature could be checked")
        );
        assert!(!md.contains("## Charts"));
    }
}
