//! The OpenAPI document as a contract (issue 14): every route's answers conform to what the
//! document declares, and a client generated from it by a standard generator of another
//! ecosystem drives a run's whole lifecycle. (`api/openapi.rs` checks the document's structure
//! and that it lists exactly the router's routes.)

// The document as a contract: its operations, and an answer checked against one of them.
pub(crate) mod contract;
// Every route, with good and bad input: each answer's status, content type and body are the
// declared ones.
mod conformance;
// openapi-python-client generates a client; a Python script drives a run's lifecycle with it.
mod generated_client;
