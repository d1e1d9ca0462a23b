//! A user's corpus and questions, read from files into [`Passage`]s and [`QaItem`]s.
//!
//! **Corpus** ([`load_corpus`]), one of:
//! - a folder: every `.txt` and `.md` file under it, recursively (hidden files and folders, those
//!   whose name starts with `.`, are skipped, and so are symbolic links to folders, which could
//!   loop), in sorted path order. Each file is split into paragraphs at blank lines; a paragraph
//!   longer than `max_words` (default [`DEFAULT_MAX_WORDS`]) is cut at sentence ends (and a
//!   sentence longer than that every `max_words` words); consecutive pieces are then merged while
//!   the merged passage stays within `max_words` words, so passages are retrieval-sized whatever
//!   the files' layout. Passage ids are `relative/path.md#N`, `N` counting from 1 in each file;
//! - one `.txt` or `.md` file, split the same way;
//! - a `.jsonl` file: one passage per line, `{"text": "...", "id": "..."}`; `id` (a string or an
//!   integer) is optional, `line-N` when missing. Lines are taken as they are (not re-split).
//!
//! Passage text is put on one line (runs of whitespace, newlines included, become one space):
//! prompts list one passage per line (`Passage: …`), see [`crate::prompt`].
//!
//! **Questions** ([`load_qa`], [`load_qa_for`]): JSONL, one question per line:
//!
//! ```json
//! {"id": "q1", "question": "Where was Ada Brenn born?", "answer": "Velmora"}
//! {"question": "Which city hosts Orlin Dynamics?", "answer": "Kestrel Bay",
//!  "choices": ["Velmora", "Kestrel Bay", "Tarn", "Oskholt"], "source": "orgs/orlin.md",
//!  "phrasing": "held-out"}
//! ```
//!
//! (each object on one line in a real file). `choices` (≥ 2 distinct options) makes the question
//! multiple choice: the `answer` must be one of them, or `correct` (the 0-based index of the
//! right option) may stand in for `answer`; when both are given they must agree. `source` (or
//! `sources`) is a passage id or a list of them; a corpus *file* path stands for all the
//! passages cut from that file ([`load_qa_for`] expands it and checks that every source names a
//! passage). `phrasing` is `"seen"` or `"held-out"`; `popularity` a non-negative integer;
//! `split` `"dev"` or `"test"` pins the question to that side of the dev/test split
//! ([`crate::qgen::split_by_source`]; generated files carry it); `meta` anything (ignored, for
//! the user's own bookkeeping). Any other field is an error, so a
//! misspelt `sorce` cannot silently drop the question's sources.
//!
//! Every error names the file and the 1-based line (`qa.jsonl:7: missing field "answer" …`),
//! what is wrong, and how to fix it. Blank lines are skipped but counted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{EvalError, Result};
use crate::qgen::Split;
use crate::task::{Passage, QaItem};

/// Words per passage, at most, when a folder or text-file corpus is split.
pub const DEFAULT_MAX_WORDS: usize = 120;

const QA_FIELDS: &str =
    "question, answer, choices, correct, source (or sources), phrasing, popularity, split, id, meta";
const CORPUS_FIELDS: &str = "text, id, meta";

/// `path:line` for error messages.
pub(crate) fn at(path: &Path, line: usize) -> String {
    format!("{}:{line}", path.display())
}

/// Text on one line: whitespace runs (newlines too) become single spaces, ends trimmed.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Read a file as UTF-8 (a leading byte-order mark dropped); invalid bytes are an error naming
/// the line they are on.
fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
    if let Some(at_byte) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..at_byte].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(EvalError::data(
            at(path, line),
            format!(
                "a binary file, not text (a NUL byte at byte {at_byte}): keep only UTF-8 text files here, or \
                 convert it to .txt/.md"
            ),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(mut s) => {
            if s.starts_with('\u{feff}') {
                s.drain(..3);
            }
            Ok(s)
        }
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
            Err(EvalError::data(
                at(path, line),
                format!("not valid UTF-8 (byte {valid} of the file): re-save the file with UTF-8 encoding"),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus

/// Load a corpus with passages of at most [`DEFAULT_MAX_WORDS`] words (see the module doc).
pub fn load_corpus(path: &Path) -> Result<Vec<Passage>> {
    load_corpus_with(path, DEFAULT_MAX_WORDS)
}

/// Load a corpus, splitting folder and text-file corpora into passages of at most `max_words`
/// words. Errors: a missing path, an unsupported file type, invalid UTF-8 or JSON, a JSONL line
/// without text, duplicate ids, no passages at all.
pub fn load_corpus_with(path: &Path, max_words: usize) -> Result<Vec<Passage>> {
    load_corpus_as(path, max_words, false)
}

/// [`load_corpus_with`]'s passages (same ids, same words) with the text as the files lay it
/// out — lines, headings, list bullets and code fences kept — for the question generator
/// ([`crate::qgen`]), which needs the Markdown structure that the one-line text loses. For each
/// passage, its whitespace collapsed, the text equals [`load_corpus_with`]'s.
pub fn load_corpus_layout(path: &Path, max_words: usize) -> Result<Vec<Passage>> {
    load_corpus_as(path, max_words, true)
}

fn load_corpus_as(path: &Path, max_words: usize, layout: bool) -> Result<Vec<Passage>> {
    if max_words == 0 {
        return Err(EvalError::config("max_words must be at least 1 (the default is 120)"));
    }
    let meta = std::fs::metadata(path).map_err(|e| EvalError::io(path, e))?;
    let passages = if meta.is_dir() {
        let files = text_files(path)?;
        if files.is_empty() {
            return Err(EvalError::data(
                path.display(),
                "the corpus folder holds no .txt or .md files: put the documents there as UTF-8 text files",
            ));
        }
        let mut passages = Vec::new();
        for (file, rel) in files {
            passages.extend(split_file_as(&file, &rel, max_words, layout)?);
        }
        passages
    } else {
        match extension(path).as_deref() {
            Some("jsonl") => corpus_jsonl(path)?,
            Some("txt" | "md" | "markdown") => {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                split_file_as(path, &name, max_words, layout)?
            }
            _ => {
                return Err(EvalError::data(
                    path.display(),
                    "not a corpus: give a folder of .txt/.md files, a .jsonl file with one {\"text\": ...} \
                     object per line, or a single .txt/.md file",
                ));
            }
        }
    };
    if passages.is_empty() {
        return Err(EvalError::data(path.display(), "the corpus has no text: its files are empty or blank"));
    }
    Ok(passages)
}

fn extension(path: &Path) -> Option<String> {
    path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// The `.txt`/`.md` files under `dir` with their `/`-separated paths relative to it, sorted by
/// that relative path (so the corpus order is the same on every platform and file system).
fn text_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, rel)) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| EvalError::io(&folder, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| EvalError::io(&folder, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            let kind = entry.file_type().map_err(|e| EvalError::io(&path, e))?;
            // A link to a file is followed; a link to a folder is not (it could form a cycle).
            let is_file = kind.is_file() || (kind.is_symlink() && path.is_file());
            if kind.is_dir() {
                pending.push((path, rel));
            } else if is_file && matches!(extension(&path).as_deref(), Some("txt" | "md" | "markdown")) {
                out.push((path, rel));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Split one text file into passages `rel#1`, `rel#2`, …, their text on one line, or
/// (`layout`) as the file has it.
fn split_file_as(path: &Path, rel: &str, max_words: usize, layout: bool) -> Result<Vec<Passage>> {
    let text = read_utf8(path)?;
    Ok(split_text_spans(&text, max_words)
        .into_iter()
        .enumerate()
        .map(|(i, (start, end))| {
            let piece = &text[start..end];
            let text = if layout { piece.to_string() } else { one_line(piece) };
            Passage::new(format!("{rel}#{}", i + 1), text)
        })
        .collect())
}

/// Paragraphs (blank-line separated), long ones cut, then greedily merged up to `max_words`.
#[cfg(test)]
pub(crate) fn split_text(text: &str, max_words: usize) -> Vec<String> {
    split_text_spans(text, max_words).into_iter().map(|(s, e)| one_line(&text[s..e])).collect()
}

/// [`split_text`]'s passages as byte ranges of `text`, from a passage's first word to its last:
/// every word of `text` is in exactly one range, in order, so `one_line` of a range is the
/// passage and the range itself keeps the file's lines (headings, lists, code fences).
pub(crate) fn split_text_spans(text: &str, max_words: usize) -> Vec<(usize, usize)> {
    // Every word with its byte range.
    let base = text.as_ptr() as usize;
    let mut pieces: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut paragraph: Vec<(usize, usize)> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !paragraph.is_empty() {
                pieces.extend(cut_paragraph(std::mem::take(&mut paragraph), max_words, text));
            }
        } else {
            paragraph.extend(line.split_whitespace().map(|w| {
                let start = w.as_ptr() as usize - base;
                (start, start + w.len())
            }));
        }
    }
    let mut passages = Vec::new();
    let mut current: Vec<(usize, usize)> = Vec::new();
    for piece in pieces {
        if !current.is_empty() && current.len() + piece.len() > max_words {
            passages.push((current[0].0, current[current.len() - 1].1));
            current.clear();
        }
        current.extend(piece);
    }
    if !current.is_empty() {
        passages.push((current[0].0, current[current.len() - 1].1));
    }
    passages
}

/// A paragraph of at most `max_words` words as is; a longer one packed sentence by sentence
/// (a word ending in `.`, `!` or `?` ends a sentence) into pieces of at most `max_words`, a
/// sentence longer than that cut every `max_words` words. Words are byte ranges of `text`.
fn cut_paragraph(words: Vec<(usize, usize)>, max_words: usize, text: &str) -> Vec<Vec<(usize, usize)>> {
    if words.len() <= max_words {
        return vec![words];
    }
    let mut sentences: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut sentence = Vec::new();
    for (s, e) in words {
        sentence.push((s, e));
        let w = &text[s..e];
        let ends = w.trim_end_matches(['"', '\'', ')', ']', '”', '’']).ends_with(['.', '!', '?']);
        if ends || sentence.len() == max_words {
            sentences.push(std::mem::take(&mut sentence));
        }
    }
    if !sentence.is_empty() {
        sentences.push(sentence);
    }
    let mut pieces: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut current: Vec<(usize, usize)> = Vec::new();
    for s in sentences {
        if !current.is_empty() && current.len() + s.len() > max_words {
            pieces.push(std::mem::take(&mut current));
        }
        current.extend(s);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// The non-blank lines of a JSONL file as (1-based line number, JSON object).
pub(crate) fn jsonl_objects(path: &Path, fields: &str) -> Result<Vec<(usize, Map<String, Value>)>> {
    let text = read_utf8(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            // serde_json's message ends in "at line 1 column C": within one JSONL line only
            // the column means anything.
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or_default();
            EvalError::data(
                at(path, n),
                format!(
                    "not valid JSON at column {} ({message}): each line must be one JSON object with the \
                     fields {fields}",
                    e.column()
                ),
            )
        })?;
        match value {
            Value::Object(obj) => out.push((n, obj)),
            other => {
                return Err(EvalError::data(
                    at(path, n),
                    format!("expected a JSON object with the fields {fields}, found {}", kind_of(&other)),
                ));
            }
        }
    }
    Ok(out)
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One JSONL line's object, read field by field with errors that name the file, line and field.
pub(crate) struct Fields<'a> {
    pub(crate) path: &'a Path,
    pub(crate) line: usize,
    pub(crate) obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    pub(crate) fn err(&self, detail: impl Into<String>) -> EvalError {
        EvalError::data(at(self.path, self.line), detail)
    }

    pub(crate) fn reject_unknown(&self, known: &[&str], listed: &str) -> Result<()> {
        match self.obj.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => {
                Err(self.err(format!("unknown field \"{k}\": the fields are {listed}; rename or remove it")))
            }
            None => Ok(()),
        }
    }

    /// A non-blank string field, on one line; `None` when absent.
    pub(crate) fn text(&self, name: &str) -> Result<Option<String>> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(one_line(s))),
            Some(Value::String(_)) => Err(self.err(format!("field \"{name}\" is empty: give it some text"))),
            Some(v) => Err(self.err(format!("field \"{name}\" must be a string, found {}", kind_of(v)))),
        }
    }

    pub(crate) fn required_text(&self, name: &str) -> Result<String> {
        self.text(name)?.ok_or_else(|| self.err(format!("missing field \"{name}\": every line needs one")))
    }

    /// `id`: a non-blank string or an integer; `line-N` when absent.
    pub(crate) fn id(&self) -> Result<String> {
        match self.obj.get("id") {
            None => Ok(format!("line-{}", self.line)),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(v) => Err(self.err(format!(
                "field \"id\" must be a non-empty string or an integer, found {}",
                if v.is_string() { "an empty string" } else { kind_of(v) }
            ))),
        }
    }

    fn index(&self, name: &str) -> Result<Option<usize>> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(Some(n.as_u64().unwrap_or(0) as usize)),
            Some(v) => Err(self.err(format!("field \"{name}\" must be a non-negative integer, found {v}"))),
        }
    }
}

/// Ids must be unique within a file: the error names both lines.
pub(crate) fn check_unique_ids<'a>(path: &Path, ids: impl Iterator<Item = (usize, &'a str)>) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (line, id) in ids {
        if let Some(first) = seen.insert(id, line) {
            return Err(EvalError::data(
                at(path, line),
                format!("duplicate id \"{id}\" (first used on line {first}): ids must be unique; rename one"),
            ));
        }
    }
    Ok(())
}

fn corpus_jsonl(path: &Path) -> Result<Vec<Passage>> {
    let mut lines = Vec::new();
    for (line, obj) in jsonl_objects(path, CORPUS_FIELDS)? {
        let f = Fields { path, line, obj: &obj };
        f.reject_unknown(&["text", "id", "meta"], CORPUS_FIELDS)?;
        let text = f.required_text("text")?;
        lines.push((line, Passage::new(f.id()?, text)));
    }
    check_unique_ids(path, lines.iter().map(|(l, p)| (*l, p.id.as_str())))?;
    Ok(lines.into_iter().map(|(_, p)| p).collect())
}

// ---------------------------------------------------------------------------------------------
// Questions

/// Load a QA file (see the module doc). Sources are kept as written; [`load_qa_for`] checks and
/// expands them against a corpus.
pub fn load_qa(path: &Path) -> Result<Vec<QaItem>> {
    Ok(qa_lines(path)?.into_iter().map(|(_, q, _)| q).collect())
}

/// Load a QA file whose sources refer to `corpus`: a source that is a passage id stays, a
/// source that is a corpus file path (`notes/a.md`) becomes the ids of that file's passages
/// (`notes/a.md#1`, …); a source that names neither is an error naming the line. With
/// `require_sources`, a question without sources is an error too (RAFT needs its gold passage).
pub fn load_qa_for(path: &Path, corpus: &[Passage], require_sources: bool) -> Result<Vec<QaItem>> {
    Ok(load_qa_with_splits(path, corpus, require_sources)?.0)
}

/// [`load_qa_for`], with each question's `split` field (`None` where the line has none).
pub fn load_qa_with_splits(
    path: &Path,
    corpus: &[Passage],
    require_sources: bool,
) -> Result<(Vec<QaItem>, Vec<Option<Split>>)> {
    let by_id: HashMap<&str, ()> = corpus.iter().map(|p| (p.id.as_str(), ())).collect();
    // Passages cut from one file share the id prefix before the last `#`.
    let mut by_file: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in corpus {
        if let Some((file, _)) = p.id.rsplit_once('#') {
            by_file.entry(file).or_default().push(&p.id);
        }
    }
    let mut out = Vec::new();
    let mut splits = Vec::new();
    for (line, mut item, split) in qa_lines(path)? {
        if require_sources && item.sources.is_empty() {
            return Err(EvalError::data(
                at(path, line),
                "no \"source\": every question here needs the id of the passage (or the corpus file) that \
                 answers it",
            ));
        }
        let mut resolved: Vec<String> = Vec::new();
        for s in &item.sources {
            let ids: Vec<&str> = if by_id.contains_key(s.as_str()) {
                vec![s.as_str()]
            } else if let Some(ids) = by_file.get(s.as_str()) {
                ids.clone()
            } else {
                let examples: Vec<&str> = corpus.iter().take(3).map(|p| p.id.as_str()).collect();
                return Err(EvalError::data(
                    at(path, line),
                    format!(
                        "source \"{s}\" names no passage of the corpus: use a passage id (such as {}) or the \
                         path of a corpus file relative to the corpus folder",
                        examples.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            for id in ids {
                if !resolved.iter().any(|r| r == id) {
                    resolved.push(id.to_string());
                }
            }
        }
        item.sources = resolved;
        out.push(item);
        splits.push(split);
    }
    Ok((out, splits))
}

/// Every question of a QA file with its line number and its `split`.
fn qa_lines(path: &Path) -> Result<Vec<(usize, QaItem, Option<Split>)>> {
    let mut out = Vec::new();
    for (line, obj) in jsonl_objects(path, QA_FIELDS)? {
        let f = Fields { path, line, obj: &obj };
        let split = match obj.get("split") {
            None => None,
            Some(Value::String(s)) if Split::parse(s).is_some() => Split::parse(s),
            Some(v) => return Err(f.err(format!("\"split\" must be \"dev\" or \"test\", found {v}"))),
        };
        out.push((line, qa_item(&f)?, split));
    }
    if out.is_empty() {
        return Err(EvalError::data(
            path.display(),
            "no questions: the file is empty; write one {\"question\": ..., \"answer\": ...} object per line",
        ));
    }
    check_unique_ids(path, out.iter().map(|(l, q, _)| (*l, q.id.as_str())))?;
    Ok(out)
}

fn qa_item(f: &Fields) -> Result<QaItem> {
    f.reject_unknown(
        &[
            "question",
            "answer",
            "choices",
            "correct",
            "source",
            "sources",
            "phrasing",
            "popularity",
            "split",
            "id",
            "meta",
        ],
        QA_FIELDS,
    )?;
    let question = f.required_text("question")?;
    let choices = match f.obj.get("choices") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            let mut choices = Vec::new();
            for (i, c) in items.iter().enumerate() {
                match c {
                    Value::String(s) if !s.trim().is_empty() => choices.push(one_line(s)),
                    other => {
                        return Err(f.err(format!(
                            "\"choices\"[{i}] must be a non-empty string, found {}",
                            if other.is_string() { "an empty string" } else { kind_of(other) }
                        )));
                    }
                }
            }
            if choices.len() < 2 {
                return Err(f.err(
                    "\"choices\" needs at least 2 options (or leave it out for a free-answer question)",
                ));
            }
            if let Some((i, c)) = choices.iter().enumerate().find(|(i, c)| choices[..*i].contains(c)) {
                return Err(
                    f.err(format!("\"choices\"[{i}] repeats the option \"{c}\": options must be distinct"))
                );
            }
            choices
        }
        Some(v) => {
            return Err(f.err(format!("field \"choices\" must be a list of strings, found {}", kind_of(v))));
        }
    };
    let answer = f.text("answer")?;
    let correct = f.index("correct")?;
    let (answer, correct) = match (answer, correct) {
        (None, None) => {
            return Err(f.err(if choices.is_empty() {
                "missing field \"answer\": every question needs its reference answer"
            } else {
                "missing field \"answer\": give the right option's text as \"answer\" (or its 0-based index as \
                 \"correct\")"
            }));
        }
        (_, Some(_)) if choices.is_empty() => {
            return Err(f.err("\"correct\" is an index into \"choices\", but this question has no choices"));
        }
        (Some(a), None) if choices.is_empty() => (a, None),
        (Some(a), None) => match choices.iter().position(|c| *c == a) {
            Some(i) => (a, Some(i)),
            None => {
                return Err(f.err(format!(
                    "\"choices\" must contain the answer \"{a}\": add it to the options, or fix the answer"
                )));
            }
        },
        (a, Some(i)) => {
            let Some(right) = choices.get(i) else {
                return Err(f.err(format!(
                    "\"correct\" = {i} is out of range: \"choices\" has {} options (0-based index)",
                    choices.len()
                )));
            };
            if let Some(a) = a.filter(|a| a != right) {
                return Err(f.err(format!(
                    "\"answer\" \"{a}\" disagrees with \"correct\" = {i}, which picks \"{right}\": fix one of them"
                )));
            }
            (right.clone(), Some(i))
        }
    };
    let sources = match (f.obj.get("source"), f.obj.get("sources")) {
        (Some(_), Some(_)) => return Err(f.err("both \"source\" and \"sources\" are given: keep one")),
        (Some(v), None) => source_list(f, "source", v)?,
        (None, Some(v)) => source_list(f, "sources", v)?,
        (None, None) => Vec::new(),
    };
    let phrasing = match f.obj.get("phrasing") {
        None => None,
        Some(Value::String(s)) if s == "seen" || s == "held-out" => Some(s.clone()),
        Some(v) => return Err(f.err(format!("\"phrasing\" must be \"seen\" or \"held-out\", found {v}"))),
    };
    Ok(QaItem {
        id: f.id()?,
        question,
        answer,
        choices,
        correct,
        sources,
        phrasing,
        popularity: f.index("popularity")?,
    })
}

fn source_list(f: &Fields, name: &str, v: &Value) -> Result<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        other => Err(f.err(format!(
            "\"{name}\" must be a passage id (a string) or a list of them, found {}",
            if other.is_string() { "an empty string" } else { kind_of(other) }
        ))),
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        single => Ok(vec![one(single)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_whitespace() {
        assert_eq!(one_line("  a\n b\t\tc \r\n"), "a b c");
    }

    #[test]
    fn short_paragraphs_merge_up_to_the_limit() {
        // 3 + 3 words fit in 7; the third paragraph (4 words) would make 10, so it starts anew.
        let text = "a b c\n\nd e\nf\n\n\n  \ng h i j\n";
        assert_eq!(split_text(text, 7), ["a b c d e f", "g h i j"]);
        // With 3, the 4-word paragraph is itself cut (no sentence end: every 3 words).
        assert_eq!(split_text(text, 3), ["a b c", "d e f", "g h i", "j"]);
    }

    #[test]
    fn long_paragraphs_are_cut_at_sentence_ends() {
        let text = "One two three. Four five six seven. Eight nine! Ten";
        // Sentences of 3, 4, 2, 1 words, packed into pieces of at most 5.
        assert_eq!(split_text(text, 5), ["One two three.", "Four five six seven.", "Eight nine! Ten"]);
        // A sentence longer than the limit is cut every max_words words.
        assert_eq!(split_text("a b c d e f g", 3), ["a b c", "d e f", "g"]);
    }
}
