//! A report from the GPU bundle's rows: the GPU benchmarks (tests/tests/gpu_*bench*.rs) run on
//! machines without Rust and append to `REPORT_DIR/bench-rows.jsonl` one JSON line per row, in
//! [`Row`]'s format, plus one `{"ceilings": {..}, "device": ".."}` line per benchmark binary with
//! the ceilings it measured first. `cargo xtask bench gpu-rows FILE` turns that file into the same
//! `report.{md,json}` as a CPU run — so `--baseline` flags GPU regressions the same way.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::report::{Ceilings, Report, Row, SCHEMA};

#[derive(Deserialize)]
struct CeilingsLine {
    ceilings: Ceilings,
    #[serde(default)]
    device: String,
}

/// The report of the rows in `path` (rows in file order; the ceilings are the best of the
/// ceilings lines, since each benchmark binary measured its own). Every error names the file and
/// line.
pub fn report_from_rows(path: &Path, started_utc: &str) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (the GPU bundle's bench-rows.jsonl)", path.display()))?;
    let mut rows = Vec::new();
    let mut ceilings: Option<Ceilings> = None;
    let mut devices = BTreeSet::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{} line {}", path.display(), i + 1);
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        if value.get("ceilings").is_some() {
            let c: CeilingsLine = serde_json::from_value(value).with_context(|| {
                format!("{}: a ceilings line needs compute/bandwidth names and rates", at())
            })?;
            if !(c.ceilings.compute_flops > 0.0 && c.ceilings.bandwidth_bytes > 0.0) {
                bail!("{}: the ceilings must be positive rates ({:?})", at(), c.ceilings);
            }
            if !c.device.is_empty() {
                devices.insert(c.device);
            }
            // The best compute and the best bandwidth, each from whichever line measured it.
            ceilings = Some(match ceilings {
                None => c.ceilings,
                Some(old) => {
                    let bw = old.bandwidth_bytes.max(c.ceilings.bandwidth_bytes);
                    let best = if c.ceilings.compute_flops > old.compute_flops { c.ceilings } else { old };
                    Ceilings { bandwidth_bytes: bw, ..best }
                }
            });
        } else {
            let row: Row = serde_json::from_value(value)
                .with_context(|| format!("{}: not a benchmark row (a field is missing or mistyped)", at()))?;
            if !(row.median_s.is_finite() && row.median_s > 0.0) {
                bail!("{}: {} has median {} s", at(), row.id(), row.median_s);
            }
            rows.push(row);
        }
    }
    if rows.is_empty() {
        bail!(
            "{}: no benchmark rows (did the GPU benchmarks run? see the bundle's report.md)",
            path.display()
        );
    }
    let Some(ceilings) = ceilings else {
        bail!(
            "{}: no ceilings line; rows are judged against the ceilings measured in the same run \
             (bundles from before the ceilings lines cannot be reported this way)",
            path.display()
        );
    };
    let suites: BTreeSet<String> = rows.iter().map(|r| r.suite.clone()).collect();
    Ok(Report {
        schema: SCHEMA.into(),
        started_utc: started_utc.into(),
        machine: if devices.is_empty() {
            "GPU (device not recorded)".into()
        } else {
            devices.into_iter().collect::<Vec<_>>().join("; ")
        },
        threads: 0,
        quick: false,
        suites: suites.into_iter().collect(),
        wall_s: 0.0,
        ceilings,
        rows,
        notes: vec![format!("rows read from {} (measured by the GPU bundle)", path.display())],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"{"suite": "attention", "name": "fused causal forward", "shape": "b·h=32 s=1024 d=128 bf16", "median_s": 2e-4, "repeats": 20, "flops": 1.37e11, "bytes": 3.3e7, "bound": "compute", "throughput": 6.8e2, "unit": "TFLOP/s", "ceiling_fraction": 9e-1, "peers": [{"name": "naive unfused", "median_s": 8e-4, "time_ratio": 2.5e-1}], "check": "vs naive: rel err 1e-3", "note": "GPU"}"#;

    fn ceilings_line(flops: f64, bw: f64) -> String {
        format!(
            r#"{{"ceilings": {{"compute_name": "cuBLAS bf16 8192³", "compute_flops": {flops:e}, "bandwidth_name": "copy 1 GiB", "bandwidth_bytes": {bw:e}}}, "device": "NVIDIA H100 (sm_90a, cuda:0)"}}"#
        )
    }

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("ragtune-gpu-rows-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn rows_and_the_best_ceilings_make_a_report() {
        let p = write(
            "ok",
            &format!("{}\n{ROW}\n\n{}\n{ROW}\n", ceilings_line(7e14, 2.9e12), ceilings_line(6e14, 3.1e12)),
        );
        let r = report_from_rows(&p, "2026-11-24T00:00:00Z").unwrap();
        assert_eq!(r.rows.len(), 2);
        assert_eq!((r.ceilings.compute_flops, r.ceilings.bandwidth_bytes), (7e14, 3.1e12));
        assert_eq!(r.machine, "NVIDIA H100 (sm_90a, cuda:0)");
        assert_eq!(r.suites, ["attention"]);
        assert!(r.to_markdown(None).contains("naive unfused"));
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn ceilings_read_back_bit_for_bit() {
        // A measured ceiling that serde_json's default float parser read one ulp high (CI saw
        // ...984 for ...983); the float_roundtrip parser must give it back exactly.
        let flops = 131296780.08750983f64;
        let p = write("exact", &format!("{}\n{ROW}\n", ceilings_line(flops, 2.9e12)));
        let r = report_from_rows(&p, "2026-11-24T00:00:00Z").unwrap();
        assert_eq!(r.ceilings.compute_flops.to_bits(), flops.to_bits());
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn bad_files_name_the_line() {
        let cases = [
            ("nojson", format!("{}\n{{oops\n", ceilings_line(1e14, 1e12)), "line 2: not JSON"),
            (
                "norow",
                format!("{}\n{{\"suite\": \"x\"}}\n", ceilings_line(1e14, 1e12)),
                "line 2: not a benchmark row",
            ),
            ("noceil", format!("{ROW}\n"), "no ceilings line"),
            ("empty", ceilings_line(1e14, 1e12), "no benchmark rows"),
            (
                "zero",
                format!("{}\n{ROW}\n", ceilings_line(0.0, 1e12)),
                "line 1: the ceilings must be positive",
            ),
        ];
        for (name, text, want) in cases {
            let p = write(name, &text);
            let e = format!("{:#}", report_from_rows(&p, "t").unwrap_err());
            assert!(e.contains(want), "{name}: {e}");
            let _ = std::fs::remove_file(p);
        }
    }
}
