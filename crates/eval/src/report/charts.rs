//! The report's SVG charts, drawn with plotters: `accuracy.svg` (accuracy per arm with 95%
//! intervals), `paraphrases.svg` (FT accuracy against extra paraphrases per document) and
//! `cost.svg` (set-up seconds on a log axis against accuracy, one labelled point per arm).
//!
//! Text without fonts: plotters is built without `ttf`/`ab_glyph` (no system fonts on CI
//! machines), so it falls back to its `naive` font module, which only estimates text extents
//! (0.7 em per character) for layout. That is enough here, because the SVG backend never
//! rasterises glyphs: its `draw_text` writes a `<text>` element (escaped, with
//! `font-family="sans-serif"`) and leaves the glyphs to whatever displays the file. Labels are
//! therefore real, selectable text; only the spacing plotters reserves for them is approximate,
//! which the generous label areas below absorb.
//!
//! "Accuracy" is multiple-choice accuracy when the run has it, else exact match. A chart with
//! nothing to show (no paraphrase curve, no scored arm) is not drawn. Output is a function of
//! the report alone, so the same report gives byte-identical files.

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::results::{ArmResult, ExperimentReport, Interval, Scores};

/// One rendered chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// `accuracy.svg`, `paraphrases.svg`, `cost.svg`.
    pub file_name: &'static str,
    /// What it shows, for the report's link text.
    pub title: &'static str,
    pub svg: String,
}

/// A chart plotters could not draw (an internal error: the inputs are checked before).
#[derive(Debug, Clone, thiserror::Error)]
#[error("drawing {chart}: {detail}")]
pub struct ChartError {
    pub chart: &'static str,
    pub detail: String,
}

pub const ACCURACY: (&str, &str) = ("accuracy.svg", "Accuracy per arm, with 95% intervals");
pub const PARAPHRASES: (&str, &str) =
    ("paraphrases.svg", "FT accuracy against extra paraphrases per document");
pub const COST: (&str, &str) = ("cost.svg", "Set-up time against accuracy");
pub const DECISION: (&str, &str) = ("decision.svg", "Total cost over the horizon against monthly queries");
pub(super) const LINES: [RGBColor; 6] = [
    RGBColor(76, 114, 176),
    RGBColor(221, 132, 82),
    RGBColor(85, 168, 104),
    RGBColor(196, 78, 82),
    RGBColor(129, 114, 179),
    RGBColor(147, 120, 96),
];

const SIZE: (u32, u32) = (760, 460);
pub(super) const FONT: &str = "sans-serif";
const BAR: RGBColor = RGBColor(76, 114, 176);
pub(super) const INK: RGBColor = RGBColor(40, 40, 40);

/// The charts this report has data for, as `(file name, title)`, in the order they are drawn.
pub fn chart_files(report: &ExperimentReport) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if !arm_accuracies(report).1.is_empty() {
        out.push(ACCURACY);
        out.push(COST);
    }
    if !curve(report).1.is_empty() {
        out.push(PARAPHRASES);
    }
    if report.decision.as_ref().is_some_and(|d| !d.arms.is_empty()) {
        out.push(DECISION);
    }
    if super::confusion::has_confusion(report) {
        out.push(super::confusion::CONFUSION);
    }
    if super::tuning::has_chart(report) {
        out.push(super::tuning::TUNING);
    }
    out
}

/// Every chart the report has data for (those of [`chart_files`]).
pub fn render_charts(report: &ExperimentReport) -> Result<Vec<Chart>, ChartError> {
    chart_files(report)
        .into_iter()
        .map(|(file_name, title)| {
            let svg = match file_name {
                "accuracy.svg" => accuracy_chart(report),
                "cost.svg" => cost_chart(report),
                "decision.svg" => decision_chart(report),
                "confusion.svg" => super::confusion::confusion_chart(report),
                "tuning.svg" => super::tuning::chart(report),
                _ => paraphrase_chart(report),
            }
            .map_err(|detail| ChartError { chart: file_name, detail })?;
            Ok(Chart { file_name, title, svg })
        })
        .collect()
}

/// The metric the charts plot: multiple choice (a classification's accuracy) when any arm has
/// it, then a house format's field exact match, else exact match.
fn metric_of(report: &ExperimentReport) -> (fn(&Scores) -> Option<Interval>, &'static str) {
    if report.task == crate::task::TaskKind::Classify {
        (|s| s.mc_accuracy, "accuracy (%)")
    } else if report.arms.iter().any(|a| a.overall.field_match.is_some()) {
        (|s| s.field_match, "field exact match (%)")
    } else if report.arms.iter().any(|a| a.overall.mc_accuracy.is_some()) {
        (|s| s.mc_accuracy, "multiple-choice accuracy (%)")
    } else {
        (|s| s.exact_match, "exact match (%)")
    }
}

fn arm_accuracies(report: &ExperimentReport) -> (&'static str, Vec<(&ArmResult, Interval)>) {
    let (metric, label) = metric_of(report);
    (label, report.arms.iter().filter_map(|a| Some((a, metric(&a.overall)?))).collect())
}

fn curve(report: &ExperimentReport) -> (&'static str, Vec<(f64, Interval)>) {
    let choice = report.paraphrase_curve.iter().any(|p| p.scores.mc_accuracy.is_some());
    let (metric, label): (fn(&Scores) -> Option<Interval>, _) = if choice {
        (|s| s.mc_accuracy, "multiple-choice accuracy (%)")
    } else {
        (|s| s.exact_match, "exact match (%)")
    };
    let mut points: Vec<(f64, Interval)> = report
        .paraphrase_curve
        .iter()
        .filter_map(|p| Some((p.paraphrases as f64, metric(&p.scores)?)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    (label, points)
}

fn pct(x: f64) -> f64 {
    x * 100.0
}

/// Draws into a string; plotters' errors become text.
/// The axes of a chart whose y axis is a percentage (0 to 100 in tens, whole numbers, described
/// by `y_desc`), in the charts' style: no light grid lines, 15 px labels.
fn percent_axes<'m, 'a, 'b, X: Ranged, DB: DrawingBackend>(
    mesh: &'m mut MeshStyle<'a, 'b, X, RangedCoordf64, DB>,
    y_desc: &str,
) -> &'m mut MeshStyle<'a, 'b, X, RangedCoordf64, DB> {
    mesh.y_labels(11)
        .y_label_formatter(&whole_number)
        .y_desc(y_desc)
        .light_line_style(TRANSPARENT)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 15))
}

fn whole_number(y: &f64) -> String {
    format!("{y:.0}")
}

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Vertical 95% interval bars with caps 10 px wide, at each point's `x` in chart coordinates.
/// Every chart's frame: `caption` on top, a 16-pixel margin (`right` on the right, where the
/// last label may need room) and label areas of `(x, y)` pixels.
fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    caption: &str,
    right: u32,
    (x, y): (u32, u32),
) -> ChartBuilder<'a, 'static, DB> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, (FONT, 20))
        .margin(16)
        .margin_right(right)
        .x_label_area_size(x)
        .y_label_area_size(y);
    builder
}

fn draw_whiskers<DB, X>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, RangedCoordf64>>,
    points: &[(X::ValueType, Interval)],
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: Ranged,
    X::ValueType: Clone + 'static,
{
    let style = INK.stroke_width(2);
    chart
        .draw_series(
            points.iter().map(|(x, iv)| {
                PathElement::new(vec![(x.clone(), pct(iv.lo)), (x.clone(), pct(iv.hi))], style)
            }),
        )
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(points.iter().flat_map(|(x, iv)| {
            [iv.lo, iv.hi].map(|y| {
                EmptyElement::at((x.clone(), pct(y))) + PathElement::new(vec![(-5, 0), (5, 0)], style)
            })
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn label_style(size: i32, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&INK).pos(Pos::new(h, v))
}

fn accuracy_chart(report: &ExperimentReport) -> Result<String, String> {
    let (y_desc, data) = arm_accuracies(report);
    let n = data.len();
    let names: Vec<String> = data.iter().map(|(a, _)| a.id.clone()).collect();
    svg(|root| {
        let mut chart = frame(root, ACCURACY.1, 16, (40, 60))
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..105f64)
            .map_err(|e| e.to_string())?;
        let x_label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                names[i as usize].clone()
            } else {
                String::new()
            }
        };
        percent_axes(
            chart.configure_mesh().disable_x_mesh().x_labels(n + 2).x_label_formatter(&x_label),
            y_desc,
        )
        .draw()
        .map_err(|e| e.to_string())?;
        chart
            .draw_series(data.iter().enumerate().map(|(i, (_, iv))| {
                let x = i as f64;
                Rectangle::new([(x - 0.3, 0.0), (x + 0.3, pct(iv.mean))], BAR.mix(0.75).filled())
            }))
            .map_err(|e| e.to_string())?;
        let bars: Vec<(f64, Interval)> =
            data.iter().enumerate().map(|(i, (_, iv))| (i as f64, *iv)).collect();
        draw_whiskers(&mut chart, &bars)?;
        // The value above each interval, at the precision the report uses.
        chart
            .draw_series(data.iter().enumerate().map(|(i, (_, iv))| {
                let text = format!(
                    "{}%",
                    super::format::percent_number(iv.mean, super::format::decimals(iv.lo, iv.hi))
                );
                EmptyElement::at((i as f64, pct(iv.hi)))
                    + Text::new(text, (0, -6), label_style(14, HPos::Center, VPos::Bottom))
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn paraphrase_chart(report: &ExperimentReport) -> Result<String, String> {
    let (y_desc, data) = curve(report);
    let (first, last) = (data[0].0, data[data.len() - 1].0);
    let pad = ((last - first) * 0.05).max(0.5);
    svg(|root| {
        let mut chart = frame(root, PARAPHRASES.1, 16, (48, 60))
            .build_cartesian_2d((first - pad)..(last + pad), 0f64..105f64)
            .map_err(|e| e.to_string())?;
        percent_axes(
            chart
                .configure_mesh()
                // Few enough ticks that they fall on whole numbers of paraphrases.
                .x_labels(((last - first) as usize + 2).min(12))
                .x_label_formatter(&|x| {
                    if (x - x.round()).abs() < 1e-6 { format!("{x:.0}") } else { String::new() }
                })
                .x_desc("extra paraphrases per document"),
            y_desc,
        )
        .draw()
        .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(data.iter().map(|(x, iv)| (*x, pct(iv.mean))), BAR.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        draw_whiskers(&mut chart, &data)?;
        chart
            .draw_series(data.iter().map(|(x, iv)| Circle::new((*x, pct(iv.mean)), 4, BAR.filled())))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A log axis over the finite positive `values`, widened to whole decades (at least one), so
/// that it always has labelled ticks; `empty` when there are none.
fn whole_decades(values: impl Iterator<Item = f64>, empty: (f64, f64)) -> (f64, f64) {
    let positive: Vec<f64> = values.filter(|v| v.is_finite() && *v > 0.0).collect();
    match (positive.iter().copied().reduce(f64::min), positive.iter().copied().reduce(f64::max)) {
        (Some(lo), Some(hi)) => {
            let first = 10f64.powf(lo.log10().floor());
            (first, 10f64.powf(hi.log10().ceil()).max(first * 10.0))
        }
        _ => empty,
    }
}

fn cost_chart(report: &ExperimentReport) -> Result<String, String> {
    let (y_desc, data) = arm_accuracies(report);
    // Whole decades, so the log axis always has labelled ticks. Arms without set-up (the base
    // model, 0 s) are drawn left of the first decade, where no tick could mislabel them, and
    // say so in their label.
    let (first_decade, hi) = whole_decades(data.iter().map(|(a, _)| a.cost.setup_seconds), (1.0, 10.0));
    let (lo, no_setup_x) = (first_decade / 4.0, first_decade / 2.2);
    let points: Vec<(f64, Interval, String)> = data
        .iter()
        .map(|(a, iv)| {
            let s = a.cost.setup_seconds;
            if s.is_finite() && s > 0.0 {
                (s, *iv, a.id.clone())
            } else {
                (no_setup_x, *iv, format!("{} (no set-up)", a.id))
            }
        })
        .collect();
    svg(|root| {
        let mut chart = frame(root, COST.1, 40, (48, 60))
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..105f64)
            .map_err(|e| e.to_string())?;
        percent_axes(
            chart
                .configure_mesh()
                .x_label_formatter(&|x| decade_label(*x))
                .x_desc("set-up time (seconds, log scale)"),
            y_desc,
        )
        .draw()
        .map_err(|e| e.to_string())?;
        let bars: Vec<(f64, Interval)> = points.iter().map(|(x, iv, _)| (*x, *iv)).collect();
        draw_whiskers(&mut chart, &bars)?;
        chart
            .draw_series(points.iter().map(|(x, iv, name)| {
                EmptyElement::at((*x, pct(iv.mean)))
                    + Circle::new((0, 0), 5, BAR.filled())
                    + Text::new(name.clone(), (9, -4), label_style(14, HPos::Left, VPos::Bottom))
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Total cost over the horizon (log y) against monthly queries (log x), one line per arm, the
/// break-even volume and the decision's own volume marked.
fn decision_chart(report: &ExperimentReport) -> Result<String, String> {
    let Some(d) = &report.decision else { return Err("no decision".into()) };
    let i = &d.inputs;
    let be = d.break_even.as_ref().and_then(|b| b.queries_per_month);
    let far = [i.queries_per_month, be.unwrap_or(0.0)].into_iter().fold(1e10f64, f64::max);
    let (x_lo, x_hi) = (1.0, 10f64.powf((far * 10.0).log10().ceil()));
    let total =
        |a: &crate::decision::ArmDecision, q: f64| a.total_at(q, i.updates_per_month, i.horizon_months);
    const SAMPLES: usize = 80;
    let xs: Vec<f64> = (0..=SAMPLES).map(|k| x_lo * (x_hi / x_lo).powf(k as f64 / SAMPLES as f64)).collect();
    let (y_lo, y_hi) =
        whole_decades(d.arms.iter().flat_map(|a| [total(a, x_lo), total(a, x_hi)]), (0.01, 1.0));
    let clamp = |y: f64| if y.is_finite() { y.clamp(y_lo, y_hi) } else { y_hi };
    svg(|root| {
        let mut chart = frame(root, DECISION.1, 70, (48, 80))
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| crate::decision::text::volume(*x))
            .y_label_formatter(&|y| crate::decision::text::money(*y))
            .x_desc("queries per month (log scale)")
            .y_desc(format!(
                "total cost over {} (log scale)",
                crate::decision::text::months(i.horizon_months)
            ))
            .light_line_style(TRANSPARENT)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, a) in d.arms.iter().enumerate() {
            let color = LINES[k % LINES.len()];
            let width = if d.recommendation.as_deref() == Some(a.arm.as_str()) { 4 } else { 2 };
            chart
                .draw_series(LineSeries::new(
                    xs.iter().map(|&x| (x, clamp(total(a, x)))),
                    color.stroke_width(width),
                ))
                .map_err(|e| e.to_string())?;
        }
        // Each arm's name at the right end of its line, nudged apart where lines end close
        // together (15 px between labels at least).
        let mut ends: Vec<(usize, i32)> = d
            .arms
            .iter()
            .enumerate()
            .map(|(k, a)| (k, chart.backend_coord(&(x_hi, clamp(total(a, x_hi)))).1))
            .collect();
        ends.sort_by_key(|&(k, y)| (y, k));
        let mut placed: Vec<(usize, i32)> = Vec::with_capacity(ends.len());
        for &(k, y) in &ends {
            let y = placed.last().map_or(y, |&(_, prev)| y.max(prev + 15));
            placed.push((k, y));
        }
        for (k, y) in placed {
            let (a, color) = (&d.arms[k], LINES[k % LINES.len()]);
            let dy = y - ends.iter().find(|e| e.0 == k).map_or(y, |e| e.1);
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((x_hi, clamp(total(a, x_hi))))
                        + Text::new(
                            a.arm.clone(),
                            (6, dy),
                            label_style(14, HPos::Left, VPos::Center).color(&color),
                        ),
                ))
                .map_err(|e| e.to_string())?;
        }
        let marker = |x: f64, label: String, color: RGBColor, dy: i32| {
            let line = PathElement::new(vec![(x, y_lo), (x, y_hi)], color.mix(0.8).stroke_width(1));
            let text = EmptyElement::at((x, y_hi))
                + Text::new(label, (4, dy), label_style(13, HPos::Left, VPos::Top));
            (line, text)
        };
        if (x_lo..=x_hi).contains(&i.queries_per_month) && i.queries_per_month > 0.0 {
            let (line, text) = marker(
                i.queries_per_month,
                format!("your volume: {}", crate::decision::text::volume(i.queries_per_month)),
                RGBColor(150, 150, 150),
                4,
            );
            chart.draw_series(std::iter::once(line)).map_err(|e| e.to_string())?;
            chart.draw_series(std::iter::once(text)).map_err(|e| e.to_string())?;
        }
        if let (Some(q), Some(b)) = (be, &d.break_even)
            && (x_lo..=x_hi).contains(&q)
        {
            let (line, text) =
                marker(q, format!("break-even: {}", crate::decision::text::volume(q)), INK, 22);
            chart.draw_series(std::iter::once(line)).map_err(|e| e.to_string())?;
            chart.draw_series(std::iter::once(text)).map_err(|e| e.to_string())?;
            if let Some(a) = d.arms.iter().find(|a| a.arm == b.retrieval_arm) {
                chart
                    .draw_series(std::iter::once(Circle::new((q, clamp(total(a, q))), 6, INK.filled())))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}

/// `0.1`, `1`, `10`, `1000`: a decade without trailing zeros.
fn decade_label(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::{Cost, ParaphrasePoint};

    fn iv(mean: f64) -> Interval {
        Interval { mean, lo: mean - 0.06, hi: mean + 0.05, n: 120 }
    }

    fn arm(id: &str, acc: f64, setup: f64) -> ArmResult {
        ArmResult {
            id: id.into(),
            overall: Scores { mc_accuracy: Some(iv(acc)), ..Scores::default() },
            cost: Cost { setup_seconds: setup, ..Cost::default() },
            ..ArmResult::default()
        }
    }

    pub(crate) fn report() -> ExperimentReport {
        ExperimentReport {
            arms: vec![
                arm("base", 0.25, 0.0),
                arm("rag", 0.91, 1.4),
                arm("ft", 0.31, 95.0),
                arm("ft-par", 0.47, 410.0),
                arm("ft+rag", 0.86, 95.0),
                arm("raft", 0.93, 230.0),
            ],
            paraphrase_curve: [(0, 0.31), (2, 0.40), (4, 0.47)]
                .iter()
                .map(|&(k, m)| ParaphrasePoint {
                    paraphrases: k,
                    scores: Scores { mc_accuracy: Some(iv(m)), ..Scores::default() },
                })
                .collect(),
            ..ExperimentReport::default()
        }
    }

    #[test]
    fn every_chart_is_standalone_svg_with_its_labels() {
        let report = report();
        let charts = render_charts(&report).unwrap();
        let names: Vec<&str> = charts.iter().map(|c| c.file_name).collect();
        assert_eq!(names, ["accuracy.svg", "cost.svg", "paraphrases.svg"]);
        for c in &charts {
            assert!(c.svg.starts_with("<svg"), "{}", &c.svg[..80]);
            assert!(c.svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
            assert!(c.svg.trim_end().ends_with("</svg>"));
            assert!(c.svg.contains(c.title), "{} lacks its title", c.file_name);
            // Every opened element is closed: as many openings as closings or self-closings.
            let opens = c.svg.matches('<').count() - c.svg.matches("</").count();
            let closes = c.svg.matches("</").count() + c.svg.matches("/>").count();
            assert_eq!(opens, closes, "{} is not well nested", c.file_name);
        }
        for id in ["base", "rag", "ft", "ft-par", "ft+rag", "raft"] {
            let text = format!(">\n{id}\n</text>");
            assert!(
                charts[0].svg.contains(&text) || charts[0].svg.contains(&format!(">{id}<")),
                "accuracy.svg lacks {id}"
            );
            assert!(charts[1].svg.contains(id), "cost.svg lacks {id}");
        }
        assert!(charts[1].svg.contains("base (no set-up)"));
        assert!(charts[0].svg.contains("91%"), "value labels above the bars");
        assert!(charts[2].svg.contains("extra paraphrases per document"));
    }

    #[test]
    fn charts_are_deterministic_and_escape_labels() {
        let mut report = report();
        report.arms[0].id = "mine<&>".into();
        let a = render_charts(&report).unwrap();
        assert_eq!(a, render_charts(&report).unwrap());
        assert!(a[0].svg.contains("mine&lt;&amp;&gt;") && !a[0].svg.contains("mine<&>"));
    }

    #[test]
    fn charts_without_data_are_skipped() {
        let mut report = report();
        report.paraphrase_curve.clear();
        assert_eq!(chart_files(&report), [ACCURACY, COST]);
        for a in &mut report.arms {
            a.overall = Scores::default();
        }
        assert!(chart_files(&report).is_empty());
        assert!(render_charts(&report).unwrap().is_empty());
        // Exact match stands in when there is no multiple choice.
        report.arms[1].overall.exact_match = Some(iv(0.5));
        let charts = render_charts(&report).unwrap();
        assert_eq!(charts.len(), 2);
        assert!(charts[0].svg.contains("exact match (%)"));
        // One arm, one curve point: degenerate ranges still draw.
        report.paraphrase_curve =
            vec![ParaphrasePoint { paraphrases: 3, scores: report.arms[1].overall.clone() }];
        let charts = render_charts(&report).unwrap();
        assert_eq!(charts.len(), 3);
        assert!(charts[2].svg.contains(">\n3\n</text>"), "the single point's tick");
    }
}
