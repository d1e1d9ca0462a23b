//! The demo's second task, where fine-tuning has a fair chance: route each person's request to
//! the department that handles it. The rule is arbitrary and learnable — the requester's
//! profession decides the department, under a mapping drawn from the seed — so the base model
//! cannot know it, retrieval can only show it by example (the nearest requests, which may or may
//! not share the profession), and fine-tuning can learn it from the labelled requests.
//!
//! Requests come from the world's people (every population: they are only names here), one per
//! person, worded from a few templates so that the profession is not always in the same place.
//! Training and test requesters are disjoint; both are drawn from the seed.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::templates::PROFESSIONS;
use super::{Attribute, EntityKind, World, stream, tag};
use crate::task::{Passage, QaItem, Task, TaskKind};

/// The departments, in label order: colour codes, so no label hints at a profession.
pub const DEPARTMENTS: [&str; 4] = ["amber", "cobalt", "jade", "slate"];

/// How many requests the routing task has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingOptions {
    pub train: usize,
    pub test: usize,
}

impl Default for RoutingOptions {
    fn default() -> RoutingOptions {
        RoutingOptions { train: 160, test: 48 }
    }
}

const REQUESTS: [&str; 4] = [
    "{name}, {a} {profession} from {city}, asks for help with a {hobby} club.",
    "A request from {name} ({profession}, {city}) about {hobby}.",
    "{name} writes from {city}: as {a} {profession}, they need a permit for {hobby}.",
    "Please answer {name}, who works as {a} {profession} and enjoys {hobby}.",
];

/// The department of each profession, in [`PROFESSIONS`] order: a seeded deal of the
/// professions into the departments, as even as 22 into 4 allows.
pub fn department_of_profession(seed: u64) -> Vec<&'static str> {
    let mut order: Vec<usize> = (0..PROFESSIONS.len()).collect();
    order.shuffle(&mut stream(seed, &[tag::ROUTING, 0]));
    let mut out = vec![DEPARTMENTS[0]; PROFESSIONS.len()];
    for (k, &p) in order.iter().enumerate() {
        out[p] = DEPARTMENTS[k % DEPARTMENTS.len()];
    }
    out
}

/// The routing task of `world` (see the module doc).
pub fn routing_task(world: &World, opts: &RoutingOptions) -> Task {
    let seed = world.config.seed;
    let rule = department_of_profession(seed);
    let mut people: Vec<_> = world.entities.iter().filter(|e| e.kind == EntityKind::Person).collect();
    people.shuffle(&mut stream(seed, &[tag::ROUTING, 1]));
    let requests: Vec<(String, String, &str)> = people
        .iter()
        .take(opts.train + opts.test)
        .enumerate()
        .filter_map(|(i, e)| {
            let profession = e.fact(Attribute::Profession)?;
            let p = PROFESSIONS.iter().position(|x| *x == profession)?;
            let text = REQUESTS[i % REQUESTS.len()]
                .replace("{name}", &e.name)
                .replace("{a}", if profession.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" })
                .replace("{profession}", profession)
                .replace("{city}", e.fact(Attribute::BirthCity).unwrap_or("the city"))
                .replace("{hobby}", e.fact(Attribute::Hobby).unwrap_or("a hobby"));
            Some((format!("request-{}", e.id), text, rule[p]))
        })
        .collect();
    // A small world keeps the train:test proportion, with at least one request on each side.
    let n = requests.len();
    let wanted = opts.train + opts.test;
    let test =
        if n >= wanted { opts.test } else { (n * opts.test / wanted.max(1)).clamp(1, n.saturating_sub(1)) };
    let train = opts.train.min(n - test.min(n));
    // The label set in the order the training requests first name it, then any department only
    // the test side names: the order `compare` reads from the exported files, so the demo and
    // `demo --export` + `compare` pose the same prompt ("Labels: …" lists them in this order).
    let mut labels: Vec<String> = Vec::new();
    for (_, _, dept) in &requests {
        if !labels.iter().any(|l| l == dept) {
            labels.push(dept.to_string());
        }
    }
    let corpus = requests[..train]
        .iter()
        .map(|(id, text, dept)| Passage {
            id: id.clone(),
            text: text.clone(),
            target: Some(dept.to_string()),
        })
        .collect();
    let questions = requests[train..]
        .iter()
        .map(|(id, text, dept)| QaItem {
            id: id.clone(),
            question: text.clone(),
            answer: dept.to_string(),
            choices: labels.clone(),
            correct: labels.iter().position(|l| l == dept),
            ..QaItem::default()
        })
        .collect();
    Task { kind: TaskKind::Classify, labels, corpus, questions, ..Task::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::WorldConfig;

    #[test]
    fn the_rule_deals_every_profession_and_the_task_follows_it() {
        let rule = department_of_profession(7);
        for d in DEPARTMENTS {
            let n = rule.iter().filter(|x| **x == d).count();
            assert!((5..=6).contains(&n), "{d}: {n} professions");
        }
        assert_ne!(rule, department_of_profession(8), "the seed draws the rule");
        let world = World::generate(WorldConfig::default());
        let t = routing_task(&world, &RoutingOptions::default());
        assert_eq!((t.corpus.len(), t.questions.len(), t.kind), (160, 48, TaskKind::Classify));
        for q in &t.questions {
            let words: Vec<&str> = q.question.split(|c: char| !c.is_alphabetic()).collect();
            let p = PROFESSIONS.iter().position(|p| words.contains(p));
            let p = p.unwrap_or_else(|| panic!("no profession in {:?}", q.question));
            assert_eq!(q.answer, rule[p], "{}", q.question);
            assert_eq!(q.choices[q.correct.unwrap()], q.answer);
        }
        let mut first_named: Vec<&str> = Vec::new();
        for p in &t.corpus {
            let d = p.target.as_deref().unwrap();
            if !first_named.contains(&d) {
                first_named.push(d);
            }
        }
        assert_eq!(t.labels, first_named, "labels in the order the training requests name them");
        let train: std::collections::HashSet<_> = t.corpus.iter().map(|p| &p.id).collect();
        assert!(t.questions.iter().all(|q| !train.contains(&q.id)), "disjoint requesters");
        assert_eq!(t, routing_task(&world, &RoutingOptions::default()), "deterministic");
        let small = World::generate(WorldConfig {
            old_people: 6,
            new_people: 4,
            reading_people: 10,
            ..WorldConfig::default()
        });
        let t = routing_task(&small, &RoutingOptions::default());
        assert_eq!((t.corpus.len(), t.questions.len()), (16, 4), "20 people split 160:48");
    }
}
