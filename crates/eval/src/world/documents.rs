//! Documents: the corpus (`popularity` renderings per entity) and the paraphrase rounds (one more
//! rendering per entity per round).
//!
//! A rendering is "variant" `v` of an entity: corpus document `k` is variant `k`, paraphrase
//! round `r` is variant `popularity + r`. Each attribute's sentence template in variant `v` is
//! `(offset + step·v) mod T` with a per-entity random offset and step and `T` = 5 templates (a
//! prime, so every step in 1..T is a generator): the first `T` variants of an entity use a
//! different sentence for every fact. The facts' order is shuffled per variant; past `T`
//! variants the sentences repeat and only a fresh order (kept different from the earlier
//! variants that share the sentences, while orders last) tells the renderings apart.

use rand::Rng;
use rand::seq::SliceRandom;

use super::templates::{ORG_INTROS, ORG_OUTROS, PERSON_INTROS, fact_sentences, fill};
use super::{Document, Entity, EntityKind, Population, World, stream, tag};

/// `doc-<entity>-<k>`.
pub fn corpus_id(entity: usize, k: usize) -> String {
    format!("doc-{entity}-{k}")
}

/// `par<round>-<entity>`.
pub fn paraphrase_id(round: usize, entity: usize) -> String {
    format!("par{round}-{entity}")
}

/// Attempts at an order not used by an earlier variant with the same sentences.
const ORDER_TRIES: usize = 32;

/// Which template each part of an entity's documents starts at and how it advances per variant.
struct Layout {
    /// (offset, step) for the intro, then each fact in [`Entity::facts`] order, then the outro.
    cycles: Vec<(usize, usize)>,
}

impl Layout {
    fn of(world: &World, e: &Entity) -> Layout {
        let mut rng = stream(world.config.seed, &[tag::LAYOUT, e.id as u64]);
        let mut lens = vec![intros(e.kind).len()];
        lens.extend(e.facts.iter().map(|(a, _)| fact_sentences(*a).len()));
        lens.push(ORG_OUTROS.len());
        let cycles =
            lens.into_iter().map(|n| (rng.random_range(0..n), rng.random_range(1..n.max(2)))).collect();
        Layout { cycles }
    }

    /// The template index of part `i` in variant `v`.
    fn pick(&self, i: usize, v: usize, n: usize) -> usize {
        let (offset, step) = self.cycles[i];
        (offset + step * (v % n)) % n
    }

    /// The shortest cycle: variants this far apart may share every sentence.
    fn period(e: &Entity) -> usize {
        e.facts.iter().map(|(a, _)| fact_sentences(*a).len()).min().unwrap_or(1)
    }
}

fn intros(kind: EntityKind) -> &'static [&'static str] {
    match kind {
        EntityKind::Person => &PERSON_INTROS,
        EntityKind::Organisation => &ORG_INTROS,
    }
}

/// The order of the facts in variant `v`: a shuffle, redrawn while it repeats the order of an
/// earlier variant with the same sentences (`v - period`, `v - 2·period`, ...).
fn fact_order(world: &World, e: &Entity, v: usize) -> Vec<usize> {
    let period = Layout::period(e);
    let mut earlier: Vec<Vec<usize>> = Vec::new();
    let mut u = v % period;
    loop {
        let mut rng = stream(world.config.seed, &[tag::DOCUMENT, e.id as u64, u as u64]);
        let mut order: Vec<usize> = (0..e.facts.len()).collect();
        for _ in 0..ORDER_TRIES {
            order.shuffle(&mut rng);
            if !earlier.contains(&order) {
                break;
            }
        }
        if u == v {
            return order;
        }
        earlier.push(order);
        u += period;
    }
}

/// Variant `v` of entity `e`'s document.
fn render(world: &World, e: &Entity, v: usize) -> String {
    let layout = Layout::of(world, e);
    let intro = intros(e.kind);
    let mut sentences = vec![fill(intro[layout.pick(0, v, intro.len())], &e.name, "")];
    for i in fact_order(world, e, v) {
        let (a, value) = &e.facts[i];
        let templates = fact_sentences(*a);
        sentences.push(fill(templates[layout.pick(1 + i, v, templates.len())], &e.name, value));
    }
    if e.kind == EntityKind::Organisation {
        let last = layout.cycles.len() - 1;
        sentences.push(fill(ORG_OUTROS[layout.pick(last, v, ORG_OUTROS.len())], &e.name, ""));
    }
    sentences.join(" ")
}

impl World {
    /// The corpus: `popularity` documents per entity of the population, deterministic.
    pub fn documents(&self, p: Population) -> Vec<Document> {
        self.entities_of(p)
            .flat_map(|e| {
                (0..e.popularity).map(move |k| Document {
                    id: corpus_id(e.id, k),
                    entity: e.id,
                    text: render(self, e, k),
                })
            })
            .collect()
    }

    /// Round `round` (0-based) of extra renderings for paraphrase augmentation: one new document
    /// per entity, different template choices/order from the corpus's and from other rounds
    /// where the templates allow; deterministic per (seed, round); ids `par<round>-<entity>`.
    pub fn paraphrases(&self, p: Population, round: usize) -> Vec<Document> {
        self.entities_of(p)
            .map(|e| Document {
                id: paraphrase_id(round, e.id),
                entity: e.id,
                text: render(self, e, e.popularity + round),
            })
            .collect()
    }
}
