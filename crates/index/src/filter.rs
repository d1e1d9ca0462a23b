//! Search filters: which ids a search may return.
//!
//! A filter is given over ids ([`Filter::Ids`], an allow-list, or [`Filter::Bitmap`], a bitmap
//! indexed by id). An index translates it into a bitmap over its rows and hands that to the
//! search op, which skips disallowed rows while it selects the top k: a filtered search returns
//! the best k allowed rows (fewer only when fewer are allowed), never "the best k, minus the
//! disallowed ones". Ids in a filter that the index does not hold are simply never returned.

/// A set of ids as a bitmap: bit `id % 64` of word `id / 64`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdBitmap {
    words: Vec<u64>,
}

impl IdBitmap {
    pub fn new() -> IdBitmap {
        IdBitmap::default()
    }

    /// The bitmap holding exactly `ids`.
    pub fn from_ids(ids: &[u64]) -> IdBitmap {
        let mut b = IdBitmap::new();
        for &id in ids {
            b.insert(id);
        }
        b
    }

    /// A bitmap over raw words (bit `id % 64` of word `id / 64`).
    pub fn from_words(words: Vec<u64>) -> IdBitmap {
        IdBitmap { words }
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Allow `id`. The bitmap grows to hold it (so keep ids dense when using bitmaps).
    pub fn insert(&mut self, id: u64) {
        let word = (id / 64) as usize;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (id % 64);
    }

    pub fn remove(&mut self, id: u64) {
        if let Some(w) = self.words.get_mut((id / 64) as usize) {
            *w &= !(1 << (id % 64));
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.words.get((id / 64) as usize).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// How many ids are set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Which ids a search may return.
#[derive(Clone, Copy, Debug)]
pub enum Filter<'a> {
    /// Only these ids (any order; duplicates and unknown ids are harmless).
    Ids(&'a [u64]),
    /// Only the ids set in this bitmap.
    Bitmap(&'a IdBitmap),
}

/// A bitmap over the rows of one search base, in the layout the search op takes: `u32` words,
/// bit `r % 32` of word `r / 32` set when row `r` is allowed.
#[derive(Clone, Debug)]
pub(crate) struct RowBitmap {
    pub words: Vec<u32>,
    pub allowed: usize,
}

impl RowBitmap {
    pub fn empty(rows: usize) -> RowBitmap {
        RowBitmap { words: vec![0; rows.div_ceil(32)], allowed: 0 }
    }

    pub fn set(&mut self, row: usize) {
        let (w, bit) = (row / 32, 1u32 << (row % 32));
        if self.words[w] & bit == 0 {
            self.words[w] |= bit;
            self.allowed += 1;
        }
    }

    /// The rows of `ids` (sorted, one per row) that `filter` allows.
    pub fn for_rows(ids: &[u64], filter: &Filter) -> RowBitmap {
        RowBitmap::for_keys(ids, filter, Some, |&id| id)
    }

    /// The rows of a store whose rows carry the sorted `keys` that `filter` allows: `key_of(id)`
    /// is the key of a held id (`None` when not held), `id_of(key)` the id a key stands for.
    pub fn for_keys<K: Ord>(
        keys: &[K],
        filter: &Filter,
        key_of: impl Fn(u64) -> Option<K>,
        id_of: impl Fn(&K) -> u64,
    ) -> RowBitmap {
        let mut b = RowBitmap::empty(keys.len());
        match filter {
            Filter::Ids(allow) => {
                for key in allow.iter().filter_map(|&id| key_of(id)) {
                    if let Ok(row) = keys.binary_search(&key) {
                        b.set(row);
                    }
                }
            }
            Filter::Bitmap(bits) => {
                for (row, key) in keys.iter().enumerate() {
                    if bits.contains(id_of(key)) {
                        b.set(row);
                    }
                }
            }
        }
        b
    }
}
