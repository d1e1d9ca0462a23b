//! Results of a run as data ([`results`]), and what is rendered from them.

pub mod charts;
pub mod confusion;
pub mod findings;
pub mod format;
pub mod labelled;
pub mod markdown;
pub mod results;
#[cfg(test)]
mod sample;
pub mod tuning;
pub mod write;

pub use charts::{Chart, ChartError, chart_files, render_charts};
pub use findings::findings;
pub use markdown::render_markdown;
pub use results::*;
pub use write::{ReportError, write_report};
