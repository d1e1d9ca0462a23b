//! Issue 17: sizes in experiment.toml that would abort on allocation (`[embedder] dim`,
//! `[finetune] r`, `[eval] bootstrap`) are refused by name with their limit when the config is
//! read.

use ragtune_eval::config::ExperimentConfig;

#[test]
fn huge_sizes_are_refused_with_their_limit() {
    let dir = std::env::temp_dir().join(format!("ragtune-eval-limits-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("models/m")).unwrap();
    std::fs::create_dir_all(dir.join("data/corpus")).unwrap();
    std::fs::write(dir.join("data/corpus/a.md"), "Ada Brenn was born in Velmora.\n").unwrap();
    std::fs::write(
        dir.join("data/qa.jsonl"),
        "{\"question\": \"Where was Ada Brenn born?\", \"answer\": \"Velmora\"}\n",
    )
    .unwrap();
    let head = "[model]\npath = \"models/m\"\n\n[data]\ncorpus = \"data/corpus\"\nqa = \"data/qa.jsonl\"\n";
    for (tail, parts) in [
        ("\n[embedder]\ndim = 1000000000000\n", &["dim", "1000000000000", "1048576"][..]),
        ("\n[finetune]\nr = 100000000\n", &["r must be", "1024"][..]),
        ("\n[eval]\nbootstrap = 10000000000\n", &["bootstrap", "10000000000", "1000000"][..]),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, format!("{head}{tail}")).unwrap();
        let e = ExperimentConfig::from_file(&path).map(|_| ()).unwrap_err().to_string();
        for p in parts {
            assert!(e.contains(p) && e.contains("bad.toml"), "{tail}: {e:?} lacks {p:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
