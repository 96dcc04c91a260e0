//! The routes of the API, listed once: [`router_and_document`] builds both the router and the
//! OpenAPI 3.1 document from the handlers' annotations, so the document cannot list a route the
//! router does not serve, nor miss one it does.
//!
//! The handlers' annotations say what is particular to a route (its body, its answers, a 403,
//! 409 or a 503 of its own). What follows from a route's shape is added here, the same for every
//! route (docs/adr/0026): the refusals every authenticated route can answer (401, 429, 503,
//! 500), those of a path with parameters (404; 400 for an id that may be malformed), of a query string (400), of a request body (400,
//! 413, 415), of an `Idempotency-Key` (422) and of an `If-Match` (412); and every error answer
//! without a body of its own is an `application/problem+json` [`Problem`]. A body a route may
//! omit is declared optional rather than nullable.

use std::collections::BTreeMap;

use axum::Router;
use runledger_wire::Problem;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::PROBLEM_JSON;
use crate::{
    AppState, audit, evidence, notifications, operations, projections, runs_commands, runs_queries,
    tokens,
};

/// The `Idempotency-Key` request header of the commands.
pub(crate) const IDEMPOTENCY_KEY: &str = "Makes retries safe: a resend with the same key and body gets the first answer and appends nothing; the same key with another request is a 422 `idempotency-key-reused` (docs/adr/0014). Without a `run_id` in its body, a queue's key also names the run (UUIDv5 of the tenant and the key)";
/// The `If-Match` request header of the commands of a run.
pub(crate) const IF_MATCH: &str = "The version the run must be at, as an entity tag (`\"3\"`; a run's `ETag` also does): another version answers 412 `version-mismatch`";
/// The `Last-Event-ID` request header of the live (server-sent events) answers.
pub(crate) const LAST_EVENT_ID: &str = "Live streams only: resume after this log cursor (the `id` of the last event received), as a reconnecting EventSource sends it";
/// The 403 of the writer's routes.
pub(crate) const WRITER_ROLE: &str = "The token's role is not writer (or admin)";
/// The 403 of the auditor's routes.
pub(crate) const AUDITOR_ROLE: &str = "The token's role is not auditor (or admin)";
/// The 403 of the admin's routes.
pub(crate) const ADMIN_ROLE: &str = "Not an admin token";

/// What the document says besides its paths; `GET /openapi.json` serves it with them.
#[derive(OpenApi)]
#[openapi(
    info(title = "runledger", description = "An event-sourced ledger of long-running operations (runs). Every failure is an `application/problem+json` Problem (RFC 9457)."),
    servers((url = "/", description = "The server that serves this document (`runledger serve`; its `--public-url`)")),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "commands", description = "Record a run's lifecycle (writer role)"),
        (name = "queries", description = "Read runs from the OperationRun read model (reader role)"),
        (name = "audit", description = "Event history, point-in-time state, the live log, chain verification and exports (auditor role)"),
        (name = "notifications", description = "The signed-in user's notices"),
        (name = "operations", description = "Health, readiness, metrics, projections"),
        (name = "tokens", description = "API tokens: create (the secret shown once), list, revoke (admin role)"),
    )
)]
pub struct ApiDoc;

/// Every documented route, with its documentation as the handlers' annotations give it.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(runs_commands::router())
        .merge(runs_queries::router())
        .merge(audit::router())
        .merge(evidence::router())
        .merge(operations::router())
        .merge(notifications::router())
        .merge(projections::router())
        .merge(tokens::router())
}

/// The router of every documented route, and the finished document of the same routes.
pub fn router_and_document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = routes().split_for_parts();
    RouteShapeAnswers.modify(&mut document);
    (router, document)
}

/// The OpenAPI document of every route.
pub fn document() -> utoipa::openapi::OpenApi {
    router_and_document().1
}

/// Declares the bearer token scheme the routes' `security` refers to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Adds the answers that follow from each route's shape, and the Problem body of every error
/// answer that declares none (see the module documentation).
struct RouteShapeAnswers;

impl Modify for RouteShapeAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                optional_body_without_null(operation);
                for (status, description) in shape_answers(operation) {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| {
                            RefOr::T(ResponseBuilder::new().description(description).build())
                        });
                }
                for (status, response) in &mut operation.responses.responses {
                    if let RefOr::T(response) = response
                        && status.parse::<u16>().is_ok_and(|status| status >= 400)
                    {
                        if response.content.is_empty() {
                            response.content.insert(
                                PROBLEM_JSON.to_owned(),
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("Problem")))
                                    .build(),
                            );
                        }
                        if response.description.is_empty() {
                            status
                                .parse()
                                .ok()
                                .and_then(generic_description)
                                .unwrap_or_default()
                                .clone_into(&mut response.description);
                        }
                    }
                }
            }
        }
    }
}

/// A body a route may omit (an annotation's `Option<T>`: an absent or blank body reads as `{}`)
/// is declared as an optional body of `T`, not as a nullable one: `null` is no body the server
/// takes, and generated clients send nothing for an omitted optional body.
fn optional_body_without_null(operation: &mut Operation) {
    let Some(body) = &mut operation.request_body else {
        return;
    };
    let mut optional = false;
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
            && one_of.items.len() == 2
            && let Some(reference) = one_of
                .items
                .iter()
                .find(|item| matches!(item, RefOr::Ref(_)))
        {
            content.schema = Some(reference.clone());
            optional = true;
        }
    }
    if optional {
        body.required = Some(Required::False);
    }
}

/// The error answers `operation`'s shape implies, with what they mean for any route.
fn shape_answers(operation: &Operation) -> BTreeMap<u16, &'static str> {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| {
        parameters
            .iter()
            .any(|parameter| parameter.parameter_in == place)
    };
    let header = |name: &str| {
        parameters.iter().any(|parameter| {
            parameter.parameter_in == ParameterIn::Header
                && parameter.name.eq_ignore_ascii_case(name)
        })
    };
    let mut answers = BTreeMap::new();
    let mut add = |status: u16| {
        if let Some(description) = generic_description(status) {
            answers.insert(status, description);
        }
    };
    if operation.security.is_some() {
        for status in [401, 429, 500, 503] {
            add(status);
        }
    }
    if has(ParameterIn::Path) {
        add(404);
    }
    if parameters
        .iter()
        .any(|parameter| parameter.parameter_in == ParameterIn::Path && !any_string(parameter))
    {
        add(400);
    }
    if has(ParameterIn::Query) {
        add(400);
    }
    if operation.request_body.is_some() {
        for status in [400, 413, 415] {
            add(status);
        }
    }
    if header("Idempotency-Key") {
        add(422);
    }
    if header("If-Match") {
        add(412);
    }
    answers
}

/// Whether every string fits `parameter` (a name, not an id): it cannot be malformed, only
/// unknown.
fn any_string(parameter: &Parameter) -> bool {
    matches!(
        &parameter.schema,
        Some(RefOr::T(Schema::Object(object)))
            if object.schema_type == SchemaType::Type(Type::String) && object.format.is_none()
    )
}

/// What an error status means on every route that can answer it (a route's annotation may say
/// more).
fn generic_description(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => {
            "Invalid request: a malformed path id, query parameter, header or body (`field` names it)"
        }
        401 => "No bearer token, or an unknown or revoked one",
        403 => "The token's role does not allow this",
        404 => "No such resource for this token (another tenant's answers the same)",
        409 => "The run is not where the command needs it (`current_status`)",
        412 => "`If-Match` names another version than the run's (`current_version`)",
        413 => "The request body is larger than the server's limit",
        415 => "A request body that is not `application/json`",
        422 => {
            "The request cannot be processed: it breaks a rule of the run (`rule-violated`), or its `Idempotency-Key` was used for another request (`idempotency-key-reused`)"
        }
        429 => "Too many requests for this token or tenant: retry after `Retry-After` seconds",
        500 => "Internal error (the cause is in the server's log, under the `request_id`)",
        503 => {
            "Unavailable for now (the database, or a read model not built or behind): nothing was changed; retry, after `Retry-After` seconds when given"
        }
        _ => return None,
    })
}
