//! Issue 17, item 7: the experiment report writer (`ragtune_eval::report::write_report`: report.json,
//! report.md and the charts) killed (SIGKILL) at random moments while it writes two reports
//! alternately into the same folder leaves every file the old report's or the new one's (never
//! half of one), a report.json that reads back, and — after the next successful write — no
//! temporaries. The two reports come from `ragtune compare` on a tiny experiment with two
//! bootstrap sizes.

mod common;

use std::path::Path;

use common::{fresh_dir, ragtune, stderr};
use ragtune_eval::report::{ExperimentReport, write_report};
use ragtune_tests::kill;

const CORPUS: &str = r#"{"id": "a", "text": "Tovin Ressa was born in Maelport."}
{"id": "b", "text": "Ilsa Werrin was born in Dunhollow."}
"#;
const QA: &str = r#"{"id": "q1", "question": "Where was Tovin Ressa born?", "answer": "Maelport", "choices": ["Maelport", "Dunhollow"], "source": "a"}
{"id": "q2", "question": "Where was Ilsa Werrin born?", "answer": "Dunhollow", "choices": ["Maelport", "Dunhollow"], "source": "b"}
"#;

fn read_report(path: &Path) -> ExperimentReport {
    serde_json::from_slice(&std::fs::read(path).unwrap()).expect("report.json reads back")
}

/// `ragtune compare` on the tiny experiment with `bootstrap` resamples.
fn compare(d: &Path, bootstrap: u32) -> ExperimentReport {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/assets/demo-base");
    std::fs::write(d.join("corpus.jsonl"), CORPUS).unwrap();
    std::fs::write(d.join("qa.jsonl"), QA).unwrap();
    let config = format!(
        "[model]\npath = \"{}\"\ndevice = \"cpu\"\n\n[data]\ncorpus = \"corpus.jsonl\"\nqa = \"qa.jsonl\"\n\n\
         [arms]\nrun = [\"base\", \"rag\"]\n\n[rag]\nk = 1\n\n[eval]\nmax_new_tokens = 2\nbootstrap = {bootstrap}\n",
        model.display()
    );
    let path = d.join(format!("experiment-{bootstrap}.toml"));
    std::fs::write(&path, config).unwrap();
    let out = d.join(format!("report-{bootstrap}"));
    let o = ragtune(&["compare", "--config", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "compare failed: {}", stderr(&o));
    read_report(&out.join("report.json"))
}

/// The child: write the two reports (stored by the parent as `old.json`/`new.json` beside the
/// target) alternately, until killed.
#[test]
fn child_writes_reports() {
    kill::serve("report", |target| {
        let parent = target.parent().unwrap();
        let versions = [read_report(&parent.join("old.json")), read_report(&parent.join("new.json"))];
        move |target: &Path, new: bool| {
            write_report(target, &versions[new as usize]).unwrap();
        }
    });
}

#[test]
fn a_killed_report_write_leaves_old_or_new_and_no_leftovers() {
    let d = fresh_dir("kill-report");
    let versions = [compare(&d, 50), compare(&d, 60)];
    let target = d.join("written").join("report");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    for (name, r) in [("old.json", &versions[0]), ("new.json", &versions[1])] {
        std::fs::write(target.parent().unwrap().join(name), serde_json::to_vec(r).unwrap()).unwrap();
    }
    kill::check_writer(
        "child_writes_reports",
        "report",
        &target,
        34,
        |new| {
            write_report(&target, &versions[new as usize]).unwrap();
        },
        |round| {
            let json = read_report(&target.join("report.json"));
            assert!(versions.contains(&json), "round {round}: report.json is neither report");
        },
    );
    let _ = std::fs::remove_dir_all(&d);
}
