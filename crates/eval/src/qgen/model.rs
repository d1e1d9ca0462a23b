//! Questions worded by an instruct model (`[generate] model = PATH`), then filtered.
//!
//! The answers, their sources and their distractors are the built-in generator's (so every
//! answer is a span of its source passage, see [`super::generate`]); the model only words the
//! question: given the fact sentence and the answer, it writes a question whose answer that is
//! ([`ModelWriter`]: one worked example as a chat turn — ChatML when the tokenizer has
//! `<|im_start|>`, as SmolLM2-Instruct's does — then greedy decoding of one line). Small models
//! answer sentence-level, answer-aware prompts far better than "write questions about this
//! text". A written question is kept when it ends with `?`, has 10 to
//! [`super::questions::MAX_QUESTION_CHARS`] characters, does not contain its answer, and repeats
//! no earlier question (after [`normalise`]); otherwise the built-in question stands.

use ragtune_runtime::{GenerateOptions, LlamaModel, Tokenizer, generate};

use super::questions::{MAX_QUESTION_CHARS, contains_words, normalise};
use super::{GenerateSettings, generate_with};
use crate::error::Result;
use crate::task::{Passage, QaItem};

/// Writes a question for a sentence and an answer it contains.
pub trait QuestionWriter {
    /// The raw reply (its first line is taken, see [`clean_question`]).
    fn write(&mut self, sentence: &str, answer: &str) -> Result<String>;
}

/// Whether `tok` speaks ChatML (has `<|im_start|>`), and the tokens that end a reply: the model's
/// end-of-sequence ids and ChatML's `<|im_end|>`. The question writer and the paraphraser share them.
pub(crate) fn chat_and_stops(model: &LlamaModel, tok: &Tokenizer) -> (bool, Vec<u32>) {
    let mut stops = model.config.eos_token_ids.clone();
    stops.extend(tok.token_to_id("<|im_end|>"));
    (tok.token_to_id("<|im_start|>").is_some(), stops)
}

/// A causal language model as a [`QuestionWriter`].
pub struct ModelWriter<'a> {
    model: &'a LlamaModel,
    tok: &'a Tokenizer,
    /// Tokens generated per question.
    pub max_new_tokens: usize,
    chat: bool,
    stops: Vec<u32>,
}

impl<'a> ModelWriter<'a> {
    pub fn new(model: &'a LlamaModel, tok: &'a Tokenizer) -> ModelWriter<'a> {
        let (chat, mut stops) = chat_and_stops(model, tok);
        // A question is one line.
        for id in 0..tok.vocab_size() as u32 {
            if tok.decode(&[id], false).is_ok_and(|t| t.contains('\n')) {
                stops.push(id);
            }
        }
        ModelWriter { model, tok, max_new_tokens: 48, chat, stops }
    }

    /// The prompt: the task with one worked example, then `sentence` and `answer`.
    pub fn prompt(&self, sentence: &str, answer: &str) -> String {
        let turn = |s: &str, a: &str| {
            format!("Sentence: {s}\nWrite one question about this sentence whose answer is \"{a}\".")
        };
        let example = turn("The Eiffel Tower was completed in 1889 by Gustave Eiffel's company.", "1889");
        let example_answer = "When was the Eiffel Tower completed?";
        let ask = turn(sentence, answer);
        if self.chat {
            format!(
                "<|im_start|>user\n{example}<|im_end|>\n<|im_start|>assistant\n{example_answer}<|im_end|>\n\
                 <|im_start|>user\n{ask}<|im_end|>\n<|im_start|>assistant\n"
            )
        } else {
            format!("{example}\nQuestion: {example_answer}\n\n{ask}\nQuestion:")
        }
    }
}

impl QuestionWriter for ModelWriter<'_> {
    fn write(&mut self, sentence: &str, answer: &str) -> Result<String> {
        let ids = self.tok.encode(&self.prompt(sentence, answer), true)?;
        if ids.len() + self.max_new_tokens > self.model.max_context() {
            return Ok(String::new());
        }
        let options = GenerateOptions {
            stop_tokens: self.stops.clone(),
            ..GenerateOptions::for_model(self.model, self.max_new_tokens)
        };
        let out = generate(self.model, &[ids], &options, |_, _| Ok(()))?;
        let tokens = out.into_iter().next().map(|g| g.tokens).unwrap_or_default();
        Ok(self.tok.decode(&tokens, true)?)
    }
}

/// Words a question may add to its sentence's without drifting from it.
const QUESTION_WORDS: &[&str] = &[
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "many", "much", "does", "did",
    "the", "and", "for", "with", "that", "this", "from", "into", "was", "were", "are", "has", "have", "had",
    "name", "called", "year", "version", "number", "used", "use", "can", "its", "their", "there",
];

/// A reply's question: its first non-blank line, a `Q:`/`Question:` label and quotes removed,
/// kept when it ends with `?`, has 10 to [`MAX_QUESTION_CHARS`] characters, does not contain
/// `answer`, and stays on `sentence`: at least 60% of its content words (three letters or more,
/// question words aside) occur in the sentence, so "What is the purpose of …?" drifts out.
pub fn clean_question(reply: &str, answer: &str, sentence: &str) -> Option<String> {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = ["Question:", "Q:"].iter().fold(line, |l, p| l.strip_prefix(p).unwrap_or(l).trim());
    let q = line.trim_matches(['"', '“', '”', '*']).split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = q.chars().count();
    let in_sentence = format!(" {} ", normalise(sentence));
    let norm_q = normalise(&q);
    let content: Vec<&str> =
        norm_q.split(' ').filter(|w| w.len() >= 3 && !QUESTION_WORDS.contains(w)).collect();
    let grounded = content.iter().filter(|w| in_sentence.contains(&format!(" {w} "))).count();
    let ok = q.ends_with('?')
        && (10..=MAX_QUESTION_CHARS).contains(&chars)
        && !contains_words(&norm_q, &normalise(answer))
        && !content.is_empty()
        && grounded * 5 >= content.len() * 3;
    ok.then_some(q)
}

/// Counts of [`generate_with_writer`]'s questions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Questions the writer worded that passed the filter.
    pub kept: usize,
    /// Replies dropped (the built-in question stands).
    pub dropped: usize,
}

/// The built-in generator's questions, each worded by `writer` where its reply passes the
/// filter (see the module doc).
pub fn generate_with_writer(
    passages: &[Passage],
    writer: &mut dyn QuestionWriter,
    settings: &GenerateSettings,
) -> Result<(Vec<QaItem>, Written)> {
    let mut counts = Written::default();
    let items = generate_with(passages, settings, &mut |sentence, answer| {
        let reply = writer.write(sentence, answer)?;
        let q = clean_question(&reply, answer, sentence);
        if q.is_some() {
            counts.kept += 1;
        } else {
            counts.dropped += 1;
        }
        Ok(q)
    })?;
    Ok((items, counts))
}

/// [`generate_with_writer`] with `model` ([`ModelWriter`]).
pub fn generate_with_model(
    passages: &[Passage],
    model: &LlamaModel,
    tok: &Tokenizer,
    settings: &GenerateSettings,
) -> Result<Vec<QaItem>> {
    Ok(generate_with_writer(passages, &mut ModelWriter::new(model, tok), settings)?.0)
}

#[cfg(test)]
mod tests {
    use super::super::generate;
    use super::*;

    /// A scripted writer.
    struct Scripted(fn(&str, &str) -> String);

    impl QuestionWriter for Scripted {
        fn write(&mut self, sentence: &str, answer: &str) -> Result<String> {
            Ok((self.0)(sentence, answer))
        }
    }

    fn corpus() -> Vec<Passage> {
        let p = |id: &str, text: &str| Passage::new(id, text);
        vec![
            p("a.md#1", "# Quillmark\n\nQuillmark was started by Helena Marsh in 2019 at Northwind Labs."),
            p("b.md#1", "Tessera was written by Marcus Ild in 2016 at Harbor Analytics for time series."),
            p("c.md#1", "Orlin was designed by Ada Brenn in 2003 at Kestrel Works for shipping logs."),
            p("d.md#1", "Vell was founded by Tovin Ressa in 1998 at Quarn Guild for river trade."),
        ]
    }

    #[test]
    fn replies_are_cleaned_and_filtered() {
        let s = "Vell was founded by Tovin Ressa in 1998 and started trading in 2019.";
        let clean = |reply: &str, answer: &str| clean_question(reply, answer, s);
        assert_eq!(
            clean("Q: When was Vell started?\nmore", "2019").as_deref(),
            Some("When was Vell started?")
        );
        assert_eq!(clean("\n  \"Who founded Vell?\"", "Tovin Ressa").as_deref(), Some("Who founded Vell?"));
        assert_eq!(clean("Vell was started in 2019.", "2019"), None, "no question mark");
        assert_eq!(clean("Was Vell started in 2019?", "2019"), None, "shows its answer");
        assert_eq!(clean("Why?", "2019"), None, "too short");
        assert_eq!(clean(&format!("{}?", "a".repeat(400)), "2019"), None, "too long");
        assert_eq!(
            clean("What is the purpose of a river guild?", "Tovin Ressa"),
            None,
            "drifts from the sentence"
        );
    }

    #[test]
    fn written_questions_replace_the_built_in_ones_when_they_pass() {
        let settings = GenerateSettings { per_passage: 5, ..GenerateSettings::default() };
        let built_in = generate(&corpus(), &settings);
        // A writer that words year questions well and leaks the answer for everything else.
        let mut writer = Scripted(|sentence, answer| {
            if answer.len() == 4 && answer.parse::<u32>().is_ok() {
                let words: Vec<&str> = sentence.split_whitespace().collect();
                format!("In which year was {} {}?", words[0], words[2])
            } else {
                format!("Is it {answer}?")
            }
        });
        let (qs, counts) = generate_with_writer(&corpus(), &mut writer, &settings).unwrap();
        assert_eq!(qs.len(), built_in.len());
        let years = qs.iter().filter(|q| q.answer.parse::<u32>().is_ok()).count();
        assert!(years > 0);
        assert_eq!(counts, Written { kept: years, dropped: qs.len() - years });
        for (q, b) in qs.iter().zip(&built_in) {
            // Same answers, sources and options; only the wording of year questions changed.
            assert_eq!(
                (&q.answer, &q.sources, &q.choices, q.correct),
                (&b.answer, &b.sources, &b.choices, b.correct)
            );
            if q.answer.parse::<u32>().is_ok() {
                assert!(q.question.starts_with("In which year was "), "{}", q.question);
            } else {
                assert_eq!(q.question, b.question);
            }
        }
    }
}
