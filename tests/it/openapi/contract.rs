//! The OpenAPI document as a contract: an answer conforms to an operation when its status is
//! one the operation declares, its content type is one declared for that status, and its body
//! validates against the declared schema (JSON Schema 2020-12, the dialect of OpenAPI 3.1,
//! with formats checked), the document's `components` resolving its `$ref`s.

use std::collections::BTreeSet;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

/// The methods an OpenAPI path item may hold operations for.
pub(crate) const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A served OpenAPI document.
pub(crate) struct Contract {
    document: Value,
}

/// An answer to check: what came back, its body unread when it is an endless stream.
pub(crate) struct Observed<'a> {
    pub(crate) status: StatusCode,
    pub(crate) headers: &'a HeaderMap,
    /// `None` for a stream (server-sent events), whose content type alone is checked.
    pub(crate) body: Option<&'a [u8]>,
}

impl Contract {
    pub(crate) fn new(document: Value) -> Self {
        Self { document }
    }

    /// Every (method, path template) the document declares.
    pub(crate) fn operations(&self) -> BTreeSet<(String, String)> {
        self.document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item")
                    .keys()
                    .filter(|key| METHODS.contains(&key.as_str()))
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect()
    }

    /// Why `observed` does not conform to the operation `method path`, if it does not.
    pub(crate) fn violation(
        &self,
        method: &str,
        path: &str,
        observed: &Observed<'_>,
    ) -> Option<String> {
        let operation = &self.document["paths"][path][method];
        if operation.is_null() {
            return Some("the document has no such operation".to_owned());
        }
        let status = observed.status.as_u16().to_string();
        let Some(response) = operation["responses"].get(&status) else {
            return Some(format!("status {status} is not declared"));
        };
        let content = response["content"].as_object();
        let media_type = observed
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let (Some(content), Some(media_type)) = (content, media_type) else {
            let empty = observed.body.is_some_and(<[u8]>::is_empty);
            return match (content.map(|c| !c.is_empty()), empty) {
                (None | Some(false), true) => None,
                (Some(true), _) => Some(format!(
                    "status {status}: a body of a declared type, and none came"
                )),
                _ => Some(format!(
                    "status {status}: a body came, and none is declared"
                )),
            };
        };
        let Some(declared) = content.get(&media_type) else {
            return Some(format!(
                "status {status}: content type {media_type} is not declared (only {:?})",
                content.keys().collect::<Vec<_>>()
            ));
        };
        let is_json = media_type == "application/json" || media_type.ends_with("+json");
        match (observed.body, is_json) {
            (Some(bytes), true) => {
                let body: Value = match serde_json::from_slice(bytes) {
                    Ok(body) => body,
                    Err(error) => {
                        return Some(format!("status {status}: the body is not JSON: {error}"));
                    }
                };
                self.schema_violation(&declared["schema"], &body)
                    .map(|error| format!("status {status} {media_type}: {error}; body: {body}"))
            }
            _ => None,
        }
    }

    /// Why `instance` does not validate against `schema`, if it does not.
    fn schema_violation(&self, schema: &Value, instance: &Value) -> Option<String> {
        if schema.is_null() {
            return None;
        }
        let mut root = schema.clone();
        if let Value::Object(root) = &mut root {
            root.insert("components".to_owned(), self.document["components"].clone());
        }
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|error| panic!("the schema {schema} compiles: {error}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|error| format!("{} at {}", error, error.instance_path()))
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}
