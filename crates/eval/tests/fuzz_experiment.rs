//! Issue 17, item 7: mutation tests of the experiment.toml reader (`ExperimentConfig::from_file`)
//! on the documented example (`src/experiment.example.toml`, every section), in a folder holding
//! the files it names so the checks behind the paths are reached: values replaced by integer
//! edges, negative, NaN, infinite or wrongly typed ones, keys removed, lines duplicated (a
//! repeated key or table), numbers and strings damaged in the text. Each read gives a config or
//! an error: never a panic, an abort or more than 1 GiB.

use ragtune_eval::config::ExperimentConfig;
use ragtune_tests::fuzz::{CountingAlloc, Files, fuzz, mutate};
use rand::Rng;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const EXAMPLE: &str = include_str!("../src/experiment.example.toml");

/// The files and folders the example names, so a valid config reads as valid.
fn named_files() -> Files {
    let qa = br#"{"question": "Where was Ada Brenn born?", "answer": "Velmora", "source": "a.md"}"#.to_vec();
    let mut files: Files = vec![
        ("models/SmolLM2-135M/config.json".into(), b"{}".to_vec()),
        ("models/all-MiniLM-L6-v2/config.json".into(), b"{}".to_vec()),
        ("models/SmolLM2-135M-Instruct.gguf".into(), b"GGUF".to_vec()),
        ("data/corpus/a.md".into(), b"Ada Brenn was born in Velmora.\n".to_vec()),
    ];
    for name in ["qa", "old_qa", "raft_train", "paraphrases-1", "paraphrases-2"] {
        files.push((format!("data/{name}.jsonl"), qa.clone()));
    }
    files
}

#[test]
fn the_example_reads_as_valid() {
    let dir = std::env::temp_dir().join(format!("ragtune-fuzz-experiment-{}", std::process::id()));
    for (name, bytes) in named_files() {
        std::fs::create_dir_all(dir.join(&name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("experiment.toml"), EXAMPLE).unwrap();
    let read = ExperimentConfig::from_file(&dir.join("experiment.toml"));
    std::fs::remove_dir_all(&dir).unwrap();
    read.unwrap();
}

#[test]
fn fuzz_experiment_toml() {
    let table: toml::Table = toml::from_str(EXAMPLE).unwrap();
    fuzz(
        "experiment-toml",
        25,
        |rng| {
            let text = match rng.random_range(0..3) {
                0 => mutate::text(rng, EXAMPLE.as_bytes()),
                _ => toml::to_string(&mutate::toml_table(rng, &table)).unwrap_or_default().into_bytes(),
            };
            let mut files = named_files();
            files.push(("experiment.toml".into(), text));
            files
        },
        |dir| ExperimentConfig::from_file(&dir.join("experiment.toml")),
    );
}
