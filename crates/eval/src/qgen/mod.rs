//! Questions from documents, with no model: when `[data] qa` is absent, `ragtune compare`
//! builds its evaluation set from the corpus with [`generate`] and writes it to
//! `OUT/generated/qa.jsonl` ([`to_jsonl`]), in the QA file format of [`crate::userdata`].
//!
//! 1. [`sentences`]: each passage's Markdown or prose becomes sentences; only those that state
//!    a fact are kept (code, tables, badges, HTML, headings, instructions dropped);
//! 2. [`spans`]: in each sentence, answer candidates of a recognisable kind — names, years,
//!    dates, versions, quantities, numbers, identifiers in backticks, defined terms
//!    (`X is a …`) and what an abbreviation stands for;
//! 3. [`questions`]: a wh-question where the sentence's shape allows one (`What is a …?`,
//!    `What does X stand for?`, `… in which year …?`, `… how many …?`), else a cloze question
//!    (`Fill in the blank: … ____ …`);
//! 4. [`distractors`]: three wrong options of the answer's kind from other passages, the right
//!    one at a seeded position among the four.
//!
//! Every answer is a span of its source passage (checked: it occurs verbatim in the passage's
//! one-line text), questions are unique after [`questions::normalise`], a passage gives at most
//! `per_passage` questions (one per sentence first, varied kinds first), and the whole set at
//! most `max_questions`, sampled evenly over the passages. The output is in a seeded random
//! order (so `[eval] limit` takes a sample across the documents) with ids `gen-0001`, …; the
//! same passages and seed give the same questions.
//!
//! [`split::split_by_source`] then splits them into dev and test by source passage.

pub mod distractors;
pub mod model;
pub mod paraphrase;
pub mod questions;
pub mod sentences;
pub mod spans;
pub mod split;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::task::{Passage, QaItem};

pub use split::{Split, split_by_source};

use distractors::Pool;
use questions::{answer_text, normalise, question};
use spans::{Kind, Span};

/// How many questions [`generate`] makes, and from which seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateSettings {
    /// Most questions from one passage, so one long file does not dominate.
    pub per_passage: usize,
    /// Most questions in all.
    pub max_questions: usize,
    pub seed: u64,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        GenerateSettings { per_passage: 3, max_questions: 500, seed: 0 }
    }
}

/// A question before its options are drawn.
struct Draft {
    passage: usize,
    sentence: String,
    sentence_index: usize,
    span: Span,
    question: String,
    answer: String,
}

/// Questions about `passages` (see the module doc). A passage's text may keep its lines
/// ([`crate::userdata::load_corpus_layout`]), which lets Markdown be read as Markdown; answers
/// are checked against the text with its whitespace collapsed, the form the corpus has.
pub fn generate(passages: &[Passage], settings: &GenerateSettings) -> Vec<QaItem> {
    generate_with(passages, settings, &mut |_: &str, _: &str| Ok(None)).unwrap_or_default()
}

/// [`generate`], each question first offered to `ask(sentence, answer)`: the question it
/// returns replaces the built-in one unless it repeats an earlier question ([`model`] uses this
/// to have an instruct model word the questions).
pub(crate) fn generate_with(
    passages: &[Passage],
    settings: &GenerateSettings,
    ask: &mut dyn FnMut(&str, &str) -> crate::Result<Option<String>>,
) -> crate::Result<Vec<QaItem>> {
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut pool = Pool::default();
    let mut per_passage: Vec<Vec<Draft>> = Vec::with_capacity(passages.len());
    let mut asked: HashSet<String> = HashSet::new();
    for (p, passage) in passages.iter().enumerate() {
        let flat = format!(" {} ", passage.text.split_whitespace().collect::<Vec<_>>().join(" "));
        let mut drafts = Vec::new();
        for (si, sentence) in sentences::fact_sentences(&passage.text).into_iter().enumerate() {
            let mut answers_here: HashSet<String> = HashSet::new();
            for span in spans::spans(&sentence) {
                let answer = answer_text(&sentence, &span).to_string();
                if !flat.contains(answer.as_str()) {
                    continue;
                }
                pool.add(span.kind, p, &answer);
                let Some(q) = question(&sentence, &span) else { continue };
                if !answers_here.insert(normalise(&answer)) || !asked.insert(normalise(&q)) {
                    continue;
                }
                drafts.push(Draft {
                    passage: p,
                    sentence: sentence.clone(),
                    sentence_index: si,
                    span,
                    question: q,
                    answer,
                });
            }
        }
        per_passage.push(drafts);
    }

    // Each passage's picks: varied sentences and kinds first, in a seeded order.
    let mut picked: Vec<Vec<Draft>> = Vec::with_capacity(per_passage.len());
    for mut drafts in per_passage {
        drafts.shuffle(&mut rng);
        // Definitions first (they make the clearest questions), then the rest.
        drafts.sort_by_key(|d| !matches!(d.span.kind, Kind::Term | Kind::Expansion));
        let mut chosen: Vec<Draft> = Vec::new();
        let mut rest: Vec<Draft> = Vec::new();
        for d in drafts {
            let new_sentence = !chosen.iter().any(|c| c.sentence_index == d.sentence_index);
            let new_kind = !chosen.iter().any(|c| c.span.kind == d.span.kind);
            if chosen.len() < settings.per_passage && new_sentence && new_kind {
                chosen.push(d);
            } else {
                rest.push(d);
            }
        }
        let mut last = Vec::new();
        for d in rest {
            let new_sentence = !chosen.iter().any(|c| c.sentence_index == d.sentence_index);
            if chosen.len() < settings.per_passage && new_sentence {
                chosen.push(d);
            } else {
                last.push(d);
            }
        }
        let room = settings.per_passage.saturating_sub(chosen.len());
        chosen.extend(last.into_iter().take(room));
        picked.push(chosen);
    }

    // With options: drafts without three distractors are dropped.
    let mut items: Vec<(usize, QaItem)> = Vec::new();
    let mut questions: HashSet<String> = HashSet::new();
    for d in picked.into_iter().flatten() {
        let Some(wrong) = pool.pick(d.span.kind, &d.answer, d.passage, &d.sentence, &mut rng) else {
            continue;
        };
        let question = match ask(&d.sentence, &d.answer)? {
            Some(q) if questions.insert(normalise(&q)) => q,
            _ if questions.insert(normalise(&d.question)) => d.question,
            _ => continue,
        };
        let correct = rng.random_range(0..=wrong.len());
        let mut choices = wrong;
        choices.insert(correct, d.answer.clone());
        items.push((
            d.passage,
            QaItem {
                id: String::new(),
                question,
                answer: d.answer,
                choices,
                correct: Some(correct),
                sources: vec![passages[d.passage].id.clone()],
                phrasing: None,
                popularity: None,
            },
        ));
    }

    Ok(finish(items, settings, &mut rng))
}

/// At most `max_questions` of `items` (each with its passage's index, in passage order), taken
/// round-robin over the passages in a seeded order, then shuffled and numbered `gen-0001`, ….
fn finish(mut items: Vec<(usize, QaItem)>, settings: &GenerateSettings, rng: &mut ChaCha8Rng) -> Vec<QaItem> {
    // At most max_questions, taken round-robin over the passages in a seeded order.
    if items.len() > settings.max_questions {
        let mut by_passage: Vec<Vec<(usize, QaItem)>> = Vec::new();
        for it in items {
            match by_passage.last_mut() {
                Some(last) if last[0].0 == it.0 => last.push(it),
                _ => by_passage.push(vec![it]),
            }
        }
        by_passage.shuffle(rng);
        let mut kept = Vec::with_capacity(settings.max_questions);
        let mut round = 0;
        while kept.len() < settings.max_questions {
            let mut any = false;
            for group in by_passage.iter_mut() {
                if round < group.len() && kept.len() < settings.max_questions {
                    kept.push(std::mem::replace(&mut group[round], (0, empty_item())));
                    any = true;
                }
            }
            if !any {
                break;
            }
            round += 1;
        }
        items = kept;
    }
    let mut out: Vec<QaItem> = items.into_iter().map(|(_, q)| q).collect();
    out.shuffle(rng);
    let width = out.len().to_string().len().max(4);
    for (i, q) in out.iter_mut().enumerate() {
        q.id = format!("gen-{:0width$}", i + 1);
    }
    out
}

fn empty_item() -> QaItem {
    QaItem::default()
}

/// `questions` as a QA file (one JSON object per line: `id`, `question`, `answer`, `choices`,
/// `correct`, `source` — or `sources` for several —, and `split` when given), which
/// [`crate::userdata::load_qa`] reads back into the same items.
pub fn to_jsonl(questions: &[QaItem], splits: &[Split]) -> String {
    let s = |v: &str| serde_json::Value::String(v.to_string()).to_string();
    let mut out = String::new();
    for (i, q) in questions.iter().enumerate() {
        let mut fields = vec![format!("\"id\": {}", s(&q.id)), format!("\"question\": {}", s(&q.question))];
        fields.push(format!("\"answer\": {}", s(&q.answer)));
        if !q.choices.is_empty() {
            let choices: Vec<String> = q.choices.iter().map(|c| s(c)).collect();
            fields.push(format!("\"choices\": [{}]", choices.join(", ")));
        }
        if let Some(c) = q.correct {
            fields.push(format!("\"correct\": {c}"));
        }
        match q.sources.as_slice() {
            [] => {}
            [one] => fields.push(format!("\"source\": {}", s(one))),
            many => {
                let list: Vec<String> = many.iter().map(|m| s(m)).collect();
                fields.push(format!("\"sources\": [{}]", list.join(", ")));
            }
        }
        if let Some(p) = &q.phrasing {
            fields.push(format!("\"phrasing\": {}", s(p)));
        }
        if let Some(p) = q.popularity {
            fields.push(format!("\"popularity\": {p}"));
        }
        if let Some(split) = splits.get(i) {
            fields.push(format!("\"split\": {}", s(split.name())));
        }
        out.push('{');
        out.push_str(&fields.join(", "));
        out.push_str("}\n");
    }
    out
}
