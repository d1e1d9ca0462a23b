//! The report's "Tuning on dev" part: RAG's k against its dev score, each fine-tuned arm's grid
//! (learning rate × epoch → dev score and held-out loss, the chosen cell marked), the
//! overfitting sentences, and `tuning.svg` — held-out loss and dev score per epoch, one line per
//! arm and learning rate.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::results::ExperimentReport;

pub const TUNING: (&str, &str) =
    ("tuning.svg", "Held-out loss and dev score per epoch of each fine-tuned arm");

use super::charts::LINES;

/// (epoch, held-out loss, dev score in %) of one trial.
type EpochPoint = (f64, f64, f64);

/// Whether the report has per-epoch trials to draw.
pub fn has_chart(report: &ExperimentReport) -> bool {
    report.tuning.as_ref().is_some_and(|t| t.arms.iter().any(|a| !a.trials.is_empty()))
}

/// The Markdown section (nothing when the run did not tune).
pub fn section(md: &mut String, report: &ExperimentReport) {
    let Some(t) = &report.tuning else { return };
    let _ = writeln!(
        md,
        "## Tuning on dev\n\nEach knob was chosen on the {} dev questions by {} and the results above are on \
         the test questions only.\n",
        t.dev_questions, t.metric
    );
    if !t.rag.is_empty() {
        md.push_str("| RAG k | dev score |\n|---|---|\n");
        for k in &t.rag {
            let mark = if t.rag_k == Some(k.k) { " **←**" } else { "" };
            let _ = writeln!(md, "| {}{mark} | {:.1}% |", k.k, 100.0 * k.dev_score);
        }
        md.push('\n');
    }
    for a in &t.arms {
        let _ = writeln!(
            md,
            "**{}**: lr {:e}, {} epochs chosen ({:.0} s for the whole grid).\n",
            a.arm, a.chosen_lr, a.chosen_epoch, a.seconds
        );
        md.push_str("| lr | epoch | training loss | held-out loss | dev score |\n|---|---|---|---|---|\n");
        for tr in &a.trials {
            let mark = if tr.lr == a.chosen_lr && tr.epoch == a.chosen_epoch { " **←**" } else { "" };
            let _ = writeln!(
                md,
                "| {:e} | {}{mark} | {:.3} | {:.3} | {:.1}% |",
                tr.lr,
                tr.epoch,
                tr.train_loss,
                tr.dev_loss,
                100.0 * tr.dev_score
            );
        }
        md.push('\n');
        if let Some(s) = &a.overfit {
            let _ = writeln!(md, "{s}.\n");
        }
    }
    if has_chart(report) {
        let _ = writeln!(md, "![{}]({})\n", TUNING.1, TUNING.0);
    }
}

/// `tuning.svg`: two panels, held-out loss and dev score against the epoch.
pub fn chart(report: &ExperimentReport) -> Result<String, String> {
    let Some(t) = &report.tuning else { return Err("no tuning in the report".into()) };
    let series: Vec<(String, Vec<EpochPoint>)> = t
        .arms
        .iter()
        .flat_map(|a| {
            let mut lrs: Vec<f32> = a.trials.iter().map(|x| x.lr).collect();
            lrs.dedup();
            lrs.into_iter().map(move |lr| {
                let pts = a
                    .trials
                    .iter()
                    .filter(|x| x.lr == lr)
                    .map(|x| (x.epoch as f64, x.dev_loss, 100.0 * x.dev_score));
                (format!("{} lr {lr:e}", a.arm), pts.collect())
            })
        })
        .collect();
    let max_epoch = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.0)).fold(1.0, f64::max);
    let max_loss = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1)).fold(0.0, f64::max).max(1e-6) * 1.1;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((1, 2));
        for (p, area) in panels.iter().enumerate() {
            let (caption, top) = if p == 0 { ("held-out loss", max_loss) } else { ("dev score (%)", 105.0) };
            let mut chart = ChartBuilder::on(area)
                .caption(caption, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(50)
                .build_cartesian_2d(0.5f64..(max_epoch + 0.5), 0f64..top)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_labels(max_epoch as usize + 2)
                .x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() })
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let color = LINES[i % LINES.len()];
                let line: Vec<(f64, f64)> =
                    pts.iter().map(|&(e, l, s)| (e, if p == 0 { l } else { s })).collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
                chart
                    .draw_series(line.into_iter().map(|xy| Circle::new(xy, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            if p == 1 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK.mix(0.3))
                    .label_font(("sans-serif", 12))
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}
