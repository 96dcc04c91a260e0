//! The monitoring pages under `/ui`: runs, a run (the target of `view_url`), notifications and
//! projections, rendered on the server from the projections (and, for a run's timeline, from
//! its events) with templates compiled into the binary.
//!
//! The pages use the API's own queries and checks (the same tenant isolation and roles) and a
//! cookie session instead of a bearer header ([`session`]). Live updates are server-sent events
//! that a few lines of JavaScript ([`ASSETS`]: `live.js`) put into the page, and `page.js` adds
//! copy buttons, the list's keys (j/k, Enter) and relative times kept current; without
//! JavaScript every page still works, it only stops updating by itself.
//!
//! # Layout
//! - [`session`]: sign-in with an API token, the session cookie, CSRF checks.
//! - [`page_error`]: failures as pages (or a redirect to sign in).
//! - [`times`]: times (relative, absolute on hover, to the millisecond) and durations.
//! - [`view`]: what the templates show of a run.
//! - [`timeline`]: what the run page shows of each of its events.
//! - [`live`]: the tenant's events for live pages, once the read model has applied them.
//! - [`read_model`]: what a page knows of the read model (built, behind, its checkpoint).
//! - [`runs_page`]: a tenant's runs, filtered, paged, live.
//! - [`run_page`]: one run, why it ended, its phases, context and timeline, live while it is
//!   active; its actions (JSON, events as NDJSON, chain verification, Cancel for writers).
//! - [`notifications_page`]: the signed-in user's notices, grouped by run; mark all as read.
//! - [`projections_page`]: projection status and rebuilds (admin).

pub mod live;
pub mod notifications_page;
pub mod page_error;
pub mod projections_page;
pub mod read_model;
pub mod run_page;
pub mod runs_page;
pub mod session;
pub mod timeline;
pub mod times;
pub mod view;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::AppState;
use crate::error::ApiError;
use page_error::PageError;
use session::Viewer;

/// The page chrome every signed-in page shows: where the runs are, who is signed in, and the
/// sign-out form.
#[derive(Debug, Clone)]
pub struct Nav {
    /// The tenant the pages are about.
    pub tenant_id: i64,
    /// The token's name.
    pub token_name: String,
    /// The token's role.
    pub role: &'static str,
    /// Whether the projections page is offered.
    pub is_admin: bool,
    /// Whether the token has a notification feed (is bound to a user).
    pub has_feed: bool,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: String,
    /// How many of the user's notices are unread (the navigation's badge); `None` when the
    /// token has no feed or the count is not known.
    pub unread_notices: Option<i64>,
}

impl Nav {
    /// The navigation of `viewer`'s pages about `tenant_id`, with the unread count of its feed
    /// (left out, and logged, when it cannot be read: a page never fails for its badge).
    pub async fn of(state: &AppState, viewer: &Viewer, tenant_id: i64) -> Nav {
        let mut nav = viewer.nav(tenant_id);
        if let Some(user) = viewer.caller.user_id {
            match runledger_projections::notifications::unread_count(
                &state.pool,
                viewer.caller.tenant_id,
                user,
            )
            .await
            {
                Ok(count) => nav.unread_notices = Some(count),
                Err(error) => tracing::warn!(%error, "the unread notices could not be counted"),
            }
        }
        nav
    }
}

/// The runs page of a tenant.
pub fn runs_url(tenant_id: i64) -> String {
    format!("/ui/tenants/{tenant_id}/runs")
}

/// The static files of the pages: path, media type, contents.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/ui/assets/app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
    (
        "/ui/assets/live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/live.js"),
    ),
    (
        "/ui/assets/page.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/page.js"),
    ),
];

/// What the pages may load: only their own scripts, styles and connections; no frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The routes of the pages, to be nested under `/ui`.
pub fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route("/", get(home))
        .route(
            "/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/tenants", get(runs_page::pick_tenant))
        .route("/tenants/{tenant_id}/runs", get(runs_page::runs_page))
        .route("/tenants/{tenant_id}/runs/live", get(runs_page::live_runs))
        .route(
            "/tenants/{tenant_id}/runs/{run_id}",
            get(run_page::run_page),
        )
        .route(
            "/tenants/{tenant_id}/runs/{run_id}/live",
            get(run_page::live_run),
        )
        .route(
            "/tenants/{tenant_id}/runs/{run_id}/events.ndjson",
            get(run_page::run_events_ndjson),
        )
        .route(
            "/tenants/{tenant_id}/runs/{run_id}/cancel",
            post(run_page::cancel),
        )
        .route(
            "/notifications",
            get(notifications_page::notifications_page),
        )
        .route(
            "/notifications/{id}/read",
            post(notifications_page::mark_read),
        )
        .route(
            "/notifications/read-all",
            post(notifications_page::mark_all_read),
        )
        .route("/projections", get(projections_page::projections_page))
        .route(
            "/projections/{name}/rebuild",
            post(projections_page::rebuild),
        );
    for &(path, media_type, contents) in ASSETS {
        router = router.route(
            path.trim_start_matches("/ui"),
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, media_type),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    contents,
                )
            }),
        );
    }
    router
        .fallback(missing_page)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}

/// `/ui`: the signed-in token's runs.
async fn home(viewer: Viewer) -> Redirect {
    Redirect::to(&runs_url(viewer.caller.tenant_id.get()))
}

/// An address under `/ui` that is no page: the 404 page, with the navigation and what to do.
async fn missing_page() -> Response {
    PageError::Api(ApiError::NotFound).into_response()
}
