//! Wrong options of the answer's kind, drawn from the other passages' spans.
//!
//! Candidates are every span of that kind found in the corpus's fact sentences, from a passage
//! other than the question's, not in the question's sentence, and different from the answer and
//! from each other after [`normalise`]. Those of the answer's shape come first (a name of as many
//! words, a number of as many digits, a quantity in the same unit, a version of as many parts),
//! each group in a seeded random order. A definition's term may borrow names and identifiers, an
//! abbreviation's expansion multi-word names. When the corpus has too few of a numeric kind
//! (year, number, quantity, version), the rest are the answer's value moved by a seeded step,
//! written the same way.

use std::collections::{BTreeMap, HashSet};

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::questions::normalise;
use super::spans::Kind;

/// Spans by kind: `(passage index, text)`, first occurrence of each normalised text.
#[derive(Default)]
pub struct Pool {
    by_kind: BTreeMap<Kind, Vec<(usize, String)>>,
    seen: HashSet<(Kind, String)>,
}

impl Pool {
    pub fn add(&mut self, kind: Kind, passage: usize, text: &str) {
        let key = normalise(text);
        if !key.is_empty() && self.seen.insert((kind, key)) {
            self.by_kind.entry(kind).or_default().push((passage, text.to_string()));
        }
    }

    /// Three distractors for `answer` (of `kind`, from `passage`, asked in `sentence`), or
    /// `None` when the corpus and the fallbacks give fewer.
    pub fn pick(
        &self,
        kind: Kind,
        answer: &str,
        passage: usize,
        sentence: &str,
        rng: &mut ChaCha8Rng,
    ) -> Option<Vec<String>> {
        let sentence_norm = format!(" {} ", normalise(sentence));
        let mut taken: HashSet<String> = HashSet::from([normalise(answer)]);
        let mut out = Vec::new();
        let want = shape(kind, answer);
        let kinds: &[Kind] = match kind {
            Kind::Term => &[Kind::Term, Kind::Name, Kind::Code],
            Kind::Expansion => &[Kind::Expansion, Kind::Name],
            k => std::slice::from_ref(match k {
                Kind::Name => &Kind::Name,
                Kind::Year => &Kind::Year,
                Kind::Date => &Kind::Date,
                Kind::Version => &Kind::Version,
                Kind::Quantity => &Kind::Quantity,
                Kind::Number => &Kind::Number,
                _ => &Kind::Code,
            }),
        };
        for &from in kinds {
            let Some(all) = self.by_kind.get(&from) else { continue };
            let usable: Vec<&String> = all
                .iter()
                .filter(|(p, t)| {
                    let n = normalise(t);
                    *p != passage
                        && !taken.contains(&n)
                        && !sentence_norm.contains(&format!(" {n} "))
                        && (kind != Kind::Expansion || t.split_whitespace().count() >= 2)
                })
                .map(|(_, t)| t)
                .collect();
            let (mut close, mut other): (Vec<&String>, Vec<&String>) =
                usable.into_iter().partition(|t| shape(kind, t) == want);
            close.shuffle(rng);
            other.shuffle(rng);
            for t in close.into_iter().chain(other) {
                if out.len() == 3 {
                    break;
                }
                if taken.insert(normalise(t)) {
                    out.push(t.clone());
                }
            }
        }
        let mut tries = 0;
        while out.len() < 3 && tries < 50 {
            tries += 1;
            let Some(t) = perturb(kind, answer, rng) else { break };
            if !sentence_norm.contains(&format!(" {} ", normalise(&t))) && taken.insert(normalise(&t)) {
                out.push(t);
            }
        }
        (out.len() == 3).then_some(out)
    }
}

/// What makes two options look alike.
fn shape(kind: Kind, text: &str) -> String {
    match kind {
        Kind::Name | Kind::Term | Kind::Expansion => text.split_whitespace().count().to_string(),
        Kind::Number => {
            format!("{}{}", text.chars().filter(char::is_ascii_digit).count(), text.contains('.'))
        }
        Kind::Quantity => text
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ',')
            .trim()
            .to_lowercase(),
        Kind::Version => text.matches('.').count().to_string(),
        Kind::Code => (text.contains("::") || text.contains('(')).to_string(),
        Kind::Year | Kind::Date => String::new(),
    }
}

/// The answer's number moved: a year by up to 12 years, a version's last part, a number or a
/// quantity's number scaled; `None` for other kinds.
fn perturb(kind: Kind, answer: &str, rng: &mut ChaCha8Rng) -> Option<String> {
    match kind {
        Kind::Year => {
            let y: i64 = answer.parse().ok()?;
            let step = rng.random_range(1..=12) * if rng.random_bool(0.5) { 1 } else { -1 };
            Some((y + step).to_string())
        }
        Kind::Version => {
            let (prefix, rest) = answer.strip_prefix('v').map_or(("", answer), |r| ("v", r));
            let main = rest.split(['-', '+']).next()?;
            let mut parts: Vec<u64> = main.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
            let i = rng.random_range(0..parts.len());
            let step = rng.random_range(1..=9);
            parts[i] =
                if rng.random_bool(0.5) || parts[i] < step { parts[i] + step } else { parts[i] - step };
            Some(format!("{prefix}{}", parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")))
        }
        Kind::Number | Kind::Quantity => {
            let digits =
                answer.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',')).unwrap_or(answer.len());
            let (num, unit) = answer.split_at(digits);
            let decimals = num.split_once('.').map_or(0, |(_, d)| d.len());
            let value: f64 = num.replace(',', "").parse().ok()?;
            let factor = [0.25, 0.5, 2.0, 3.0, 4.0, 10.0, 1.5, 0.1][rng.random_range(0..8)];
            let moved = value * factor;
            let text = if decimals == 0 {
                let v = moved.round().max(1.0) as u64;
                if num.contains(',') { crate::report::format::thousands(v) } else { v.to_string() }
            } else {
                format!("{moved:.decimals$}")
            };
            Some(format!("{text}{unit}"))
        }
        _ => None,
    }
}
