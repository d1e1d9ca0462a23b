//! The demo's [`Task`]: the New population's corpus, questions, paraphrase rounds and RAFT
//! training questions, plus a sample of Old questions to measure forgetting.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::{Phrasing, Population, Question, World, stream, tag};
use crate::task::{Passage, QaItem, Task};

/// How much of the world goes into the demo task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoTaskOptions {
    /// Paraphrase rounds of the New corpus (for FT-par).
    pub paraphrase_rounds: usize,
    /// RAFT training questions per New fact.
    pub raft_per_fact: usize,
    /// How many Old seen-phrasing questions to sample (a seeded sample) for forgetting.
    pub old_question_limit: usize,
}

impl Default for DemoTaskOptions {
    fn default() -> DemoTaskOptions {
        DemoTaskOptions { paraphrase_rounds: 4, raft_per_fact: 2, old_question_limit: 200 }
    }
}

/// The salt of the RAFT training questions' template draw (the base model's QA data uses 0).
pub const RAFT_SALT: u64 = 1;

fn qa_item(world: &World, q: Question) -> QaItem {
    QaItem {
        sources: world.sources(q.entity),
        id: q.id,
        question: q.text,
        answer: q.answer,
        choices: q.choices,
        correct: Some(q.correct),
        phrasing: Some(q.phrasing.label().to_string()),
        popularity: Some(q.popularity),
    }
}

fn passages(docs: Vec<super::Document>) -> Vec<Passage> {
    docs.into_iter().map(|d| Passage::new(d.id, d.text)).collect()
}

/// Build the demo task from `world`.
pub fn demo_task(world: &World, opts: &DemoTaskOptions) -> Task {
    let corpus = passages(world.documents(Population::New));
    let questions = world.questions(Population::New).into_iter().map(|q| qa_item(world, q)).collect();
    let paraphrases =
        (0..opts.paraphrase_rounds).map(|r| passages(world.paraphrases(Population::New, r))).collect();
    let raft_train = world
        .training_questions(Population::New, opts.raft_per_fact, RAFT_SALT)
        .into_iter()
        .map(|q| qa_item(world, q))
        .collect();
    // A seeded sample, kept in the world's order so that the report reads entity by entity.
    let old: Vec<Question> =
        world.questions(Population::Old).into_iter().filter(|q| q.phrasing == Phrasing::Seen).collect();
    let mut picks: Vec<usize> = (0..old.len()).collect();
    picks.shuffle(&mut stream(world.config.seed, &[tag::OLD_SAMPLE]));
    picks.truncate(opts.old_question_limit);
    picks.sort_unstable();
    let old_questions = picks.into_iter().map(|i| qa_item(world, old[i].clone())).collect();
    Task { corpus, questions, paraphrases, raft_train, old_questions, ..Task::default() }
}
