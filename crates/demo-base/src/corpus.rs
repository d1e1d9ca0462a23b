//! The pretraining mixture of the built-in base model, as text.
//!
//! Three kinds of example, every one in the formats of [`ragtune_eval::prompt`]:
//! - **documents** of the Old population: the corpus plus one paraphrase round per epoch (a new
//!   rendering each time: knowledge is extractable only when it was seen in varied forms,
//!   Allen-Zhu & Li), every token a target;
//! - **closed-book QA** on Old facts, seen phrasings only, loss on the answer: this teaches the
//!   mapping from what the documents said to an answer. Every `qa_holdout_every`-th Old entity
//!   gets no QA at all, so validation can measure whether that mapping generalises to facts
//!   known only from documents — what fine-tuning on new documents relies on;
//! - **reading** examples: passages (1 gold — sometimes 2 — and 0..=`max_distractors` others of
//!   the same population, shuffled) then a question about the gold entity, loss on the answer.
//!   Mostly over throw-away entities (the demo world's Reading population and the populations of
//!   a few other world seeds), so the model learns to read rather than to remember; some over
//!   Old entities, so reading and memory agree.
//!
//! No text of the demo world's New population enters the mixture: an entity of another world
//! that shares a name with any demo-world entity is dropped, and so is any document or question
//! that mentions a New name.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use ragtune_eval::prompt;
use ragtune_eval::world::{Attribute, Entity, Population, World, WorldConfig};

/// What the mixture holds and in which proportions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MixtureOptions {
    /// Distinct paraphrase rounds of the Old documents, one per epoch, cycled.
    pub paraphrase_rounds: usize,
    /// Seen-phrasing questions per Old fact.
    pub qa_per_fact: usize,
    /// Every n-th Old entity (by position) gets no QA (0: every entity gets QA).
    pub qa_holdout_every: usize,
    /// Shares of the token budget: Old documents, documents of throw-away entities (language
    /// modelling on names never seen twice teaches copying from the context), closed-book QA;
    /// reading takes the rest.
    pub doc_share: f32,
    pub throwaway_doc_share: f32,
    pub qa_share: f32,
    /// Of the reading examples, the share whose gold entity is an Old one.
    pub old_reading_share: f32,
    pub max_distractors: usize,
    /// Of the reading examples, the share built from excerpts (a few sentences of each
    /// entity's document, the fact asked about always in the gold's): short, so far more
    /// answers per token, and their distractors often state the same attribute of another
    /// entity, so the question's name must be matched. Full documents, at 3M tokens, had not
    /// taught reading at all.
    pub excerpt_share: f32,
    /// Of the reading examples, the share with two renderings of the gold entity and the loss
    /// on every token: each value of the later rendering can be copied from the earlier one
    /// (past the distractors, which state the same attributes with other values), so every
    /// passage pair carries several reading targets instead of one answer. Reading is
    /// associative recall, which attention learns slowly from one target per sequence.
    pub paired_share: f32,
    /// Extra world seeds whose populations serve as reading material.
    pub reading_worlds: usize,
    /// Train reading examples on every token (passages and question too), not only the answer
    /// (measured: no better at 3M tokens, and it dilutes the answers' share of the loss).
    pub reading_loss_everywhere: bool,
}

impl Default for MixtureOptions {
    fn default() -> Self {
        MixtureOptions {
            paraphrase_rounds: 24,
            qa_per_fact: 4,
            qa_holdout_every: 5,
            doc_share: 0.26,
            throwaway_doc_share: 0.04,
            qa_share: 0.08,
            old_reading_share: 0.15,
            max_distractors: 2,
            excerpt_share: 0.5,
            paired_share: 0.25,
            reading_worlds: 8,
            reading_loss_everywhere: false,
        }
    }
}

/// A prompt and the answer the model should continue it with (loss on the answer only).
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerText {
    pub prompt: String,
    pub answer: String,
    /// Train on every token, not only the answer (paired renderings: see [`reading_from`]).
    pub loss_everywhere: bool,
}

/// One entity as reading material: its renderings and its (seen-phrasing) questions.
#[derive(Clone, Debug)]
pub struct ReadingEntity {
    pub person: bool,
    pub docs: Vec<String>,
    pub facts: Vec<(Attribute, String)>,
    /// `(attribute, question, answer)`.
    pub questions: Vec<(Attribute, String, String)>,
}

/// Entities that may serve as each other's distractors (one population of one world).
#[derive(Clone, Debug)]
pub struct Pool {
    pub entities: Vec<ReadingEntity>,
    /// The world's id of each entity.
    pub ids: Vec<usize>,
}

/// Everything the mixture is drawn from.
pub struct Sources {
    /// The Old corpus.
    pub old_docs: Vec<String>,
    /// `old_paraphrases[r]`: round r of extra renderings of the Old entities.
    pub old_paraphrases: Vec<Vec<String>>,
    /// Closed-book QA over the Old entities that get QA.
    pub old_qa: Vec<AnswerText>,
    /// Ids of the Old entities without QA (the extractability probe).
    pub qa_held_out: BTreeSet<usize>,
    /// The Old population as reading material (entities without QA are distractors only).
    pub old_pool: Pool,
    /// Old-pool indices that may be gold.
    pub old_gold: Vec<usize>,
    /// Throw-away populations.
    pub reading_pools: Vec<Pool>,
    /// Every name of the training text (to keep validation entities fresh).
    pub names: BTreeSet<String>,
}

/// The seed of the k-th extra reading world of a demo world seeded `seed`: far from small
/// integers, so that `ragtune demo --seed 8` does not pick a world whose New population the base
/// model has read.
pub fn reading_world_seed(seed: u64, k: usize) -> u64 {
    seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(k as u64 + 1))
}

/// The seed of the world whose Reading entities validate reading on fresh entities (far from
/// the demo seed and the reading worlds' seeds, as [`reading_world_seed`]).
pub fn fresh_world_seed(seed: u64) -> u64 {
    seed.wrapping_add(0xF7E5_4A11_D00D_5EED)
}

fn is_person(e: &Entity) -> bool {
    matches!(e.kind, ragtune_eval::world::EntityKind::Person)
}

/// The entities of `p` in `world` as reading material: corpus documents and the first two
/// paraphrase rounds, seen-phrasing questions; entities whose name is in `banned_names` and
/// texts that mention any of `banned_text` are left out.
pub fn pool_of(
    world: &World,
    p: Population,
    banned_names: &BTreeSet<String>,
    banned_text: &[String],
) -> Pool {
    let clean = |s: &str| !banned_text.iter().any(|b| s.contains(b.as_str()));
    let mut docs: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let renderings = world.documents(p).into_iter().chain((0..2).flat_map(|r| world.paraphrases(p, r)));
    for d in renderings {
        if clean(&d.text) {
            docs.entry(d.entity).or_default().push(d.text);
        }
    }
    let mut questions: BTreeMap<usize, Vec<(Attribute, String, String)>> = BTreeMap::new();
    for q in world.training_questions(p, 4, 0) {
        if clean(&q.text) && clean(&q.answer) {
            questions.entry(q.entity).or_default().push((q.attribute, q.text, q.answer));
        }
    }
    let (entities, ids) = world
        .entities_of(p)
        .filter(|e| !banned_names.contains(&e.name))
        .filter_map(|e| {
            let docs = docs.remove(&e.id)?;
            let questions = questions.remove(&e.id)?;
            Some((ReadingEntity { person: is_person(e), docs, facts: e.facts.clone(), questions }, e.id))
        })
        .unzip();
    Pool { entities, ids }
}

impl Sources {
    /// Gather the material for the demo world `config`.
    pub fn gather(config: &WorldConfig, opts: &MixtureOptions) -> Sources {
        let world = World::generate(config.clone());
        let old: Vec<&Entity> = world.entities_of(Population::Old).collect();
        let qa_held_out: BTreeSet<usize> = old
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                opts.qa_holdout_every > 0 && i % opts.qa_holdout_every == opts.qa_holdout_every - 1
            })
            .map(|(_, e)| e.id)
            .collect();
        let old_docs = world.documents(Population::Old).into_iter().map(|d| d.text).collect();
        let old_paraphrases = (0..opts.paraphrase_rounds)
            .map(|r| world.paraphrases(Population::Old, r).into_iter().map(|d| d.text).collect())
            .collect();
        let old_qa = world
            .training_questions(Population::Old, opts.qa_per_fact, 0)
            .into_iter()
            .filter(|q| !qa_held_out.contains(&q.entity))
            .map(|q| AnswerText {
                prompt: prompt::closed_book(&q.text),
                answer: q.answer,
                loss_everywhere: false,
            })
            .collect();
        let demo_names: BTreeSet<String> = world.entities.iter().map(|e| e.name.clone()).collect();
        let new_names: Vec<String> = world.entities_of(Population::New).map(|e| e.name.clone()).collect();
        let none = BTreeSet::new();
        let old_pool = pool_of(&world, Population::Old, &none, &new_names);
        let old_gold = (0..old_pool.ids.len()).filter(|&i| !qa_held_out.contains(&old_pool.ids[i])).collect();
        let mut names: BTreeSet<String> = world
            .entities
            .iter()
            .filter(|e| e.population != Population::New)
            .map(|e| e.name.clone())
            .collect();
        let mut reading_pools = vec![pool_of(&world, Population::Reading, &none, &new_names)];
        for k in 0..opts.reading_worlds {
            let other =
                World::generate(WorldConfig { seed: reading_world_seed(config.seed, k), ..config.clone() });
            for p in [Population::Old, Population::New, Population::Reading] {
                reading_pools.push(pool_of(&other, p, &demo_names, &new_names));
            }
            names.extend(other.entities.iter().map(|e| e.name.clone()));
        }
        Sources { old_docs, old_paraphrases, old_qa, qa_held_out, old_pool, old_gold, reading_pools, names }
    }

    /// One reading example: a gold entity drawn from the throw-away pools (weighted by size) or,
    /// with probability `old_reading_share`, from the Old entities that get QA; built from
    /// excerpts with probability `excerpt_share`, else from whole documents.
    pub fn reading_example(&self, rng: &mut ChaCha8Rng, opts: &MixtureOptions) -> AnswerText {
        let (pool, gold) = if rng.random::<f32>() < opts.old_reading_share && !self.old_gold.is_empty() {
            (&self.old_pool, *self.old_gold.choose(rng).expect("not empty"))
        } else {
            let total: usize = self.reading_pools.iter().map(|p| p.entities.len()).sum();
            let mut k = rng.random_range(0..total.max(1));
            let mut found = None;
            for pool in &self.reading_pools {
                if k < pool.entities.len() {
                    found = Some((pool, k));
                    break;
                }
                k -= pool.entities.len();
            }
            found.expect("k < total")
        };
        let u = rng.random::<f32>();
        if u < opts.excerpt_share {
            excerpt_reading_from(pool, gold, rng, opts.max_distractors + 1)
        } else {
            let paired = u < opts.excerpt_share + opts.paired_share;
            reading_from(pool, gold, rng, opts.max_distractors, paired)
        }
    }

    /// A random document of a throw-away entity.
    pub fn throwaway_document(&self, rng: &mut ChaCha8Rng) -> &str {
        let total: usize = self.reading_pools.iter().map(|p| p.entities.len()).sum();
        let mut k = rng.random_range(0..total.max(1));
        for pool in &self.reading_pools {
            if k < pool.entities.len() {
                return pool.entities[k].docs.choose(rng).expect("pool entities have documents");
            }
            k -= pool.entities.len();
        }
        unreachable!("k < total")
    }

    /// Text to train the tokenizer on: every Old text and `reading` reading examples.
    pub fn tokenizer_sample(
        &self,
        rng: &mut ChaCha8Rng,
        opts: &MixtureOptions,
        reading: usize,
    ) -> Vec<String> {
        let mut texts: Vec<String> = self.old_docs.clone();
        texts.extend(self.old_paraphrases.iter().flatten().cloned());
        texts.extend(self.old_qa.iter().map(|q| format!("{}{}", q.prompt, prompt::answer(&q.answer))));
        for _ in 0..reading {
            let r = self.reading_example(rng, opts);
            texts.push(format!("{}{}", r.prompt, prompt::answer(&r.answer)));
        }
        texts
    }
}

/// A reading example with `pool.entities[gold]` as the gold entity: one of its renderings (two,
/// one time in six, when it has several: retrieval often returns more than one), `0..=max`
/// distractor entities of the pool (half the time of the gold's kind), one rendering each,
/// shuffled; then one of the gold's questions.
pub fn reading_from(
    pool: &Pool,
    gold: usize,
    rng: &mut ChaCha8Rng,
    max_distractors: usize,
    paired: bool,
) -> AnswerText {
    let e = &pool.entities[gold];
    let mut passages: Vec<&str> = Vec::new();
    let mut docs: Vec<&String> = e.docs.iter().collect();
    docs.shuffle(rng);
    let golds = if docs.len() > 1 && (paired || rng.random_range(0..6) == 0) { 2 } else { 1 };
    passages.extend(docs.iter().take(golds).map(|s| s.as_str()));
    let wanted = rng.random_range(0..=max_distractors).min(pool.entities.len() - 1);
    let same_kind = paired || rng.random::<bool>();
    let mut chosen = BTreeSet::new();
    let mut tries = 0;
    while chosen.len() < wanted && tries < 50 * (wanted + 1) {
        tries += 1;
        let d = rng.random_range(0..pool.entities.len());
        if d == gold
            || chosen.contains(&d)
            || (same_kind && pool.entities[d].person != e.person && tries < 25)
        {
            continue;
        }
        chosen.insert(d);
        passages.push(pool.entities[d].docs.choose(rng).expect("pool entities have documents"));
    }
    passages.shuffle(rng);
    let (_, q, a) = e.questions.choose(rng).expect("pool entities have questions");
    AnswerText {
        prompt: prompt::with_passages(&passages, q),
        answer: a.clone(),
        loss_everywhere: paired && golds == 2,
    }
}

/// The sentences of a document (it is written as sentences ending in ". ").
fn sentences(doc: &str) -> Vec<&str> {
    doc.split_inclusive(". ").map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// An excerpt of one of `e`'s documents: the sentence that states `value` (when given and
/// found) and up to two other sentences, in the document's order.
fn excerpt(e: &ReadingEntity, value: Option<&str>, rng: &mut ChaCha8Rng) -> String {
    let doc = e.docs.choose(rng).expect("pool entities have documents");
    let all = sentences(doc);
    let mut keep = BTreeSet::new();
    if let Some(i) = value.and_then(|v| all.iter().position(|s| s.contains(v))) {
        keep.insert(i);
    }
    let extra = rng.random_range(usize::from(keep.is_empty())..=2);
    for _ in 0..extra {
        keep.insert(rng.random_range(0..all.len()));
    }
    keep.into_iter().map(|i| all[i]).collect::<Vec<_>>().join(" ")
}

/// A reading example from excerpts: the gold's excerpt holds the sentence that answers one of
/// its questions; `0..=max` distractor entities (of the gold's kind where the pool allows) give
/// excerpts that, where they can, state the same attribute — so only the name tells them apart.
pub fn excerpt_reading_from(
    pool: &Pool,
    gold: usize,
    rng: &mut ChaCha8Rng,
    max_distractors: usize,
) -> AnswerText {
    let e = &pool.entities[gold];
    let (attribute, q, a) = e.questions.choose(rng).expect("pool entities have questions");
    let mut passages = vec![excerpt(e, Some(a), rng)];
    let wanted = rng.random_range(0..=max_distractors).min(pool.entities.len() - 1);
    let mut chosen = BTreeSet::new();
    let mut tries = 0;
    while chosen.len() < wanted && tries < 50 * (wanted + 1) {
        tries += 1;
        let d = rng.random_range(0..pool.entities.len());
        if d == gold || chosen.contains(&d) || (pool.entities[d].person != e.person && tries < 25) {
            continue;
        }
        chosen.insert(d);
        let other = &pool.entities[d];
        let value = other.facts.iter().find(|(at, _)| at == attribute).map(|(_, v)| v.as_str());
        passages.push(excerpt(other, value, rng));
    }
    passages.shuffle(rng);
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    AnswerText { prompt: prompt::with_passages(&refs, q), answer: a.clone(), loss_everywhere: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_mixture_holds_no_new_text_and_reading_examples_carry_their_answer() {
        let config = WorldConfig::default();
        let opts = MixtureOptions { paraphrase_rounds: 2, reading_worlds: 1, ..MixtureOptions::default() };
        let sources = Sources::gather(&config, &opts);
        let world = World::generate(config);
        let new_names: Vec<String> = world.entities_of(Population::New).map(|e| e.name.clone()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let texts = sources.tokenizer_sample(&mut rng, &opts, 500);
        assert!(texts.len() > 500);
        for t in &texts {
            if let Some(n) = new_names.iter().find(|n| t.contains(n.as_str())) {
                panic!("a New name ({n}) in the mixture: {t}");
            }
        }
        for _ in 0..300 {
            let r =
                sources.reading_example(&mut rng, &MixtureOptions { old_reading_share: 0.3, ..opts.clone() });
            let (passages, question) = r.prompt.rsplit_once("Question: ").unwrap();
            let n = passages.matches("Passage: ").count();
            assert!((1..=4).contains(&n), "{n} passages");
            assert!(passages.contains(&format!(" {}", r.answer)), "the answer is in a passage: {}", r.prompt);
            assert!(question.ends_with("\nAnswer:"));
        }
        // Entities left out of QA get none, and are never a reading example's subject either.
        let held_out: Vec<&str> = world
            .entities
            .iter()
            .filter(|e| sources.qa_held_out.contains(&e.id))
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(held_out.len(), world.entities_of(Population::Old).count() / 5);
        for q in &sources.old_qa {
            assert!(!held_out.iter().any(|n| q.prompt.contains(n)), "{}", q.prompt);
        }
        for &g in &sources.old_gold {
            assert!(!sources.qa_held_out.contains(&sources.old_pool.ids[g]));
        }
    }
}
