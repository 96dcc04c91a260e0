//! The OpenAPI 3.1 document of every route, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{audit, evidence, notifications, operations, projections, runs_commands, runs_queries};

/// The document; `GET /openapi.json` serves it.
#[derive(OpenApi)]
#[openapi(
    info(title = "runledger", description = "An event-sourced ledger of long-running operations (runs)."),
    paths(
        runs_commands::queue_run,
        runs_commands::start_run,
        runs_commands::report_progress,
        runs_commands::complete_run,
        runs_commands::dispatch_failed,
        runs_queries::list_runs,
        runs_queries::get_run,
        runs_queries::count_runs,
        audit::run_events,
        audit::run_state,
        audit::tenant_events,
        evidence::verify_run_chain,
        evidence::export_tenant,
        notifications::list_notifications,
        notifications::mark_read,
        projections::list_projections,
        projections::rebuild_projection,
        operations::healthz,
        operations::readyz,
        operations::metrics,
        operations::openapi,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "commands", description = "Record a run's lifecycle (writer role)"),
        (name = "queries", description = "Read runs from the OperationRun read model (reader role)"),
        (name = "audit", description = "Event history, point-in-time state, the live log, chain verification and exports (auditor role)"),
        (name = "notifications", description = "The signed-in user's notices"),
        (name = "operations", description = "Health, readiness, metrics, projections"),
    )
)]
pub struct ApiDoc;

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
