//! The built-in base model's tokenizer: byte-level BPE trained with the `tokenizers` crate on the
//! pretraining mixture's text.
//!
//! Byte-level (GPT-2's pre-tokenizer and decoder, no prefix space) rather than Metaspace because
//! it makes `decode(encode(x)) == x` hold for any text, and because a word keeps the same tokens
//! wherever it stands after a space: the answer " Tolmar" after `Answer:` is the very token
//! sequence of "… born in Tolmar." in a passage, which is what copying from a passage needs.
//! Special tokens sit at fixed ids (`<pad>` 0, `<s>` 1, `</s>` 2) and a template post-processor
//! prepends `<s>` when special tokens are asked for.

use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, TokenizerBuilder};

use ragtune_eval::error::{EvalError, Result};

/// `(token, id)` of the special tokens, in id order.
pub const SPECIAL_TOKENS: [(&str, u32); 3] = [("<pad>", PAD_ID), ("<s>", BOS_ID), ("</s>", EOS_ID)];
/// The ids are the built-in model's, which eval loads (one definition for both sides).
pub use ragtune_eval::builtin::{BOS_ID, EOS_ID, PAD_ID};

/// Train a byte-level BPE tokenizer of `vocab_size` entries (special tokens and the 256 byte
/// symbols included) on `texts`, and return its `tokenizer.json` text. Deterministic: the same
/// texts give the same file.
pub fn train_tokenizer<S: AsRef<str> + Sync>(texts: &[S], vocab_size: usize) -> Result<String> {
    let alphabet = ByteLevel::alphabet();
    if vocab_size < alphabet.len() + SPECIAL_TOKENS.len() + 1 {
        return Err(EvalError::config(format!(
            "a vocabulary of {vocab_size} cannot hold the {} byte symbols and {} special tokens; use at least {}",
            alphabet.len(),
            SPECIAL_TOKENS.len(),
            alphabet.len() + SPECIAL_TOKENS.len() + 1
        )));
    }
    let err = |e: tokenizers::Error| EvalError::training(format!("training the tokenizer: {e}"));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|(t, _)| AddedToken::from(*t, true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(specials)
        .initial_alphabet(alphabet.into_iter().collect())
        .show_progress(false)
        .build();
    let byte_level = ByteLevel::new(false, true, true);
    let post = TemplateProcessing::builder()
        .try_single("<s> $A")
        .and_then(|b| b.try_pair("<s> $A $B:1"))
        .map_err(|e| EvalError::training(format!("tokenizer template: {e}")))?
        .special_tokens(vec![("<s>", BOS_ID)])
        .build()
        .map_err(|e| EvalError::training(format!("tokenizer template: {e}")))?;
    let mut tokenizer =
        TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, TemplateProcessing, ByteLevel>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(byte_level))
            .with_post_processor(Some(post))
            .with_decoder(Some(byte_level))
            .build()
            .map_err(err)?;
    tokenizer.train(&mut trainer, texts.iter().map(|t| t.as_ref())).map_err(err)?;
    for (token, id) in SPECIAL_TOKENS {
        if tokenizer.token_to_id(token) != Some(id) {
            return Err(EvalError::training(format!(
                "the trained tokenizer gave `{token}` the id {:?}, not {id}",
                tokenizer.token_to_id(token)
            )));
        }
    }
    let tokenizer: tokenizers::Tokenizer = tokenizer.into();
    tokenizer.to_string(true).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragtune_runtime::Tokenizer;

    fn sample_texts() -> Vec<String> {
        let names = ["Varen Oskholt", "Tilda Marrow", "Kesh Dunmere", "Orla Brisk"];
        let cities = ["Tolmar", "Quenby", "Ashgrove"];
        let mut texts = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let c = cities[i % cities.len()];
            texts.push(format!("{n} was born in {c} in 19{}{}. {n} works as a baker.", i + 2, i * 3 % 10));
            texts.push(format!("Question: Where was {n} born?\nAnswer: {c}"));
        }
        texts
    }

    #[test]
    fn special_ids_are_fixed_and_text_round_trips() {
        let texts = sample_texts();
        let json = train_tokenizer(&texts, 300).unwrap();
        let tok = Tokenizer::from_json(&json).unwrap();
        for (t, id) in SPECIAL_TOKENS {
            assert_eq!(tok.token_to_id(t), Some(id), "{t}");
        }
        assert!(tok.vocab_size() <= 300);
        // Text the tokenizer never saw (a new name, unicode, odd spacing) round-trips too.
        let unseen = "Passage: Zyx Quorra was born in Élan  in 1987.\nQuestion: Who?\nAnswer: Zyx";
        for text in texts.iter().map(String::as_str).chain([unseen]) {
            let ids = tok.encode(text, true).unwrap();
            assert_eq!(ids[0], BOS_ID, "BOS is prepended");
            assert_eq!(ids.iter().filter(|&&i| i == BOS_ID).count(), 1);
            assert_eq!(tok.encode(text, false).unwrap(), ids[1..].to_vec());
            assert_eq!(tok.decode(&ids, true).unwrap(), text);
        }
        // An answer continuation tokenizes as it does after a prompt (the copy property).
        let joint = tok.encode("Answer: Tolmar", false).unwrap();
        let apart = [tok.encode("Answer:", false).unwrap(), tok.encode(" Tolmar", false).unwrap()].concat();
        assert_eq!(joint, apart);
        // The same texts give the same file.
        assert_eq!(train_tokenizer(&texts, 300).unwrap(), json);
    }

    #[test]
    fn a_vocabulary_too_small_for_the_bytes_is_an_error() {
        let e = train_tokenizer(&sample_texts(), 100).unwrap_err().to_string();
        assert!(e.contains("at least 260"), "{e}");
    }
}
