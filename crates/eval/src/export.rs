//! A [`Task`] written out in `ragtune compare`'s input formats, with an `experiment.toml` that
//! runs it: `ragtune demo --export DIR` turns the built-in world into a worked example of
//! `compare` (and a template for a user's own data).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::error::{EvalError, Result};
use crate::run::RunSettings;
use crate::task::{Passage, QaItem, Task};

fn passages_jsonl(ps: &[Passage]) -> String {
    ps.iter().map(|p| json!({ "id": p.id, "text": p.text }).to_string() + "\n").collect()
}

fn qa_jsonl(qs: &[QaItem]) -> String {
    qs.iter()
        .map(|q| {
            let mut v = json!({ "id": q.id, "question": q.question, "answer": q.answer });
            let o = v.as_object_mut().expect("an object");
            if !q.choices.is_empty() {
                o.insert("choices".into(), json!(q.choices));
            }
            if !q.sources.is_empty() {
                o.insert("sources".into(), json!(q.sources));
            }
            if let Some(p) = &q.phrasing {
                o.insert("phrasing".into(), json!(p));
            }
            if let Some(p) = q.popularity {
                o.insert("popularity".into(), json!(p));
            }
            v.to_string() + "\n"
        })
        .collect()
}

fn toml_list<T: std::fmt::Display>(xs: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = xs.into_iter().map(|x| format!("\"{x}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// Write `task` into `dir` as JSONL files and an `experiment.toml` whose model is `model`
/// (a path written as given) and whose arms and hyper-parameters are `settings`.
pub fn export_task(task: &Task, settings: &RunSettings, model: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    let write = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        ragtune_compute::atomic_file::write(&path, text.as_bytes()).map_err(|e| EvalError::io(&path, e))
    };
    write("corpus.jsonl", passages_jsonl(&task.corpus))?;
    write("qa.jsonl", qa_jsonl(&task.questions))?;
    let mut data = String::from("corpus = \"corpus.jsonl\"\nqa = \"qa.jsonl\"\n");
    if !task.old_questions.is_empty() {
        write("old_qa.jsonl", qa_jsonl(&task.old_questions))?;
        data.push_str("old_qa = \"old_qa.jsonl\"\n");
    }
    if !task.raft_train.is_empty() {
        write("raft_train.jsonl", qa_jsonl(&task.raft_train))?;
        data.push_str("raft_train = \"raft_train.jsonl\"\n");
    }
    let mut rounds = Vec::new();
    for (i, round) in task.paraphrases.iter().enumerate() {
        let name = format!("paraphrases-{}.jsonl", i + 1);
        write(&name, passages_jsonl(round))?;
        rounds.push(name);
    }
    if !rounds.is_empty() {
        let _ = writeln!(data, "paraphrases = {}", toml_list(&rounds));
    }
    let f = &settings.lora;
    let mut toml = String::new();
    let _ = writeln!(toml, "# Written by `ragtune demo --export`: the demo's world as files; run it with");
    let _ = writeln!(toml, "#   ragtune compare --config {}", dir.join("experiment.toml").display());
    let _ = writeln!(toml, "\n[model]\npath = \"{}\"\ndtype = \"f32\"\ndevice = \"auto\"", model.display());
    let _ = writeln!(toml, "\n[embedder]\nkind = \"hashed\"");
    let _ = writeln!(toml, "\n[data]\n{data}");
    let _ = writeln!(toml, "[arms]\nrun = {}", toml_list(&settings.arms));
    let _ = writeln!(toml, "\n[rag]\nk = {}", settings.rag_k);
    let _ = writeln!(
        toml,
        "\n[finetune]\nr = {}\nalpha = {:?}\ntargets = {}\nepochs = {}\nraft_epochs = {}\nlr = {:e}\n\
         batch_size = {}\nmax_seq = {}\nseed = {}\nparaphrase_curve = [{}]",
        f.r,
        f.alpha,
        toml_list(&f.targets),
        f.epochs,
        f.raft_epochs,
        f.lr,
        f.batch_size,
        f.max_seq,
        f.seed,
        settings.paraphrase_curve.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        toml,
        "\n[raft]\ndistractors = {}\ngold_share = {}",
        settings.raft_distractors, settings.raft_gold_share
    );
    let _ = writeln!(
        toml,
        "\n[eval]\nmax_new_tokens = {}\nbootstrap = {}\nseed = {}",
        settings.max_new_tokens, settings.bootstrap, settings.seed
    );
    write("experiment.toml", toml)
}
