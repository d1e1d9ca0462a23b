//! `confusion.svg`: one confusion matrix per arm of a classification run, side by side. Rows are
//! the gold labels, columns the predicted ones; each cell shows its count, shaded by its share of
//! the row (so a perfect classifier is a dark diagonal whatever the label frequencies).
//!
//! Drawn in pixel coordinates on plotters' SVG backend (cells are rectangles, counts and labels
//! `<text>` elements), so the file is a function of the report alone.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::{FONT, INK};
use super::results::ExperimentReport;

pub const CONFUSION: (&str, &str) =
    ("confusion.svg", "Confusion matrices: gold label (rows) against predicted");

const CELL_MAX: i32 = 64;

/// Whether the report has a confusion matrix to draw.
pub fn has_confusion(report: &ExperimentReport) -> bool {
    report.arms.iter().any(|a| a.classes.as_ref().is_some_and(|c| !c.labels.is_empty()))
}

fn text(size: i32, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&INK).pos(Pos::new(h, v))
}

/// Labels are cut to 12 characters so that a long one cannot push the grid off the panel.
fn short(label: &str) -> String {
    let mut s: String = label.chars().take(12).collect();
    if label.chars().count() > 12 {
        s.push('…');
    }
    s
}

pub fn confusion_chart(report: &ExperimentReport) -> Result<String, String> {
    let panels: Vec<_> =
        report.arms.iter().filter_map(|a| Some((a.id.as_str(), a.classes.as_ref()?))).collect();
    let labels = panels.first().map_or(0, |(_, c)| c.labels.len()).max(1) as i32;
    let cell = (360 / labels).clamp(14, CELL_MAX);
    let (left, top) = (110, 70);
    let panel_w = left + cell * labels + 30;
    let width = (panel_w * panels.len() as i32).max(320) as u32;
    let height = (top + cell * labels + 40) as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.draw(&Text::new(CONFUSION.1, (10, 8), text(16, HPos::Left, VPos::Top))).map_err(e)?;
        for (p, (arm, classes)) in panels.iter().enumerate() {
            let x0 = p as i32 * panel_w + left;
            root.draw(&Text::new(arm.to_string(), (x0, 34), text(15, HPos::Left, VPos::Top))).map_err(e)?;
            let n = classes.labels.len() as i32;
            for (g, row) in classes.confusion.iter().enumerate() {
                let total: usize = row.iter().sum();
                let y = top + g as i32 * cell;
                root.draw(&Text::new(
                    short(&classes.labels[g]),
                    (x0 - 6, y + cell / 2),
                    text(12, HPos::Right, VPos::Center),
                ))
                .map_err(e)?;
                for (c, &count) in row.iter().enumerate() {
                    let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
                    let x = x0 + c as i32 * cell;
                    let shade = (245.0 - 180.0 * share) as u8;
                    let fill = RGBColor(shade, shade, shade.saturating_add(40));
                    root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], fill.filled())).map_err(e)?;
                    root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], WHITE.stroke_width(1)))
                        .map_err(e)?;
                    let color = if share > 0.6 { WHITE } else { INK };
                    let style = TextStyle::from((FONT, 12).into_font())
                        .color(&color)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    root.draw(&Text::new(count.to_string(), (x + cell / 2, y + cell / 2), style))
                        .map_err(e)?;
                }
            }
            for c in 0..n {
                let x = x0 + c * cell + cell / 2;
                let y = top + n * cell + 4;
                root.draw(&Text::new(
                    short(&classes.labels[c as usize]),
                    (x, y),
                    text(11, HPos::Center, VPos::Top),
                ))
                .map_err(e)?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}
