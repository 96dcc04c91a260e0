//! The search terms of a runs list beyond the seed's filters: the start of a run id, an
//! initiator's name, and a `key=value` of the run's context or identity. Each is answered from
//! an index of the read model (`projections/operation_runs/schema.sql`), never by a scan: a run
//! id prefix is a range of the primary key, a name the `lower(initiator_name)` index, a
//! `key=value` a path match (`@?`) of `[context, identity]` that one GIN index answers.

use serde_json::Value;
use uuid::Uuid;

/// The start of a run id: 1 to 32 hex digits, hyphens ignored (`4f2a`, `4f2a91c0-7b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdPrefix {
    /// The hex digits, lowercase, without hyphens.
    digits: String,
}

/// Why a text is not a [`RunIdPrefix`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("must be the start of a run id: 1 to 32 hex digits (hyphens allowed)")]
pub struct InvalidRunIdPrefix;

impl RunIdPrefix {
    /// Parses a prefix.
    ///
    /// # Errors
    /// [`InvalidRunIdPrefix`] when it holds no hex digit, more than 32, or another character.
    pub fn parse(text: &str) -> Result<Self, InvalidRunIdPrefix> {
        let digits: String = text
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let valid =
            (1..=32).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_hexdigit());
        if valid {
            Ok(Self { digits })
        } else {
            Err(InvalidRunIdPrefix)
        }
    }

    /// The hex digits, lowercase, without hyphens.
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// The smallest and the largest id starting with the prefix: the primary key's range.
    pub fn id_range(&self) -> (Uuid, Uuid) {
        let padded = |fill: char| {
            let mut hex = self.digits.clone();
            hex.extend(std::iter::repeat_n(fill, 32 - self.digits.len()));
            Uuid::parse_str(&hex).unwrap_or_else(|e| unreachable!("32 hex digits: {e}"))
        };
        (padded('0'), padded('f'))
    }
}

/// A `key=value` the run's context or identity holds at its top level: `restore_run_id=42`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    key: String,
    value: String,
}

/// Why a text is not an [`Attribute`].
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "must be key=value: a key of 1 to 64 characters of [A-Za-z0-9_.-] and a value of 1 to 200 characters"
)]
pub struct InvalidAttribute;

impl Attribute {
    /// The longest value searched for.
    pub const MAX_VALUE_LEN: usize = 200;

    /// Parses `key=value` (spaces around either are ignored).
    ///
    /// # Errors
    /// [`InvalidAttribute`] without `=`, with an empty or invalid key, or an empty or too long
    /// value.
    pub fn parse(text: &str) -> Result<Self, InvalidAttribute> {
        let (key, value) = text.split_once('=').ok_or(InvalidAttribute)?;
        let (key, value) = (key.trim(), value.trim());
        let key_valid = (1..=64).contains(&key.len())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        let value_valid = !value.is_empty() && value.chars().count() <= Self::MAX_VALUE_LEN;
        if key_valid && value_valid {
            Ok(Self {
                key: key.to_owned(),
                value: value.to_owned(),
            })
        } else {
            Err(InvalidAttribute)
        }
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, as typed.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `key=value`.
    pub fn text(&self) -> String {
        format!("{}={}", self.key, self.value)
    }

    /// The SQL/JSON path a matching run's `[context, identity]` satisfies: an element whose
    /// `key` equals the value as text, or as the number or boolean it reads as (a user types
    /// `42` for an id stored as the number 42, and cannot tell the two apart on the page). One
    /// path, so one scan of one GIN index answers it (`jsonb_path_ops` indexes `@?`, `||`
    /// included). The key holds no quote or backslash (see [`Self::parse`]); the value is
    /// written as a JSON string, whose escapes a path's string literal shares.
    pub fn json_path(&self) -> String {
        let key = &self.key;
        let text = serde_json::to_string(&self.value)
            .unwrap_or_else(|e| unreachable!("a string serializes: {e}"));
        let mut alternatives = vec![format!("@.\"{key}\" == {text}")];
        if let Ok(number) = self.value.parse::<serde_json::Number>() {
            alternatives.push(format!("@.\"{key}\" == {number}"));
        }
        if let Ok(flag) = self.value.parse::<bool>() {
            alternatives.push(format!("@.\"{key}\" == {flag}"));
        }
        format!("$[*] ? ({})", alternatives.join(" || "))
    }

    /// Whether a run of this `context` and `identity` matches, as [`Self::json_path`] over
    /// `'[]'::jsonb || context || identity` does (`RunFilter::admits`, a live list's check of
    /// a changed run in memory): an array's elements are spread, anything else is one element,
    /// and an element matches when it holds `key` with the value as text, or as the number
    /// (compared as a number, like the path's `==`) or the boolean it reads as; the path's
    /// lax mode also looks into an element that is itself an array.
    pub fn admits(&self, context: &Value, identity: &Value) -> bool {
        let spread = |value: &Value| -> Vec<Value> {
            match value {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            }
        };
        let number = self.value.parse::<serde_json::Number>().ok();
        let flag = self.value.parse::<bool>().ok();
        let holds = |element: &Value| -> bool {
            let Some(found) = element.get(&self.key).filter(|_| element.is_object()) else {
                return false;
            };
            match found {
                Value::String(text) => *text == self.value,
                Value::Number(stored) => number
                    .as_ref()
                    .is_some_and(|wanted| stored.as_f64() == wanted.as_f64()),
                Value::Bool(stored) => flag == Some(*stored),
                _ => false,
            }
        };
        spread(context)
            .iter()
            .chain(spread(identity).iter())
            .any(|element| match element {
                Value::Array(items) => items.iter().any(&holds),
                other => holds(other),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_prefix_is_a_range_of_ids() {
        let prefix = RunIdPrefix::parse(" 4F2A-91 ").unwrap();
        assert_eq!(prefix.as_str(), "4f2a91");
        let (low, high) = prefix.id_range();
        assert_eq!(low.to_string(), "4f2a9100-0000-0000-0000-000000000000");
        assert_eq!(high.to_string(), "4f2a91ff-ffff-ffff-ffff-ffffffffffff");
        for refused in ["", "-", "xyz", &"a".repeat(33), "4f2a%"] {
            assert!(RunIdPrefix::parse(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn an_attribute_matches_its_value_as_text_and_as_what_it_reads_as() {
        let attribute = Attribute::parse("restore_run_id = 42").unwrap();
        assert_eq!(attribute.text(), "restore_run_id=42");
        assert_eq!(
            attribute.json_path(),
            r#"$[*] ? (@."restore_run_id" == "42" || @."restore_run_id" == 42)"#
        );
        let (number, text) = (
            serde_json::json!({"restore_run_id": 42.0}),
            serde_json::json!({"restore_run_id": "42"}),
        );
        assert!(attribute.admits(&number, &serde_json::json!({})));
        assert!(attribute.admits(&serde_json::json!({}), &text));
        assert!(!attribute.admits(
            &serde_json::json!({"restore_run_id": "042"}),
            &serde_json::json!({})
        ));
        let quoted = Attribute::parse(r#"note=say "hi" \ bye"#).unwrap();
        assert_eq!(
            quoted.json_path(),
            r#"$[*] ? (@."note" == "say \"hi\" \\ bye")"#
        );
        for refused in [
            "ticket",
            "=x",
            "ticket=",
            "a b=c",
            &format!("k={}", "v".repeat(201)),
        ] {
            assert!(Attribute::parse(refused).is_err(), "{refused:?}");
        }
    }
}
