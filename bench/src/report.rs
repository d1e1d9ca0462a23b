//! The benchmark report: one [`Row`] per measured kernel and shape, the [`Ceilings`] measured in
//! the same run, and the two files `cargo xtask bench` writes (`report.md`, `report.json`).
//!
//! Every row is judged by PERFORMANCE.md's method: the FLOPs it must do over the compute ceiling
//! and the fewest bytes it must move over the bandwidth ceiling give two times; the larger is the
//! floor, and the row reports `floor / measured` as its fraction of the ceiling. A peer measured
//! in the same run is reported as a time ratio (`ragtune / peer`: below 1, ragtune is faster).
//!
//! report.json is the baseline format of `--baseline` (see [`crate::baseline`]); its `schema`
//! field changes when its meaning does, so an old file is refused with a clear error rather than
//! misread.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The `schema` of report.json.
pub const SCHEMA: &str = "ragtune-bench/1";

/// Rates measured first in the run, against which every row is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// What the compute ceiling is, e.g. "gemm crate SGEMM 2048³, 2 threads".
    pub compute_name: String,
    /// FLOP/s.
    pub compute_flops: f64,
    /// What the bandwidth ceiling is, e.g. "memcpy 256 MiB, 2 threads".
    pub bandwidth_name: String,
    /// Bytes/s, read + written.
    pub bandwidth_bytes: f64,
}

impl Ceilings {
    /// The higher of two measurements of each ceiling: a ceiling measured while the machine was
    /// busy understates the hardware, and every fraction against it overstates the rows.
    pub fn best(&self, other: &Ceilings) -> Ceilings {
        let (c, oc) = if other.compute_flops > self.compute_flops { (other, self) } else { (self, other) };
        let (b, ob) =
            if other.bandwidth_bytes > self.bandwidth_bytes { (other, self) } else { (self, other) };
        Ceilings {
            compute_name: format!(
                "{} (best of {:.1} and {:.1} GFLOP/s)",
                c.compute_name,
                c.compute_flops / 1e9,
                oc.compute_flops / 1e9
            ),
            compute_flops: c.compute_flops,
            bandwidth_name: format!(
                "{} (best of {:.2} and {:.2} GB/s)",
                b.bandwidth_name,
                b.bandwidth_bytes / 1e9,
                ob.bandwidth_bytes / 1e9
            ),
            bandwidth_bytes: b.bandwidth_bytes,
        }
    }
}

/// Which ceiling sets a row's floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Compute,
    Memory,
}

/// Another implementation of the same operation, timed in the same run on the same data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub name: String,
    pub median_s: f64,
    /// ragtune's median over the peer's: below 1, ragtune is faster.
    pub time_ratio: f64,
}

/// One measured operation at one shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `gemm`, `attention`, `topk`, `lora`, `train`, `generate`, or a GPU suite.
    pub suite: String,
    pub name: String,
    /// The shape in words, e.g. "m=n=k=1024 f32".
    pub shape: String,
    /// Median seconds of one call.
    pub median_s: f64,
    pub repeats: usize,
    /// FLOPs one call must do (PERFORMANCE.md's conventions).
    pub flops: f64,
    /// The fewest bytes one call must move: each input read once, each output written once.
    pub bytes: f64,
    pub bound: Bound,
    /// GFLOP/s when compute-bound, GB/s when memory-bound.
    pub throughput: f64,
    pub unit: String,
    /// The floor (from the ceilings) over the median: 1 is at the ceiling.
    pub ceiling_fraction: f64,
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// What was checked before timing, and how close it came.
    pub check: String,
    /// Anything else worth reading next to the row (tokens/s, QPS, recall).
    #[serde(default)]
    pub note: String,
}

impl Row {
    /// A row from its work and its median time, judged against `ceilings`. Errors (naming the
    /// row) when the time is not a positive finite number or the row does no work at all.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        suite: &str,
        name: &str,
        shape: &str,
        median_s: f64,
        repeats: usize,
        flops: f64,
        bytes: f64,
        ceilings: &Ceilings,
    ) -> Result<Row> {
        let what = format!("{suite}/{name} ({shape})");
        if !(median_s.is_finite() && median_s > 0.0) {
            bail!("{what}: median time {median_s} s is not a positive number");
        }
        if !(flops >= 0.0 && bytes >= 0.0 && flops + bytes > 0.0) {
            bail!("{what}: give the FLOPs or the bytes it must move (got {flops} FLOPs, {bytes} bytes)");
        }
        if !(ceilings.compute_flops > 0.0 && ceilings.bandwidth_bytes > 0.0) {
            bail!("{what}: the ceilings must be positive rates ({ceilings:?})");
        }
        let mut row = Row {
            suite: suite.into(),
            name: name.into(),
            shape: shape.into(),
            median_s,
            repeats,
            flops,
            bytes,
            bound: Bound::Compute,
            throughput: 0.0,
            unit: String::new(),
            ceiling_fraction: 0.0,
            peers: Vec::new(),
            check: String::new(),
            note: String::new(),
        };
        row.judge(ceilings);
        Ok(row)
    }

    /// Sets the bound, throughput and fraction of the ceiling from `ceilings` (positive rates),
    /// e.g. again once the ceilings have been re-measured at the end of a run.
    pub fn judge(&mut self, ceilings: &Ceilings) {
        let (flops, bytes, median_s) = (self.flops, self.bytes, self.median_s);
        let (t_compute, t_memory) = (flops / ceilings.compute_flops, bytes / ceilings.bandwidth_bytes);
        let (bound, floor, throughput, unit) = if t_compute >= t_memory {
            (Bound::Compute, t_compute, flops / median_s / 1e9, "GFLOP/s")
        } else {
            (Bound::Memory, t_memory, bytes / median_s / 1e9, "GB/s")
        };
        self.bound = bound;
        self.throughput = throughput;
        self.unit = unit.into();
        self.ceiling_fraction = floor / median_s;
    }

    /// Adds a peer timed at `median_s` seconds on the same data.
    pub fn with_peer(mut self, name: &str, median_s: f64) -> Row {
        self.peers.push(Peer { name: name.into(), median_s, time_ratio: self.median_s / median_s });
        self
    }

    pub fn with_check(mut self, check: impl Into<String>) -> Row {
        self.check = check.into();
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// The key a baseline matches rows by.
    pub fn id(&self) -> String {
        format!("{}/{} [{}]", self.suite, self.name, self.shape)
    }
}

/// Everything one `cargo xtask bench` run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    /// `2025-01-31T12:00:00Z`.
    pub started_utc: String,
    pub machine: String,
    pub threads: usize,
    pub quick: bool,
    pub suites: Vec<String>,
    pub wall_s: f64,
    pub ceilings: Ceilings,
    pub rows: Vec<Row>,
    /// What was skipped and why (a missing peer, no GPU).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Report {
    /// Reads a report.json, e.g. a `--baseline`; every error names the file and the fix.
    pub fn read(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the benchmark report {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!("{} is not JSON; pass a report.json written by `cargo xtask bench`", path.display())
        })?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => bail!(
                "{}: schema is {other:?}, this ragtune reads {SCHEMA:?}; re-run the baseline with this version",
                path.display()
            ),
            None => bail!(
                "{}: no \"schema\" field; pass a report.json written by `cargo xtask bench`",
                path.display()
            ),
        }
        serde_json::from_value(value).with_context(|| {
            format!("{}: not a ragtune benchmark report (a field is missing or mistyped)", path.display())
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain data")
    }

    /// The Markdown report; `comparison` is the `--baseline` section when there is one.
    pub fn to_markdown(&self, comparison: Option<&str>) -> String {
        let c = &self.ceilings;
        let mut s = String::new();
        let mode = if self.quick { "quick" } else { "full" };
        let _ = writeln!(s, "# ragtune benchmarks\n");
        let _ = writeln!(s, "- started: {} ({mode} sizes, {:.0} s wall)", self.started_utc, self.wall_s);
        let _ = writeln!(s, "- machine: {}, {} threads", self.machine, self.threads);
        let _ = writeln!(s, "- suites: {}", self.suites.join(", "));
        let _ = writeln!(s, "- compute ceiling: {:.1} GFLOP/s ({})", c.compute_flops / 1e9, c.compute_name);
        let _ =
            writeln!(s, "- bandwidth ceiling: {:.2} GB/s ({})\n", c.bandwidth_bytes / 1e9, c.bandwidth_name);
        let _ = writeln!(
            s,
            "\"of ceiling\" = max(FLOPs / compute ceiling, bytes / bandwidth ceiling) / median; a peer's \
             ratio is ragtune's time over the peer's (below 1: ragtune is faster).\n"
        );
        let _ =
            writeln!(s, "| suite | name | shape | median | throughput | of ceiling | peers | check | note |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let peers: Vec<String> = r
                .peers
                .iter()
                .map(|p| format!("{} {} ({:.2}×)", p.name, duration(p.median_s), p.time_ratio))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2} {} | {:.0}% {} | {} | {} | {} |",
                r.suite,
                cell(&r.name),
                cell(&r.shape),
                duration(r.median_s),
                r.throughput,
                r.unit,
                100.0 * r.ceiling_fraction,
                if r.bound == Bound::Compute { "compute" } else { "memory" },
                cell(&peers.join("; ")),
                cell(&r.check),
                cell(&r.note)
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        if let Some(cmp) = comparison {
            let _ = write!(s, "\n{cmp}");
        }
        s
    }

    /// Writes `dir/report.json` and `dir/report.md`, each through a temporary file and a rename,
    /// so a reader never sees half a report.
    pub fn write(&self, dir: &Path, comparison: Option<&str>) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(&dir.join("report.json"), &self.to_json())?;
        write_atomic(&dir.join("report.md"), &self.to_markdown(comparison))
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    ragtune_compute::atomic_file::write(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `1.23 ms`, `45.6 µs`, `2.31 s`.
pub fn duration(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// A table cell: pipes escaped so they do not split the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ceilings() -> Ceilings {
        Ceilings {
            compute_name: "test sgemm".into(),
            compute_flops: 100e9,
            bandwidth_name: "test copy".into(),
            bandwidth_bytes: 10e9,
        }
    }

    #[test]
    fn a_compute_bound_row_is_judged_by_the_compute_ceiling() {
        // 2 GFLOP and 0.1 GB: 20 ms of compute vs 10 ms of memory -> compute floor 20 ms.
        let r = Row::new("gemm", "sgemm", "1000³", 0.04, 5, 2e9, 0.1e9, &ceilings()).unwrap();
        assert_eq!(r.bound, Bound::Compute);
        assert!((r.throughput - 50.0).abs() < 1e-9, "{}", r.throughput);
        assert_eq!(r.unit, "GFLOP/s");
        assert!((r.ceiling_fraction - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_memory_bound_row_is_judged_by_the_bandwidth_ceiling() {
        // 1 MFLOP and 1 GB: 10 µs of compute vs 100 ms of memory.
        let r = Row::new("generate", "decode", "b1", 0.125, 3, 1e6, 1e9, &ceilings()).unwrap();
        assert_eq!(r.bound, Bound::Memory);
        assert!((r.throughput - 8.0).abs() < 1e-9);
        assert_eq!(r.unit, "GB/s");
        assert!((r.ceiling_fraction - 0.8).abs() < 1e-12);
    }

    #[test]
    fn peers_are_time_ratios_ours_over_theirs() {
        let r = Row::new("topk", "flat", "s", 0.02, 5, 1e9, 0.0, &ceilings())
            .unwrap()
            .with_peer("FAISS", 0.04)
            .with_peer("slow", 0.01);
        assert!((r.peers[0].time_ratio - 0.5).abs() < 1e-12);
        assert!((r.peers[1].time_ratio - 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_second_ceiling_measurement_keeps_the_best_and_rejudges_rows() {
        let low = ceilings();
        let mut high = ceilings();
        high.compute_flops = 200e9;
        high.bandwidth_bytes = 5e9;
        let best = low.best(&high);
        assert_eq!((best.compute_flops, best.bandwidth_bytes), (200e9, 10e9));
        assert!(best.compute_name.contains("best of 200.0 and 100.0"), "{}", best.compute_name);
        let mut r = Row::new("gemm", "sgemm", "1000³", 0.04, 5, 2e9, 0.1e9, &low).unwrap();
        r.judge(&best);
        // Floor 10 ms against 200 GFLOP/s, measured 40 ms.
        assert!((r.ceiling_fraction - 0.25).abs() < 1e-12 && r.bound == Bound::Compute);
    }

    #[test]
    fn bad_rows_are_errors_that_name_the_row() {
        let c = ceilings();
        for (t, f, b) in [(0.0, 1.0, 1.0), (f64::NAN, 1.0, 1.0), (1.0, 0.0, 0.0), (1.0, -1.0, 5.0)] {
            let e = Row::new("gemm", "sgemm", "n=8", t, 1, f, b, &c).unwrap_err().to_string();
            assert!(e.contains("gemm/sgemm (n=8)"), "{e}");
        }
    }

    fn report() -> Report {
        let c = ceilings();
        Report {
            schema: SCHEMA.into(),
            started_utc: "2025-01-02T03:04:05Z".into(),
            machine: "test cpu".into(),
            threads: 2,
            quick: true,
            suites: vec!["gemm".into(), "topk".into()],
            wall_s: 12.0,
            rows: vec![
                Row::new("gemm", "sgemm", "m=n=k=512 f32", 0.004, 10, 2.0 * 512f64.powi(3), 0.0, &c)
                    .unwrap()
                    .with_peer("gemm crate", 0.005)
                    .with_check("rel err 1.0e-7 vs f64"),
                Row::new("topk", "flat dot", "n=1000 | d=8", 0.001, 10, 1e6, 1e6, &c)
                    .unwrap()
                    .with_note("QPS 5"),
            ],
            ceilings: c,
            notes: vec!["FAISS skipped: python3 not found".into()],
        }
    }

    #[test]
    fn report_writes_markdown_and_json_that_reads_back() {
        let dir = std::env::temp_dir().join(format!("ragtune-bench-report-{}", std::process::id()));
        let r = report();
        r.write(&dir, Some("## Against the baseline\n\nnothing\n")).unwrap();
        assert_eq!(Report::read(&dir.join("report.json")).unwrap(), r);
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(
            md.contains("| gemm | sgemm | m=n=k=512 f32 | 4.00 ms | 67.11 GFLOP/s | 67% compute |"),
            "{md}"
        );
        assert!(md.contains("gemm crate 5.00 ms (0.80×)"), "{md}");
        // A pipe inside a cell is escaped, so the table keeps its columns.
        assert!(md.contains("n=1000 \\| d=8"), "{md}");
        assert!(md.contains("- FAISS skipped: python3 not found") && md.contains("## Against the baseline"));
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reading_a_bad_report_names_the_file_and_the_problem() {
        let dir = std::env::temp_dir().join(format!("ragtune-bench-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("base.json");
        let err = |text: &str| {
            std::fs::write(&path, text).unwrap();
            format!("{:#}", Report::read(&path).unwrap_err())
        };
        assert!(err("{not json").contains("is not JSON"));
        assert!(err("{}").contains("no \"schema\" field"));
        assert!(err(r#"{"schema": "ragtune-bench/0"}"#).contains("re-run the baseline"));
        let e = err(r#"{"schema": "ragtune-bench/1", "rows": []}"#);
        assert!(e.contains("base.json") && e.contains("missing"), "{e}");
        let e = format!("{:#}", Report::read(&dir.join("absent.json")).unwrap_err());
        assert!(e.contains("absent.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
