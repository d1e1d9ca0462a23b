//! The GPU benchmarks' rows file, written and read back in one place. The GPU benchmarks
//! (bench/tests/gpu_*bench*.rs) run on machines without Rust and append to
//! `REPORT_DIR/bench-rows.jsonl` (run.sh points `RAGTUNE_BENCH_ROWS` there) one JSON line per row,
//! in [`Row`]'s format, plus one `{"ceilings": {..}, "device": ".."}` line per benchmark binary
//! with the ceilings it measured first. `cargo xtask bench gpu-rows FILE` turns that file into
//! the same `report.{md,json}` as a CPU run — so `--baseline` flags GPU regressions the same way.
//! Numbers go out in Rust's shortest round-trip `e` form, which the reader's `float_roundtrip`
//! parser reads back exactly.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ragtune_compute::Device;
use serde::Deserialize;

use crate::report::{Ceilings, Report, Row, SCHEMA};

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out + "\""
}

/// A finite JSON number (NaN and infinities, which JSON lacks, become 0 and are caught by the
/// reader's checks).
fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v:e}") } else { "0".into() }
}

/// A Markdown table: `title`, a blank line, the `header` row (`| a | b |`), its separator, then
/// one line per row.
pub fn markdown_table(title: &str, header: &str, lines: impl IntoIterator<Item = String>) -> String {
    let columns = header.matches('|').count().saturating_sub(1);
    let mut s = format!("{title}\n\n{header}\n|{}\n", "---|".repeat(columns));
    for line in lines {
        s += &line;
        s.push('\n');
    }
    s
}

/// One row in [`Row`]'s format: floor = max(FLOPs / compute ceiling, bytes /
/// bandwidth ceiling); the row's (median seconds, repeats) and (FLOPs, bytes); `peers` as (name,
/// median seconds).
#[allow(clippy::too_many_arguments)]
pub fn json_row(
    suite: &str,
    name: &str,
    shape: &str,
    (median_s, repeats): (f64, usize),
    (flops, bytes): (f64, f64),
    c: &Ceilings,
    peers: &[(&str, f64)],
    check: &str,
) -> String {
    let (tc, tm) = (flops / c.compute_flops, bytes / c.bandwidth_bytes);
    let (bound, floor, throughput, unit) = if tc >= tm {
        ("compute", tc, flops / median_s / 1e12, "TFLOP/s")
    } else {
        ("memory", tm, bytes / median_s / 1e9, "GB/s")
    };
    let peers: Vec<String> = peers
        .iter()
        .map(|(n, t)| {
            format!(
                "{{\"name\": {}, \"median_s\": {}, \"time_ratio\": {}}}",
                json_str(n),
                json_num(*t),
                json_num(median_s / t)
            )
        })
        .collect();
    format!(
        "{{\"suite\": {}, \"name\": {}, \"shape\": {}, \"median_s\": {}, \"repeats\": {repeats}, \"flops\": {}, \
         \"bytes\": {}, \"bound\": \"{bound}\", \"throughput\": {}, \"unit\": \"{unit}\", \"ceiling_fraction\": {}, \
         \"peers\": [{}], \"check\": {}, \"note\": {}}}",
        json_str(suite),
        json_str(name),
        json_str(shape),
        json_num(median_s),
        json_num(flops),
        json_num(bytes),
        json_num(throughput),
        json_num(floor / median_s),
        peers.join(", "),
        json_str(check),
        json_str(&format!("GPU; ceilings: {}; {}", c.compute_name, c.bandwidth_name)),
    )
}

/// The ceilings line of the rows file: what `cargo xtask bench gpu-rows` judges the rows
/// against ([`report_from_rows`]), with the device that measured them.
pub fn ceilings_line(device: &Device, c: &Ceilings) -> String {
    format!(
        "{{\"ceilings\": {{\"compute_name\": {}, \"compute_flops\": {}, \"bandwidth_name\": {}, \"bandwidth_bytes\": {}}}, \"device\": {}}}",
        json_str(&c.compute_name),
        json_num(c.compute_flops),
        json_str(&c.bandwidth_name),
        json_num(c.bandwidth_bytes),
        json_str(&device.describe())
    )
}

/// Appends `lines` to the file named by `RAGTUNE_BENCH_ROWS`, when set (run.sh sets it).
pub fn append_rows(lines: &[String]) {
    let Ok(path) = std::env::var("RAGTUNE_BENCH_ROWS") else { return };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("RAGTUNE_BENCH_ROWS={path}: cannot open for appending: {e}"));
    for l in lines {
        writeln!(f, "{l}").unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
}

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
