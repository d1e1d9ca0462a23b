//! The embedders and the retriever: the hashed embedder's retrieval properties on a small
//! hand-made corpus of fictional people and organisations, its determinism, the BERT wrapper
//! against the runtime, and the retriever against a brute-force cosine over the embedder's own
//! vectors.

use std::path::PathBuf;

use ragtune_compute::{DType, Device};
use ragtune_eval::Passage;
use ragtune_eval::embed::{BertEmbedder, Embedder, HashedConfig, HashedEmbedder};
use ragtune_eval::retrieve::Retriever;

const CORPUS: [&str; 16] = [
    "Mirelda Vostke was born in Karvath in 1931. Mirelda Vostke works as a glassblower for Orrin Foundry, \
     and her hobby is falconry.",
    "Tobin Aschel was born in Lunmere in 1958. Tobin Aschel works as a surveyor for Quell Dynamics, and his \
     hobby is chess.",
    "Iselde Marrow was born in Sebrin in 1944. Iselde Marrow works as a cartographer for Quell Dynamics.",
    "The birthplace of Dace Wintrel is Karvath. Dace Wintrel works as a baker for the Sebrin Guild and was \
     born in 1967.",
    "Orrin Foundry is headquartered in Sebrin. Orrin Foundry was founded in 1877 and builds ships.",
    "Quell Dynamics is headquartered in Karvath. Quell Dynamics was founded in 1902 and weaves textiles.",
    "The Sebrin Guild is headquartered in Lunmere. The Sebrin Guild was founded in 1811 and bakes bread.",
    "The city of Lunmere is known for the river that runs through the old market.",
    "Karvath is a city in the north, and it is where the old glassworks of the region stood.",
    "Which city hosts the annual fair is decided by the guilds of the region each spring.",
    "What is the oldest bridge in Sebrin? It is the stone bridge of the market, built in 1790.",
    "The birthplace of the river is a lake in the hills above Lunmere.",
    // Word-overlap distractors: the questions' common words, none of their names.
    "In which city was the famous clock made? Every city says the clock was made in it, and which city \
     is right nobody knows.",
    "What is the name of the old song? The name of a song is what the singers of the region argue about.",
    "Where does the river work? The river works where the mill is, as it worked for a hundred years.",
    "When was the market founded? The market of the city was founded when the bridge was built.",
];

fn corpus_refs() -> Vec<&'static str> {
    CORPUS.to_vec()
}

fn fitted(config: HashedConfig) -> HashedEmbedder {
    HashedEmbedder::fit(&corpus_refs(), config).unwrap()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// Cosine scores of `query` against every corpus passage, computed from the embedder's rows.
fn scores(e: &dyn Embedder, query: &str) -> Vec<f64> {
    let dim = e.dim();
    let q = e.embed(&[query]).unwrap();
    let rows = e.embed(&corpus_refs()).unwrap();
    rows.chunks(dim).map(|r| dot(&q, r)).collect()
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

#[test]
fn rows_are_unit_length_and_an_empty_text_is_the_zero_row() {
    let e = fitted(HashedConfig::default());
    let rows = e.embed(&["Mirelda Vostke", "a", " ?! ", "Ünïcödé wörds"]).unwrap();
    let dim = e.dim();
    for (i, row) in rows.chunks(dim).enumerate() {
        let norm = dot(row, row).sqrt();
        if i == 2 {
            assert_eq!(norm, 0.0);
        } else {
            assert!((norm - 1.0).abs() < 1e-6, "row {i} has norm {norm}");
        }
    }
}

#[test]
fn embedding_is_deterministic_across_fits_batches_and_thread_counts() {
    let texts = corpus_refs();
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let a = one_thread.install(|| fitted(HashedConfig::default()).embed(&texts).unwrap());
    let b = fitted(HashedConfig::default()).embed(&texts).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "same input, different vectors");
    // A text's vector does not depend on what else is in the batch.
    let e = fitted(HashedConfig::default());
    let alone = e.embed(&[texts[3]]).unwrap();
    assert_eq!(alone, b[3 * e.dim()..4 * e.dim()]);
}

#[test]
fn every_passage_is_nearest_to_itself() {
    let e = fitted(HashedConfig::default());
    for (i, text) in CORPUS.iter().enumerate() {
        let s = scores(&e, text);
        assert_eq!(argmax(&s), i, "passage {i}: scores {s:?}");
        assert!((s[i] - 1.0).abs() < 1e-5);
    }
}

#[test]
fn paraphrased_questions_find_their_entity_over_word_overlap_distractors() {
    let e = fitted(HashedConfig::default());
    // (question, its passage, the distractor that shares most of its words)
    let cases = [
        ("In which city was Mirelda Vostke born?", 0, 12),
        ("What is the birthplace of Iselde Marrow?", 2, 13),
        ("Where does Tobin Aschel work?", 1, 14),
        ("When was Orrin Foundry founded?", 4, 15),
    ];
    for (q, gold, distractor) in cases {
        let s = scores(&e, q);
        assert_eq!(argmax(&s), gold, "{q:?}: scores {s:?}");
        assert!(s[gold] > s[distractor], "{q:?}: the distractor outranks the gold passage: {s:?}");
    }
}

#[test]
fn character_ngrams_match_misspelt_and_inflected_names() {
    let with_chars = fitted(HashedConfig::default());
    let words_only = fitted(HashedConfig { char_weight: 0.0, ..HashedConfig::default() });
    for (q, gold) in [("Mireldah Vostkes", 0), ("Aschels surveying", 1), ("Iseldes Marow", 2)] {
        // Whole words alone see nothing in common: only hash collisions, near zero.
        let w = scores(&words_only, q);
        assert!(w.iter().all(|s| s.abs() < 0.05), "{q:?}: word-only scores {w:?}");
        let c = scores(&with_chars, q);
        assert_eq!(argmax(&c), gold, "{q:?}: scores {c:?}");
        let runner_up = (0..c.len()).filter(|&i| i != gold).map(|i| c[i]).fold(f64::MIN, f64::max);
        assert!(c[gold] > 3.0 * runner_up, "{q:?}: no clear match: {c:?}");
    }
}

fn passages() -> Vec<Passage> {
    CORPUS.iter().enumerate().map(|(i, t)| Passage::new(format!("p{i}"), t.to_string())).collect()
}

/// Best `k` by a brute-force cosine in f64 over the embedder's vectors, ties by index.
fn brute_force(e: &dyn Embedder, questions: &[&str], k: usize) -> Vec<Vec<(usize, f64)>> {
    questions
        .iter()
        .map(|q| {
            let mut s: Vec<(usize, f64)> = scores(e, q).into_iter().enumerate().collect();
            s.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            s.truncate(k);
            s
        })
        .collect()
}

fn assert_matches_brute_force(e: &dyn Embedder, r: &Retriever, questions: &[&str], k: usize) {
    let got = r.search(e, questions, k).unwrap();
    let want = brute_force(e, questions, k);
    assert_eq!(got.len(), questions.len());
    for (q, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), w.len(), "question {q}");
        for ((gi, gs), (wi, ws)) in g.iter().zip(w) {
            assert!((f64::from(*gs) - ws).abs() < 1e-5, "question {q}: score {gs} vs {ws}");
            // Equal indices, unless two passages tie within rounding.
            assert!(
                gi == wi
                    || (f64::from(*gs) - w.iter().find(|x| x.0 == *gi).map_or(f64::NAN, |x| x.1)).abs()
                        < 1e-5
            );
        }
    }
}

#[test]
fn retriever_equals_brute_force_cosine() {
    let e = fitted(HashedConfig { dim: 4096, ..HashedConfig::default() });
    let r = Retriever::build(&e, &passages(), &Device::Cpu).unwrap();
    assert_eq!(r.len(), CORPUS.len());
    let questions = ["Where was Tobin Aschel born?", "glassblower", "Which company weaves textiles?", "?"];
    for k in [1, 3, CORPUS.len(), CORPUS.len() + 5] {
        assert_matches_brute_force(&e, &r, &questions, k);
    }
    assert!(r.search(&e, &questions, 0).is_err(), "k = 0 must be an error");
    assert!(r.search(&e, &[], 3).unwrap().is_empty());
}

#[test]
fn retriever_refuses_another_embedder() {
    let e = fitted(HashedConfig { dim: 4096, ..HashedConfig::default() });
    let other = fitted(HashedConfig { dim: 2048, ..HashedConfig::default() });
    let r = Retriever::build(&e, &passages(), &Device::Cpu).unwrap();
    let err = r.search(&other, &["Tobin"], 1).unwrap_err().to_string();
    assert!(err.contains("hashed-4096") && err.contains("hashed-2048"), "{err}");
}

#[test]
fn saved_index_size_is_the_file_size() {
    let e = fitted(HashedConfig { dim: 1024, ..HashedConfig::default() });
    let r = Retriever::build(&e, &passages(), &Device::Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("ragtune-eval-retrieval-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("corpus.rtidx");
    let bytes = r.save(&path).unwrap();
    assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
    // At least the f32 vectors themselves.
    assert!(bytes >= (CORPUS.len() * 1024 * 4) as u64, "{bytes} bytes");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn bert_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime/bert-mini/model")
}

#[test]
fn bert_embedder_is_the_runtime_embedder_normalized() {
    let dir = bert_fixture();
    let e = BertEmbedder::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
    let texts = ["Mirelda Vostke was born in Karvath.", "Quell Dynamics weaves textiles.", "x"];
    let rows = Embedder::embed(&e, &texts).unwrap();
    assert_eq!(rows.len(), texts.len() * e.dim());
    let reference = e.embed(&texts, 1).unwrap();
    for (row, r) in rows.chunks(e.dim()).zip(&reference) {
        let norm = dot(r, r).sqrt();
        for (a, b) in row.iter().zip(r) {
            assert!((f64::from(*a) - f64::from(*b) / norm).abs() < 1e-5);
        }
        assert!((dot(row, row).sqrt() - 1.0).abs() < 1e-5);
    }
    assert_eq!(e.name(), "bert:model");
    let r = Retriever::build(&e, &passages(), &Device::Cpu).unwrap();
    assert_matches_brute_force(&e, &r, &["Where was Mirelda Vostke born?", "textiles"], 3);
}
