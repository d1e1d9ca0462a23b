//! Training data: JSONL files of `{"text": ...}` (continued pretraining: every token is a
//! target) or `{"prompt": ..., "completion": ...}` (supervised: the loss is taken on the
//! completion only, the prompt's labels are −100), tokenised into [`Example`]s, optionally packed
//! into full rows, shuffled with a seed and padded into [`TrainBatch`]es.

use std::path::Path;

use ragtune_compute::ops::IGNORE_INDEX;
use ragtune_runtime::Tokenizer;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::error::{Result, TrainError};
use crate::train::TrainBatch;

/// One tokenised example: ids and their labels (−100 where no loss is taken).
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub ids: Vec<i32>,
    pub labels: Vec<i32>,
}

impl Example {
    /// Cut to at most `max_len` tokens (at least 2), keeping what the example teaches: when its
    /// counted labels fit, prompt tokens go from the front — after the first token (BOS), which
    /// stays — rather than the answer from the end, as a plain cut would; otherwise (a document,
    /// or an answer longer than `max_len`) the first `max_len` tokens stay.
    pub fn cut_to(&mut self, max_len: usize) {
        let (n, max_len) = (self.ids.len(), max_len.max(2));
        if n <= max_len {
            return;
        }
        // The tail kept after the first token starts at `from`; the token before the first
        // counted label predicts it, so that token stays too.
        let from = n - (max_len - 1);
        match self.labels.iter().position(|&l| l != IGNORE_INDEX) {
            Some(first) if first >= 1 && from < first => {
                self.ids.drain(1..from);
                self.labels.drain(1..from);
            }
            _ => {
                self.ids.truncate(max_len);
                self.labels.truncate(max_len);
            }
        }
    }
}

/// What [`read_jsonl_counted`] read: the examples, and how many lines were skipped for having
/// nothing to learn (one token, an empty completion, a prompt that fills `max_len`).
#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    pub examples: Vec<Example>,
    /// Non-empty lines skipped as too short to learn from.
    pub skipped: usize,
    /// Non-empty lines read (examples + skipped).
    pub lines: usize,
}

impl Data {
    /// "skipped 1 of 35 examples: too short", or `None` when nothing was skipped.
    pub fn skipped_note(&self) -> Option<String> {
        (self.skipped > 0).then(|| {
            format!(
                "skipped {} of {} examples: too short (nothing to learn: one token, an empty completion, or a \
                 prompt that fills --max-len)",
                self.skipped, self.lines
            )
        })
    }
}

/// [`read_jsonl_counted`]'s examples.
pub fn read_jsonl(
    path: &Path,
    tokenizer: &Tokenizer,
    eos: Option<u32>,
    max_len: usize,
) -> Result<Vec<Example>> {
    Ok(read_jsonl_counted(path, tokenizer, eos, max_len)?.examples)
}

/// Read a JSONL file: one object per non-empty line, `{"text"}` or `{"prompt", "completion"}`.
/// The tokenizer adds its special tokens (BOS) to the text or the prompt; `eos`, when given, is
/// appended to a completion so the model learns to stop. Examples are cut to `max_len` tokens,
/// and the text is cut before it is tokenized ([`Tokenizer::encode_prefix`]), so a huge line
/// costs memory in proportion to `max_len`, not to its length. A line with nothing to learn
/// after the cut is skipped and counted ([`Data::skipped`]); a file where every line is
/// skipped is an error naming the file.
pub fn read_jsonl_counted(
    path: &Path,
    tokenizer: &Tokenizer,
    eos: Option<u32>,
    max_len: usize,
) -> Result<Data> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let origin = path.display();
    let mut out = Vec::new();
    let (mut skipped, mut lines, mut first_skipped) = (0usize, 0usize, None);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let at = format!("{origin}:{}", i + 1);
        let v: Value = serde_json::from_str(line)
            .map_err(|e| TrainError::format(&at, format!("not valid JSON: {e}")))?;
        let field = |k: &str| v.get(k).and_then(Value::as_str);
        // (ids, whether the text was cut before tokenizing).
        let encode = |s: &str, special: bool| -> Result<(Vec<i32>, bool)> {
            let (ids, cut) = tokenizer
                .encode_prefix(s, max_len, special)
                .map_err(|e| TrainError::format(&at, e.to_string()))?;
            Ok((ids.into_iter().map(|t| t as i32).collect(), cut))
        };
        let mut ex = match (field("text"), field("prompt"), field("completion")) {
            (Some(t), None, None) => {
                let (ids, _) = encode(t, true)?;
                Example { labels: ids.clone(), ids }
            }
            (None, Some(p), Some(c)) => {
                let ((p, _), (mut c, c_cut)) = (encode(p, true)?, encode(c, false)?);
                // A completion cut short does not end here: no EOS after it.
                if !c_cut {
                    c.extend(eos.map(|e| e as i32));
                }
                let labels = std::iter::repeat_n(IGNORE_INDEX, p.len()).chain(c.iter().copied()).collect();
                Example { ids: [p, c].concat(), labels }
            }
            _ => {
                return Err(TrainError::format(
                    &at,
                    "each line must be {\"text\": string} or {\"prompt\": string, \"completion\": string}",
                ));
            }
        };
        ex.ids.truncate(max_len);
        ex.labels.truncate(max_len);
        // Position t predicts labels[t + 1]: an example needs a counted label after its first token.
        if ex.labels.iter().skip(1).all(|&l| l == IGNORE_INDEX) {
            skipped += 1;
            first_skipped.get_or_insert(i + 1);
            continue;
        }
        out.push(ex);
    }
    if lines == 0 {
        return Err(TrainError::format(origin, "no examples: the file has no non-empty lines"));
    }
    if out.is_empty() {
        return Err(TrainError::format(
            origin,
            format!(
                "no examples: all {lines} lines have nothing to learn within {max_len} tokens (one token, an empty \
                 text or completion, or a prompt that fills --max-len; the first is line {})",
                first_skipped.unwrap_or(0)
            ),
        ));
    }
    Ok(Data { examples: out, skipped, lines })
}

/// Packing: the examples' tokens (and labels, prompt masks included) laid end to end in order and
/// cut into rows of `seq` tokens, so no batch slot is padding. Attention is not masked at the
/// seams — a token may attend to the end of the previous example, as in the usual packed
/// pretraining; the tokenizer's BOS at each example's start marks the boundary. A last row
/// shorter than two tokens (nothing to predict) is dropped.
pub fn pack(examples: &[Example], seq: usize) -> Vec<Example> {
    if seq == 0 {
        return Vec::new();
    }
    let ids: Vec<i32> = examples.iter().flat_map(|e| e.ids.iter().copied()).collect();
    let labels: Vec<i32> = examples.iter().flat_map(|e| e.labels.iter().copied()).collect();
    ids.chunks(seq)
        .zip(labels.chunks(seq))
        .filter(|(i, _)| i.len() >= 2)
        .map(|(i, l)| Example { ids: i.to_vec(), labels: l.to_vec() })
        .collect()
}

/// Right-pad `examples` with `pad_id` (labels −100) into one batch.
pub fn collate(examples: &[&Example], pad_id: i32) -> Result<TrainBatch> {
    let seq = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    let pad =
        |v: &[i32], fill: i32| v.iter().copied().chain(std::iter::repeat(fill)).take(seq).collect::<Vec<_>>();
    let ids: Vec<Vec<i32>> = examples.iter().map(|e| pad(&e.ids, pad_id)).collect();
    let labels: Vec<Vec<i32>> = examples.iter().map(|e| pad(&e.labels, IGNORE_INDEX)).collect();
    TrainBatch::from_labels(&ids, &labels)
}

/// An endless, seeded order over `n` examples: each epoch is a fresh shuffle, so a run is
/// reproducible from its seed.
pub struct Sampler {
    order: Vec<usize>,
    next: usize,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(n: usize, seed: u64) -> Sampler {
        let mut s = Sampler { order: (0..n).collect(), next: 0, rng: ChaCha8Rng::seed_from_u64(seed) };
        s.order.shuffle(&mut s.rng);
        s
    }

    /// Skip the next `k` draws exactly as [`Sampler::take`] would make them (same shuffles),
    /// without collecting them: a resumed run replays its order in constant memory.
    pub fn skip(&mut self, k: u64) {
        if self.order.is_empty() {
            return;
        }
        let mut left = k;
        while left > 0 {
            if self.next == self.order.len() {
                self.order.shuffle(&mut self.rng);
                self.next = 0;
            }
            let step = left.min((self.order.len() - self.next) as u64);
            self.next += step as usize;
            left -= step;
        }
    }

    /// The next `k` example indices (wrapping into a new epoch as needed).
    pub fn take(&mut self, k: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(k);
        while out.len() < k && !self.order.is_empty() {
            if self.next == self.order.len() {
                self.order.shuffle(&mut self.rng);
                self.next = 0;
            }
            out.push(self.order[self.next]);
            self.next += 1;
        }
        out
    }
}
