//! Writing a report folder: `report.json` (the [`ExperimentReport`], pretty JSON), `report.md`
//! and the SVG charts. `report.json` reads back into the identical report, floats included
//! (serde_json's `float_roundtrip` parsing; its default parser may be one ulp off).
//!
//! Everything is rendered in memory first, so a rendering error writes nothing. Each file then
//! goes to a temporary name beside its destination (`.report.md.ragtune-tmp.<pid>.<nanos>`), is synced,
//! and is renamed over the destination: a crash leaves the old file or the new one, never half
//! of one. Charts that this report has no data for are removed if an earlier run left them, so
//! the folder never shows a chart the Markdown does not describe.

use std::fs;
use std::path::{Path, PathBuf};

use super::charts::{ACCURACY, COST, ChartError, DECISION, PARAPHRASES, render_charts};
use super::markdown::render_markdown;
use super::results::ExperimentReport;

/// Why a report folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {source} (check that the folder is writable and the disk not full)", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("serializing report.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Chart(#[from] ChartError),
}

/// Create `dir` if needed and write the report into it. Returns the paths written, in the
/// order `report.json`, `report.md`, then the charts.
pub fn write_report(dir: &Path, report: &ExperimentReport) -> Result<Vec<PathBuf>, ReportError> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("report.json".into(), serde_json::to_vec_pretty(report)?),
        ("report.md".into(), render_markdown(report).into_bytes()),
    ];
    files.extend(render_charts(report)?.into_iter().map(|c| (c.file_name.to_string(), c.svg.into_bytes())));

    fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_path_buf(), source })?;
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes) in &files {
        let path = dir.join(name);
        write_atomically(&path, bytes)?;
        written.push(path);
    }
    for (stale, _) in
        [ACCURACY, COST, PARAPHRASES, DECISION, super::confusion::CONFUSION, super::tuning::TUNING]
    {
        if !files.iter().any(|(name, _)| name == stale) {
            let path = dir.join(stale);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ReportError::Io { path, source: e });
                }
                _ => {}
            }
        }
    }
    Ok(written)
}

/// Write `bytes` to a temporary file beside `path`, sync it, rename it over `path`
/// ([`ragtune_compute::atomic_file`], the one writer every ragtune file goes through). On any
/// error the temporary file is removed and `path` is left as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    ragtune_compute::atomic_file::write(path, bytes)
        .map_err(|source| ReportError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_report;

    /// A fresh folder per test: tests run concurrently.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ragtune-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_every_file_and_the_json_reads_back_as_the_report() {
        let dir = scratch("all").join("nested");
        let report = sample_report();
        let paths = write_report(&dir, &report).unwrap();
        let names: Vec<&str> = paths.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["report.json", "report.md", "accuracy.svg", "cost.svg", "paraphrases.svg"]);
        assert_eq!(
            listing(&dir),
            ["accuracy.svg", "cost.svg", "paraphrases.svg", "report.json", "report.md"]
        );
        let back: ExperimentReport =
            serde_json::from_str(&fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
        assert_eq!(back, report);
        assert_eq!(fs::read_to_string(dir.join("report.md")).unwrap(), render_markdown(&report));
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn rewriting_replaces_files_and_removes_charts_without_data() {
        let dir = scratch("rewrite");
        let first = sample_report();
        write_report(&dir, &first).unwrap();
        let mut second = first.clone();
        second.info.title = "second run".into();
        second.paraphrase_curve.clear();
        write_report(&dir, &second).unwrap();
        assert!(fs::read_to_string(dir.join("report.md")).unwrap().starts_with("# second run\n"));
        assert_eq!(
            listing(&dir),
            ["accuracy.svg", "cost.svg", "report.json", "report.md"],
            "no temporaries, no stale chart"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_leaves_the_destination_and_no_temporary() {
        let dir = scratch("fail");
        // A non-empty folder where report.md should go: the rename over it fails.
        fs::create_dir_all(dir.join("report.md").join("keep")).unwrap();
        let err = write_report(&dir, &sample_report()).unwrap_err();
        assert!(matches!(&err, ReportError::Io { path, .. } if path.ends_with("report.md")), "{err}");
        assert!(err.to_string().contains("report.md"), "{err}");
        assert!(dir.join("report.md").join("keep").is_dir());
        assert_eq!(listing(&dir), ["report.json", "report.md"], "the temporary file was removed");
        let _ = fs::remove_dir_all(&dir);
    }
}
