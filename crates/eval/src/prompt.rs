//! The text formats shared by the base model's pretraining and every arm of the experiment.
//!
//! The built-in base model learns exactly these shapes, so a prompt built here at evaluation
//! time is one it has seen in form (never in content, for the new population). Answers are
//! continuations that start with a space and end with the tokenizer's end-of-sequence token;
//! generation stops there or at a newline. Classification and house-format tasks have their
//! own shapes ([`classify`], [`house`]): an instruction, retrieved demonstrations, the input.

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

/// A text to label: the label set, then `k` demonstrations (retrieved training examples, each
/// `Text: …` / `Label: …`), then the text. Each label is scored as the continuation
/// ([`answer`]) of this prompt.
pub fn classify(labels: &[String], demos: &[(&str, &str)], text: &str) -> String {
    let mut s = format!("Classify the text. Labels: {}.\n", labels.join(", "));
    for (t, l) in demos {
        s.push_str(&format!("Text: {}\nLabel: {}\n", t.trim(), l.trim()));
    }
    s.push_str(&format!("Text: {}\nLabel:", text.trim()));
    s
}

/// An input to answer in the house format: the format in words (`format`, e.g. "a JSON object
/// with the fields …"), demonstrations (`Input: …` / `Output: …`), then the input.
pub fn house(format: &str, demos: &[(&str, &str)], input: &str) -> String {
    let mut s = format!("Answer in the house format: {format}.\n");
    for (i, o) in demos {
        s.push_str(&format!("Input: {}\nOutput: {}\n", i.trim(), o.trim()));
    }
    s.push_str(&format!("Input: {}\nOutput:", input.trim()));
    s
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

    #[test]
    fn demonstrations_come_before_the_input() {
        let labels = ["spam".to_string(), "ham".to_string()];
        assert_eq!(
            classify(&labels, &[("win now", "spam")], " hi mum "),
            "Classify the text. Labels: spam, ham.\nText: win now\nLabel: spam\nText: hi mum\nLabel:"
        );
        assert_eq!(classify(&labels, &[], "x"), "Classify the text. Labels: spam, ham.\nText: x\nLabel:");
        assert_eq!(
            house("the form: T {a}", &[("in", "T 1")], "q"),
            "Answer in the house format: the form: T {a}.\nInput: in\nOutput: T 1\nInput: q\nOutput:"
        );
    }
}
