//! The dev/test split by source passage: every question about one passage — or about passages
//! that questions tie together, a question with several sources joining them — lands on the
//! same side, so tuning on dev never sees a test question's passage through another question.
//!
//! Groups are ordered by a seeded hash of their first passage id (stable when questions are
//! added or removed elsewhere), then given to dev in that order while dev holds fewer than
//! `dev_share` of the questions; the rest are test. A question pinned to a side (the QA file's
//! `split`) stays there. Test is never left empty: with one group, everything is test.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::task::QaItem;

/// Which side of the split a question is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// For tuning (learning rate, epochs, `k`): never reported as the result.
    Dev,
    /// The evaluation the report is on.
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Split> {
        match s {
            "dev" => Some(Split::Dev),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// 64-bit FNV-1a of `text`, mixed with `seed` (splitmix64's finaliser): the same on every
/// platform and in every release, unlike std's hasher.
fn stable_hash(text: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Each question's side (see the module doc); `pinned[i]`, when given, fixes question `i`'s.
/// `pinned` may be shorter than `questions` (the rest unpinned).
pub fn split_by_source(
    questions: &[QaItem],
    pinned: &[Option<Split>],
    dev_share: f64,
    seed: u64,
) -> Vec<Split> {
    let n = questions.len();
    // Union-find over questions: two questions sharing a source are one group.
    let mut parent: Vec<usize> = (0..n).collect();
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, q) in questions.iter().enumerate() {
        for s in &q.sources {
            match owner.get(s.as_str()) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    owner.insert(s, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    // A group's key: the smallest source id among its questions (a question's id without one).
    let mut keyed: Vec<(u64, String, Vec<usize>)> = groups
        .into_values()
        .map(|members| {
            let key = members
                .iter()
                .flat_map(|&i| questions[i].sources.iter().cloned())
                .min()
                .unwrap_or_else(|| format!("question:{}", questions[members[0]].id));
            (stable_hash(&key, seed), key, members)
        })
        .collect();
    keyed.sort();
    let pin = |i: usize| pinned.get(i).copied().flatten();
    let mut out: Vec<Split> = (0..n).map(|i| pin(i).unwrap_or(Split::Test)).collect();
    if keyed.len() < 2 || dev_share.is_nan() || dev_share <= 0.0 {
        return out;
    }
    let target = (dev_share.min(1.0) * n as f64).round() as usize;
    let mut dev = out.iter().filter(|&&s| s == Split::Dev).count();
    let last = keyed.len() - 1;
    for (g, (_, _, members)) in keyed.iter().enumerate() {
        let free: Vec<usize> = members.iter().copied().filter(|&i| pin(i).is_none()).collect();
        if free.is_empty() {
            continue;
        }
        // Take the group when that brings dev nearer its target; never the last group.
        let after = dev + free.len();
        if g < last && after.abs_diff(target) < dev.abs_diff(target) {
            for &i in &free {
                out[i] = Split::Dev;
            }
            dev = after;
        }
    }
    out
}
