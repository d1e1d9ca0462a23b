//! Paraphrases of the corpus written by an instruct model, for `ft-par` when the user gives
//! none (`[generate] model` set, `[data] paraphrases` empty): each passage is rewritten once per
//! round, and a rewrite is kept only when it still states the passage's facts.
//!
//! The filter ([`keep_paraphrase`]) is what makes a small model usable here: a rewrite must keep
//! every number and every capitalised name of the passage (the facts the questions ask about),
//! have 60% to 160% of its words, and not be the passage itself; otherwise the passage has no
//! paraphrase in that round (a round may cover part of the corpus). The prompt shows one worked
//! example as a chat turn (ChatML when the tokenizer has `<|im_start|>`).

use ragtune_runtime::{GenerateOptions, LlamaModel, Tokenizer, generate};

use super::model::chat_and_stops;
use crate::error::Result;
use crate::task::Passage;

/// Rewrites a passage.
pub trait ParaphraseWriter {
    /// The raw reply for `text` in round `round` (0-based).
    fn write(&mut self, text: &str, round: usize) -> Result<String>;
}

/// A causal language model as a [`ParaphraseWriter`].
pub struct ModelParaphraser<'a> {
    model: &'a LlamaModel,
    tok: &'a Tokenizer,
    chat: bool,
    stops: Vec<u32>,
}

impl<'a> ModelParaphraser<'a> {
    pub fn new(model: &'a LlamaModel, tok: &'a Tokenizer) -> ModelParaphraser<'a> {
        let (chat, stops) = chat_and_stops(model, tok);
        ModelParaphraser { model, tok, chat, stops }
    }

    /// The prompt: the task with one worked example, then `text`.
    pub fn prompt(&self, text: &str, round: usize) -> String {
        // Later rounds ask for a different form, so that rounds differ from each other.
        let style = ["in other words", "as a short explanation", "in a different sentence order"][round % 3];
        let ask = |t: &str| format!("Rewrite this text {style}, keeping every name and number:\n{t}");
        let example = "Tessera was written by Marcus Ild in 2016 at Harbor Analytics.";
        let example_answer = "In 2016 Marcus Ild wrote Tessera while working at Harbor Analytics.";
        if self.chat {
            format!(
                "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n{example_answer}<|im_end|>\n\
                 <|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
                ask(example),
                ask(text)
            )
        } else {
            format!("{}\nRewrite: {example_answer}\n\n{}\nRewrite:", ask(example), ask(text))
        }
    }
}

impl ParaphraseWriter for ModelParaphraser<'_> {
    fn write(&mut self, text: &str, round: usize) -> Result<String> {
        let ids = self.tok.encode(&self.prompt(text, round), true)?;
        let budget = self.tok.encode(text, false)?.len() * 8 / 5 + 8;
        if ids.len() + budget > self.model.max_context() {
            return Ok(String::new());
        }
        let options = GenerateOptions {
            stop_tokens: self.stops.clone(),
            ..GenerateOptions::for_model(self.model, budget)
        };
        let out = generate(self.model, &[ids], &options, |_, _| Ok(()))?;
        let tokens = out.into_iter().next().map(|g| g.tokens).unwrap_or_default();
        Ok(self.tok.decode(&tokens, true)?)
    }
}

/// The facts a rewrite must keep: numbers and capitalised words (not the first word of a
/// sentence, which is capitalised anyway).
fn facts(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        let word: String = raw.trim_matches(|c: char| !c.is_alphanumeric()).to_string();
        let is_number = word.chars().any(|c| c.is_ascii_digit());
        let is_name = !sentence_start && word.chars().next().is_some_and(char::is_uppercase);
        if (is_number || is_name) && !out.contains(&word) {
            out.push(word);
        }
        sentence_start = raw.ends_with(['.', '!', '?', ':']);
    }
    out
}

/// The reply as a paraphrase of `text`, when it keeps the facts (see the module doc).
pub fn keep_paraphrase(reply: &str, text: &str) -> Option<String> {
    let rewrite = reply.split_whitespace().collect::<Vec<_>>().join(" ");
    let (n, m) = (text.split_whitespace().count(), rewrite.split_whitespace().count());
    let words: Vec<String> = rewrite
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
        .collect();
    let kept = facts(text).iter().all(|f| words.contains(f));
    let sized = m * 10 >= n * 6 && m * 10 <= n * 16;
    let same = rewrite == text.split_whitespace().collect::<Vec<_>>().join(" ");
    (kept && sized && !same && !rewrite.is_empty()).then_some(rewrite)
}

/// `rounds` paraphrase rounds of `corpus` by `writer`: round r holds the passages whose rewrite
/// passed the filter, with their ids (so sources still resolve), and how many were kept.
pub fn paraphrase_rounds(
    corpus: &[Passage],
    writer: &mut dyn ParaphraseWriter,
    rounds: usize,
) -> Result<(Vec<Vec<Passage>>, usize)> {
    let (mut out, mut kept) = (Vec::with_capacity(rounds), 0);
    for round in 0..rounds {
        let mut this = Vec::new();
        for p in corpus {
            if let Some(text) = keep_paraphrase(&writer.write(&p.text, round)?, &p.text) {
                this.push(Passage::new(p.id.clone(), text));
                kept += 1;
            }
        }
        out.push(this);
    }
    Ok((out, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scripted(fn(&str, usize) -> String);

    impl ParaphraseWriter for Scripted {
        fn write(&mut self, text: &str, round: usize) -> Result<String> {
            Ok((self.0)(text, round))
        }
    }

    const TEXT: &str =
        "Tessera was written by Marcus Ild in 2016. It runs at Harbor Analytics on 12 servers.";

    #[test]
    fn a_rewrite_must_keep_every_name_and_number() {
        let good = "In 2016 Marcus Ild wrote Tessera, which Harbor Analytics runs on 12 servers.";
        assert_eq!(keep_paraphrase(good, TEXT).as_deref(), Some(good));
        assert_eq!(
            keep_paraphrase("Marcus Ild wrote Tessera, run by Harbor Analytics on 12 servers.", TEXT),
            None,
            "2016 lost"
        );
        assert_eq!(
            keep_paraphrase("In 2016 Marcus wrote Tessera for Harbor Analytics on 12 servers.", TEXT),
            None,
            "Ild lost"
        );
        assert_eq!(
            keep_paraphrase("Tessera: Marcus Ild, 2016, Harbor Analytics, 12.", TEXT),
            None,
            "too short"
        );
        assert_eq!(keep_paraphrase(TEXT, TEXT), None, "the passage itself");
        let long = format!("{good} {}", "It is said that it is so. ".repeat(4));
        assert_eq!(keep_paraphrase(&long, TEXT), None, "too long");
        assert_eq!(facts(TEXT), ["Marcus", "Ild", "2016", "Harbor", "Analytics", "12"]);
    }

    #[test]
    fn rounds_hold_the_kept_rewrites_under_their_passage_ids() {
        let corpus =
            vec![Passage::new("a.md#1", TEXT), Passage::new("b.md#1", "Orlin ships 40 crates from Kestrel.")];
        let mut writer = Scripted(|text, round| {
            if text.starts_with("Tessera") && round == 0 {
                "In 2016 Marcus Ild wrote Tessera, which Harbor Analytics runs on 12 servers.".into()
            } else {
                "I cannot help with that.".into()
            }
        });
        let (rounds, kept) = paraphrase_rounds(&corpus, &mut writer, 2).unwrap();
        assert_eq!((rounds.len(), kept), (2, 1));
        assert_eq!(rounds[0].len(), 1);
        assert_eq!(rounds[0][0].id, "a.md#1");
        assert!(rounds[1].is_empty());
    }
}
