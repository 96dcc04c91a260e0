//! The OpenAPI document: it lists exactly the routes the router serves, and it is well formed
//! (OpenAPI 3.1 structure, every `$ref` resolves, every operation has responses and declares
//! its path parameters). A structural check in Rust: no external validator is needed in CI.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::TestApi;
use super::support::Call;
use crate::openapi::contract::{Contract, METHODS};

/// Every route of the API: the issue's, the audit evidence routes (verify, export), and the
/// token API.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/tenants/{tenant_id}/runs"),
    ("post", "/v1/tenants/{tenant_id}/runs/{run_id}/start"),
    ("post", "/v1/tenants/{tenant_id}/runs/{run_id}/progress"),
    ("post", "/v1/tenants/{tenant_id}/runs/{run_id}/complete"),
    (
        "post",
        "/v1/tenants/{tenant_id}/runs/{run_id}/dispatch-failed",
    ),
    ("post", "/v1/tenants/{tenant_id}/runs/{run_id}/cancel"),
    ("post", "/v1/tenants/{tenant_id}/runs/{run_id}/heartbeat"),
    ("get", "/v1/tenants/{tenant_id}/runs"),
    ("get", "/v1/tenants/{tenant_id}/runs/{run_id}"),
    ("get", "/v1/tenants/{tenant_id}/runs:count"),
    ("get", "/v1/tenants/{tenant_id}/runs/{run_id}/events"),
    ("get", "/v1/tenants/{tenant_id}/runs/{run_id}/state"),
    ("get", "/v1/tenants/{tenant_id}/runs/{run_id}/verify"),
    ("get", "/v1/tenants/{tenant_id}/events"),
    ("get", "/v1/tenants/{tenant_id}/export"),
    ("get", "/v1/notifications"),
    ("post", "/v1/notifications/{id}/read"),
    ("get", "/v1/projections"),
    ("post", "/v1/projections/{name}/rebuild"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{token_id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

async fn document(api: &TestApi) -> Value {
    let answer = api
        .send(Call::new(Method::GET, "/openapi.json", None).build())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_router_serves() {
    let api = TestApi::new().await;
    let doc = document(&api).await;

    let documented = Contract::new(doc.clone()).operations();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    // The router serves each: without a token a route answers 401 (or, if public, 200),
    // never the router's 404 or 405.
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{tenant_id}", "1")
            .replace("{run_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{token_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{name}", "operation_runs");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, _, _) = api
            .send_raw(Call::new(method.clone(), &concrete, None).build())
            .await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::OK,
            "{method} {concrete}: {status}"
        );
    }
}

/// Every `$ref` in `value`, with where it was found.
fn refs<'a>(value: &'a Value, at: &str, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    found.push((at.to_owned(), child.as_str().expect("a $ref is a string")));
                } else {
                    refs(child, &format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// Resolves a local JSON pointer (`#/components/schemas/X`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(&pointer.replace("~1", "/").replace("~0", "~"))
}

#[tokio::test]
async fn the_document_is_well_formed_openapi_3_1() {
    let api = TestApi::new().await;
    let doc = document(&api).await;

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");

    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    for (at, reference) in &found {
        assert!(
            resolve(&doc, reference).is_some(),
            "{reference} at {at} resolves"
        );
    }

    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for (method, operation) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let label = format!("{method} {path}");
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(
                operation_ids.insert(id.to_owned()),
                "{label}: operationId {id} is unique"
            );
            let responses = operation["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{label} has responses");
            for (status, response) in responses {
                assert!(
                    status == "default"
                        || status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                    "{label}: response key {status}"
                );
                assert!(
                    response["description"].is_string(),
                    "{label} {status} has a description"
                );
            }
            // Each `{param}` of the path is a declared, required path parameter.
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .filter(|p| p["in"] == "path")
                        .inspect(|p| assert_eq!(p["required"], true, "{label}: {p}"))
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            let templated: BTreeSet<&str> = path
                .split('{')
                .skip(1)
                .map(|rest| rest.split('}').next().unwrap())
                .collect();
            assert_eq!(declared, templated, "{label}: path parameters");
            if let Some(security) = operation["security"].as_array() {
                for requirement in security {
                    for scheme in requirement.as_object().unwrap().keys() {
                        assert!(schemes.contains_key(scheme), "{label}: scheme {scheme}");
                    }
                }
            }
        }
    }
}
