//! `ragtune decide` through the built binary, on a hand-written report.json (two arms, no
//! stored decision, as an older run wrote them): the order of rag's and ft's total costs flips
//! between 10 and 10¹⁰ queries a month and so does the recommendation; bad input (a negative
//! price, a missing file, a file that is not a report) fails naming the flag or the file.

mod common;

use std::path::{Path, PathBuf};

use common::{fresh_dir, ragtune, stderr};
use serde_json::{Value, json};

/// An arm answering 18 of 20 questions right (the same ones in every arm).
fn arm(id: &str, latency_ms: f64, setup_seconds: f64, update_seconds: f64) -> Value {
    let outcomes: Vec<Value> =
        (0..20).map(|i| json!({ "id": format!("q{i}"), "mc_correct": i < 18 })).collect();
    json!({
        "id": id,
        "description": "",
        "overall": { "mc_accuracy": { "mean": 0.9, "lo": 0.75, "hi": 1.0, "n": 20 } },
        "by_phrasing": [],
        "by_popularity": [],
        "cost": {
            "setup_seconds": setup_seconds,
            "peak_host_bytes": 0,
            "artifact_bytes": 0,
            "latency_ms": latency_ms,
            "retrieval_ms": 0.0,
            "prefill_ms": latency_ms,
            "decode_ms": 0.0,
            "tokens_per_answer": 10.0,
            "train_tokens": 0,
            "update": { "seconds": update_seconds, "changed_passages": 2, "train_tokens": 0, "how": "by hand" }
        },
        "outcomes": outcomes
    })
}

fn write_report(d: &Path) -> PathBuf {
    let report = json!({
        "info": {
            "title": "hand-written", "date": "", "machine": "", "device": "", "model": "", "model_params": 0,
            "embedder": "", "seeds": [], "sizes": [], "wall_seconds": 0.0, "settings": null
        },
        // rag: cheap to set up and update, dearer per answer; ft: the other way round.
        "arms": [arm("rag", 20.0, 1.0, 0.5), arm("ft", 10.0, 100.0, 10.0)],
        "paraphrase_curve": [],
        "findings": []
    });
    let path = d.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    path
}

fn decide_json(report: &Path, queries: &str) -> Value {
    let o =
        ragtune(&["decide", "--report", report.to_str().unwrap(), "--queries-per-month", queries, "--json"]);
    assert!(o.status.success(), "decide failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("--json prints the decision")
}

fn total(d: &Value, arm: &str) -> f64 {
    d["arms"].as_array().unwrap().iter().find(|a| a["arm"] == arm).unwrap()["total_cost"].as_f64().unwrap()
}

#[test]
fn the_order_of_rag_and_ft_flips_with_the_volume() {
    let d = fresh_dir("decide-flip");
    let report = write_report(&d);
    let low = decide_json(&report, "10");
    let high = decide_json(&report, "1e10");
    assert!(total(&low, "rag") < total(&low, "ft"), "{low}");
    assert!(total(&high, "ft") < total(&high, "rag"), "{high}");
    assert_eq!(low["recommendation"], "rag");
    assert_eq!(high["recommendation"], "ft");
    assert_eq!(low["inputs"]["queries_per_month"], 10.0);
    // Defaults for what the flags leave out (the report has no stored decision).
    assert_eq!(low["inputs"]["price_per_hour"], 1.0);
    // Break-even: fixed (1 + 4·12·0.5) vs (100 + 4·12·10) seconds, slope 12·0.020 vs 12·0.010
    // seconds per monthly query: (580 − 25) / 0.12 = 4625 a month, at any price.
    let q = low["break_even"]["queries_per_month"].as_f64().unwrap();
    assert!((q - 4625.0).abs() < 1e-6, "{q}");

    let o = ragtune(&["decide", "--report", report.to_str().unwrap(), "--queries-per-month", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("## What to choose\n\n**Choose `rag`**"), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_input_names_the_flag_or_the_file() {
    let d = fresh_dir("decide-bad");
    let report = write_report(&d);
    let r = report.to_str().unwrap();
    let o = ragtune(&["decide", "--report", r, "--price-per-hour", "-1"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--price-per-hour") && e.contains("-1"), "{e}");
    let o = ragtune(&["decide", "--report", r, "--min-accuracy", "80"]);
    assert!(!o.status.success() && stderr(&o).contains("--min-accuracy"), "{}", stderr(&o));

    let missing = d.join("nope.json");
    let o = ragtune(&["decide", "--report", missing.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nope.json"), "{}", stderr(&o));

    let not_a_report = d.join("other.json");
    std::fs::write(&not_a_report, "{\"hello\": 1}").unwrap();
    let o = ragtune(&["decide", "--report", not_a_report.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("other.json") && e.contains("not a ragtune report.json"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
