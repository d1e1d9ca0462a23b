//! Text ↔ token ids through the `tokenizers` crate: from a `tokenizer.json` file or one built from
//! GGUF metadata. A file's own padding and truncation are switched off (the MiniLM file pads every
//! input to 128 tokens), so ids are exactly the text's. [`StreamDecoder`] turns ids into text
//! piece by piece for streaming output without cutting a multi-byte character in half.

use std::path::Path;

use crate::error::{Result, RuntimeError};

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| RuntimeError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Tokenizer::from_inner(inner))
    }

    /// A tokenizer from the text of a `tokenizer.json`.
    pub fn from_json(json: &str) -> Result<Tokenizer> {
        let inner: tokenizers::Tokenizer =
            json.parse().map_err(|e| RuntimeError::Tokenizer(format!("invalid tokenizer JSON: {e}")))?;
        Ok(Tokenizer::from_inner(inner))
    }

    fn from_inner(mut inner: tokenizers::Tokenizer) -> Tokenizer {
        inner.with_padding(None);
        // `with_truncation` only fails on an invalid strategy, and None has none.
        let _ = inner.with_truncation(None);
        Tokenizer { inner }
    }

    /// The ids of `text`; `add_special_tokens` adds what the file's post-processor adds
    /// (BERT's `[CLS]` … `[SEP]`, a BOS for some decoders).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| RuntimeError::Tokenizer(e.to_string()))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// Incremental detokenisation: decodes everything generated so far and hands out the new
/// suffix, holding text back while it ends in an incomplete UTF-8 sequence (decoded as U+FFFD).
#[derive(Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    emitted: usize,
}

impl StreamDecoder {
    pub fn new() -> Self {
        StreamDecoder::default()
    }

    /// The text that `id` completes (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = tokenizer.decode(&self.ids, true)?;
        if text.ends_with('\u{FFFD}') || text.len() < self.emitted || !text.is_char_boundary(self.emitted) {
            return Ok(String::new());
        }
        let piece = text[self.emitted..].to_string();
        self.emitted = text.len();
        Ok(piece)
    }
}
