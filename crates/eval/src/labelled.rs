//! A user's labelled data for the `classify` and `format` tasks, read into a [`Task`].
//!
//! **Classification** ([`classify_task`]): `[data] train` and `test` are JSONL files, one
//! `{"text": "...", "label": "..."}` per line (`id`, a string or an integer, and `meta` optional).
//! The label set is read from the data, in order of first appearance in `train`; every test
//! label must occur in `train` (a label never trained on could not be learned, and its F1 would
//! measure nothing but that). At least two labels.
//!
//! **House format** ([`format_task`]): one `{"input": "...", "output": ...}` per line, the output
//! a string or a JSON object. When every training output is a JSON object the format is inferred
//! (the fields all of them carry are required); otherwise `[format] template` names it
//! (`"Ticket {id}: {summary}"`) and every output must match it. JSON outputs are kept in compact
//! form, so an output is one line, as answers are.
//!
//! Either way the training lines become the corpus ([`Passage`]s with a `target`) — what RAG
//! retrieves as demonstrations and FT learns from — and the test lines the questions. Errors
//! name the file and the 1-based line.

use std::path::Path;

use serde_json::Value;

use crate::error::{EvalError, Result};
use crate::metrics::house::{Template, fields_of, json_fields};
use crate::task::{HouseFormat, Passage, QaItem, Task, TaskKind};
use crate::userdata::{Fields, at, check_unique_ids, jsonl_objects, kind_of, one_line};

const CLASSIFY_FIELDS: &str = "text, label, id, meta";
const FORMAT_FIELDS: &str = "input, output, id, meta";

/// One labelled line: id, input text, target (label or output), and its line number.
struct Line {
    line: usize,
    id: String,
    input: String,
    target: String,
}

fn read_lines(path: &Path, input: &str, target: &str, fields: &str) -> Result<Vec<Line>> {
    let mut out = Vec::new();
    for (line, obj) in jsonl_objects(path, fields)? {
        let f = Fields { path, line, obj: &obj };
        f.reject_unknown(&[input, target, "id", "meta"], fields)?;
        let text = f.required_text(input)?;
        let target = match obj.get(target) {
            // A JSON object as the output: kept compact, on one line.
            Some(v @ Value::Object(_)) if target == "output" => v.to_string(),
            Some(Value::String(s)) if target == "output" => match serde_json::from_str::<Value>(s.trim()) {
                Ok(v @ Value::Object(_)) => v.to_string(),
                _ => f.required_text(target)?,
            },
            Some(v @ (Value::Number(_) | Value::Bool(_))) if target == "label" => v.to_string(),
            Some(Value::String(_)) | None => f.required_text(target)?,
            Some(v) => {
                return Err(f.err(format!("field \"{target}\" must be a string, found {}", kind_of(v))));
            }
        };
        out.push(Line { line, id: f.id()?, input: text, target });
    }
    if out.is_empty() {
        return Err(EvalError::data(
            path.display(),
            format!("no examples: the file has no line with {fields}; add some"),
        ));
    }
    check_unique_ids(path, out.iter().map(|l| (l.line, l.id.as_str())))?;
    Ok(out)
}

fn corpus(lines: Vec<Line>) -> Vec<Passage> {
    lines.into_iter().map(|l| Passage { id: l.id, text: l.input, target: Some(l.target) }).collect()
}

/// A `classify` task from its train and test files (see the module doc).
pub fn classify_task(train: &Path, test: &Path) -> Result<Task> {
    let train_lines = read_lines(train, "text", "label", CLASSIFY_FIELDS)?;
    let test_lines = read_lines(test, "text", "label", CLASSIFY_FIELDS)?;
    let mut labels: Vec<String> = Vec::new();
    for l in &train_lines {
        if !labels.contains(&l.target) {
            labels.push(l.target.clone());
        }
    }
    if labels.len() < 2 {
        return Err(EvalError::data(
            train.display(),
            format!(
                "every line has the label \"{}\": classification needs at least two labels",
                labels.first().map(String::as_str).unwrap_or_default()
            ),
        ));
    }
    let mut questions = Vec::with_capacity(test_lines.len());
    for l in test_lines {
        let Some(correct) = labels.iter().position(|x| *x == l.target) else {
            return Err(EvalError::data(
                at(test, l.line),
                format!(
                    "label \"{}\" never occurs in {}: the model could not learn it; the training labels are {}",
                    l.target,
                    train.display(),
                    labels.join(", ")
                ),
            ));
        };
        questions.push(QaItem {
            id: l.id,
            question: l.input,
            answer: l.target,
            choices: labels.clone(),
            correct: Some(correct),
            ..QaItem::default()
        });
    }
    Ok(Task { kind: TaskKind::Classify, labels, corpus: corpus(train_lines), questions, ..Task::default() })
}

/// A `format` task from its train and test files; `template` is `[format] template` (see the
/// module doc).
pub fn format_task(train: &Path, test: &Path, template: Option<&str>) -> Result<Task> {
    let train_lines = read_lines(train, "input", "output", FORMAT_FIELDS)?;
    let test_lines = read_lines(test, "input", "output", FORMAT_FIELDS)?;
    let format = match template {
        Some(t) => {
            Template::parse(t).map_err(|e| EvalError::config(format!("[format] template: {e}")))?;
            HouseFormat::Template { template: t.to_string() }
        }
        None => {
            let outputs: Vec<&str> = train_lines.iter().map(|l| l.target.as_str()).collect();
            let fields = json_fields(&outputs).ok_or_else(|| {
                EvalError::data(
                    train.display(),
                    "the outputs are not all JSON objects sharing a field, so the house format cannot be \
                     inferred: set [format] template = \"… {field} …\" (literal text with {field} placeholders)",
                )
            })?;
            HouseFormat::Json { fields }
        }
    };
    for (path, lines) in [(train, &train_lines), (test, &test_lines)] {
        if let Some(l) = lines.iter().find(|l| fields_of(&format, &l.target).is_none()) {
            let what = match &format {
                HouseFormat::Json { fields } => {
                    format!("a JSON object with the fields {}", fields.join(", "))
                }
                HouseFormat::Template { template } => format!("the template \"{template}\""),
            };
            return Err(EvalError::data(
                at(path, l.line),
                format!(
                    "the output \"{}\" does not follow {what}: fix the line or the format",
                    one_line(&l.target)
                ),
            ));
        }
    }
    let questions = test_lines
        .into_iter()
        .map(|l| QaItem { id: l.id, question: l.input, answer: l.target, ..QaItem::default() })
        .collect();
    Ok(Task {
        kind: TaskKind::Format,
        format: Some(format),
        corpus: corpus(train_lines),
        questions,
        ..Task::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp dir, named after the test.
    fn tempdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ragtune-labelled-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A fresh folder `name` with `train.jsonl` and `test.jsonl` holding `train` and `test`:
    /// (folder, train path, test path).
    fn split(
        name: &str,
        train: &str,
        test: &str,
    ) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempdir(name);
        let (train, test) = (file(&dir, "train.jsonl", train), file(&dir, "test.jsonl", test));
        (dir, train, test)
    }

    #[test]
    fn classify_reads_labels_in_order_and_makes_choices() {
        let (_, train, test) = split(
            "classify",
            "{\"text\": \"refund please\", \"label\": \"billing\"}\n\n{\"text\": \"app crashes\", \"label\": \"bug\", \"id\": 7}\n{\"text\": \"charged twice\", \"label\": \"billing\"}\n",
            "{\"text\": \"it froze\", \"label\": \"bug\"}\n",
        );
        let t = classify_task(&train, &test).unwrap();
        assert_eq!(t.kind, TaskKind::Classify);
        assert_eq!(t.labels, ["billing", "bug"]);
        assert_eq!(t.corpus.len(), 3);
        assert_eq!((t.corpus[1].id.as_str(), t.corpus[1].target.as_deref()), ("7", Some("bug")));
        assert_eq!(t.corpus[0].id, "line-1");
        let q = &t.questions[0];
        assert_eq!((q.question.as_str(), q.correct, q.choices.len()), ("it froze", Some(1), 2));
    }

    #[test]
    fn classify_errors_name_the_file_and_line() {
        let (dir, train, test) = split(
            "errors",
            "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n",
            "{\"text\": \"c\", \"label\": \"x\"}\n{\"text\": \"d\", \"label\": \"z\"}\n",
        );
        let e = classify_task(&train, &test).unwrap_err().to_string();
        assert!(e.contains("test.jsonl:2") && e.contains("\"z\" never occurs"), "{e}");
        let bad = file(
            &dir,
            "bad.jsonl",
            "{\"text\": \"a\", \"label\": \"x\"}\n{\"txt\": \"b\", \"label\": \"y\"}\n",
        );
        let e = classify_task(&bad, &test).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:2") && e.contains("unknown field \"txt\""), "{e}");
        let one = file(&dir, "one.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n");
        let e = classify_task(&one, &test).unwrap_err().to_string();
        assert!(e.contains("at least two labels"), "{e}");
        let list = file(&dir, "list.jsonl", "{\"text\": \"a\", \"label\": [\"x\"]}\n");
        let e = classify_task(&list, &test).unwrap_err().to_string();
        assert!(e.contains("list.jsonl:1") && e.contains("must be a string"), "{e}");
        let empty = file(&dir, "empty.jsonl", "\n\n");
        assert!(classify_task(&empty, &test).unwrap_err().to_string().contains("no examples"));
    }

    #[test]
    fn format_infers_json_fields_or_uses_the_template() {
        let (dir, train, test) = split(
            "format",
            "{\"input\": \"printer jam\", \"output\": {\"team\": \"it\", \"urgent\": false}}\n{\"input\": \"fire\", \"output\": \"{\\\"team\\\": \\\"facilities\\\", \\\"urgent\\\": true, \\\"note\\\": \\\"now\\\"}\"}\n",
            "{\"input\": \"leak\", \"output\": {\"team\": \"facilities\", \"urgent\": true}}\n",
        );
        let t = format_task(&train, &test, None).unwrap();
        assert_eq!(t.format, Some(HouseFormat::Json { fields: vec!["team".into(), "urgent".into()] }));
        assert_eq!(t.corpus[0].target.as_deref(), Some(r#"{"team":"it","urgent":false}"#));
        assert!(t.questions[0].choices.is_empty());

        let train = file(&dir, "t2.jsonl", "{\"input\": \"a\", \"output\": \"Team: it / urgent: no\"}\n");
        let test = file(&dir, "s2.jsonl", "{\"input\": \"b\", \"output\": \"Team it\"}\n");
        let e = format_task(&train, &test, None).unwrap_err().to_string();
        assert!(e.contains("[format] template"), "{e}");
        let e = format_task(&train, &test, Some("Team: {team} / urgent: {urgent}")).unwrap_err().to_string();
        assert!(e.contains("s2.jsonl:1") && e.contains("does not follow the template"), "{e}");
        let test = file(&dir, "s3.jsonl", "{\"input\": \"b\", \"output\": \"Team: hr / urgent: yes\"}\n");
        let t = format_task(&train, &test, Some("Team: {team} / urgent: {urgent}")).unwrap();
        assert!(matches!(t.format, Some(HouseFormat::Template { .. })));
        assert!(
            format_task(&train, &test, Some("{a}{b}")).unwrap_err().to_string().contains("[format] template")
        );
    }
}
