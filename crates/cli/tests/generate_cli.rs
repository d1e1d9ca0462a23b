//! `ragtune compare` without `[data] qa`: the questions are generated from a folder of
//! Markdown, written to `OUT/generated/qa.jsonl` (each line with its source passage and split),
//! and the report is on the test split, its sizes saying the questions were generated.

mod common;

use common::{compare_json, fresh_dir, ragtune};

const README: &str = include_str!("../../eval/tests/fixtures/readmes/quillmark.md");

const NOTES: &str = include_str!("../../eval/tests/fixtures/notes/tessera.md");

#[test]
fn compare_without_qa_generates_the_questions_and_reports_on_test() {
    let d = fresh_dir("generate-ok");
    let export = d.join("export");
    let o = ragtune(&["demo", "--export", export.to_str().unwrap()]);
    assert!(o.status.success(), "demo --export failed: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir_all(d.join("docs/tessera")).unwrap();
    std::fs::write(d.join("docs/README.md"), README).unwrap();
    std::fs::write(d.join("docs/tessera/NOTES.md"), NOTES).unwrap();
    // The demo model's context is short: small passages keep RAG's prompts inside it.
    let config = format!(
        "[model]\npath = \"{}\"\ndevice = \"cpu\"\n\n[data]\ncorpus = \"docs\"\nmax_words = 40\n\n\
         [generate]\nseed = 1\n\n[arms]\nrun = [\"base\", \"rag\"]\n\n[rag]\nk = 1\n\n\
         [eval]\nmax_new_tokens = 4\nbootstrap = 50\n",
        export.join("base-model").display()
    );
    let (report, out) = compare_json(&d, &config);

    let text = std::fs::read_to_string(out.join("generated/qa.jsonl")).expect("generated/qa.jsonl");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 10, "{} questions", lines.len());
    for q in &lines {
        let source = q["source"].as_str().expect("every question has its source");
        assert!(source.starts_with("README.md#") || source.starts_with("tessera/NOTES.md#"), "{source}");
        assert_eq!(q["choices"].as_array().unwrap().len(), 4);
        assert!(q["split"] == "dev" || q["split"] == "test");
    }
    let test = lines.iter().filter(|q| q["split"] == "test").count();
    let sizes = report["info"]["sizes"].as_array().unwrap();
    let size = |name: &str| sizes.iter().find(|s| s[0] == name).map(|s| s[1].as_u64().unwrap());
    let generated = "questions generated from the corpus (generated/qa.jsonl; dev and test)";
    assert_eq!(size(generated), Some(lines.len() as u64));
    assert_eq!(size("questions"), Some(test as u64));
    let rag = report["arms"].as_array().unwrap().iter().find(|a| a["id"] == "rag").unwrap();
    assert_eq!(rag["outcomes"].as_array().unwrap().len(), test, "the report is on the test split");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("generated from the corpus"), "report.md says the questions were generated");
    let _ = std::fs::remove_dir_all(&d);
}
