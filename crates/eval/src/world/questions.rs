//! Questions: one seen and one held-out phrasing per fact for evaluation, and any number of
//! seen-phrasing questions per fact for training; each with 4 shuffled choices.
//!
//! Distractors are values of the same attribute that the population itself holds (other
//! people's birth cities, the population's own organisations), so that a wrong option is as
//! familiar to a model that read the population's text as the right one. Where a population
//! holds fewer than 3 other values (tiny worlds), the attribute's whole range fills in:
//! the place pool, the value lists, the year range, the population's organisations.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::templates::{
    BIRTH_YEARS, FOUNDED_YEARS, HOBBIES, INDUSTRIES, PROFESSIONS, SEEN_TEMPLATES, fill, question_templates,
};
use super::{Attribute, Entity, EntityKind, Phrasing, Population, Question, World, stream, tag};

/// Options per choice question: the answer and 3 distractors.
pub const CHOICES: usize = 4;

/// The distinct values each attribute takes in one population, and the orgs' names.
struct Candidates {
    values: BTreeMap<Attribute, BTreeSet<String>>,
    orgs: Vec<String>,
}

impl Candidates {
    fn of(world: &World, p: Population) -> Candidates {
        let mut values: BTreeMap<Attribute, BTreeSet<String>> = BTreeMap::new();
        let mut orgs = Vec::new();
        for e in world.entities_of(p) {
            for (a, v) in &e.facts {
                values.entry(*a).or_default().insert(v.clone());
            }
            if e.kind == EntityKind::Organisation {
                orgs.push(e.name.clone());
            }
        }
        Candidates { values, orgs }
    }

    /// Distractor candidates for `a` other than `answer`, sorted (a fixed order for the rng).
    fn others(&self, world: &World, a: Attribute, answer: &str) -> Vec<String> {
        let mut pool: BTreeSet<String> = self.values.get(&a).cloned().unwrap_or_default();
        pool.remove(answer);
        if pool.len() < CHOICES - 1 {
            let range: Vec<String> = match a {
                Attribute::BirthCity | Attribute::Headquarters => world.places.clone(),
                Attribute::Employer => self.orgs.clone(),
                Attribute::Profession => PROFESSIONS.iter().map(|s| s.to_string()).collect(),
                Attribute::Hobby => HOBBIES.iter().map(|s| s.to_string()).collect(),
                Attribute::Industry => INDUSTRIES.iter().map(|s| s.to_string()).collect(),
                Attribute::BirthYear => BIRTH_YEARS.map(|y| y.to_string()).collect(),
                Attribute::FoundedYear => FOUNDED_YEARS.map(|y| y.to_string()).collect(),
            };
            pool.extend(range);
            pool.remove(answer);
        }
        pool.into_iter().collect()
    }

    /// The fact's choices (the same for every question about it) and the answer's index.
    fn choices(&self, world: &World, e: &Entity, a: Attribute, answer: &str) -> (Vec<String>, usize) {
        let mut rng = stream(world.config.seed, &[tag::CHOICES, e.id as u64, a as u64]);
        let others = self.others(world, a, answer);
        let mut choices: Vec<String> = others.choose_multiple(&mut rng, CHOICES - 1).cloned().collect();
        choices.push(answer.to_string());
        choices.shuffle(&mut rng);
        let correct = choices.iter().position(|c| c == answer).expect("the answer was pushed");
        (choices, correct)
    }
}

/// `q-<entity>-<attribute>-<seen|held-out>`.
pub fn question_id(entity: usize, a: Attribute, phrasing: Phrasing) -> String {
    format!("q-{entity}-{}-{}", a.slug(), phrasing.label())
}

/// `tq<salt>-<entity>-<attribute>-<i>`.
pub fn training_question_id(salt: u64, entity: usize, a: Attribute, i: usize) -> String {
    format!("tq{salt}-{entity}-{}-{i}", a.slug())
}

impl World {
    /// Evaluation questions: for every (entity, attribute) of the population one Seen and one
    /// HeldOut question (templates picked by seed).
    pub fn questions(&self, p: Population) -> Vec<Question> {
        let cands = Candidates::of(self, p);
        let mut out = Vec::new();
        for e in self.entities_of(p) {
            for (a, answer) in &e.facts {
                let templates = question_templates(*a);
                let mut rng = stream(self.config.seed, &[tag::EVAL_TEMPLATES, e.id as u64, *a as u64]);
                let seen = rng.random_range(0..SEEN_TEMPLATES);
                let held_out = rng.random_range(SEEN_TEMPLATES..templates.len());
                let (choices, correct) = cands.choices(self, e, *a, answer);
                for (phrasing, t) in [(Phrasing::Seen, seen), (Phrasing::HeldOut, held_out)] {
                    out.push(Question {
                        id: question_id(e.id, *a, phrasing),
                        entity: e.id,
                        attribute: *a,
                        text: fill(templates[t], &e.name, ""),
                        answer: answer.clone(),
                        choices: choices.clone(),
                        correct,
                        phrasing,
                        popularity: e.popularity,
                    });
                }
            }
        }
        out
    }

    /// Training questions: `per_fact` seen-phrasing questions per (entity, attribute), distinct
    /// templates while they last (for base-model QA pretraining and RAFT training). `salt`
    /// varies the template draw between uses.
    pub fn training_questions(&self, p: Population, per_fact: usize, salt: u64) -> Vec<Question> {
        let cands = Candidates::of(self, p);
        let mut out = Vec::new();
        for e in self.entities_of(p) {
            for (a, answer) in &e.facts {
                let templates = question_templates(*a);
                let mut rng = stream(self.config.seed, &[tag::TRAIN_TEMPLATES, salt, e.id as u64, *a as u64]);
                let mut order: Vec<usize> = (0..SEEN_TEMPLATES).collect();
                order.shuffle(&mut rng);
                let (choices, correct) = cands.choices(self, e, *a, answer);
                for i in 0..per_fact {
                    out.push(Question {
                        id: training_question_id(salt, e.id, *a, i),
                        entity: e.id,
                        attribute: *a,
                        text: fill(templates[order[i % SEEN_TEMPLATES]], &e.name, ""),
                        answer: answer.clone(),
                        choices: choices.clone(),
                        correct,
                        phrasing: Phrasing::Seen,
                        popularity: e.popularity,
                    });
                }
            }
        }
        out
    }
}
