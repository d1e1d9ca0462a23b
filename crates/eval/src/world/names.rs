//! Fictional names built from a syllable inventory: people ("Varen Oskholt"), organisations
//! ("Tessmor Foundry") and places ("Quillarn").
//!
//! Every name *word* (a first name, a surname, an organisation's stem, a place) is unique in the
//! whole world and never equal to a word of the templates or the value lists. Words start with
//! the only capital letter they hold, so a word of one population can only occur in another's
//! text as that same whole word: distinct words make it impossible for a New name to appear in
//! an Old or Reading document, without searching the texts. Made-up syllable strings also make
//! a tokenizer trained on Old text split New names into subwords rather than whole tokens.

use std::collections::BTreeSet;

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

/// Single-consonant onsets; the first syllable may also have none ("Oskholt") or a cluster.
const ONSETS: [&str; 16] = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "w"];
const FIRST_ONSETS: [&str; 8] = ["", "", "br", "dr", "kr", "st", "th", "tr"];
/// Plain vowels, listed several times so that the diphthongs stay rare.
const NUCLEI: [&str; 13] = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "a", "e", "ae", "ou"];
/// Inner syllables end open or in a soft consonant, so that no consonant pile-up forms
/// before the next onset.
const INNER_CODAS: [&str; 8] = ["", "", "", "", "n", "r", "l", "s"];
/// The last syllable may end in a heavier coda ("-holt", "-mark").
const FINAL_CODAS: [&str; 14] = ["", "", "", "n", "r", "l", "s", "th", "nd", "rk", "m", "lt", "sk", "x"];

/// Organisation name suffixes ("`<Stem> <Suffix>`").
pub const ORG_SUFFIXES: [&str; 14] = [
    "Dynamics",
    "Foundry",
    "Collective",
    "Labs",
    "Guild",
    "Works",
    "Holdings",
    "Partners",
    "Systems",
    "Trading",
    "Company",
    "Institute",
    "Group",
    "Mills",
];

/// Draws words that are unique across everything it has drawn and outside a reserved set.
pub struct NameGen {
    used: BTreeSet<String>,
    /// Lower-case words of the templates and value lists.
    reserved: BTreeSet<String>,
}

impl NameGen {
    pub fn new(reserved: BTreeSet<String>) -> NameGen {
        NameGen { used: BTreeSet::new(), reserved }
    }

    /// A fresh capitalised word of `min..=max` syllables.
    pub fn word(&mut self, rng: &mut ChaCha8Rng, min: usize, max: usize) -> String {
        loop {
            let n = rng.random_range(min..=max);
            let mut w = String::new();
            for i in 0..n {
                let onsets: &[&str] = if i == 0 && rng.random_bool(0.3) { &FIRST_ONSETS } else { &ONSETS };
                w.push_str(onsets.choose(rng).expect("non-empty"));
                w.push_str(NUCLEI.choose(rng).expect("non-empty"));
                let codas: &[&str] = if i + 1 == n { &FINAL_CODAS } else { &INNER_CODAS };
                w.push_str(codas.choose(rng).expect("non-empty"));
            }
            // Four letters at least, so that names are never fragments like "Ba"; ten at most,
            // so that a name costs a small model few tokens.
            if w.len() < 4 || w.len() > 10 {
                continue;
            }
            let word = capitalise(&w);
            if self.reserved.contains(&w) || self.used.contains(&word) {
                continue;
            }
            self.used.insert(word.clone());
            return word;
        }
    }

    /// "First Last", each part 2–3 syllables.
    pub fn person(&mut self, rng: &mut ChaCha8Rng) -> String {
        let first = self.word(rng, 2, 3);
        let last = self.word(rng, 2, 3);
        format!("{first} {last}")
    }

    /// "`<Stem> <Suffix>`".
    pub fn organisation(&mut self, rng: &mut ChaCha8Rng) -> String {
        let stem = self.word(rng, 2, 3);
        let suffix = ORG_SUFFIXES.choose(rng).expect("non-empty");
        format!("{stem} {suffix}")
    }

    /// A place: one word of 2–3 syllables.
    pub fn place(&mut self, rng: &mut ChaCha8Rng) -> String {
        self.word(rng, 2, 3)
    }
}

/// `w` with its first letter upper-cased (the world's names; the report's sentence starts too).
pub(crate) fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn words_are_unique_capitalised_and_avoid_reserved_words() {
        let reserved: BTreeSet<String> = ["bara", "kelo"].iter().map(|s| s.to_string()).collect();
        let mut g = NameGen::new(reserved);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = BTreeSet::new();
        for _ in 0..3000 {
            let w = g.word(&mut rng, 2, 3);
            assert!(w.len() >= 4 && w.len() <= 10, "{w}");
            assert!(w.chars().next().unwrap().is_ascii_uppercase(), "{w}");
            assert!(w.chars().skip(1).all(|c| c.is_ascii_lowercase()), "{w}");
            assert!(w != "Bara" && w != "Kelo");
            assert!(seen.insert(w.clone()), "duplicate {w}");
        }
    }
}
