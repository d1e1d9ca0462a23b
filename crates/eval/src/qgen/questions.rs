//! A question from a fact sentence and one of its spans: a wh-question where the sentence's
//! shape allows one (a definition, an abbreviation, `in <year>`, `<number> <things>`), a cloze
//! question otherwise.

use super::spans::{Kind, Span};

/// Most characters in a question.
pub const MAX_QUESTION_CHARS: usize = 300;

/// The blank of a cloze question.
pub const BLANK: &str = "____";

/// The answer's text (a code span without its backticks).
pub fn answer_text<'a>(sentence: &'a str, span: &Span) -> &'a str {
    &sentence[span.start..span.end]
}

/// The question for `span` of `sentence`, `None` when it would be too long or would show its
/// own answer.
pub fn question(sentence: &str, span: &Span) -> Option<String> {
    let answer = answer_text(sentence, span);
    let body = sentence.trim_end_matches('.');
    // With backticks around a code answer, the whole `code` is replaced.
    let (start, end) = if span.kind == Kind::Code
        && span.start > 0
        && sentence.as_bytes()[span.start - 1] == b'`'
        && sentence.as_bytes().get(span.end) == Some(&b'`')
    {
        (span.start - 1, span.end + 1)
    } else {
        (span.start, span.end)
    };
    let before = &sentence[..start];
    let after = &sentence[end.min(body.len())..body.len()];
    let lower_before = before.to_lowercase();
    let q = match span.kind {
        Kind::Term => {
            // `X is a …` → `What is a …?`
            let rest = sentence[span.end..].trim_start().trim_start_matches('`').trim_start();
            let (verb, rest) = rest.split_once(' ')?;
            let rest = rest.trim_end_matches('.');
            format!("What {} {rest}?", verb.to_lowercase())
        }
        Kind::Expansion => {
            let term = sentence[..span.start].trim_end().strip_suffix("stands for")?.trim_end();
            format!("What does {} stand for?", strip_determiner(term))
        }
        Kind::Year if ends_with_word(&lower_before, "in") || ends_with_word(&lower_before, "since") => {
            format!("{}which year{after}?", before)
        }
        Kind::Number if counted_noun(after).is_some() && !ends_with_word(&lower_before, "the") => {
            format!("{}how many{after}?", before)
        }
        _ => format!("Fill in the blank: {before}{BLANK}{after}."),
    };
    let q = q.split_whitespace().collect::<Vec<_>>().join(" ");
    let q = capitalise(&q);
    if q.chars().count() > MAX_QUESTION_CHARS || answer.trim().is_empty() {
        return None;
    }
    // A question that still shows its answer (the sentence names it twice) asks nothing.
    if contains_words(&normalise(&q), &normalise(answer)) {
        return None;
    }
    Some(q)
}

fn strip_determiner(s: &str) -> &str {
    for d in ["The ", "the ", "A ", "An "] {
        if let Some(r) = s.strip_prefix(d) {
            return r;
        }
    }
    s
}

fn ends_with_word(text: &str, word: &str) -> bool {
    text.trim_end().rsplit(' ').next() == Some(word)
}

/// `after` starting with a plural noun (`12 formats`): that noun.
fn counted_noun(after: &str) -> Option<&str> {
    let w = after.split_whitespace().next()?;
    let w = w.trim_end_matches([',', '.', ';', ':']);
    (w.len() > 3 && w.ends_with('s') && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')).then_some(w)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if f.is_lowercase() => f.to_uppercase().chain(c).collect(),
        _ => s.to_string(),
    }
}

/// Lower case, letters and digits only, words separated by single spaces: what "the same
/// answer" and "the same question" compare.
pub fn normalise(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the normalised `needle` occurs in the normalised `hay` as whole words.
pub fn contains_words(hay: &str, needle: &str) -> bool {
    !needle.is_empty() && format!(" {hay} ").contains(&format!(" {needle} "))
}
