//! [`HashedEmbedder`]: TF-IDF over hashed word and character n-grams — a retrieval embedder that
//! needs no weights, is deterministic, and is fitted on the corpus in a fraction of a second.
//!
//! A text becomes three families of features:
//! - word unigrams and word bigrams: the text lowercased (Unicode `to_lowercase`) and split on
//!   every character that is not alphanumeric (Unicode `is_alphanumeric`, so accented letters,
//!   Cyrillic or CJK stay inside words);
//! - character n-grams (3 to 5 by default) of each word wrapped in boundary markers, `<venn>` →
//!   `<ve`, `ven`, `enn`, `nn>`, `<ven`, …, so an inflected or misspelt name ("Venns",
//!   "Ven") still shares most of its n-grams with the original.
//!
//! Each feature is hashed with FNV-1a 64 over a family tag byte and its UTF-8 bytes, then mixed
//! by MurmurHash3's 64-bit finalizer (`fmix64`) because FNV's low bits are weak and the sign is
//! taken from the lowest bit. The high bits pick one of `dim` buckets (multiply-shift range
//! reduction), the lowest bit a sign (±1): with signs, colliding features cancel on average
//! instead of piling up, so inner products stay unbiased (the "hashing trick" of Weinberger et
//! al. 2009). Nothing depends on std's randomly seeded hasher, so vectors are identical across
//! runs, processes and machines.
//!
//! A feature's weight is sublinear TF × smoothed IDF: `(1 + ln tf) · ln((1 + n) / (1 + df))`,
//! with `n` the number of corpus texts and `df` the number that contain the feature. A feature
//! in every text weighs 0 (it tells no passage apart; scikit-learn's extra `+ 1` would keep it,
//! and measured slightly worse, see below); one the corpus never contains gets the maximum IDF,
//! `ln(1 + n)`: it matches nothing, so it only lowers the question's similarity to every passage
//! alike. Each family's weights are scaled to L2 norm `family weight`, and the whole vector to
//! norm 1; so, collisions aside, the cosine of two texts is the weighted mean of their
//! per-family cosines with weights `family weight²` — without that, the many character n-grams
//! of a text would drown its words.
//!
//! ## The defaults, measured
//!
//! `cargo run --profile test -p ragtune-eval --example retrieval_quality` on the synthetic
//! world's New population (its questions against its documents; a hit when a source document
//! of the question is retrieved), 2-core AMD EPYC, CPU. The world's questions name their entity
//! in full, so clean recall@1 is 1.000 for every width from 4096 up (0.985–0.991 at 1024); the
//! column that tells settings apart asks the same questions with a typo in every name (the
//! middle letter dropped). Recall@1 with typos:
//!
//! | docs | dim 4096 | dim 8192 | dim 16384 | dim 65536 |
//! |---|---|---|---|---|
//! | 91 | 0.830 | 0.854 | 0.863 | 0.867 |
//! | 923 | 0.731 | 0.753 | 0.824 | |
//! | 4,520 | 0.634 | 0.674 | 0.738 | |
//!
//! At 91 documents, 16384 wide: words only 0.278, no character n-grams 0.285, no bigrams
//! 0.874 (a bigram cannot match a misspelt name; bigrams stay, at half weight, for the
//! multi-word terms of real text, which this world does not test), character weight 1.0 / 1.5 / 2.0 → 0.820 / 0.863 / 0.874, bigram weight 1.0 0.857,
//! character 3–6-grams 0.848, 2–4-grams 0.896 (2-grams are mostly noise on real text, so the
//! common 3–5 stays); with scikit-learn's `+ 1` IDF 0.793 instead of 0.820 (character weight
//! 1.0). Hence the defaults: 16384 wide (the gap to narrower widths grows with the corpus, as
//! more names lie close together), character weight 1.5, bigram weight 0.5. The cost is the
//! index: a dense f32 row per passage, 64 KiB at 16384 — 60 MB for 1,000 passages, 655 MB for
//! 10,000 (lower `dim` for corpora that large). At 4,520 passages and 16384 wide, fitting took
//! 0.35 s, embedding and indexing the corpus 2.6 s, and a search 4.4 ms per question (`test`
//! profile, on the 2-core machine while other builds ran).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use super::{Embedder, normalize_rows};
use crate::error::{EvalError, Result};

/// The embedder's settings. [`HashedConfig::default`] is the measured default.
#[derive(Clone, Debug, PartialEq)]
pub struct HashedConfig {
    /// Number of hash buckets, the vectors' width.
    pub dim: usize,
    /// Weight of the word-unigram family (see the module doc for how weights combine).
    pub word_weight: f32,
    /// Weight of the word-bigram family.
    pub bigram_weight: f32,
    /// Weight of the character n-gram family.
    pub char_weight: f32,
    /// Shortest and longest character n-gram, counted in chars including the `<` `>` markers.
    pub char_ngrams: (usize, usize),
}

impl Default for HashedConfig {
    fn default() -> Self {
        HashedConfig {
            dim: 1 << 14,
            word_weight: 1.0,
            bigram_weight: 0.5,
            char_weight: 1.5,
            char_ngrams: (3, 5),
        }
    }
}

impl HashedConfig {
    fn check(&self) -> Result<()> {
        let (lo, hi) = self.char_ngrams;
        if self.dim == 0 {
            return Err(EvalError::config("hashed embedder: dim must be at least 1 (try 16384)"));
        }
        if lo == 0 || lo > hi {
            return Err(EvalError::config(format!(
                "hashed embedder: char_ngrams = ({lo}, {hi}) must satisfy 1 <= min <= max (try (3, 5))"
            )));
        }
        let weights = [self.word_weight, self.bigram_weight, self.char_weight];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weights.iter().all(|w| *w == 0.0) {
            return Err(EvalError::config(format!(
                "hashed embedder: family weights {weights:?} must be finite, non-negative and not all zero"
            )));
        }
        Ok(())
    }
}

/// The three feature families; the tag byte keeps a word and an equal character n-gram apart.
#[derive(Clone, Copy)]
enum Family {
    Word = 0,
    Bigram = 1,
    Char = 2,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A map keyed by already-mixed feature hashes: the key is its own hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(self.0 ^ FNV_OFFSET, bytes);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Lowercased words: maximal runs of alphanumeric characters.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            word.push(c);
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The hashed features of `text`, per family, each list sorted (equal hashes adjacent).
fn features(text: &str, char_ngrams: (usize, usize)) -> [Vec<u64>; 3] {
    let words = words(text);
    let tagged = |family: Family| fnv1a(FNV_OFFSET, &[family as u8]);
    let mut out: [Vec<u64>; 3] = Default::default();
    for w in &words {
        out[Family::Word as usize].push(fmix64(fnv1a(tagged(Family::Word), w.as_bytes())));
    }
    for pair in words.windows(2) {
        let h = fnv1a(fnv1a(fnv1a(tagged(Family::Bigram), pair[0].as_bytes()), b" "), pair[1].as_bytes());
        out[Family::Bigram as usize].push(fmix64(h));
    }
    let (lo, hi) = char_ngrams;
    let mut buf = [0u8; 4];
    for w in &words {
        let chars: Vec<char> = std::iter::once('<').chain(w.chars()).chain(std::iter::once('>')).collect();
        for n in lo..=hi.min(chars.len()) {
            for gram in chars.windows(n) {
                let h = gram
                    .iter()
                    .fold(tagged(Family::Char), |h, c| fnv1a(h, c.encode_utf8(&mut buf).as_bytes()));
                out[Family::Char as usize].push(fmix64(h));
            }
        }
    }
    for f in &mut out {
        f.sort_unstable();
    }
    out
}

/// Runs of equal hashes in a sorted list as (hash, count).
fn counted(sorted: &[u64]) -> impl Iterator<Item = (u64, u32)> + '_ {
    sorted.chunk_by(|a, b| a == b).map(|run| (run[0], run.len() as u32))
}

/// TF-IDF over hashed word and character n-grams (see the module doc).
#[derive(Clone)]
pub struct HashedEmbedder {
    config: HashedConfig,
    /// IDF of every feature the corpus contains.
    idf: KeyMap<f32>,
    /// The IDF of a feature the corpus never contains.
    max_idf: f32,
    corpus_len: usize,
}

impl std::fmt::Debug for HashedEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashedEmbedder")
            .field("config", &self.config)
            .field("vocabulary", &self.idf.len())
            .field("corpus_len", &self.corpus_len)
            .finish()
    }
}

impl HashedEmbedder {
    /// Fit the IDF table on `corpus` (the passages that will be searched). Errors on a bad
    /// `config` (zero `dim`, empty n-gram range, negative or all-zero weights).
    pub fn fit(corpus: &[&str], config: HashedConfig) -> Result<HashedEmbedder> {
        config.check()?;
        let df: KeyMap<u32> = corpus
            .par_iter()
            .fold(KeyMap::<u32>::default, |mut df, text| {
                let mut keys: Vec<u64> = features(text, config.char_ngrams).concat();
                keys.sort_unstable();
                keys.dedup();
                for k in keys {
                    *df.entry(k).or_insert(0) += 1;
                }
                df
            })
            .reduce(KeyMap::<u32>::default, |a, b| {
                let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                for (k, n) in small {
                    *big.entry(k).or_insert(0) += n;
                }
                big
            });
        let n = corpus.len() as f64;
        let idf_of = |df: u32| ((1.0 + n) / (1.0 + f64::from(df))).ln();
        let idf = df.into_iter().map(|(k, d)| (k, idf_of(d) as f32)).collect();
        Ok(HashedEmbedder { max_idf: idf_of(0) as f32, idf, config, corpus_len: corpus.len() })
    }

    pub fn config(&self) -> &HashedConfig {
        &self.config
    }

    /// Number of distinct features in the corpus the IDF was fitted on.
    pub fn vocabulary(&self) -> usize {
        self.idf.len()
    }

    /// Number of texts the IDF was fitted on.
    pub fn corpus_len(&self) -> usize {
        self.corpus_len
    }

    /// Add the vector of `text` (not yet normalized as a whole) into `row`.
    fn embed_into(&self, text: &str, row: &mut [f32]) {
        let weights = [self.config.word_weight, self.config.bigram_weight, self.config.char_weight];
        let dim = row.len() as u128;
        for (family, hashes) in features(text, self.config.char_ngrams).iter().enumerate() {
            if weights[family] == 0.0 || hashes.is_empty() {
                continue;
            }
            let tfidf: Vec<(u64, f32)> = counted(hashes)
                .map(|(h, tf)| {
                    let idf = self.idf.get(&h).copied().unwrap_or(self.max_idf);
                    (h, (1.0 + (tf as f32).ln()) * idf)
                })
                .collect();
            let norm = tfidf.iter().map(|&(_, w)| f64::from(w) * f64::from(w)).sum::<f64>().sqrt();
            if norm == 0.0 {
                // Every feature of this family is in every corpus text: nothing to weigh.
                continue;
            }
            let scale = weights[family] / norm as f32;
            for (h, w) in tfidf {
                let bucket = ((u128::from(h) * dim) >> 64) as usize;
                let sign = if h & 1 == 0 { 1.0 } else { -1.0 };
                row[bucket] += sign * w * scale;
            }
        }
    }
}

impl Embedder for HashedEmbedder {
    fn name(&self) -> String {
        format!("hashed-{}", self.config.dim)
    }

    fn dim(&self) -> usize {
        self.config.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<f32>> {
        let dim = self.config.dim;
        let mut out = vec![0f32; texts.len() * dim];
        out.par_chunks_mut(dim).zip(texts.par_iter()).for_each(|(row, text)| {
            self.embed_into(text, row);
            normalize_rows(row, dim);
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_unicode_alphanumeric_runs() {
        assert_eq!(words("Élodie's café, No.7 — Zürich!"), ["élodie", "s", "café", "no", "7", "zürich"]);
        assert!(words(" ,.;!? ").is_empty());
    }

    #[test]
    fn char_ngrams_carry_boundary_markers() {
        // "ab" → "<ab>": 3-grams "<ab", "ab>"; 4-gram "<ab>"; no 5-gram. Plus 1 word, 0 bigrams.
        let f = features("ab", (3, 5));
        assert_eq!((f[0].len(), f[1].len(), f[2].len()), (1, 0, 3));
        // Two words: 2 unigrams, 1 bigram; "<a>" has only its 3-gram, "<bcd>" 3 + 2 + 1.
        let f = features("a bcd", (3, 5));
        assert_eq!((f[0].len(), f[1].len(), f[2].len()), (2, 1, 1 + 6));
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference (draft-eastlake-fnv): FNV-1a 64 of "" and "a" and "foobar".
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn idf_is_smoothed_and_unseen_features_get_the_maximum() {
        let e = HashedEmbedder::fit(&["alpha beta", "alpha gamma"], HashedConfig::default()).unwrap();
        let word = |w: &str| features(w, (3, 5))[0][0];
        let n = 2.0f64;
        let idf = |df: f64| ((1.0 + n) / (1.0 + df)).ln() as f32;
        assert_eq!(e.idf[&word("alpha")], idf(2.0));
        assert_eq!(e.idf[&word("beta")], idf(1.0));
        assert!(!e.idf.contains_key(&word("delta")));
        assert_eq!(e.max_idf, idf(0.0));
        assert_eq!(idf(2.0), 0.0, "a feature in every text weighs nothing");
    }

    #[test]
    fn a_text_of_features_in_every_passage_is_the_zero_row_not_nan() {
        let e =
            HashedEmbedder::fit(&["the cat", "the cat"], HashedConfig { dim: 64, ..HashedConfig::default() })
                .unwrap();
        let row = e.embed(&["THE  Cat!"]).unwrap();
        assert!(row.iter().all(|&v| v == 0.0), "{row:?}");
        // An unseen word still counts.
        let row = e.embed(&["the dog"]).unwrap();
        assert!(row.iter().all(|v| v.is_finite()) && row.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn bad_configs_are_errors() {
        for config in [
            HashedConfig { dim: 0, ..HashedConfig::default() },
            HashedConfig { char_ngrams: (4, 3), ..HashedConfig::default() },
            HashedConfig { word_weight: -1.0, ..HashedConfig::default() },
            HashedConfig {
                word_weight: 0.0,
                bigram_weight: 0.0,
                char_weight: 0.0,
                ..HashedConfig::default()
            },
        ] {
            assert!(HashedEmbedder::fit(&["a"], config).is_err());
        }
    }
}
