//! Properties of the generated world, checked against the templates and the config rather than
//! against the generator's own bookkeeping.

use std::collections::{BTreeMap, BTreeSet};

use super::templates::{SEEN_TEMPLATES, fill, question_templates};
use super::*;

fn small() -> WorldConfig {
    WorldConfig {
        seed: 11,
        old_people: 60,
        old_orgs: 8,
        new_people: 20,
        new_orgs: 5,
        reading_people: 40,
        reading_orgs: 6,
        places: 12,
        max_popularity: 4,
    }
}

/// Everything the world produces, serialized.
fn everything(w: &World) -> String {
    let mut parts = vec![serde_json::to_string(w).unwrap()];
    for p in Population::ALL {
        parts.push(serde_json::to_string(&w.documents(p)).unwrap());
        parts.push(serde_json::to_string(&w.paraphrases(p, 0)).unwrap());
        parts.push(serde_json::to_string(&w.paraphrases(p, 3)).unwrap());
        parts.push(serde_json::to_string(&w.questions(p)).unwrap());
        parts.push(serde_json::to_string(&w.training_questions(p, 3, 5)).unwrap());
    }
    parts.join("\n")
}

#[test]
fn same_seed_same_world_other_seed_other_world() {
    let a = everything(&World::generate(small()));
    let b = everything(&World::generate(small()));
    assert_eq!(a, b);
    let c = everything(&World::generate(WorldConfig { seed: 12, ..small() }));
    assert_ne!(a, c);
    // A different seed changes names, not just an order.
    let names = |w: &World| w.entities.iter().map(|e| e.name.clone()).collect::<BTreeSet<_>>();
    let (wa, wc) = (World::generate(small()), World::generate(WorldConfig { seed: 12, ..small() }));
    assert!(names(&wa).intersection(&names(&wc)).count() < wa.entities.len() / 4);
}

#[test]
fn default_config_has_the_documented_sizes() {
    let w = World::generate(WorldConfig::default());
    let count = |p, k| w.entities_of(p).filter(|e| e.kind == k).count();
    assert_eq!(count(Population::Old, EntityKind::Person), 200);
    assert_eq!(count(Population::Old, EntityKind::Organisation), 24);
    assert_eq!(count(Population::New, EntityKind::Person), 40);
    assert_eq!(count(Population::New, EntityKind::Organisation), 10);
    assert_eq!(count(Population::Reading, EntityKind::Person), 400);
    assert_eq!(count(Population::Reading, EntityKind::Organisation), 40);
    assert_eq!(w.places.len(), 40);
    for (i, e) in w.entities.iter().enumerate() {
        assert_eq!(e.id, i);
        let attrs: Vec<Attribute> = e.facts.iter().map(|(a, _)| *a).collect();
        assert_eq!(attrs, Attribute::of(e.kind).to_vec());
        assert!(attrs.iter().all(|a| a.kind() == e.kind));
    }
}

#[test]
fn facts_take_values_from_their_ranges_and_employers_from_the_population() {
    let w = World::generate(small());
    for e in &w.entities {
        for (a, v) in &e.facts {
            match a {
                Attribute::BirthCity | Attribute::Headquarters => assert!(w.places.contains(v)),
                Attribute::Employer => {
                    let org = w.entities.iter().find(|o| &o.name == v).expect("employer is an entity");
                    assert_eq!(org.kind, EntityKind::Organisation);
                    assert_eq!(org.population, e.population);
                }
                Attribute::Profession => assert!(templates::PROFESSIONS.contains(&v.as_str())),
                Attribute::Hobby => assert!(templates::HOBBIES.contains(&v.as_str())),
                Attribute::Industry => assert!(templates::INDUSTRIES.contains(&v.as_str())),
                Attribute::BirthYear => assert!((1900..=1999).contains(&v.parse::<u32>().unwrap())),
                Attribute::FoundedYear => assert!((1800..=1999).contains(&v.parse::<u32>().unwrap())),
            }
        }
    }
}

#[test]
fn names_are_unique_and_new_names_never_occur_in_old_or_reading_text() {
    let w = World::generate(WorldConfig::default());
    let names: BTreeSet<&str> =
        w.entities.iter().map(|e| e.name.as_str()).chain(w.places.iter().map(|s| s.as_str())).collect();
    assert_eq!(names.len(), w.entities.len() + w.places.len());
    let new: Vec<&str> = w.entities_of(Population::New).map(|e| e.name.as_str()).collect();
    assert_eq!(new.len(), 50);
    for p in [Population::Old, Population::Reading] {
        let mut texts: Vec<String> = w.documents(p).into_iter().map(|d| d.text).collect();
        texts.extend(w.paraphrases(p, 0).into_iter().map(|d| d.text));
        texts.extend(w.paraphrases(p, 7).into_iter().map(|d| d.text));
        for q in w.questions(p).into_iter().chain(w.training_questions(p, 4, 0)) {
            texts.push(q.text);
            texts.extend(q.choices);
        }
        for t in &texts {
            for n in &new {
                assert!(!t.contains(n), "New name {n} in {} text: {t}", p.label());
            }
        }
    }
    // The check above can fail: an Old text does mention its own names.
    let old_name = &w.entities_of(Population::Old).next().unwrap().name;
    assert!(w.documents(Population::Old).iter().any(|d| d.text.contains(old_name.as_str())));
}

#[test]
fn names_have_two_or_three_syllable_parts() {
    let w = World::generate(small());
    let vowel_groups = |s: &str| {
        let mut n = 0;
        let mut prev = false;
        for c in s.to_ascii_lowercase().chars() {
            let v = "aeiouy".contains(c);
            n += usize::from(v && !prev);
            prev = v;
        }
        n
    };
    for e in w.entities.iter().filter(|e| e.kind == EntityKind::Person) {
        let parts: Vec<&str> = e.name.split(' ').collect();
        assert_eq!(parts.len(), 2, "{}", e.name);
        for p in parts {
            assert!((2..=3).contains(&vowel_groups(p)), "{}", e.name);
        }
    }
    for e in w.entities.iter().filter(|e| e.kind == EntityKind::Organisation) {
        let (stem, suffix) = e.name.split_once(' ').unwrap();
        assert!(names::ORG_SUFFIXES.contains(&suffix), "{}", e.name);
        assert!((2..=3).contains(&vowel_groups(stem)), "{}", e.name);
    }
}

/// The sentences of a document (no value contains a full stop).
fn sentences(text: &str) -> Vec<&str> {
    text.split_terminator(". ").collect()
}

#[test]
fn every_document_states_every_fact_and_names_the_entity_in_every_sentence() {
    let w = World::generate(small());
    for p in Population::ALL {
        let docs = w.documents(p).into_iter().chain((0..6).flat_map(|r| w.paraphrases(p, r)));
        for d in docs {
            let e = &w.entities[d.entity];
            assert_eq!(e.population, p);
            for (a, v) in &e.facts {
                assert!(d.text.contains(v.as_str()), "{a:?} = {v} missing from {}", d.text);
            }
            let s = sentences(&d.text);
            let expected = e.facts.len() + if e.kind == EntityKind::Organisation { 2 } else { 1 };
            assert_eq!(s.len(), expected, "{}", d.text);
            for sentence in s {
                assert!(sentence.contains(e.name.as_str()), "{sentence}");
            }
            let words = d.text.split_whitespace().count();
            assert!((30..=90).contains(&words), "{words} words: {}", d.text);
        }
    }
}

#[test]
fn documents_average_forty_to_eighty_words() {
    let w = World::generate(WorldConfig::default());
    let docs = w.documents(Population::Old);
    let words: usize = docs.iter().map(|d| d.text.split_whitespace().count()).sum();
    let mean = words as f64 / docs.len() as f64;
    assert!((40.0..=80.0).contains(&mean), "mean {mean}");
}

#[test]
fn popularity_is_the_number_of_corpus_documents_and_sources_name_them() {
    let w = World::generate(WorldConfig::default());
    for p in Population::ALL {
        let docs = w.documents(p);
        let mut per: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for d in &docs {
            per.entry(d.entity).or_default().push(d.id.clone());
        }
        for e in w.entities_of(p) {
            let ids = per.get(&e.id).cloned().unwrap_or_default();
            assert_eq!(ids.len(), e.popularity, "{}", e.name);
            assert_eq!(w.sources(e.id), ids);
            assert_eq!(ids[0], format!("doc-{}-0", e.id));
        }
        let ids: BTreeSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids.len(), docs.len());
    }
    assert!(w.sources(w.entities.len()).is_empty());
}

#[test]
fn popularity_is_skewed_toward_one() {
    let w = World::generate(WorldConfig::default());
    let n = w.entities.len() as f64;
    let share = |p: usize| w.entities.iter().filter(|e| e.popularity == p).count() as f64 / n;
    // Weights 50/25/15/10 % over 714 entities: a few standard errors (≈ 2 %) of slack.
    assert!((0.43..0.57).contains(&share(1)), "{}", share(1));
    assert!((0.19..0.31).contains(&share(2)), "{}", share(2));
    assert!((0.10..0.20).contains(&share(3)), "{}", share(3));
    assert!((0.06..0.14).contains(&share(4)), "{}", share(4));
    assert!(w.entities.iter().all(|e| (1..=4).contains(&e.popularity)));
    let capped = World::generate(WorldConfig { max_popularity: 2, ..small() });
    assert!(capped.entities.iter().all(|e| (1..=2).contains(&e.popularity)));
    assert!(capped.entities.iter().any(|e| e.popularity == 2));
}

#[test]
fn renderings_of_an_entity_differ() {
    let w = World::generate(small());
    for p in Population::ALL {
        let mut texts: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for d in w.documents(p) {
            texts.entry(d.entity).or_default().push(d.text);
        }
        let corpus_texts: BTreeSet<String> = texts.values().flatten().cloned().collect();
        for r in 0..8 {
            for d in w.paraphrases(p, r) {
                assert_eq!(d.id, format!("par{r}-{}", d.entity));
                assert!(!corpus_texts.contains(&d.text), "round {r} repeats a corpus document: {}", d.text);
                texts.get_mut(&d.entity).unwrap().push(d.text);
            }
        }
        for (id, t) in &texts {
            let distinct: BTreeSet<&String> = t.iter().collect();
            assert_eq!(distinct.len(), t.len(), "entity {id} has repeated renderings");
        }
        // Within the first five renderings every fact is stated by a different sentence: no
        // sentence other than the introduction repeats.
        for (id, t) in &texts {
            let e = &w.entities[*id];
            let mut seen = BTreeSet::new();
            for text in t.iter().take(5) {
                for s in sentences(text).into_iter().skip(1).take(e.facts.len()) {
                    assert!(seen.insert(s.to_string()), "entity {id}: repeated sentence {s}");
                }
            }
        }
    }
}

/// The index of the question template that `q.text` was filled from.
fn template_of(w: &World, q: &Question) -> usize {
    let name = &w.entities[q.entity].name;
    question_templates(q.attribute)
        .iter()
        .position(|t| fill(t, name, "") == q.text)
        .unwrap_or_else(|| panic!("no template gives {}", q.text))
}

#[test]
fn questions_have_four_distinct_choices_with_the_answer_at_correct() {
    let w = World::generate(small());
    for p in Population::ALL {
        let pop_orgs: BTreeSet<&str> = w
            .entities_of(p)
            .filter(|e| e.kind == EntityKind::Organisation)
            .map(|e| e.name.as_str())
            .collect();
        let qs: Vec<Question> = w.questions(p).into_iter().chain(w.training_questions(p, 3, 9)).collect();
        for q in &qs {
            let e = &w.entities[q.entity];
            assert_eq!(e.fact(q.attribute), Some(q.answer.as_str()));
            assert_eq!(q.popularity, e.popularity);
            assert_eq!(q.choices.len(), 4);
            assert_eq!(q.choices[q.correct], q.answer);
            let distinct: BTreeSet<&String> = q.choices.iter().collect();
            assert_eq!(distinct.len(), 4, "{:?}", q.choices);
            for c in &q.choices {
                match q.attribute {
                    Attribute::Employer => assert!(pop_orgs.contains(c.as_str())),
                    Attribute::BirthCity | Attribute::Headquarters => assert!(w.places.contains(c)),
                    Attribute::BirthYear | Attribute::FoundedYear => assert!(c.parse::<u32>().is_ok()),
                    _ => {}
                }
            }
            assert!(q.text.contains(e.name.as_str()));
        }
        // The answer is not always in the same slot.
        let slots: BTreeSet<usize> = qs.iter().map(|q| q.correct).collect();
        assert_eq!(slots.len(), 4);
    }
}

#[test]
fn evaluation_questions_are_one_seen_and_one_held_out_per_fact() {
    let w = World::generate(small());
    let qs = w.questions(Population::New);
    let facts: usize = w.entities_of(Population::New).map(|e| e.facts.len()).sum();
    assert_eq!(qs.len(), 2 * facts);
    let mut per: BTreeMap<(usize, Attribute), Vec<Phrasing>> = BTreeMap::new();
    for q in &qs {
        let t = template_of(&w, q);
        assert_eq!(q.phrasing == Phrasing::Seen, t < SEEN_TEMPLATES, "{}", q.text);
        per.entry((q.entity, q.attribute)).or_default().push(q.phrasing);
    }
    assert!(per.values().all(|v| v == &vec![Phrasing::Seen, Phrasing::HeldOut]));
    let ids: BTreeSet<&str> = qs.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids.len(), qs.len());
    // Templates are drawn, not fixed: several seen templates are in use.
    let used: BTreeSet<usize> =
        qs.iter().filter(|q| q.phrasing == Phrasing::Seen).map(|q| template_of(&w, q)).collect();
    assert_eq!(used.len(), SEEN_TEMPLATES);
}

#[test]
fn training_questions_use_only_seen_templates_distinct_while_they_last() {
    let w = World::generate(small());
    for per_fact in [1, 3, 4, 6] {
        let qs = w.training_questions(Population::Reading, per_fact, 2);
        let facts: usize = w.entities_of(Population::Reading).map(|e| e.facts.len()).sum();
        assert_eq!(qs.len(), per_fact * facts);
        let mut per: BTreeMap<(usize, Attribute), Vec<usize>> = BTreeMap::new();
        for q in &qs {
            assert_eq!(q.phrasing, Phrasing::Seen);
            let t = template_of(&w, q);
            assert!(t < SEEN_TEMPLATES, "held-out template in training: {}", q.text);
            per.entry((q.entity, q.attribute)).or_default().push(t);
        }
        for ts in per.values() {
            let distinct: BTreeSet<&usize> = ts.iter().collect();
            assert_eq!(distinct.len(), per_fact.min(SEEN_TEMPLATES));
        }
        let ids: BTreeSet<&str> = qs.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids.len(), qs.len());
    }
    // The held-out questions' texts never occur among training questions of any salt.
    let held: BTreeSet<String> = w
        .questions(Population::Old)
        .into_iter()
        .filter(|q| q.phrasing == Phrasing::HeldOut)
        .map(|q| q.text)
        .collect();
    for salt in 0..3 {
        assert!(w.training_questions(Population::Old, 8, salt).iter().all(|q| !held.contains(&q.text)));
    }
}

#[test]
fn old_population_does_not_depend_on_the_new_and_reading_sizes() {
    let a = World::generate(small());
    let b = World::generate(WorldConfig { new_people: 33, reading_orgs: 9, ..small() });
    let old = |w: &World| w.entities_of(Population::Old).cloned().collect::<Vec<_>>();
    assert_eq!(old(&a), old(&b));
    assert_eq!(a.documents(Population::Old), b.documents(Population::Old));
}

#[test]
fn bad_configs_are_errors_and_generate_repairs_them() {
    assert!(WorldConfig::default().validate().is_ok());
    let bad = WorldConfig { new_orgs: 2, ..small() };
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("new_orgs") && err.contains('4'), "{err}");
    assert!(WorldConfig { places: 3, ..small() }.validate().unwrap_err().to_string().contains("places"));
    assert!(WorldConfig { max_popularity: 0, ..small() }.validate().is_err());
    // No people: no organisations needed.
    assert!(WorldConfig { new_people: 0, new_orgs: 0, ..small() }.validate().is_ok());

    let tiny = WorldConfig { new_orgs: 1, places: 1, max_popularity: 0, old_people: 2, ..small() };
    let w = World::generate(tiny);
    assert!(w.config.validate().is_ok());
    assert_eq!(w.config.new_orgs, 4);
    assert_eq!(w.places.len(), 4);
    for p in Population::ALL {
        for q in w.questions(p) {
            let distinct: BTreeSet<&String> = q.choices.iter().collect();
            assert_eq!(distinct.len(), 4, "{:?}", q.choices);
            assert_eq!(q.choices[q.correct], q.answer);
        }
    }
}

#[test]
fn config_round_trips_through_toml_with_defaults() {
    let c: WorldConfig = toml::from_str("seed = 3\nnew_people = 5").unwrap();
    assert_eq!(c, WorldConfig { seed: 3, new_people: 5, ..WorldConfig::default() });
    assert!(toml::from_str::<WorldConfig>("sed = 3").is_err());
}

#[test]
fn demo_task_maps_the_new_population() {
    let w = World::generate(small());
    let opts = DemoTaskOptions { paraphrase_rounds: 3, raft_per_fact: 2, old_question_limit: 50 };
    let t = demo_task(&w, &opts);
    let new: Vec<&Entity> = w.entities_of(Population::New).collect();
    let facts: usize = new.iter().map(|e| e.facts.len()).sum();
    assert_eq!(t.corpus.len(), new.iter().map(|e| e.popularity).sum::<usize>());
    assert_eq!(t.questions.len(), 2 * facts);
    assert_eq!(t.paraphrases.len(), 3);
    assert!(t.paraphrases.iter().all(|r| r.len() == new.len()));
    assert_eq!(t.raft_train.len(), 2 * facts);
    assert_eq!(t.old_questions.len(), 50);

    let corpus: BTreeSet<&str> = t.corpus.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(corpus.len(), t.corpus.len());
    for q in t.questions.iter().chain(&t.raft_train) {
        assert!(!q.sources.is_empty());
        for s in &q.sources {
            let passage = t.corpus.iter().find(|p| &p.id == s).expect("source resolves to a corpus passage");
            assert!(passage.text.contains(q.answer.as_str()), "{} not in {}", q.answer, passage.text);
        }
        assert_eq!(q.choices[q.correct.unwrap()], q.answer);
        assert_eq!(Some(q.sources.len()), q.popularity);
    }
    let labels: BTreeSet<&str> = t.questions.iter().map(|q| q.phrasing.as_deref().unwrap()).collect();
    assert_eq!(labels, BTreeSet::from(["held-out", "seen"]));
    assert!(t.raft_train.iter().all(|q| q.phrasing.as_deref() == Some("seen")));

    let old_docs: BTreeMap<String, String> =
        w.documents(Population::Old).into_iter().map(|d| (d.id, d.text)).collect();
    let ids: BTreeSet<&str> = t.old_questions.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids.len(), 50);
    for q in &t.old_questions {
        assert_eq!(q.phrasing.as_deref(), Some("seen"));
        for s in &q.sources {
            assert!(old_docs[s].contains(q.answer.as_str()));
        }
    }
    // The sample is spread over the population, not its first 50 questions.
    let entities: BTreeSet<String> =
        t.old_questions.iter().map(|q| q.id.split('-').nth(1).unwrap().to_string()).collect();
    assert!(entities.len() > 20, "{}", entities.len());
    assert_eq!(demo_task(&w, &opts), t);
    let all = demo_task(&w, &DemoTaskOptions { old_question_limit: 10_000, ..opts });
    let old_seen = w.questions(Population::Old).iter().filter(|q| q.phrasing == Phrasing::Seen).count();
    assert_eq!(all.old_questions.len(), old_seen);
}

#[test]
fn new_names_are_made_of_pieces_that_old_text_already_has() {
    // A tokenizer trained on Old text then splits New names into known subwords: every letter
    // pair of a New name occurs somewhere in the Old documents.
    let w = World::generate(WorldConfig::default());
    let old_text: String =
        w.documents(Population::Old).into_iter().map(|d| d.text.to_ascii_lowercase()).collect();
    let mut missing = Vec::new();
    for e in w.entities_of(Population::New) {
        let name = e.name.to_ascii_lowercase();
        for word in name.split(' ') {
            let chars: Vec<char> = word.chars().collect();
            for pair in chars.windows(2) {
                let pair: String = pair.iter().collect();
                if !old_text.contains(&pair) {
                    missing.push(format!("{pair} in {}", e.name));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{missing:?}");
}
