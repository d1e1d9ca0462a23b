//! House-format metrics: whether a generated output follows the format (parses as a JSON
//! object with the required fields, or matches the template), and the share of the reference's
//! fields it reproduces exactly (field-level exact match).
//!
//! A JSON format is inferred from the data: when every training output is a JSON object, the
//! fields all of them carry are required. A template is given by the user with `{field}`
//! placeholders; it is matched left to right, each field taking the text up to the next
//! literal's first occurrence (the last field up to the final literal, or the end), which is
//! how a reader would split "Ticket 12: printer jam (priority high)".
//!
//! Field values compare after trimming; JSON strings compare as text, other JSON values
//! (numbers, booleans, lists) as JSON. An output that does not follow the format matches no
//! field.

use serde_json::{Map, Value};

use crate::task::HouseFormat;

/// A template split into literal text and `{field}` placeholders.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// `literals.len() == fields.len() + 1`: literal 0, field 0, literal 1, …, the last literal.
    pub literals: Vec<String>,
    pub fields: Vec<String>,
}

impl Template {
    /// Parse `{name}` placeholders (names of letters, digits, `_` and `-`). Two fields must be
    /// separated by literal text, or where one ends could not be told.
    pub fn parse(template: &str) -> Result<Template, String> {
        let (mut literals, mut fields) = (vec![String::new()], Vec::new());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            literals.last_mut().expect("one literal at least").push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| format!("a `{{` at byte {open} is never closed"))?;
            let name = &after[..close];
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("`{{{name}}}` is not a field name (letters, digits, `_`, `-`)"));
            }
            if !fields.is_empty() && literals.last().is_some_and(|l| l.is_empty()) {
                return Err(format!(
                    "fields `{}` and `{name}` touch: put literal text between them so they can be told apart",
                    fields.last().map(String::as_str).unwrap_or_default()
                ));
            }
            fields.push(name.to_string());
            literals.push(String::new());
            rest = &after[close + 1..];
        }
        literals.last_mut().expect("one literal at least").push_str(rest);
        if fields.is_empty() {
            return Err("the template has no `{field}` placeholder".into());
        }
        Ok(Template { literals, fields })
    }

    /// The field values of `text`, or `None` when it does not follow the template.
    pub fn extract(&self, text: &str) -> Option<Vec<(String, String)>> {
        let text = text.trim();
        let mut rest = text.strip_prefix(self.literals[0].trim_start())?;
        let mut out = Vec::with_capacity(self.fields.len());
        for (i, field) in self.fields.iter().enumerate() {
            let next = &self.literals[i + 1];
            let last = i + 1 == self.fields.len();
            let end = if last {
                let next = next.trim_end();
                if !rest.ends_with(next) {
                    return None;
                }
                rest.len() - next.len()
            } else {
                rest.find(next.as_str())?
            };
            let value = rest[..end].trim();
            if value.is_empty() {
                return None;
            }
            out.push((field.clone(), value.to_string()));
            rest = &rest[end + next.len().min(rest.len() - end)..];
        }
        Some(out)
    }
}

/// The fields every output carries, when every output is a JSON object (in the first output's
/// order); `None` otherwise.
pub fn json_fields(outputs: &[&str]) -> Option<Vec<String>> {
    let objects: Vec<Map<String, Value>> = outputs
        .iter()
        .map(|o| match serde_json::from_str::<Value>(o.trim()) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let first = objects.first()?;
    let fields: Vec<String> =
        first.keys().filter(|k| objects.iter().all(|o| o.contains_key(*k))).cloned().collect();
    (!fields.is_empty()).then_some(fields)
}

/// A field value as compared: trimmed text for strings, compact JSON otherwise.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

/// The fields of `text` under `format`, or `None` when it does not follow the format.
pub fn fields_of(format: &HouseFormat, text: &str) -> Option<Vec<(String, String)>> {
    match format {
        HouseFormat::Json { fields } => match serde_json::from_str::<Value>(text.trim()) {
            Ok(Value::Object(m)) if fields.iter().all(|f| m.contains_key(f)) => {
                Some(m.iter().map(|(k, v)| (k.clone(), value_text(v))).collect())
            }
            _ => None,
        },
        HouseFormat::Template { template } => Template::parse(template).ok()?.extract(text),
    }
}

/// Whether `output` follows the format, and the share of `reference`'s fields it reproduces
/// (0 when it does not follow the format; 1 when the reference has no field to match).
pub fn score_output(format: &HouseFormat, output: &str, reference: &str) -> (bool, f64) {
    let Some(got) = fields_of(format, output) else { return (false, 0.0) };
    let want = fields_of(format, reference).unwrap_or_default();
    if want.is_empty() {
        return (true, 1.0);
    }
    let hits = want.iter().filter(|(k, v)| got.iter().any(|(gk, gv)| gk == k && gv == v)).count();
    (true, hits as f64 / want.len() as f64)
}

/// How the format reads in an instruction: the JSON fields, or the template.
pub fn describe(format: &HouseFormat) -> String {
    match format {
        HouseFormat::Json { fields } => {
            format!(
                "a JSON object with the fields {}",
                fields.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", ")
            )
        }
        HouseFormat::Template { template } => format!("the form: {template}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(fields: &[&str]) -> HouseFormat {
        HouseFormat::Json { fields: fields.iter().map(|f| f.to_string()).collect() }
    }

    #[test]
    fn json_fields_are_those_every_output_has() {
        let outs = [r#"{"team": "a", "urgent": true, "note": "x"}"#, r#"{"urgent": false, "team": "b"}"#];
        assert_eq!(json_fields(&outs), Some(vec!["team".to_string(), "urgent".to_string()]));
        assert_eq!(json_fields(&[r#"{"a": 1}"#, "not json"]), None);
        assert_eq!(json_fields(&["[1, 2]"]), None);
        assert_eq!(json_fields(&["{}"]), None);
    }

    #[test]
    fn json_outputs_score_by_field() {
        let f = json(&["team", "urgent"]);
        let reference = r#"{"team": "billing", "urgent": true}"#;
        assert_eq!(score_output(&f, r#"{"urgent": true, "team": " billing "}"#, reference), (true, 1.0));
        assert_eq!(score_output(&f, r#"{"team": "billing", "urgent": false}"#, reference), (true, 0.5));
        assert_eq!(score_output(&f, r#"{"team": "billing"}"#, reference), (false, 0.0), "a field missing");
        assert_eq!(score_output(&f, r#"{"team": "billing", "urgent": true"#, reference), (false, 0.0));
        assert_eq!(score_output(&f, "billing, urgent", reference), (false, 0.0));
    }

    #[test]
    fn templates_split_at_their_literals() {
        let t = Template::parse("Ticket {id}: {summary} (priority {priority})").unwrap();
        assert_eq!(t.fields, ["id", "summary", "priority"]);
        let got = t.extract("Ticket 12: printer jam: paper (priority high)").unwrap();
        let want = [("id", "12"), ("summary", "printer jam: paper"), ("priority", "high")];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(t.extract("Ticket 12 printer jam (priority high)"), None, "the `: ` literal is missing");
        assert_eq!(
            t.extract("Ticket 12: printer jam (priority high"),
            None,
            "the closing literal is missing"
        );
        assert_eq!(t.extract("Ticket : x (priority high)"), None, "an empty field");
        let f = HouseFormat::Template { template: "Ticket {id}: {summary} (priority {priority})".into() };
        let (ok, share) = score_output(&f, "Ticket 12: jam (priority low)", "Ticket 12: jam (priority high)");
        assert!(ok);
        assert!((share - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn bad_templates_say_why() {
        assert!(Template::parse("no fields").unwrap_err().contains("no `{field}`"));
        assert!(Template::parse("{a}{b}").unwrap_err().contains("touch"));
        assert!(Template::parse("x {a").unwrap_err().contains("never closed"));
        assert!(Template::parse("x {a b}").unwrap_err().contains("not a field name"));
        assert_eq!(Template::parse("{only}").unwrap().extract("  anything  ").unwrap()[0].1, "anything");
    }
}
