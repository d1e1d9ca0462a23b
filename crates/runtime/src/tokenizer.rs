//! Text ↔ token ids through the `tokenizers` crate: from a `tokenizer.json` file or one built from
//! GGUF metadata. A file's own padding and truncation are switched off (the MiniLM file pads every
//! input to 128 tokens), so ids are exactly the text's. [`StreamDecoder`] turns ids into text
//! piece by piece for streaming output without cutting a multi-byte character in half.
//!
//! A file is checked before `tokenizers` parses it (`tokenizer_json.rs`: inputs on which
//! that crate panics or spends memory out of proportion), and every call into the crate runs
//! under `catch_unwind`, so a panic left in it still reaches the caller as an error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use crate::error::{Result, RuntimeError};

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io(path, e))?;
        Tokenizer::parse(&text, &path.display().to_string())
    }

    /// A tokenizer from the text of a `tokenizer.json`.
    pub fn from_json(json: &str) -> Result<Tokenizer> {
        Tokenizer::parse(json, "tokenizer JSON")
    }

    /// `text` checked, then parsed by `tokenizers`; errors name `origin`.
    fn parse(text: &str, origin: &str) -> Result<Tokenizer> {
        crate::tokenizer_json::check(text, origin)?;
        let inner: tokenizers::Tokenizer = guarded(origin, "reading it", || text.parse())?
            .map_err(|e| RuntimeError::Tokenizer(format!("{origin}: {e}")))?;
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
        let enc =
            guarded("the tokenizer", "encoding a text", || self.inner.encode(text, add_special_tokens))?
                .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The ids of at most the first `max_tokens · BYTES_PER_TOKEN` bytes of `text` (cut at a
    /// char boundary), and whether the text was cut. Costs memory in proportion to
    /// `max_tokens`, not to the text: a 20 MB line asked for 32 tokens tokenizes 1 KB.
    ///
    /// Why the cut does not change the first `max_tokens` ids: tokenizers split text into
    /// pre-tokens (words, punctuation, whitespace runs) and never merge across them, and a
    /// token of a byte-level BPE or WordPiece vocabulary covers at most a few dozen bytes
    /// (real vocabularies: ≤ 16 bytes for all but a few whitespace runs). So the first
    /// `max_tokens` tokens lie within the first `max_tokens · 32` bytes, and the cut, far
    /// behind them, only changes tokens after them — which the caller drops anyway.
    /// Callers that need the whole text (a prompt that must fit) treat `cut == true` as
    /// "longer than `max_tokens` tokens".
    pub fn encode_prefix(
        &self,
        text: &str,
        max_tokens: usize,
        add_special_tokens: bool,
    ) -> Result<(Vec<u32>, bool)> {
        let (head, cut) = cut_text(text, max_tokens.saturating_mul(BYTES_PER_TOKEN));
        Ok((self.encode(head, add_special_tokens)?, cut))
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        guarded("the tokenizer", "decoding ids", || self.inner.decode(ids, skip_special_tokens))?
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))
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

/// `f` (a call into `tokenizers`) with a panic turned into an error naming `origin` and `what`
/// it was doing: the file's checks cover the panics known in 0.22.2, this the ones not yet found.
fn guarded<T>(origin: &str, what: &str, f: impl FnOnce() -> T) -> Result<T> {
    // The `tokenizers` state a panic could leave half-updated is its caches, which it reads with
    // `try_read` and skips when poisoned, so the tokenizer stays usable after a caught panic.
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        RuntimeError::Tokenizer(format!(
            "{origin}: the tokenizers library failed {what} ({why}); the tokenizer.json is malformed in a way \
             ragtune does not check yet: compare it with the model's original file"
        ))
    })
}

/// The bytes of text read per token asked for by [`Tokenizer::encode_prefix`]: a generous
/// bound on the bytes one token covers (see there).
pub const BYTES_PER_TOKEN: usize = 32;

/// `text` cut to at most `max_bytes` bytes at a char boundary, and whether it was cut.
pub fn cut_text(text: &str, max_bytes: usize) -> (&str, bool) {
    if text.len() <= max_bytes {
        return (text, false);
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
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

#[cfg(test)]
mod tests {
    use super::cut_text;

    #[test]
    fn cut_text_keeps_whole_characters() {
        assert_eq!(cut_text("héllo", 100), ("héllo", false));
        assert_eq!(cut_text("héllo", 2), ("h", true));
        assert_eq!(cut_text("héllo", 3), ("hé", true));
        assert_eq!(cut_text("", 0), ("", false));
        assert_eq!(cut_text("日本", 1), ("", true));
    }
}
