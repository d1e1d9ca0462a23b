//! The mutations of the fuzz engine, each a pure function of a seeded rng and a valid input:
//! byte edits for binary formats ([`bytes`]), line and token edits for text ([`text`]), and
//! structural edits for JSON ([`json()`]) and TOML ([`toml_table`]) that reach the checks behind
//! the parser — a size set to `u64::MAX`, a count made negative, a float made NaN, a field
//! removed or given the wrong type. A case applies one to three of them, so most inputs are
//! close to valid: a reader's deep checks see them, not only its first magic-number test.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Numbers that break sizes and counts: zero, one, the edges of the integer types, and values
/// large enough that any allocation sized by them must fail.
pub const HUGE: &[u64] =
    &[0, 1, u64::MAX, i64::MAX as u64, 1 << 62, 1 << 40, u32::MAX as u64, 1_000_000_000, (-1i64) as u64];

/// The same numbers as text, with the float and sign cases only text can spell.
const NUMBER_TEXT: &[&str] = &[
    "0",
    "-1",
    "-0",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999",
    "1000000000000",
    "1e308",
    "-1e308",
    "1e-320",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "0.5",
];

/// Short pieces that open, close or escape a structure.
const JUNK: &[&str] =
    &["\\u0000", "\0", "{", "}", "[", "]", "\"", "\n", "\r\n", "=", "\\", ",", "[[", "#", "\u{1F600}", "é"];

/// Pick one element of a non-empty slice.
pub fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Write `v` little-endian at `at` (as far as the buffer goes).
pub fn put_le(b: &mut [u8], at: usize, v: u64, width: usize) {
    let end = (at + width).min(b.len());
    if at < end {
        b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
    }
}

/// One to three byte edits: a bit flip, a byte set to 0 or 0xff, a truncation, random bytes
/// inserted, a chunk deleted or repeated, or a [`HUGE`] number written over an aligned u32/u64
/// in the first `header` bytes (where binary formats keep their counts and offsets).
pub fn bytes(rng: &mut ChaCha8Rng, original: &[u8], header: usize) -> Vec<u8> {
    changed(rng, original, |rng| bytes_once(rng, original, header), |b| b.push(b'\n'))
}

/// `edit` until the result differs from `original` (edits can cancel out: a case that reads the
/// valid input again is a wasted case); after eight tries, `original` with `force` applied.
fn changed<T: PartialEq + ToOwned<Owned = O> + ?Sized, O: std::borrow::Borrow<T>>(
    rng: &mut ChaCha8Rng,
    original: &T,
    mut edit: impl FnMut(&mut ChaCha8Rng) -> O,
    force: impl FnOnce(&mut O),
) -> O {
    for _ in 0..8 {
        let out = edit(rng);
        if out.borrow() != original {
            return out;
        }
    }
    let mut out = original.to_owned();
    force(&mut out);
    out
}

fn bytes_once(rng: &mut ChaCha8Rng, original: &[u8], header: usize) -> Vec<u8> {
    let mut b = original.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if b.is_empty() {
            b.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..b.len());
        match rng.random_range(0..8) {
            0 => b[at] ^= 1 << rng.random_range(0..8),
            1 => b[at] = if rng.random() { 0 } else { 0xff },
            2 => b.truncate(at),
            3 => {
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(at..at, extra);
            }
            4 => {
                let end = (at + rng.random_range(1..64)).min(b.len());
                b.drain(at..end);
            }
            5 => {
                let end = (at + rng.random_range(1..64)).min(b.len());
                let chunk = b[at..end].to_vec();
                b.splice(at..at, chunk);
            }
            _ => {
                let width = if rng.random() { 8 } else { 4 };
                let at = (at.min(header.max(1) - 1) / width) * width;
                put_le(&mut b, at, *pick(rng, HUGE), width);
            }
        }
    }
    b
}

/// The byte ranges of the number tokens in `s` (digits with an optional sign and fraction).
fn numbers(s: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i].is_ascii_digit() {
            let start = if i > 0 && s[i - 1] == b'-' { i - 1 } else { i };
            let mut end = i;
            while end < s.len() && (s[end].is_ascii_digit() || matches!(s[end], b'.' | b'e' | b'E')) {
                end += 1;
            }
            out.push((start, end));
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// The byte ranges of double-quoted strings' contents in `s` (escapes not followed).
fn strings(s: &[u8]) -> Vec<(usize, usize)> {
    let quotes: Vec<usize> = s.iter().enumerate().filter(|(_, c)| **c == b'"').map(|(i, _)| i).collect();
    quotes.chunks_exact(2).map(|q| (q[0] + 1, q[1])).collect()
}

/// One to three text edits: a line duplicated (up to 100 times), deleted or swapped with
/// another; a number replaced by a huge, negative or non-finite one; a string emptied or made
/// long; a piece of structure (`{`, `"`, a newline, `\u0000`…) inserted; a truncation; or one
/// of [`bytes`]'s edits. The result may be invalid UTF-8, as a damaged file may be.
pub fn text(rng: &mut ChaCha8Rng, original: &[u8]) -> Vec<u8> {
    changed(rng, original, |rng| text_once(rng, original), |t| t.push(b'\n'))
}

fn text_once(rng: &mut ChaCha8Rng, original: &[u8]) -> Vec<u8> {
    let mut t = original.to_vec();
    for _ in 0..rng.random_range(1..4) {
        let mut lines: Vec<Vec<u8>> = t.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
        let line = rng.random_range(0..lines.len());
        match rng.random_range(0..9) {
            0 => {
                let copy = lines[line].clone();
                let times = *pick(rng, &[1, 2, 100]);
                for _ in 0..times {
                    lines.insert(line, copy.clone());
                }
            }
            1 => {
                lines.remove(line);
            }
            2 => {
                let other = rng.random_range(0..lines.len());
                lines.swap(line, other);
            }
            3 | 4 => {
                let spots = numbers(&t);
                if !spots.is_empty() {
                    let (a, b) = *pick(rng, &spots);
                    t.splice(a..b, pick(rng, NUMBER_TEXT).bytes());
                }
                continue;
            }
            5 => {
                let spots = strings(&t);
                if !spots.is_empty() {
                    let (a, b) = *pick(rng, &spots);
                    let with: Vec<u8> = match rng.random_range(0..3) {
                        0 => Vec::new(),
                        1 => "word ".repeat(20_000).into_bytes(),
                        _ => pick(rng, JUNK).as_bytes().to_vec(),
                    };
                    t.splice(a..b, with);
                }
                continue;
            }
            6 => {
                let at = rng.random_range(0..=t.len());
                t.splice(at..at, pick(rng, JUNK).bytes());
                continue;
            }
            7 => {
                t.truncate(rng.random_range(0..=t.len()));
                continue;
            }
            _ => {
                t = bytes(rng, &t, 0);
                continue;
            }
        }
        t = lines.join(&b'\n');
    }
    t
}

/// A JSON value that breaks a field: an extreme number, the wrong type, null, an empty or
/// deeply nested container.
pub fn extreme_json(rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..16) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(i64::MIN),
        4 => json!(1_000_000_000u64),
        5 => json!(1u64 << 40),
        6 => json!(1e308),
        7 => json!(-1e308),
        8 => json!(0.5),
        9 => json!(""),
        10 => json!("x"),
        11 => Value::Null,
        12 => json!([]),
        13 => json!({}),
        14 => json!(true),
        _ => (0..64).fold(json!(1), |v, _| json!([v])),
    }
}

/// Every path (object keys and array indices) in `v`, containers included.
fn json_paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    tree_paths(v, &json_children, prefix, out);
}

fn json_children(v: &Value) -> Vec<(Value, &Value)> {
    match v {
        Value::Object(m) => m.iter().map(|(k, c)| (json!(k), c)).collect(),
        Value::Array(a) => a.iter().enumerate().map(|(i, c)| (json!(i), c)).collect(),
        _ => Vec::new(),
    }
}

/// Every path below `v` in a tree of values, containers included, appended to `out` after
/// `prefix`: `children` lists a container's (step, child) pairs and nothing for a leaf.
fn tree_paths<'v, V, S: Clone>(
    v: &'v V,
    children: &impl Fn(&'v V) -> Vec<(S, &'v V)>,
    prefix: &mut Vec<S>,
    out: &mut Vec<Vec<S>>,
) {
    for (step, child) in children(v) {
        prefix.push(step);
        out.push(prefix.clone());
        tree_paths(child, children, prefix, out);
        prefix.pop();
    }
}

fn json_at<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, key| match key {
        Value::String(k) => v.get_mut(k.as_str()),
        k => v.get_mut(k.as_u64()? as usize),
    })
}

/// One or two structural edits at random paths of `original`: a value replaced by
/// [`extreme_json`], a key removed, an array element repeated (up to 1,000 times), or a
/// container emptied.
pub fn json(rng: &mut ChaCha8Rng, original: &Value) -> Value {
    changed(rng, original, |rng| json_once(rng, original), |v| *v = json!([v.clone()]))
}

fn json_once(rng: &mut ChaCha8Rng, original: &Value) -> Value {
    let mut v = original.clone();
    for _ in 0..rng.random_range(1..3) {
        let mut paths = Vec::new();
        json_paths(&v, &mut Vec::new(), &mut paths);
        if paths.is_empty() {
            return extreme_json(rng);
        }
        let path = pick(rng, &paths).clone();
        let (last, parent) = path.split_last().expect("paths are non-empty");
        let action = rng.random_range(0..6);
        let extreme = extreme_json(rng);
        let Some(parent) = json_at(&mut v, parent) else { continue };
        match (action, parent, last) {
            (0, Value::Object(m), Value::String(k)) => {
                m.remove(k);
            }
            (1, Value::Array(a), Value::Number(i)) => {
                let i = i.as_u64().unwrap_or(0) as usize;
                let copy = a[i].clone();
                let times = *pick(rng, &[1, 1000]);
                a.splice(i..i, std::iter::repeat_n(copy, times));
            }
            (2, p, key) => {
                if let Some(slot) = json_at(p, std::slice::from_ref(key)) {
                    match slot {
                        Value::Array(a) => a.clear(),
                        Value::Object(m) => m.clear(),
                        other => *other = extreme,
                    }
                }
            }
            (_, p, key) => {
                if let Some(slot) = json_at(p, std::slice::from_ref(key)) {
                    *slot = extreme;
                }
            }
        }
    }
    v
}

/// A TOML value that breaks a field: integer edges, negative and zero sizes, non-finite and
/// huge floats, the wrong type.
pub fn extreme_toml(rng: &mut ChaCha8Rng) -> toml::Value {
    use toml::Value as T;
    match rng.random_range(0..14) {
        0 => T::Integer(0),
        1 => T::Integer(-1),
        2 => T::Integer(i64::MAX),
        3 => T::Integer(i64::MIN),
        4 => T::Integer(1_000_000_000_000),
        5 => T::Float(f64::NAN),
        6 => T::Float(f64::INFINITY),
        7 => T::Float(-1e308),
        8 => T::Float(0.5),
        9 => T::String(String::new()),
        10 => T::String("x".into()),
        11 => T::Boolean(true),
        12 => T::Array(Vec::new()),
        _ => T::Table(toml::Table::new()),
    }
}

/// A step into a TOML value: a key of a table or an index of an array.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn toml_paths(v: &toml::Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    tree_paths(v, &toml_children, prefix, out);
}

fn toml_children(v: &toml::Value) -> Vec<(Step, &toml::Value)> {
    match v {
        toml::Value::Table(m) => m.iter().map(|(k, c)| (Step::Key(k.clone()), c)).collect(),
        toml::Value::Array(a) => a.iter().enumerate().map(|(i, c)| (Step::Index(i), c)).collect(),
        _ => Vec::new(),
    }
}

fn toml_at<'a>(v: &'a mut toml::Value, path: &[Step]) -> Option<&'a mut toml::Value> {
    path.iter().try_fold(v, |v, step| match (step, v) {
        (Step::Key(k), toml::Value::Table(m)) => m.get_mut(k),
        (Step::Index(i), toml::Value::Array(a)) => a.get_mut(*i),
        _ => None,
    })
}

/// One or two edits at random keys of `original` (tables and arrays walked): a value replaced
/// by [`extreme_toml`] or a key removed.
pub fn toml_table(rng: &mut ChaCha8Rng, original: &toml::Table) -> toml::Table {
    let force = |t: &mut toml::Table| {
        t.insert("fuzz".into(), toml::Value::Integer(-1));
    };
    changed(rng, original, |rng| toml_once(rng, original), force)
}

fn toml_once(rng: &mut ChaCha8Rng, original: &toml::Table) -> toml::Table {
    let mut root = toml::Value::Table(original.clone());
    for _ in 0..rng.random_range(1..3) {
        let mut paths = Vec::new();
        toml_paths(&root, &mut Vec::new(), &mut paths);
        if paths.is_empty() {
            break;
        }
        let path = pick(rng, &paths).clone();
        let (last, parent) = path.split_last().expect("paths are non-empty");
        let remove = rng.random_range(0..4) == 0;
        let extreme = extreme_toml(rng);
        match (toml_at(&mut root, parent), last) {
            (Some(toml::Value::Table(m)), Step::Key(k)) if remove => {
                m.remove(k);
            }
            (Some(p), step) => {
                if let Some(slot) = toml_at(p, std::slice::from_ref(step)) {
                    *slot = extreme;
                }
            }
            (None, _) => {}
        }
    }
    match root {
        toml::Value::Table(t) => t,
        _ => original.clone(),
    }
}
