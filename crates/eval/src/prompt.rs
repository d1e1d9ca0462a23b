//! The text formats shared by the base model's pretraining and every arm of the experiment.
//!
//! The built-in base model learns exactly these shapes, so a prompt built here at evaluation
//! time is one it has seen in form (never in content, for the new population). Answers are
//! continuations that start with a space and end with the tokenizer's end-of-sequence token;
//! generation stops there or at a newline.

/// A closed-book question: `Question: …\nAnswer:`.
pub fn closed_book(question: &str) -> String {
    format!("Question: {question}\nAnswer:")
}

/// A question after retrieved (or given) passages, one `Passage:` line each, in the order given.
pub fn with_passages(passages: &[&str], question: &str) -> String {
    let mut s = String::new();
    for p in passages {
        s.push_str("Passage: ");
        s.push_str(p.trim());
        s.push('\n');
    }
    s.push_str(&closed_book(question));
    s
}

/// The continuation that answers a prompt: a leading space, the answer (scored or generated).
pub fn answer(answer: &str) -> String {
    format!(" {}", answer.trim())
}

/// Stop generating at the first newline (the tokenizer's EOS also stops it).
pub const ANSWER_END: char = '\n';

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_come_before_the_question_in_order() {
        let p = with_passages(&["A b.", " C d. "], "Who?");
        assert_eq!(p, "Passage: A b.\nPassage: C d.\nQuestion: Who?\nAnswer:");
        assert_eq!(closed_book("Who?"), "Question: Who?\nAnswer:");
        assert_eq!(answer(" Ada "), " Ada");
    }
}
