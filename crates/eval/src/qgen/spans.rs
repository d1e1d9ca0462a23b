//! Answer candidates in a fact sentence: spans of a recognisable kind, each a byte range of the
//! sentence.

/// What kind of thing a span is; distractors are drawn from the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Capitalised words not at the sentence's start (`Mozilla Research`, `Linux`, `JSON`).
    Name,
    /// A year, 1800–2099.
    Year,
    /// A date: `2021-03-04`, `March 2021`, `4 March 2021`, `March 4, 2021`.
    Date,
    /// A version: `v1.2.3`, `1.70.0`, `3.11` after `Python`, `version`, …
    Version,
    /// A number with its unit: `64 KB`, `10ms`, `50%`, `3 times`.
    Quantity,
    /// Any other number of two digits or more, or a decimal.
    Number,
    /// An identifier in backticks, without them.
    Code,
    /// The subject of a definition, `X` in `X is a …`.
    Term,
    /// What an abbreviation stands for, `Y` in `X stands for Y`.
    Expansion,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Name => "name",
            Kind::Year => "year",
            Kind::Date => "date",
            Kind::Version => "version",
            Kind::Quantity => "quantity",
            Kind::Number => "number",
            Kind::Code => "code",
            Kind::Term => "term",
            Kind::Expansion => "expansion",
        }
    }
}

/// One answer candidate: `sentence[start..end]` (its text, for a code span without the
/// backticks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
];

const UNITS: &[&str] = &[
    "b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "byte", "bytes", "bit", "bits", "ns", "us",
    "µs", "ms", "s", "sec", "secs", "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days",
    "week", "weeks", "month", "months", "year", "years", "hz", "khz", "mhz", "ghz", "%", "percent", "x",
    "times", "fps", "rps", "qps", "kbps", "mbps", "gbps", "lines", "loc", "px", "pt", "em", "cores",
    "threads", "requests", "tokens", "km", "m", "cm", "mm", "kg", "g", "mg", "w", "kw", "v",
];

/// Words before a number that make it a version.
const VERSION_CUES: &[&str] = &[
    "version", "versions", "v", "rust", "rustc", "python", "msrv", "release", "node", "node.js", "go",
    "java", "ruby", "php", "gcc", "clang", "llvm", "cargo", "edition", "release", "releases", "tokio",
    "perl",
];

/// Capitalised words that do not name anything at a sentence's middle either.
const NOT_NAMES: &[&str] = &[
    "I", "A", "An", "The", "If", "Or", "And", "But", "OK", "Note", "See", "Yes", "No", "In", "On", "At",
    "By", "For", "With", "To", "Of", "As", "Any", "All", "Some", "Each", "Every", "Because", "Since", "When",
    "While", "Once", "After", "Before", "Although", "Not", "Only", "Both", "Either", "Neither", "Most",
    "Many",
];

/// A word of a sentence: its byte range, and the range of its core (punctuation trimmed).
#[derive(Clone, Copy, Debug)]
struct Token {
    start: usize,
    end: usize,
    core_start: usize,
    core_end: usize,
    code: bool,
}

impl Token {
    /// A span of `kind` over this token's core.
    fn span(&self, kind: Kind) -> Span {
        self.span_to(kind, self)
    }

    /// A span of `kind` from this token's core to the end of `last`'s.
    fn span_to(&self, kind: Kind, last: &Token) -> Span {
        Span { kind, start: self.core_start, end: last.core_end }
    }
}

fn tokens(s: &str) -> Vec<Token> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // A code span is one token, spaces and all.
        let code = bytes[i] == b'`' && s[i + 1..].contains('`');
        let mut end = if code { i + 1 + s[i + 1..].find('`').unwrap_or(0) + 1 } else { i };
        while end < s.len() && !bytes[end].is_ascii_whitespace() {
            end += 1;
        }
        let word = &s[start..end];
        let (core_start, core_end) = if code {
            let close = start + 1 + s[start + 1..].find('`').unwrap_or(0);
            (start + 1, close)
        } else {
            let lead = word.len() - word.trim_start_matches(|c: char| "\"'(“‘[".contains(c)).len();
            let trail = word.len() - word.trim_end_matches(|c: char| ".,;:!?\"')”’]".contains(c)).len();
            (start + lead, (end - trail).max(start + lead))
        };
        out.push(Token { start, end, core_start, core_end, code });
        i = end;
    }
    out
}

fn is_capitalised(w: &str) -> bool {
    let mut c = w.chars();
    c.next().is_some_and(char::is_uppercase)
        && w.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.' || c == '&' || c == '\'')
        && w.chars().any(char::is_alphabetic)
}

fn is_year(w: &str) -> bool {
    w.len() == 4
        && w.bytes().all(|b| b.is_ascii_digit())
        && (w.starts_with("18") || w.starts_with("19") || w.starts_with("20"))
}

fn is_number(w: &str) -> bool {
    let w = w.replace(',', "");
    !w.is_empty()
        && w.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && w.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && w.matches('.').count() <= 1
        && !w.ends_with('.')
}

/// `v1.2`, `1.2.3`, `1.0.0-beta.1`: the number part of a version.
fn is_version_shape(w: &str) -> bool {
    let w = w.strip_prefix('v').unwrap_or(w);
    let main = w.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = main.split('.').collect();
    (2..=4).contains(&parts.len())
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A number glued to its unit: `10ms`, `4GB`, `50%`, `2x`.
fn is_glued_quantity(w: &str) -> bool {
    let digits = w.find(|c: char| !c.is_ascii_digit() && c != '.' && c != ',').unwrap_or(w.len());
    digits > 0
        && digits < w.len()
        && is_number(&w[..digits])
        && UNITS.contains(&w[digits..].to_lowercase().as_str())
}

fn is_identifier(w: &str) -> bool {
    let len = w.chars().count();
    (2..=40).contains(&len)
        && !w.starts_with(' ')
        && !w.ends_with(' ')
        && w.split_whitespace().count() <= 2
        && !w.contains("->")
        && w.chars().any(char::is_alphabetic)
        && w.chars().all(|c| c.is_alphanumeric() || "_:.<>/-()!&[]' ".contains(c))
}

/// The spans of `sentence` (a fact sentence, see [`super::sentences`]), left to right; the
/// definition spans ([`Kind::Term`], [`Kind::Expansion`]) first.
pub fn spans(sentence: &str) -> Vec<Span> {
    let toks = tokens(sentence);
    let core = |t: &Token| &sentence[t.core_start..t.core_end];
    let mut out = definition_spans(sentence, &toks);
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        let w = core(&t);
        let lower = w.to_lowercase();
        let prev = (i > 0).then(|| core(&toks[i - 1]).to_lowercase());
        let trailing_punct = t.core_end < t.end;
        if t.code {
            if is_identifier(w) {
                out.push(t.span(Kind::Code));
            }
            i += 1;
            continue;
        }
        if w.is_empty() {
            i += 1;
            continue;
        }
        // Dates: `2021-03-04`; `March 2021`, `March 4, 2021`, `4 March 2021`.
        if w.len() == 10 && is_year(&w[..4]) && w.as_bytes()[4] == b'-' && w.as_bytes()[7] == b'-' {
            out.push(t.span(Kind::Date));
            i += 1;
            continue;
        }
        if MONTHS.contains(&lower.as_str()) && is_capitalised(w) {
            let next = toks.get(i + 1).map(&core);
            let after = toks.get(i + 2).map(&core);
            if let Some(y) = next.filter(|y| is_year(y)) {
                let _ = y;
                out.push(t.span_to(Kind::Date, &toks[i + 1]));
                i += 2;
                continue;
            }
            if next.is_some_and(|d| d.len() <= 2 && d.bytes().all(|b| b.is_ascii_digit()))
                && after.is_some_and(is_year)
            {
                out.push(t.span_to(Kind::Date, &toks[i + 2]));
                i += 3;
                continue;
            }
        }
        if w.len() <= 2
            && w.bytes().all(|b| b.is_ascii_digit())
            && toks.get(i + 1).is_some_and(|m| MONTHS.contains(&core(m).to_lowercase().as_str()))
            && toks.get(i + 2).is_some_and(|y| is_year(core(y)))
        {
            out.push(t.span_to(Kind::Date, &toks[i + 2]));
            i += 3;
            continue;
        }
        // One token on its own: a year, a version (a version-shaped token needs a cue and no unit
        // after it, else it may still be a glued quantity), a glued quantity.
        let version = || {
            let cue = w.starts_with('v') || w.matches('.').count() >= 2 || w.contains('-');
            let cued = prev.as_deref().is_some_and(|p| VERSION_CUES.contains(&p));
            let unit = toks.get(i + 1).is_some_and(|n| UNITS.contains(&core(n).to_lowercase().as_str()));
            is_version_shape(w) && (cue || cued) && !unit
        };
        let single = if is_year(w) {
            Some(Kind::Year)
        } else if version() {
            Some(Kind::Version)
        } else if is_glued_quantity(w) {
            Some(Kind::Quantity)
        } else {
            None
        };
        if let Some(kind) = single {
            out.push(t.span(kind));
            i += 1;
            continue;
        }
        if is_number(w) {
            let unit = toks
                .get(i + 1)
                .filter(|n| !trailing_punct && !n.code && UNITS.contains(&core(n).to_lowercase().as_str()));
            if let Some(u) = unit {
                out.push(t.span_to(Kind::Quantity, u));
                i += 2;
                continue;
            }
            let value: f64 = w.replace(',', "").parse().unwrap_or(0.0);
            if value >= 10.0 || w.contains('.') || w.contains(',') {
                out.push(t.span(Kind::Number));
            }
            i += 1;
            continue;
        }
        // Names: a run of capitalised words (joined by `of`), not at the sentence's start.
        if is_capitalised(w) && !NOT_NAMES.contains(&w) && t.core_start == t.start {
            let mut j = i;
            let mut last = i;
            while j < toks.len() {
                let tj = toks[j];
                let cj = core(&tj);
                let joins = j > i && cj == "of" && toks.get(j + 1).is_some_and(|n| is_capitalised(core(n)));
                let capitalised = is_capitalised(cj) && !tj.code && !NOT_NAMES.contains(&cj);
                if !joins && !capitalised {
                    break;
                }
                if j > i && tj.core_start != tj.start {
                    break;
                }
                last = j;
                j += 1;
                if tj.core_end < tj.end {
                    break;
                }
            }
            // After `Label:` a word starts a clause, like a sentence's first word.
            let clause_start = i == 0 || sentence[toks[i - 1].start..toks[i - 1].end].ends_with([':', ';']);
            let common = last == i && super::sentences::is_common_first_word(w);
            if !clause_start && !common && !w.contains('\'') {
                let end = toks[last].core_end;
                let text = &sentence[t.core_start..end];
                if text.chars().count() >= 2 && !MONTHS.contains(&text.to_lowercase().as_str()) {
                    out.push(Span { kind: Kind::Name, start: t.core_start, end });
                }
            }
            i = last + 1;
            continue;
        }
        i += 1;
    }
    out
}

/// `X is a …` / `X are …` and `X stands for Y`, with `X` at the sentence's start, one to five
/// words, named (capitalised or code); a leading `The`/`A`/`An` is not part of the term.
fn definition_spans(sentence: &str, toks: &[Token]) -> Vec<Span> {
    let mut out = Vec::new();
    let core = |t: &Token| &sentence[t.core_start..t.core_end];
    let words: Vec<String> = toks.iter().map(|t| core(t).to_lowercase()).collect();
    let skip = usize::from(matches!(words.first().map(String::as_str), Some("the" | "a" | "an")));
    for v in (skip + 1)..toks.len().min(skip + 6) {
        let verb = words[v].as_str();
        let stands = verb == "stands" && words.get(v + 1).is_some_and(|f| f == "for");
        let is = matches!(verb, "is" | "are")
            && words.get(v + 1).is_some_and(|d| matches!(d.as_str(), "a" | "an" | "the"));
        if !(is || stands) {
            if toks[v].core_end < toks[v].end || toks[v].code && v > skip + 2 {
                break;
            }
            continue;
        }
        // The subject must end cleanly before the verb and name something.
        let subject = &toks[skip..v];
        if subject.iter().any(|t| t.core_end < t.end && !t.code) && subject.len() > 1 {
            break;
        }
        let named = subject.iter().any(|t| t.code || is_capitalised(core(t)));
        let first_lower = core(&subject[0]).to_lowercase();
        if !named || SUBJECT_NOT_TERM.contains(&first_lower.as_str()) {
            break;
        }
        let (start, end) = if subject.len() == 1 && subject[0].code {
            (subject[0].core_start, subject[0].core_end)
        } else {
            (subject[0].start, subject[subject.len() - 1].end)
        };
        if stands {
            // `Y`: up to the next comma or the end, at most eight words.
            let first = v + 2;
            let mut last = None;
            for (k, t) in toks.iter().enumerate().skip(first) {
                last = Some(k);
                if t.core_end < t.end {
                    break;
                }
            }
            if let Some(last) = last.filter(|&l| l >= first && l - first < 8) {
                out.push(Span {
                    kind: Kind::Expansion,
                    start: toks[first].core_start,
                    end: toks[last].core_end,
                });
            }
        } else if subject.len() == 1 || !sentence[start..end].contains('`') {
            // A lone identifier without its backticks, or a plain multi-word term.
            out.push(Span { kind: Kind::Term, start, end });
        }
        break;
    }
    out
}

/// Subjects that are not terms being defined.
const SUBJECT_NOT_TERM: &[&str] = &[
    "it", "this", "that", "there", "here", "which", "what", "each", "every", "all", "because", "since",
    "while", "when", "if", "as", "once", "in", "on", "at", "by", "for", "with", "although", "so", "but",
    "and", "or",
];
