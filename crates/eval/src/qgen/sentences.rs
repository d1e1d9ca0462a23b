//! From a passage's text (Markdown or prose, with its lines or on one line) to the sentences
//! that state a fact.
//!
//! Markdown is read line by line: front matter, fenced and indented code, tables, HTML blocks and
//! comments, headings (`#` and underlined), link definitions and horizontal rules are dropped;
//! list bullets, task boxes and quote markers are stripped, each list item being a paragraph of
//! its own. Inside a paragraph, images and badges are removed, links keep their text, bare URLs
//! and HTML tags go, emphasis markers are stripped; inline code keeps its backticks (the spans
//! find identifiers there). A passage on one line (a JSONL corpus, the synthetic world) is read
//! as one paragraph, its inline code fences removed and any sentence with a heading marker or a
//! table bar dropped.
//!
//! A sentence states a fact when it ends with a full stop, has between [`MIN_WORDS`] and
//! [`MAX_WORDS`] words, starts neither with an instruction verb (`Run`, `Add`, `See`, …) nor with
//! a pronoun whose referent is elsewhere (`It`, `This`, `They`, …), and reads as prose: most of
//! its words are lower-case words, and outside inline code it holds no code punctuation.

/// Fewest words in a question's source sentence.
pub const MIN_WORDS: usize = 6;
/// Most words in a question's source sentence.
pub const MAX_WORDS: usize = 40;

/// First words that make a sentence an instruction or leave its subject to the context.
const SKIP_FIRST: &[&str] = &[
    "add",
    "run",
    "install",
    "see",
    "use",
    "note",
    "check",
    "make",
    "please",
    "click",
    "open",
    "set",
    "call",
    "create",
    "import",
    "read",
    "try",
    "build",
    "clone",
    "enable",
    "disable",
    "visit",
    "refer",
    "consider",
    "let",
    "now",
    "then",
    "first",
    "next",
    "finally",
    "also",
    "to",
    "if",
    "when",
    "for",
    "it",
    "its",
    "this",
    "these",
    "they",
    "that",
    "those",
    "he",
    "she",
    "we",
    "you",
    "your",
    "our",
    "i",
    "here",
    "there",
    "thanks",
    "copyright",
    "licensed",
    "unless",
    "example",
    "e.g.",
    "so",
    "but",
    "and",
    "or",
    "otherwise",
    "instead",
    "however",
    "why",
    "how",
    "what",
    "which",
];

/// Whether `word` (any case) is one of the instruction verbs and pronouns a fact sentence may
/// not start with: capitalised mid-sentence (after a colon, in a title) it is no name either.
pub fn is_common_first_word(word: &str) -> bool {
    SKIP_FIRST.contains(&word.to_lowercase().as_str())
}

/// Abbreviations whose full stop does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g.", "i.e.", "etc.", "vs.", "cf.", "dr.", "mr.", "mrs.", "ms.", "prof.", "inc.", "ltd.", "co.", "no.",
    "approx.", "fig.", "st.", "jr.", "sr.", "al.", "u.s.", "v.", "ver.", "min.", "max.",
];

/// The prose paragraphs of `text`, Markdown removed (see the module doc), each on one line.
pub fn paragraphs(text: &str) -> Vec<String> {
    if !text.contains('\n') {
        return one_line_paragraph(text).into_iter().collect();
    }
    let mut out = Vec::new();
    let mut para: Vec<String> = Vec::new();
    let flush = |para: &mut Vec<String>, out: &mut Vec<String>| {
        if !para.is_empty() {
            let cleaned = clean_inline(&para.join(" "));
            if !cleaned.is_empty() {
                out.push(cleaned);
            }
            para.clear();
        }
    };
    let mut lines = text.lines().peekable();
    // Front matter: `---` or `+++` on the first line, up to the same marker.
    if let Some(first) = lines.peek().map(|l| l.trim())
        && (first == "---" || first == "+++")
    {
        let marker = first.to_string();
        lines.next();
        for l in lines.by_ref() {
            if l.trim() == marker {
                break;
            }
        }
    }
    let mut fence: Option<String> = None;
    let mut in_comment = false;
    let mut prev_blank = true;
    let mut in_list = false;
    let mut prev_quote = false;
    for line in lines {
        let trimmed = line.trim();
        if let Some(marker) = &fence {
            if trimmed.starts_with(marker.as_str()) {
                fence = None;
            }
            continue;
        }
        if in_comment {
            if trimmed.contains("-->") {
                in_comment = false;
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            flush(&mut para, &mut out);
            fence = Some(trimmed[..3].to_string());
            continue;
        }
        if trimmed.is_empty() {
            flush(&mut para, &mut out);
            prev_blank = true;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let tabbed = line.starts_with('\t');
        let was_blank = std::mem::replace(&mut prev_blank, false);
        if (indent >= 4 || tabbed) && was_blank && !in_list {
            // Indented code: skip it and the lines that follow at the same depth.
            prev_blank = true;
            flush(&mut para, &mut out);
            continue;
        }
        if trimmed.starts_with("<!--") {
            flush(&mut para, &mut out);
            in_comment = !trimmed.contains("-->");
            continue;
        }
        if is_heading(trimmed) || is_rule(trimmed) || trimmed.contains('|') || is_html_line(trimmed) {
            flush(&mut para, &mut out);
            in_list = false;
            continue;
        }
        if is_setext_underline(trimmed) {
            // The paragraph above was a heading.
            para.clear();
            continue;
        }
        if is_link_definition(trimmed) {
            continue;
        }
        let mut content = trimmed;
        let quote = content.starts_with('>');
        if quote != prev_quote {
            flush(&mut para, &mut out);
        }
        prev_quote = quote;
        while let Some(rest) = content.strip_prefix('>') {
            content = rest.trim_start();
        }
        if let Some(item) = list_item(content) {
            flush(&mut para, &mut out);
            in_list = true;
            para.push(item.to_string());
            continue;
        }
        if indent == 0 && was_blank {
            in_list = false;
        }
        para.push(content.to_string());
    }
    flush(&mut para, &mut out);
    out
}

/// A passage on one line: inline code fences removed, the rest one paragraph.
fn one_line_paragraph(text: &str) -> Option<String> {
    let mut kept = String::new();
    for (i, part) in text.split("```").enumerate() {
        if i % 2 == 0 {
            kept.push_str(part);
            kept.push(' ');
        }
    }
    let cleaned = clean_inline(&kept);
    (!cleaned.is_empty()).then_some(cleaned)
}

fn is_heading(line: &str) -> bool {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    (1..=6).contains(&hashes) && line[hashes..].chars().next().is_none_or(char::is_whitespace)
}

fn is_rule(line: &str) -> bool {
    let c: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    c.len() >= 3 && (c.chars().all(|x| x == '*') || c.chars().all(|x| x == '_'))
}

fn is_setext_underline(line: &str) -> bool {
    line.len() >= 2 && (line.chars().all(|c| c == '=') || line.chars().all(|c| c == '-'))
}

fn is_html_line(line: &str) -> bool {
    let mut chars = line.chars();
    chars.next() == Some('<') && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!')
}

fn is_link_definition(line: &str) -> bool {
    line.starts_with('[') && line.find("]:").is_some_and(|i| !line[..i].contains('('))
}

/// The text of a list item (`- x`, `* x`, `+ x`, `1. x`, `1) x`), a task box stripped.
fn list_item(line: &str) -> Option<&str> {
    let rest =
        if let Some(r) = line.strip_prefix("- ").or(line.strip_prefix("* ")).or(line.strip_prefix("+ ")) {
            r
        } else {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 || digits > 3 {
                return None;
            }
            line[digits..].strip_prefix(". ").or(line[digits..].strip_prefix(") "))?
        };
    let rest = rest.trim_start();
    Some(
        rest.strip_prefix("[ ] ")
            .or(rest.strip_prefix("[x] "))
            .or(rest.strip_prefix("[X] "))
            .unwrap_or(rest)
            .trim_start(),
    )
}

/// Inline Markdown and HTML removed from one paragraph (see the module doc); code spans kept
/// with their backticks; whitespace collapsed.
pub fn clean_inline(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let n = chars.len();
    let find = |from: usize, c: char| (from..n).find(|&j| chars[j] == c);
    while i < n {
        let c = chars[i];
        match c {
            '`' => {
                // A code span: kept as is, up to the closing backtick (an unclosed one is dropped).
                match find(i + 1, '`') {
                    Some(j) => {
                        out.extend(&chars[i..=j]);
                        i = j + 1;
                    }
                    None => i += 1,
                }
            }
            '<' => {
                // An HTML tag, comment or autolink: removed.
                let looks_tag =
                    chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == '/' || *c == '!');
                match (looks_tag, find(i + 1, '>')) {
                    (true, Some(j)) => {
                        out.push(' ');
                        i = j + 1;
                    }
                    _ => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            '!' if chars.get(i + 1) == Some(&'[') => {
                // An image: removed with its alt text and address.
                match link_end(&chars, i + 1) {
                    Some((_, end)) => i = end,
                    None => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            '[' => match link_end(&chars, i) {
                Some((label_end, end)) => {
                    // A link (a badge's outer link has an image as its text, removed in turn).
                    let label: String = chars[i + 1..label_end].iter().collect();
                    out.push_str(&clean_inline(&label));
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            },
            '*' | '~' => i += 1,
            '_' => {
                // Emphasis underscores sit at a word's edge; snake_case keeps its own.
                let before = i == 0 || !chars[i - 1].is_alphanumeric();
                let after = i + 1 >= n || !chars[i + 1].is_alphanumeric();
                if !(before || after) {
                    out.push(c);
                }
                i += 1;
            }
            '\\' if i + 1 < n && chars[i + 1].is_ascii_punctuation() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out.split_whitespace()
        .filter(|w| !w.starts_with("http://") && !w.starts_with("https://") && !w.starts_with("www."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// For `[` at `open`: the index of the matching `]` and the index just past the link's target
/// (`(...)`, `[...]`), when this is a link.
fn link_end(chars: &[char], open: usize) -> Option<(usize, usize)> {
    let mut depth = 0;
    let mut close = None;
    for (j, &c) in chars.iter().enumerate().skip(open) {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(j);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close?;
    let (opener, closer) = match chars.get(close + 1) {
        Some('(') => ('(', ')'),
        Some('[') => ('[', ']'),
        _ => return None,
    };
    let mut depth = 0;
    for (j, &c) in chars.iter().enumerate().skip(close + 1) {
        if c == opener {
            depth += 1;
        } else if c == closer {
            depth -= 1;
            if depth == 0 {
                return Some((close, j + 1));
            }
        }
    }
    let _ = opener;
    None
}

/// The sentences of one cleaned paragraph.
pub fn split_sentences(paragraph: &str) -> Vec<String> {
    let words: Vec<&str> = paragraph.split_whitespace().collect();
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_code = false;
    for (i, w) in words.iter().enumerate() {
        current.push(w);
        in_code ^= w.matches('`').count() % 2 == 1;
        if in_code {
            continue;
        }
        let bare = w.trim_end_matches(['"', '\'', ')', '”', '’']);
        let ends = bare.ends_with(['.', '!', '?']) && !bare.ends_with("..");
        let abbreviation = ABBREVIATIONS.contains(&w.to_lowercase().trim_start_matches('(')) || is_initial(w);
        let next_starts = words.get(i + 1).is_none_or(|n| {
            n.chars().next().is_some_and(|c| c.is_uppercase() || c.is_ascii_digit() || "\"'`(“|#".contains(c))
        });
        if ends && !abbreviation && next_starts {
            out.push(current.join(" "));
            current.clear();
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

/// `J.`: a single capital with a full stop, an initial.
fn is_initial(w: &str) -> bool {
    let mut c = w.chars();
    matches!((c.next(), c.next(), c.next()), (Some(a), Some('.'), None) if a.is_uppercase())
}

/// Whether a sentence states a fact (see the module doc).
pub fn is_fact(sentence: &str) -> bool {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    if !(MIN_WORDS..=MAX_WORDS).contains(&words.len()) || !sentence.ends_with('.') || sentence.ends_with("..")
    {
        return false;
    }
    let first = words[0].trim_matches(|c: char| !c.is_alphanumeric() && c != '.').to_lowercase();
    if SKIP_FIRST.contains(&first.as_str()) {
        return false;
    }
    // Outside inline code: no code punctuation, no heading marks or table bars.
    let mut outside = String::new();
    for (i, part) in sentence.split('`').enumerate() {
        if i % 2 == 0 {
            outside.push_str(part);
        }
    }
    if outside.contains(['{', '}', ';', '|', '=', '$', '#', '>', '<', '\\', '@']) || outside.contains("::") {
        return false;
    }
    if sentence.contains('?') {
        return false;
    }
    let prose = outside
        .split_whitespace()
        .filter(|w| {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            !w.is_empty() && w.chars().all(|c| c.is_lowercase() || c == '-' || c == '\'')
        })
        .count();
    prose * 2 >= words.len()
}

/// The fact sentences of a passage's text, in order.
pub fn fact_sentences(text: &str) -> Vec<String> {
    paragraphs(text).iter().flat_map(|p| split_sentences(p)).filter(|s| is_fact(s)).collect()
}
