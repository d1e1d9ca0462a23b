//! Scoring one answer against its reference, as the SQuAD v1.1 evaluation script does, and one
//! retrieval against the question's source passages.
//!
//! Normalisation follows the script: lowercase, drop punctuation, drop the articles "a", "an",
//! "the", collapse whitespace. Two deliberate deviations, both for generated text:
//! - besides ASCII punctuation (the script's `string.punctuation`), the typographic marks of
//!   Unicode's General Punctuation block (curly quotes, dashes, ellipsis, U+2010–U+205E) and
//!   « » ¡ ¿ · are dropped, because tokenizers emit them where a human would type ASCII;
//! - articles are dropped as whole whitespace-separated tokens rather than by the script's
//!   `\b(a|an|the)\b` regex. After punctuation is gone the two agree, except around symbols
//!   that are neither letters, digits nor spaces ("€the"), which no answer here contains.

use std::collections::HashMap;

/// Lowercase, drop punctuation and the articles a/an/the, collapse whitespace to single spaces.
pub fn normalize_answer(text: &str) -> String {
    let lowered = text.to_lowercase();
    // As in SQuAD, punctuation is removed without leaving a space: "well-known" → "wellknown".
    let without_punct: String = lowered.chars().filter(|&c| !is_punctuation(c)).collect();
    let tokens: Vec<&str> =
        without_punct.split_whitespace().filter(|t| !matches!(*t, "a" | "an" | "the")).collect();
    tokens.join(" ")
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        // U+2028/2029 (line/paragraph separators) sit in the block but are whitespace: keep
        // them so that they still separate words.
        || (('\u{2010}'..='\u{205E}').contains(&c) && !c.is_whitespace())
        || matches!(c, '«' | '»' | '¡' | '¿' | '·')
}

/// 1.0 when the normalised prediction equals the normalised reference, else 0.0.
pub fn exact_match(prediction: &str, gold: &str) -> f64 {
    if normalize_answer(prediction) == normalize_answer(gold) { 1.0 } else { 0.0 }
}

/// SQuAD token F1: the harmonic mean of precision and recall of the normalised tokens, counted
/// as bags (a token shared twice counts twice). Both empty after normalisation → 1.0 (they
/// agree); exactly one empty → 0.0.
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let pred = normalize_answer(prediction);
    let gold = normalize_answer(gold);
    let pred: Vec<&str> = pred.split(' ').filter(|t| !t.is_empty()).collect();
    let gold: Vec<&str> = gold.split(' ').filter(|t| !t.is_empty()).collect();
    if pred.is_empty() || gold.is_empty() {
        return if pred.len() == gold.len() { 1.0 } else { 0.0 };
    }
    let mut gold_counts: HashMap<&str, usize> = HashMap::new();
    for t in &gold {
        *gold_counts.entry(t).or_default() += 1;
    }
    let mut shared = 0usize;
    for t in &pred {
        if let Some(c) = gold_counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            shared += 1;
        }
    }
    if shared == 0 {
        return 0.0;
    }
    let precision = shared as f64 / pred.len() as f64;
    let recall = shared as f64 / gold.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Whether any of the question's gold passage ids is among the retrieved ids (the top k, so k is
/// `retrieved.len()`). No gold ids → false: nothing could be found; give such questions no
/// recall at all rather than a miss.
pub fn recall_at_k(retrieved: &[&str], gold: &[&str]) -> bool {
    gold.iter().any(|g| retrieved.contains(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_case_punctuation_articles_and_extra_space() {
        assert_eq!(normalize_answer("The Eiffel Tower!"), "eiffel tower");
        assert_eq!(normalize_answer("  An  apple,\ta PEAR and\nthe plum. "), "apple pear and plum");
        // Punctuation is removed without a space, as in SQuAD.
        assert_eq!(normalize_answer("well-known"), "wellknown");
        // Typographic marks of generated text count as punctuation.
        assert_eq!(normalize_answer("“Ostrava” — 1921…"), "ostrava 1921");
        // Articles only as whole words.
        assert_eq!(normalize_answer("Theodore and Anna"), "theodore and anna");
        // A line separator still separates words.
        assert_eq!(normalize_answer("new\u{2028}york"), "new york");
        assert_eq!(normalize_answer("the a an"), "");
    }

    #[test]
    fn exact_match_after_normalisation() {
        assert_eq!(exact_match("The Eiffel Tower!", "eiffel tower"), 1.0);
        assert_eq!(exact_match("Eiffel Towers", "eiffel tower"), 0.0);
        assert_eq!(exact_match("", "the"), 1.0, "both normalise to empty");
        assert_eq!(exact_match("Vienna", ""), 0.0);
    }

    #[test]
    fn token_f1_matches_hand_computed_values() {
        // pred {born, in, vienna, austria} vs gold {vienna}: P = 1/4, R = 1, F1 = 2·(1/4)/(5/4) = 0.4.
        assert!((token_f1("Born in Vienna, Austria", "Vienna") - 0.4).abs() < 1e-12);
        // pred {new, york, city} vs gold {new, york}: P = 2/3, R = 1, F1 = (4/3)/(5/3) = 0.8.
        assert!((token_f1("New York City", "new york") - 0.8).abs() < 1e-12);
        // Bags, not sets: pred {x, x, y} vs gold {x, y, y}: shared = one x + one y = 2,
        // P = R = 2/3, F1 = 2/3.
        assert!((token_f1("x x y", "x y y") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(token_f1("The Eiffel Tower", "eiffel tower!"), 1.0);
        assert_eq!(token_f1("Paris", "Vienna"), 0.0);
        assert_eq!(token_f1("", "the"), 1.0, "both empty after normalisation");
        assert_eq!(token_f1("", "Vienna"), 0.0);
        assert_eq!(token_f1("Vienna", "."), 0.0);
    }

    #[test]
    fn recall_counts_any_gold_id_in_the_list() {
        assert!(recall_at_k(&["d3", "d7", "d1"], &["d1"]));
        assert!(recall_at_k(&["d3", "d7"], &["d9", "d7"]));
        assert!(!recall_at_k(&["d3", "d7"], &["d1"]));
        assert!(!recall_at_k(&[], &["d1"]));
        assert!(!recall_at_k(&["d1"], &[]));
    }
}
