//! The synthetic knowledge world of the RAG-vs-fine-tuning experiment, deterministic by seed:
//! fictional people, organisations and places with attributes; documents rendered from several
//! sentence templates and orders; free-answer and 4-option multiple-choice questions in seen and
//! held-out phrasings; entities of different popularity (how many documents mention them).
//!
//! Three populations share one pool of places but have their own people and organisations:
//! [`Population::Old`] (the base model is pretrained on it), [`Population::New`] (the
//! experiment's new knowledge, never in the base model's training text) and
//! [`Population::Reading`] (throw-away entities that teach the base model to answer from a
//! given passage). Every name word is unique in the world (see [`names`]), so no New name occurs
//! in Old or Reading text.
//!
//! Everything random comes from ChaCha8 streams derived from the seed and the thing being drawn
//! (see `stream`): a document does not depend on which other documents were rendered first,
//! and nothing depends on hash-map iteration order.
//!
//! - [`names`]: the syllable inventory and the name generator;
//! - [`templates`]: value lists, document sentences, question phrasings;
//! - [`documents`]: the corpus and its paraphrase rounds;
//! - [`questions`]: evaluation and training questions with their choices;
//! - [`to_task`]: the demo's [`crate::task::Task`];
//! - [`routing`]: the demo's second task, routing requests to departments (classification).

pub mod documents;
pub mod names;
pub mod questions;
pub mod routing;
pub mod templates;
pub mod to_task;

#[cfg(test)]
mod tests;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use names::NameGen;
use templates::{BIRTH_YEARS, FOUNDED_YEARS, HOBBIES, INDUSTRIES, PROFESSIONS};

pub use routing::{RoutingOptions, routing_task};
pub use to_task::{DemoTaskOptions, demo_task};

/// The world's sizes and seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldConfig {
    pub seed: u64,
    pub old_people: usize,
    pub old_orgs: usize,
    pub new_people: usize,
    pub new_orgs: usize,
    pub reading_people: usize,
    pub reading_orgs: usize,
    /// The shared pool of places (birth cities, headquarters).
    pub places: usize,
    /// The most documents an entity can have (the popularity of the most popular entities).
    pub max_popularity: usize,
}

impl Default for WorldConfig {
    fn default() -> WorldConfig {
        WorldConfig {
            seed: 7,
            old_people: 200,
            old_orgs: 24,
            new_people: 40,
            new_orgs: 10,
            reading_people: 400,
            reading_orgs: 40,
            places: 40,
            max_popularity: 4,
        }
    }
}

/// Fewest organisations a population with people needs: an employer question has 3 distractors
/// drawn from the population's own organisations.
pub const MIN_ORGS: usize = 4;
/// Fewest places: a birth-city or headquarters question has 3 distractor places.
pub const MIN_PLACES: usize = 4;

impl WorldConfig {
    /// Check that the sizes can make a world whose every question has 4 distinct choices.
    pub fn validate(&self) -> Result<()> {
        for (p, people, orgs, field) in [
            (Population::Old, self.old_people, self.old_orgs, "old_orgs"),
            (Population::New, self.new_people, self.new_orgs, "new_orgs"),
            (Population::Reading, self.reading_people, self.reading_orgs, "reading_orgs"),
        ] {
            if people > 0 && orgs < MIN_ORGS {
                return Err(EvalError::config(format!(
                    "world: {field} = {orgs}, but the {} population has {people} people and employer \
                     questions need {MIN_ORGS} of its organisations as choices; set {field} to at least {MIN_ORGS}",
                    p.label()
                )));
            }
        }
        if self.places < MIN_PLACES {
            return Err(EvalError::config(format!(
                "world: places = {}, but place questions need {MIN_PLACES} distinct places as choices; \
                 set places to at least {MIN_PLACES}",
                self.places
            )));
        }
        if self.max_popularity == 0 {
            return Err(EvalError::config(
                "world: max_popularity = 0, but every entity needs at least one document; set it to 1 or more",
            ));
        }
        Ok(())
    }

    /// The nearest valid configuration: too few organisations or places are raised to the
    /// minimum, a zero `max_popularity` to 1.
    pub fn repaired(&self) -> WorldConfig {
        let orgs = |people: usize, orgs: usize| if people > 0 { orgs.max(MIN_ORGS) } else { orgs };
        WorldConfig {
            old_orgs: orgs(self.old_people, self.old_orgs),
            new_orgs: orgs(self.new_people, self.new_orgs),
            reading_orgs: orgs(self.reading_people, self.reading_orgs),
            places: self.places.max(MIN_PLACES),
            max_popularity: self.max_popularity.max(1),
            ..self.clone()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Population {
    Old,
    New,
    Reading,
}

impl Population {
    pub const ALL: [Population; 3] = [Population::Old, Population::New, Population::Reading];

    /// "old", "new", "reading".
    pub fn label(self) -> &'static str {
        match self {
            Population::Old => "old",
            Population::New => "new",
            Population::Reading => "reading",
        }
    }

    fn index(self) -> u64 {
        self as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityKind {
    Person,
    Organisation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Attribute {
    BirthCity,
    Employer,
    Profession,
    BirthYear,
    Hobby,
    Headquarters,
    Industry,
    FoundedYear,
}

impl Attribute {
    pub const PERSON: [Attribute; 5] = [
        Attribute::BirthCity,
        Attribute::Employer,
        Attribute::Profession,
        Attribute::BirthYear,
        Attribute::Hobby,
    ];
    pub const ORGANISATION: [Attribute; 3] =
        [Attribute::Headquarters, Attribute::Industry, Attribute::FoundedYear];
    pub const ALL: [Attribute; 8] = [
        Attribute::BirthCity,
        Attribute::Employer,
        Attribute::Profession,
        Attribute::BirthYear,
        Attribute::Hobby,
        Attribute::Headquarters,
        Attribute::Industry,
        Attribute::FoundedYear,
    ];

    /// "birth city", "employer", ...
    pub fn name(self) -> &'static str {
        match self {
            Attribute::BirthCity => "birth city",
            Attribute::Employer => "employer",
            Attribute::Profession => "profession",
            Attribute::BirthYear => "birth year",
            Attribute::Hobby => "hobby",
            Attribute::Headquarters => "headquarters",
            Attribute::Industry => "industry",
            Attribute::FoundedYear => "founded year",
        }
    }

    /// "birth-city", ...: the attribute in ids.
    pub fn slug(self) -> &'static str {
        match self {
            Attribute::BirthCity => "birth-city",
            Attribute::Employer => "employer",
            Attribute::Profession => "profession",
            Attribute::BirthYear => "birth-year",
            Attribute::Hobby => "hobby",
            Attribute::Headquarters => "headquarters",
            Attribute::Industry => "industry",
            Attribute::FoundedYear => "founded-year",
        }
    }

    pub fn kind(self) -> EntityKind {
        if Attribute::PERSON.contains(&self) { EntityKind::Person } else { EntityKind::Organisation }
    }

    /// The attributes of an entity kind, in fact order.
    pub fn of(kind: EntityKind) -> &'static [Attribute] {
        match kind {
            EntityKind::Person => &Attribute::PERSON,
            EntityKind::Organisation => &Attribute::ORGANISATION,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// The index in [`World::entities`].
    pub id: usize,
    pub kind: EntityKind,
    pub name: String,
    pub population: Population,
    /// How many corpus documents mention the entity (1..=`max_popularity`).
    pub popularity: usize,
    /// One value per attribute of the kind, in [`Attribute::of`] order.
    pub facts: Vec<(Attribute, String)>,
}

impl Entity {
    /// The value of `a`, if the entity has that attribute.
    pub fn fact(&self, a: Attribute) -> Option<&str> {
        self.facts.iter().find(|(b, _)| *b == a).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// `doc-<entity>-<k>` for the corpus, `par<round>-<entity>` for paraphrases.
    pub id: String,
    pub entity: usize,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phrasing {
    /// A question template that training data uses.
    Seen,
    /// A template only ever used in evaluation.
    HeldOut,
}

impl Phrasing {
    /// "seen" or "held-out" (the [`crate::task::QaItem::phrasing`] labels).
    pub fn label(self) -> &'static str {
        match self {
            Phrasing::Seen => "seen",
            Phrasing::HeldOut => "held-out",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub entity: usize,
    pub attribute: Attribute,
    pub text: String,
    /// The bare value, e.g. "Quillarn" or "1953".
    pub answer: String,
    /// Four distinct options; `choices[correct] == answer`.
    pub choices: Vec<String>,
    pub correct: usize,
    pub phrasing: Phrasing,
    /// The entity's popularity.
    pub popularity: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct World {
    /// The configuration the world was made with (after [`WorldConfig::repaired`]).
    pub config: WorldConfig,
    /// Populations in order Old, New, Reading; within one, people then organisations.
    pub entities: Vec<Entity>,
    pub places: Vec<String>,
}

/// Tags that keep the random streams of different purposes apart.
pub(crate) mod tag {
    pub const ENTITIES: u64 = 1;
    pub const DOCUMENT: u64 = 2;
    pub const LAYOUT: u64 = 4;
    pub const CHOICES: u64 = 5;
    pub const EVAL_TEMPLATES: u64 = 6;
    pub const TRAIN_TEMPLATES: u64 = 7;
    pub const OLD_SAMPLE: u64 = 8;
    pub const ROUTING: u64 = 9;
}

/// A random stream for one purpose: the seed and `parts` mixed by SplitMix64 steps, so that
/// nearby inputs (entity 3 vs 4, round 0 vs 1) give unrelated streams.
pub(crate) fn stream(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    let mut h = splitmix(seed);
    for &p in parts {
        h = splitmix(h ^ splitmix(p.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
    ChaCha8Rng::seed_from_u64(h)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Popularity 1, 2, 3 and "3 < p ≤ max" with weights 50/25/15/10 %, capped at `max`.
fn draw_popularity(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let u = rng.random_range(0..100u32);
    let p = match u {
        0..50 => 1,
        50..75 => 2,
        75..90 => 3,
        _ if max > 3 => rng.random_range(4..=max),
        _ => 3,
    };
    p.min(max).max(1)
}

impl World {
    /// Make the world. An invalid configuration (see [`WorldConfig::validate`]) is first
    /// [`WorldConfig::repaired`]; `world.config` is what was used.
    pub fn generate(config: WorldConfig) -> World {
        let config = config.repaired();
        let mut names = NameGen::new(templates::reserved_words());
        // One stream for all names, in a fixed order (places, then Old, New, Reading), so that
        // the Old population does not change when the New or Reading sizes do.
        let mut rng = stream(config.seed, &[tag::ENTITIES]);
        let places: Vec<String> = (0..config.places).map(|_| names.place(&mut rng)).collect();
        let mut entities = Vec::new();
        for p in Population::ALL {
            let (n_people, n_orgs) = match p {
                Population::Old => (config.old_people, config.old_orgs),
                Population::New => (config.new_people, config.new_orgs),
                Population::Reading => (config.reading_people, config.reading_orgs),
            };
            let mut prng = stream(config.seed, &[tag::ENTITIES, p.index()]);
            let people_names: Vec<String> = (0..n_people).map(|_| names.person(&mut rng)).collect();
            let org_names: Vec<String> = (0..n_orgs).map(|_| names.organisation(&mut rng)).collect();
            // People first, then organisations; each entity's facts are drawn before its
            // popularity, from the population's own stream.
            let kinds = people_names.iter().map(|n| (EntityKind::Person, n));
            for (kind, name) in kinds.chain(org_names.iter().map(|n| (EntityKind::Organisation, n))) {
                let facts = match kind {
                    EntityKind::Person => vec![
                        (Attribute::BirthCity, places.choose(&mut prng).expect("places ≥ 4").clone()),
                        (
                            Attribute::Employer,
                            org_names.choose(&mut prng).expect("orgs ≥ 4 when people").clone(),
                        ),
                        (
                            Attribute::Profession,
                            PROFESSIONS.choose(&mut prng).expect("non-empty").to_string(),
                        ),
                        (Attribute::BirthYear, prng.random_range(BIRTH_YEARS).to_string()),
                        (Attribute::Hobby, HOBBIES.choose(&mut prng).expect("non-empty").to_string()),
                    ],
                    EntityKind::Organisation => vec![
                        (Attribute::Headquarters, places.choose(&mut prng).expect("places ≥ 4").clone()),
                        (Attribute::Industry, INDUSTRIES.choose(&mut prng).expect("non-empty").to_string()),
                        (Attribute::FoundedYear, prng.random_range(FOUNDED_YEARS).to_string()),
                    ],
                };
                let popularity = draw_popularity(&mut prng, config.max_popularity);
                let id = entities.len();
                entities.push(Entity { id, kind, name: name.clone(), population: p, popularity, facts });
            }
        }
        World { config, entities, places }
    }

    pub fn entities_of(&self, p: Population) -> impl Iterator<Item = &Entity> {
        self.entities.iter().filter(move |e| e.population == p)
    }

    /// The entity with id `id`, if there is one.
    pub fn entity(&self, id: usize) -> Option<&Entity> {
        self.entities.get(id)
    }

    /// The ids of the corpus documents that state an entity's facts (empty for an unknown id).
    pub fn sources(&self, entity: usize) -> Vec<String> {
        match self.entities.get(entity) {
            Some(e) => (0..e.popularity).map(|k| documents::corpus_id(e.id, k)).collect(),
            None => Vec::new(),
        }
    }
}
