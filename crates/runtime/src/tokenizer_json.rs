//! Checks of a `tokenizer.json` made before the `tokenizers` crate sees it, for inputs that make
//! that crate (0.22.2) panic or spend memory out of proportion to the file:
//!
//! - a JSON syntax error inside the `decoder` object panics in its decoder deserializer
//!   (`.expect("Helper")`) instead of returning the parse error: the text is parsed here first,
//!   and a syntax error is reported with its line, column and the top-level field it lies in;
//! - a `TemplateProcessing` post-processor whose template names a special token missing from its
//!   `special_tokens` loads, then panics at encode time (a map lookup); a single-sequence template
//!   that uses sequence `B`, or a special token whose `ids` and `tokens` differ in length, index
//!   out of bounds the same way;
//! - every regex pattern (`Split` pre-tokenizers, `Replace` normalizers and decoders) is compiled
//!   on load, a few hundred KiB each for Unicode classes: a file with its pre-tokenizer repeated
//!   1,000 times took 425 MiB. Real tokenizers have a handful, so the count and total length of
//!   patterns are bounded.

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Result, RuntimeError};

/// The most regex patterns a file may hold (real tokenizers: 1 to 5).
pub const MAX_PATTERNS: usize = 64;
/// The most bytes all patterns of a file may hold together (real tokenizers: under 1 KiB).
pub const MAX_PATTERN_BYTES: usize = 64 * 1024;

/// Parse `text` (the contents of `origin`) and check what `tokenizers` would panic on.
pub fn check(text: &str, origin: &str) -> Result<()> {
    let value = parse(text, origin)?;
    let Value::Object(top) = &value else {
        return Err(RuntimeError::format(origin, "a tokenizer.json must be a JSON object"));
    };
    if let Some(post) = top.get("post_processor") {
        check_post_processor(post, "post_processor", origin)?;
    }
    let mut patterns = Patterns::default();
    for (key, v) in top {
        patterns.count(v, key, origin)?;
    }
    Ok(())
}

fn field_error(origin: &str, field: &str, detail: impl Into<String>) -> RuntimeError {
    RuntimeError::Config { path: origin.to_string(), field: field.to_string(), detail: detail.into() }
}

/// The whole text as a [`Value`]; a syntax error names the top-level field being read.
fn parse(text: &str, origin: &str) -> Result<Value> {
    let mut field = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = TopLevel { field: &mut field }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| {
        let place = match &field {
            Some(f) => format!(" in field `{f}`"),
            None => String::new(),
        };
        RuntimeError::format(
            origin,
            format!("not valid JSON{place} (line {}, column {}): {e}", e.line(), e.column()),
        )
    })
}

/// Reads the top-level value, remembering the key of the member being read so that a syntax
/// error can name it.
struct TopLevel<'a> {
    field: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            *self.field = Some(key.clone());
            let value = map.next_value::<Value>()?;
            out.insert(key, value);
        }
        *self.field = None;
        Ok(Value::Object(out))
    }

    // Anything but an object is read as is and refused by `check` with its own message.
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
}

/// A post-processor: a `Sequence` is checked member by member, a `TemplateProcessing` fully.
fn check_post_processor(post: &Value, at: &str, origin: &str) -> Result<()> {
    match post.get("type").and_then(Value::as_str) {
        Some("Sequence") => {
            if let Some(items) = post.get("processors").and_then(Value::as_array) {
                for (i, p) in items.iter().enumerate() {
                    check_post_processor(p, &format!("{at}.processors[{i}]"), origin)?;
                }
            }
            Ok(())
        }
        Some("TemplateProcessing") => check_template(post, at, origin),
        // Other kinds (and a wrong shape, which `tokenizers` reports itself) need nothing here.
        _ => Ok(()),
    }
}

/// Every special token a template names is declared in `special_tokens` with as many `ids` as
/// `tokens`, and the single-sequence template uses sequence `A` only.
fn check_template(t: &Value, at: &str, origin: &str) -> Result<()> {
    let declared = t.get("special_tokens").and_then(Value::as_object);
    if let Some(declared) = declared {
        for (name, entry) in declared {
            let len = |k: &str| entry.get(k).and_then(Value::as_array).map(Vec::len);
            if let (Some(ids), Some(tokens)) = (len("ids"), len("tokens"))
                && ids != tokens
            {
                return Err(field_error(
                    origin,
                    &format!("{at}.special_tokens.{name}"),
                    format!(
                        "has {ids} ids but {tokens} tokens; each id needs its token (make the two lists \
                         the same length)"
                    ),
                ));
            }
        }
    }
    for which in ["single", "pair"] {
        let Some(pieces) = t.get(which).and_then(Value::as_array) else { continue };
        for (i, piece) in pieces.iter().enumerate() {
            let here = format!("{at}.{which}[{i}]");
            if let Some(id) = piece.get("SpecialToken").and_then(|s| s.get("id")).and_then(Value::as_str)
                && !declared.is_some_and(|d| d.contains_key(id))
            {
                return Err(field_error(
                    origin,
                    &here,
                    format!(
                        "the template's special token {id:?} is not declared in `{at}.special_tokens`; \
                         add an entry for it (with its ids and tokens) or remove it from the template"
                    ),
                ));
            }
            let sequence = piece.get("Sequence").and_then(|s| s.get("id")).and_then(Value::as_str);
            if which == "single" && sequence == Some("B") {
                return Err(field_error(
                    origin,
                    &here,
                    "the single-sequence template uses sequence B, which only a pair has; use A",
                ));
            }
        }
    }
    Ok(())
}

/// The regex patterns seen so far, for the bounds [`MAX_PATTERNS`] and [`MAX_PATTERN_BYTES`].
#[derive(Default)]
struct Patterns {
    count: usize,
    bytes: usize,
}

impl Patterns {
    /// Count the patterns under `v` (a `pattern` member: `{"Regex": …}` or `{"String": …}`);
    /// `top` is the top-level field, named in the error.
    fn count(&mut self, v: &Value, top: &str, origin: &str) -> Result<()> {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if k == "pattern"
                        && let Some(p) =
                            child.get("Regex").or_else(|| child.get("String")).and_then(Value::as_str)
                    {
                        self.count += 1;
                        self.bytes += p.len();
                        if self.count > MAX_PATTERNS || self.bytes > MAX_PATTERN_BYTES {
                            return Err(field_error(
                                origin,
                                top,
                                format!(
                                    "holds more than {MAX_PATTERNS} regex patterns or {} KiB of them; each \
                                     is compiled on load (hundreds of KiB apiece) and real tokenizers use \
                                     a handful: remove the repeated pre-tokenizers/normalizers",
                                    MAX_PATTERN_BYTES / 1024
                                ),
                            ));
                        }
                    }
                    self.count(child, top, origin)?;
                }
                Ok(())
            }
            Value::Array(items) => items.iter().try_for_each(|c| self.count(c, top, origin)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        check(text, "tokenizer.json").unwrap_err().to_string()
    }

    #[test]
    fn a_syntax_error_names_its_top_level_field_line_and_column() {
        let e = err("{\"model\": {},\n \"decoder\": {\"type\": \"ByteLevel\",, \"x\": 1}}");
        assert!(e.contains("field `decoder`") && e.contains("line 2"), "{e}");
        let e = err("{\"model\": {}} trailing");
        assert!(e.contains("not valid JSON") && !e.contains("field"), "{e}");
        assert!(err("[1, 2]").contains("must be a JSON object"));
    }

    #[test]
    fn template_tokens_must_be_declared_and_single_uses_a_only() {
        let template = |single: &str, special: &str| {
            format!(
                r#"{{"post_processor": {{"type": "Sequence", "processors": [{{"type": "ByteLevel"}},
                {{"type": "TemplateProcessing", "single": {single}, "pair": [],
                  "special_tokens": {special}}}]}}}}"#
            )
        };
        let cls = r#"{"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}}"#;
        let single =
            r#"[{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]"#;
        check(&template(single, cls), "t").unwrap();
        let e = err(&template(single, "{}"));
        assert!(e.contains("post_processor.processors[1].single[0]") && e.contains("\"[CLS]\""), "{e}");
        let e = err(&template(r#"[{"Sequence": {"id": "B", "type_id": 0}}]"#, cls));
        assert!(e.contains("single[0]") && e.contains("sequence B"), "{e}");
        let uneven = r#"{"[CLS]": {"id": "[CLS]", "ids": [1, 2], "tokens": ["[CLS]"]}}"#;
        assert!(err(&template(single, uneven)).contains("2 ids but 1 tokens"));
    }

    #[test]
    fn patterns_are_bounded_in_count_and_bytes() {
        let split = |p: &str| format!(r#"{{"type": "Split", "pattern": {{"Regex": "{p}"}}}}"#);
        let file = |n: usize, p: &str| {
            let all = vec![split(p); n].join(",");
            format!(r#"{{"pre_tokenizer": {{"type": "Sequence", "pretokenizers": [{all}]}}}}"#)
        };
        check(&file(MAX_PATTERNS, "\\\\s+"), "t").unwrap();
        let e = err(&file(MAX_PATTERNS + 1, "\\\\s+"));
        assert!(e.contains("field `pre_tokenizer`") && e.contains("regex patterns"), "{e}");
        check(&file(1, &"a".repeat(MAX_PATTERN_BYTES)), "t").unwrap();
        assert!(err(&file(1, &"a".repeat(MAX_PATTERN_BYTES + 1))).contains("KiB"));
    }
}
