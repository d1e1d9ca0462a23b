use super::questions::normalise;
use super::sentences::{clean_inline, fact_sentences, paragraphs};
use super::spans::{Kind, spans};
use super::*;

fn passage(id: &str, text: &str) -> Passage {
    Passage::new(id, text)
}

/// The kinds and texts of a sentence's spans.
fn span_texts(sentence: &str) -> Vec<(Kind, String)> {
    spans(sentence).into_iter().map(|s| (s.kind, sentence[s.start..s.end].to_string())).collect()
}

/// Passages on several topics, each with facts of every kind, so every kind finds distractors.
fn prose_corpus() -> Vec<Passage> {
    vec![
        passage(
            "rust.md#1",
            "Rust is a systems programming language focused on safety and speed.\n\
             The language was first released by Mozilla Research in 2015.\n\
             The compiler requires Rust 1.70.0 or later and uses 512 MB of memory.\n\
             Its package manager downloads crates from the Crates Registry on every build.",
        ),
        passage(
            "python.md#1",
            "Python is a dynamic language that favours readable code over clever code.\n\
             The interpreter was first released by Guido van Rossum in 1991.\n\
             The examples need Python 3.11.4 and allocate 64 MB of memory.\n\
             The project keeps its documentation on Read the Docs for every release.",
        ),
        passage(
            "go.md#1",
            "Go is a compiled language with built-in support for concurrent programs.\n\
             The language was first announced by Google Engineering in 2009.\n\
             The toolchain targets Go 1.21.5 and links binaries of 128 MB at most.\n\
             Module proxies cache the source code from Github Enterprise for builds.",
        ),
        passage(
            "json.md#1",
            "JSON stands for JavaScript Object Notation in every specification.\n\
             The format was popularised by Douglas Crockford in 2001.\n\
             The parser in version 2.4.1 handles documents of 256 MB in one pass.\n\
             The reference parser keeps its test suite at the Internet Engineering Task Force.",
        ),
        passage(
            "toml.md#1",
            "TOML stands for Tom's Obvious Minimal Language in its own documentation.\n\
             The format was created by Tom Preston-Werner in 2013.\n\
             The crate supports TOML version 1.0.0 and parses 32 MB of text per second.",
        ),
    ]
}

#[test]
fn markdown_noise_yields_no_sentences() {
    let md = "---\ntitle: Front Matter Is Here\nauthor: Someone Important\n---\n\
              # A Heading That Is Only A Heading\n\n\
              Heading Underlined Like So\n==========================\n\n\
              [![Build Status](https://ci.example.com/badge.svg)](https://ci.example.com)\n\
              [![Crates.io](https://img.shields.io/crates/v/foo.svg)](https://crates.io/crates/foo)\n\n\
              ```rust\nfn main() { println!(\"The answer was released in 2015.\"); }\n```\n\n\
              | Name | Year |\n|------|------|\n| Rust Language | 2015 |\n\n\
              <p align=\"center\"><img src=\"logo.png\" alt=\"The Logo Was Drawn In 2019.\"></p>\n\n\
              <!-- The comment says Mozilla Research shipped it in 2015. -->\n\n\
              [docs]: https://docs.rs/foo\n\n    indented code block mentions Mozilla Research in 2015.\n\n\
              ## Installation\n";
    assert!(
        paragraphs(md).iter().all(|p| !p.contains("2015") && !p.contains("2019")),
        "{:?}",
        paragraphs(md)
    );
    assert_eq!(fact_sentences(md), Vec::<String>::new());
    let qs = generate(&[passage("noise.md#1", md)], &GenerateSettings::default());
    assert!(qs.is_empty(), "{qs:?}");
}

#[test]
fn markdown_is_stripped_to_prose() {
    let md = "# Title\n\n- **Fast**: the parser was written by [Ada Lovelace](https://example.com/ada) in 1843.\n\
              * [ ] The `serde_json` crate is a _small_ dependency of the Tokio Runtime.\n\
              > Quoted text mentions the Apache Software Foundation as a sponsor.\n";
    let paras = paragraphs(md);
    assert_eq!(
        paras,
        [
            "Fast: the parser was written by Ada Lovelace in 1843.",
            "The `serde_json` crate is a small dependency of the Tokio Runtime.",
            "Quoted text mentions the Apache Software Foundation as a sponsor.",
        ]
    );
    assert_eq!(clean_inline("see ![logo](a.png) and <b>bold</b> at https://x.y now"), "see and bold at now");
    // snake_case survives, emphasis does not.
    assert_eq!(clean_inline("_a_ `b_c` d_e"), "a `b_c` d_e");
}

#[test]
fn one_line_passages_drop_fences_headings_and_tables() {
    let text = "# Install Add the crate. ```sh cargo add foo --version 1.2.3 ``` The crate was written by Ada \
                Lovelace in 1843. | a | b | |---|---| The library was ported to Linux Kernel in 1999.";
    let sentences = fact_sentences(text);
    assert_eq!(sentences, ["The crate was written by Ada Lovelace in 1843."], "{sentences:?}");
}

#[test]
fn spans_of_every_kind_are_found() {
    let s = span_texts("The language was first released by Mozilla Research in 2015.");
    assert!(s.contains(&(Kind::Name, "Mozilla Research".into())), "{s:?}");
    assert!(s.contains(&(Kind::Year, "2015".into())), "{s:?}");
    let s = span_texts("The compiler requires Rust 1.70.0 or later and uses 512 MB of memory.");
    assert!(s.contains(&(Kind::Version, "1.70.0".into())), "{s:?}");
    assert!(s.contains(&(Kind::Quantity, "512 MB".into())), "{s:?}");
    assert!(s.contains(&(Kind::Name, "Rust".into())), "{s:?}");
    let s = span_texts("Rust is a systems programming language focused on safety and speed.");
    assert_eq!(s, [(Kind::Term, "Rust".to_string())]);
    let s = span_texts("JSON stands for JavaScript Object Notation in every specification.");
    assert!(
        s.contains(&(Kind::Expansion, "JavaScript Object Notation in every specification".into())),
        "{s:?}"
    );
    let s = span_texts("The encoder calls `Encoder::push()` once per header, about 40 times a second.");
    assert!(s.contains(&(Kind::Code, "Encoder::push()".into())), "{s:?}");
    assert!(
        s.contains(&(Kind::Number, "40".into())) || s.contains(&(Kind::Quantity, "40 times".into())),
        "{s:?}"
    );
    let s = span_texts("The release shipped on March 4, 2021 with v2.0 of the protocol.");
    assert!(s.contains(&(Kind::Date, "March 4, 2021".into())), "{s:?}");
    assert!(s.contains(&(Kind::Version, "v2.0".into())), "{s:?}");
    // The sentence's first word is no name; neither is a capitalised word after `Label:`.
    let s = span_texts("Mozilla shipped the first release of the compiler: Supports generics.");
    assert!(s.iter().all(|(k, t)| *k != Kind::Name || (t != "Mozilla" && t != "Supports")), "{s:?}");
}

#[test]
fn fact_sentences_become_the_expected_questions() {
    let qs = generate(&prose_corpus(), &GenerateSettings { per_passage: 10, ..GenerateSettings::default() });
    let find = |answer: &str| qs.iter().find(|q| q.answer == answer);
    // A defined term: a wh-question.
    let rust =
        find("Rust").filter(|q| q.question.starts_with("What is")).expect("a definition question on Rust");
    assert_eq!(rust.question, "What is a systems programming language focused on safety and speed?");
    assert_eq!(rust.sources, ["rust.md#1"]);
    // A year after `in`: a wh-question.
    let year = find("2015").expect("a question on 2015");
    assert_eq!(year.question, "The language was first released by Mozilla Research in which year?");
    // A name: a cloze question.
    let name = find("Mozilla Research").expect("a question on Mozilla Research");
    assert_eq!(name.question, "Fill in the blank: The language was first released by ____ in 2015.");
    // A version.
    let version = find("1.70.0").expect("a question on 1.70.0");
    assert!(version.question.contains("Rust ____ or later"), "{}", version.question);
    // An abbreviation.
    let json = qs.iter().find(|q| q.question == "What does JSON stand for?").expect("JSON's expansion");
    assert!(json.answer.starts_with("JavaScript Object Notation"));
}

#[test]
fn answers_are_spans_of_their_source_and_options_are_sound() {
    let corpus = prose_corpus();
    let qs = generate(&corpus, &GenerateSettings { per_passage: 10, ..GenerateSettings::default() });
    assert!(qs.len() >= 15, "{} questions", qs.len());
    let mut ids = HashSet::new();
    let mut questions = HashSet::new();
    for q in &qs {
        assert!(ids.insert(q.id.clone()) && questions.insert(normalise(&q.question)), "{q:?}");
        let [source] = q.sources.as_slice() else { panic!("one source: {q:?}") };
        let text = &corpus.iter().find(|p| &p.id == source).unwrap().text;
        assert!(text.contains(&q.answer), "{:?} not in {source}", q.answer);
        assert_eq!(q.choices.len(), 4, "{q:?}");
        assert_eq!(q.choices[q.correct.unwrap()], q.answer);
        let norms: HashSet<String> = q.choices.iter().map(|c| normalise(c)).collect();
        assert_eq!(norms.len(), 4, "options distinct after normalisation: {:?}", q.choices);
        assert!(q.question.chars().count() <= questions::MAX_QUESTION_CHARS);
        // Distractors come from other passages (or are moved numbers): never from the source.
        for (i, c) in q.choices.iter().enumerate() {
            if i != q.correct.unwrap() {
                assert!(
                    !text.contains(c.as_str()) || c.len() <= 2,
                    "distractor {c:?} is in the source: {q:?}"
                );
            }
        }
    }
    // Same kind: a year's options are years, a version's versions, a quantity's in MB.
    for q in &qs {
        if q.answer.len() == 4 && q.answer.starts_with(['1', '2']) && q.answer.parse::<u32>().is_ok() {
            assert!(q.choices.iter().all(|c| c.len() == 4 && c.parse::<u32>().is_ok()), "{:?}", q.choices);
        }
        if q.answer.ends_with(" MB") {
            assert!(q.choices.iter().all(|c| c.ends_with(" MB")), "{:?}", q.choices);
        }
        if q.answer.matches('.').count() == 2 {
            assert!(q.choices.iter().all(|c| c.matches('.').count() >= 1), "{:?}", q.choices);
        }
    }
}

#[test]
fn per_passage_and_max_questions_bound_the_set() {
    let corpus = prose_corpus();
    let one = generate(&corpus, &GenerateSettings { per_passage: 1, ..GenerateSettings::default() });
    assert_eq!(one.len(), corpus.len());
    let few = generate(&corpus, &GenerateSettings { per_passage: 10, max_questions: 7, seed: 0 });
    assert_eq!(few.len(), 7);
    // Spread over the passages, not the first passages' questions.
    let sources: HashSet<&String> = few.iter().map(|q| &q.sources[0]).collect();
    assert_eq!(sources.len(), corpus.len());
}

#[test]
fn the_seed_fixes_the_output_and_another_seed_reorders_it() {
    let corpus = prose_corpus();
    let settings = |seed| GenerateSettings { per_passage: 10, max_questions: 500, seed };
    let a = generate(&corpus, &settings(1));
    assert_eq!(a, generate(&corpus, &settings(1)));
    let b = generate(&corpus, &settings(2));
    assert_ne!(a, b);
    let order = |qs: &[QaItem]| qs.iter().map(|q| q.question.clone()).collect::<Vec<_>>();
    assert_ne!(order(&a), order(&b), "another seed, another order");
    let positions = |qs: &[QaItem]| qs.iter().map(|q| q.correct.unwrap()).collect::<HashSet<_>>();
    assert!(positions(&a).len() >= 3, "the right option moves about: {:?}", positions(&a));
}

#[test]
fn the_split_keeps_each_passage_on_one_side() {
    // 40 passages, 3 questions each; a few questions with two sources tie passages together.
    let mut qs = Vec::new();
    for p in 0..40 {
        for k in 0..3 {
            let mut sources = vec![format!("doc{p}.md#1")];
            if k == 2 && p % 10 == 0 {
                sources.push(format!("doc{}.md#1", p + 1));
            }
            qs.push(QaItem {
                id: format!("q{p}-{k}"),
                question: format!("Question {k} on {p}?"),
                answer: "x".into(),
                choices: Vec::new(),
                correct: None,
                sources,
                phrasing: None,
                popularity: None,
            });
        }
    }
    for seed in [0, 1, 7] {
        let splits = split_by_source(&qs, &[], 0.3, seed);
        let dev = splits.iter().filter(|&&s| s == Split::Dev).count();
        assert!((30..=42).contains(&dev), "seed {seed}: {dev} dev of 120");
        let mut side: std::collections::HashMap<&str, Split> = std::collections::HashMap::new();
        for (q, s) in qs.iter().zip(&splits) {
            for src in &q.sources {
                if let Some(prev) = side.insert(src, *s) {
                    assert_eq!(prev, *s, "seed {seed}: {src} on both sides");
                }
            }
        }
        assert_eq!(splits, split_by_source(&qs, &[], 0.3, seed), "deterministic");
    }
    assert_ne!(split_by_source(&qs, &[], 0.3, 0), split_by_source(&qs, &[], 0.3, 1));
    // No share, or a single passage: everything is test. Pins win.
    assert!(split_by_source(&qs, &[], 0.0, 0).iter().all(|&s| s == Split::Test));
    assert!(split_by_source(&qs[..3], &[], 0.5, 0).iter().all(|&s| s == Split::Test));
    let pinned = vec![Some(Split::Dev); 2];
    let splits = split_by_source(&qs, &pinned, 0.0, 0);
    assert_eq!(&splits[..3], [Split::Dev, Split::Dev, Split::Test]);
}

#[test]
fn jsonl_lines_carry_every_field() {
    let qs = generate(&prose_corpus(), &GenerateSettings::default());
    let splits = split_by_source(&qs, &[], 0.3, 0);
    let text = to_jsonl(&qs, &splits);
    assert_eq!(text.lines().count(), qs.len());
    for (line, (q, s)) in text.lines().zip(qs.iter().zip(&splits)) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["question"], q.question.as_str());
        assert_eq!(v["answer"], q.answer.as_str());
        assert_eq!(v["correct"], q.correct.unwrap());
        assert_eq!(v["source"], q.sources[0].as_str());
        assert_eq!(v["split"], s.name());
        assert_eq!(v["choices"].as_array().unwrap().len(), 4);
    }
}
