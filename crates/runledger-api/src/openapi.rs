//! The routes of the API, listed once: [`routes`] builds both the router and the OpenAPI 3.1
//! document from the handlers' annotations, so the document cannot list a route the router
//! does not serve, nor miss one it does.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    AppState, audit, evidence, notifications, operations, projections, runs_commands, runs_queries,
    tokens,
};

/// What the document says besides its paths; `GET /openapi.json` serves it with them.
#[derive(OpenApi)]
#[openapi(
    info(title = "runledger", description = "An event-sourced ledger of long-running operations (runs)."),
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

/// Every documented route, with its documentation.
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

/// The OpenAPI document of every route.
pub fn document() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
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
