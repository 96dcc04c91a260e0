//! Projection status for admins: state, checkpoint, lag and rebuild progress of each read model,
//! and a rebuild button, over the projections route's own status and rebuild.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use runledger_projections::ProjectionStatus;

use super::Nav;
use super::page_error::{PageError, PageForm};
use super::session::{CsrfForm, Viewer};
use crate::AppState;
use crate::auth::Role;
use crate::error::ApiError;
use crate::projections::{start_rebuild, statuses_here};

/// A projection as the page shows it.
#[derive(Debug)]
pub struct ProjectionView {
    pub name: String,
    pub state: &'static str,
    pub fingerprint: String,
    pub generation: String,
    pub checkpoint: String,
    pub events_applied: String,
    pub lag_events: i64,
    pub lag_seconds: String,
    pub led: bool,
    /// `42% (1,200 events/s, about 30 s left)`.
    pub rebuild: Option<String>,
    pub rebuild_percent: Option<String>,
    pub last_error: Option<String>,
    /// Set when this server's code cannot lead the projection (docs/adr/0025).
    pub code_problem: Option<String>,
}

impl From<&ProjectionStatus> for ProjectionView {
    fn from(status: &ProjectionStatus) -> Self {
        let active = &status.active;
        Self {
            name: status.name.clone(),
            state: status.state.as_str(),
            fingerprint: active.version.fingerprint.clone(),
            generation: active.version.generation.to_string(),
            checkpoint: status.checkpoint().to_string(),
            events_applied: active.version.events_applied.to_string(),
            lag_events: active.lag_events,
            lag_seconds: format!("{:.1}", active.lag_seconds),
            led: active.led,
            rebuild: status.rebuild.as_ref().map(|rebuild| {
                let eta = rebuild
                    .eta_seconds
                    .map_or_else(String::new, |eta| format!(", about {eta:.0} s left"));
                format!(
                    "{:.1}% ({:.0} events/s{eta})",
                    rebuild.percent, rebuild.events_per_second
                )
            }),
            rebuild_percent: status
                .rebuild
                .as_ref()
                .map(|rebuild| format!("{:.0}", rebuild.percent)),
            last_error: status.last_error.clone(),
            code_problem: status.code_problem(),
        }
    }
}

#[derive(Template)]
#[template(path = "projections.html")]
struct ProjectionsPage {
    nav: Option<Nav>,
    csrf: String,
    projections: Vec<ProjectionView>,
}

fn require_admin(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.caller.role == Role::Admin {
        Ok(())
    } else {
        Err(PageError::Api(ApiError::Forbidden))
    }
}

/// `GET /ui/projections` (admin).
pub async fn projections_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    require_admin(&viewer)?;
    let all = statuses_here(&state)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let page = ProjectionsPage {
        nav: Some(viewer.nav(viewer.caller.tenant_id.get())),
        csrf: viewer.csrf.clone(),
        projections: all.iter().map(ProjectionView::from).collect(),
    };
    Ok(Html(page.render()?).into_response())
}

/// `POST /ui/projections/{name}/rebuild` (admin), then back to the status.
pub async fn rebuild(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    require_admin(&viewer)?;
    viewer.check_form(&form)?;
    start_rebuild(&state, &name).await?;
    Ok(Redirect::to("/ui/projections").into_response())
}
