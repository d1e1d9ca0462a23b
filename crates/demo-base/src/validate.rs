//! What the base model can do, measured at the end of pretraining:
//! - closed-book on Old questions (seen and held-out phrasing), split into entities whose QA was
//!   trained and entities known only from documents (the extractability probe);
//! - reading on fresh entities (a world of another seed, names unseen in training): 1 gold and 2
//!   distractor passages, then the question;
//! - closed-book multiple choice on New questions, which should sit near chance (25%).
//!
//! Multiple choice scores each option by `log p(answer(option) </s> | prompt)` (the answer and
//! the stop, as trained) and takes the best; exact match generates greedily and compares the
//! trimmed text up to the first newline with the reference.

use std::collections::BTreeMap;

use ragtune_runtime::{GenerateOptions, LlamaModel, Tokenizer, generate, score};
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::corpus::{Sources, fresh_world_seed};
use crate::tokenizer::EOS_ID;
use ragtune_eval::error::Result;
use ragtune_eval::prompt;
use ragtune_eval::world::{Phrasing, Population, Question, World, WorldConfig};

/// `correct` of `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
}

impl Accuracy {
    pub fn rate(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.correct as f64 / self.total as f64 }
    }
}

/// One line of the validation table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    pub what: String,
    /// Multiple choice by option log-likelihood.
    pub choice: Option<Accuracy>,
    /// Greedy exact match.
    pub exact: Option<Accuracy>,
}

/// A prompt, its reference answer and its options.
#[derive(Clone, Debug)]
pub struct Item {
    pub prompt: String,
    pub answer: String,
    pub choices: Vec<String>,
    pub correct: usize,
}

/// Greedy exact match over `items`, `batch` prompts at a time.
pub fn exact_match(model: &LlamaModel, tok: &Tokenizer, items: &[Item], batch: usize) -> Result<Accuracy> {
    let mut acc = Accuracy { correct: 0, total: items.len() };
    let options = GenerateOptions { stop_tokens: vec![EOS_ID], ..GenerateOptions::for_model(model, 12) };
    for chunk in items.chunks(batch.max(1)) {
        let prompts =
            chunk.iter().map(|i| tok.encode(&i.prompt, true)).collect::<ragtune_runtime::Result<Vec<_>>>()?;
        let out = generate(model, &prompts, &options, |_, _| Ok(()))?;
        for (item, g) in chunk.iter().zip(out) {
            let text = tok.decode(&g.tokens, true)?;
            let text = text.split(prompt::ANSWER_END).next().unwrap_or_default();
            acc.correct += usize::from(text.trim() == item.answer.trim());
        }
    }
    Ok(acc)
}

/// Multiple-choice accuracy by option log-likelihood.
pub fn choice_accuracy(
    model: &LlamaModel,
    tok: &Tokenizer,
    items: &[Item],
    batch: usize,
) -> Result<Accuracy> {
    let mut acc = Accuracy { correct: 0, total: items.len() };
    for chunk in items.chunks(batch.max(1)) {
        let mut pairs = Vec::new();
        for item in chunk {
            let p = tok.encode(&item.prompt, true)?;
            for c in &item.choices {
                let mut cont = tok.encode(&prompt::answer(c), false)?;
                cont.push(EOS_ID);
                pairs.push((p.clone(), cont));
            }
        }
        let scores = score(model, &pairs)?;
        let mut at = 0;
        for item in chunk {
            let n = item.choices.len();
            let best = (0..n)
                .max_by(|&a, &b| scores[at + a].log_likelihood.total_cmp(&scores[at + b].log_likelihood))
                .unwrap_or(usize::MAX);
            acc.correct += usize::from(best == item.correct);
            at += n;
        }
    }
    Ok(acc)
}

fn closed_book(q: &Question) -> Item {
    Item {
        prompt: prompt::closed_book(&q.text),
        answer: q.answer.clone(),
        choices: q.choices.clone(),
        correct: q.correct,
    }
}

/// At most `limit` of `items`, a seeded sample in their original order.
fn sample<T: Clone>(items: Vec<T>, limit: usize, rng: &mut ChaCha8Rng) -> Vec<T> {
    if items.len() <= limit {
        return items;
    }
    let mut idx: Vec<usize> = (0..items.len()).collect();
    idx.shuffle(rng);
    let mut keep: Vec<usize> = idx.into_iter().take(limit).collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| items[i].clone()).collect()
}

/// Reading items over fresh entities: the Reading population of the world seeded
/// [`fresh_world_seed`], minus any name the training text holds; each question gets its
/// entity's first corpus document and `distractors` documents of other entities, shuffled.
pub fn fresh_reading_items(
    config: &WorldConfig,
    sources: &Sources,
    phrasing: Phrasing,
    distractors: usize,
    limit: usize,
    seed: u64,
) -> Vec<Item> {
    let fresh = World::generate(WorldConfig { seed: fresh_world_seed(config.seed), ..config.clone() });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut docs: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for d in fresh.documents(Population::Reading) {
        docs.entry(d.entity).or_default().push(d.text);
    }
    let entities: Vec<usize> = fresh
        .entities_of(Population::Reading)
        .filter(|e| !sources.names.contains(&e.name) && docs.contains_key(&e.id))
        .map(|e| e.id)
        .collect();
    let questions: Vec<Question> = fresh
        .questions(Population::Reading)
        .into_iter()
        .filter(|q| q.phrasing == phrasing && entities.contains(&q.entity))
        .collect();
    let questions = sample(questions, limit, &mut rng);
    questions
        .iter()
        .map(|q| {
            let mut passages: Vec<&str> = vec![docs[&q.entity][0].as_str()];
            while passages.len() < 1 + distractors.min(entities.len() - 1) {
                let other = *entities.choose(&mut rng).expect("entities exist");
                let text = docs[&other][0].as_str();
                if other != q.entity && !passages.contains(&text) {
                    passages.push(text);
                }
            }
            passages.shuffle(&mut rng);
            Item {
                prompt: prompt::with_passages(&passages, &q.text),
                answer: q.answer.clone(),
                choices: q.choices.clone(),
                correct: q.correct,
            }
        })
        .collect()
}

/// Run every measurement; at most `limit` questions per line.
pub fn validate(
    model: &LlamaModel,
    tok: &Tokenizer,
    config: &WorldConfig,
    sources: &Sources,
    limit: usize,
    seed: u64,
) -> Result<Vec<Measure>> {
    let world = World::generate(config.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let old = world.questions(Population::Old);
    for (phrasing, label) in [(Phrasing::Seen, "seen"), (Phrasing::HeldOut, "held-out")] {
        for (probe, who) in [(false, "Old, QA-trained entities"), (true, "Old, entities without QA (probe)")]
        {
            let items: Vec<Item> = old
                .iter()
                .filter(|q| q.phrasing == phrasing && sources.qa_held_out.contains(&q.entity) == probe)
                .map(closed_book)
                .collect();
            let items = sample(items, limit, &mut rng);
            if items.is_empty() {
                continue;
            }
            out.push(Measure {
                what: format!("closed book, {who}, {label} phrasing"),
                choice: Some(choice_accuracy(model, tok, &items, 16)?),
                exact: Some(exact_match(model, tok, &items, 32)?),
            });
        }
    }
    for (phrasing, label) in [(Phrasing::Seen, "seen"), (Phrasing::HeldOut, "held-out")] {
        let items = fresh_reading_items(config, sources, phrasing, 2, limit, seed ^ 0xF4E5);
        out.push(Measure {
            what: format!("reading, fresh entities, 1 gold + 2 distractors, {label} phrasing"),
            choice: Some(choice_accuracy(model, tok, &items, 8)?),
            exact: Some(exact_match(model, tok, &items, 16)?),
        });
    }
    let new: Vec<Item> = world.questions(Population::New).iter().map(closed_book).collect();
    let new = sample(new, limit, &mut rng);
    out.push(Measure {
        what: "closed book, New entities (never seen: chance is 25%)".into(),
        choice: Some(choice_accuracy(model, tok, &new, 16)?),
        exact: Some(exact_match(model, tok, &new, 32)?),
    });
    Ok(out)
}
