//! A [`Task`] written out in `ragtune compare`'s input formats, with an `experiment.toml` that
//! runs it: `ragtune demo --export DIR` turns the built-in world into a worked example of
//! `compare` (and a template for a user's own data). A classification or house-format task is
//! written as `train.jsonl` and `test.jsonl` with `task = "classify"` (or `"format"`).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::error::{EvalError, Result};
use crate::run::RunSettings;
use crate::task::{HouseFormat, Passage, QaItem, Task, TaskKind};

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
    if task.kind != TaskKind::Qa {
        return export_labelled(task, settings, model, dir, &write);
    }
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
    let mut toml = head(None, model, dir, &data, settings);
    let f = &settings.lora;
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

/// The config's opening: the comment, `task` when not QA, `[model]`, `[embedder]`, `[data]`,
/// `[arms]` and `[rag]`.
fn head(task: Option<TaskKind>, model: &Path, dir: &Path, data: &str, settings: &RunSettings) -> String {
    let mut toml = String::new();
    let _ = writeln!(toml, "# Written by `ragtune demo --export`: the demo's world as files; run it with");
    let _ = writeln!(toml, "#   ragtune compare --config {}", dir.join("experiment.toml").display());
    if let Some(kind) = task {
        let _ = writeln!(toml, "\ntask = \"{}\"", kind.id());
    }
    let _ = writeln!(toml, "\n[model]\npath = \"{}\"\ndtype = \"f32\"\ndevice = \"auto\"", model.display());
    let _ = writeln!(toml, "\n[embedder]\nkind = \"hashed\"");
    let _ = writeln!(toml, "\n[data]\n{data}");
    let _ = writeln!(toml, "[arms]\nrun = {}", toml_list(&settings.arms));
    let _ = writeln!(toml, "\n[rag]\nk = {}", settings.rag_k);
    match &settings.tuning {
        None => {
            let _ = writeln!(toml, "\n[tuning]\nenabled = false");
        }
        Some(t) => {
            let lr: Vec<String> = t.lr.iter().map(|l| format!("{l:e}")).collect();
            let k: Vec<String> = t.rag_k.iter().map(|k| k.to_string()).collect();
            let _ = writeln!(toml, "\n[tuning]\nlr = [{}]\nrag_k = [{}]", lr.join(", "), k.join(", "));
        }
    }
    toml
}

/// A classification or house-format task: `train.jsonl`, `test.jsonl` and its config.
fn export_labelled(
    task: &Task,
    settings: &RunSettings,
    model: &Path,
    dir: &Path,
    write: &dyn Fn(&str, String) -> Result<()>,
) -> Result<()> {
    let (input, target) =
        if task.kind == TaskKind::Classify { ("text", "label") } else { ("input", "output") };
    let line =
        |id: &str, text: &str, out: &str| json!({ "id": id, input: text, target: out }).to_string() + "\n";
    let train: String =
        task.corpus.iter().map(|p| line(&p.id, &p.text, p.target.as_deref().unwrap_or_default())).collect();
    let test: String = task.questions.iter().map(|q| line(&q.id, &q.question, &q.answer)).collect();
    write("train.jsonl", train)?;
    write("test.jsonl", test)?;
    let data = "train = \"train.jsonl\"\ntest = \"test.jsonl\"\n";
    let mut toml = head(Some(task.kind), model, dir, data, settings);
    if let Some(HouseFormat::Template { template }) = &task.format {
        let _ = writeln!(toml, "\n[format]\ntemplate = {}", toml::Value::String(template.clone()));
    }
    let f = &settings.lora;
    let _ = writeln!(
        toml,
        "\n[finetune]\nr = {}\nalpha = {:?}\ntargets = {}\nepochs = {}\nlr = {:e}\nbatch_size = {}\nmax_seq = {}\nseed = {}",
        f.r,
        f.alpha,
        toml_list(&f.targets),
        f.epochs,
        f.lr,
        f.batch_size,
        f.max_seq,
        f.seed
    );
    let _ = writeln!(toml, "\n[eval]\nbootstrap = {}\nseed = {}", settings.bootstrap, settings.seed);
    write("experiment.toml", toml)
}
