//! Failures of the monitoring pages, answered as pages: a browser that is not signed in is sent
//! to the sign-in form, anything else gets an HTML page with the navigation, the status, title
//! and detail the API's problem would carry (and, like it, never the cause of a server error),
//! and what to do next.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A page that could not be shown.
#[derive(Debug)]
pub enum PageError {
    /// No session (or an expired one, or one whose token was revoked): sign in, then come back
    /// to `next`.
    SignIn {
        /// The page asked for (path and query).
        next: String,
    },
    /// What the API would have answered.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError::Api(error)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(error: sqlx::Error) -> Self {
        PageError::Api(error.into())
    }
}

impl From<askama::Error> for PageError {
    fn from(error: askama::Error) -> Self {
        PageError::Api(ApiError::Internal(error.into()))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Option<super::Nav>,
    status: u16,
    title: &'static str,
    detail: String,
    next_steps: Vec<&'static str>,
}

/// What someone who met `status` can do about it.
fn next_steps(status: StatusCode) -> Vec<&'static str> {
    match status.as_u16() {
        400 | 413 | 422 => vec![
            "Correct the field named above and send it again.",
            "On the runs list, Clear resets every filter.",
        ],
        403 => vec![
            "This needs another role: a writer token to cancel runs, an auditor token for timelines and evidence, an admin token for projections.",
            "Sign out and sign in with such a token, or go back to the runs.",
        ],
        404 => vec![
            "Check the address: a run's page is /ui/tenants/<tenant>/runs/<run id>.",
            "Search the runs list by the start of the run id.",
            "A run of another tenant is not shown: sign in with a token of that tenant.",
        ],
        409 | 412 => {
            vec!["The run changed meanwhile (it may have completed): open its page again."]
        }
        429 => vec!["Too many requests: wait a moment, then try again."],
        _ => vec![
            "Try again in a moment.",
            "If it keeps failing, the server's log has the cause: tell the operator the time it happened.",
        ],
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let error = match self {
            PageError::SignIn { next } => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &next)
                    .finish();
                return Redirect::to(&format!("/ui/sign-in?{query}")).into_response();
            }
            PageError::Api(error) => error,
        };
        if let ApiError::Internal(cause) = &error {
            tracing::error!(error.cause_chain = ?cause, "page failed");
        }
        let (status, title, detail) = error.for_people();
        let retry_after = error.retry_after_seconds(status);
        let page = ErrorPage {
            nav: None,
            status: status.as_u16(),
            title,
            detail,
            next_steps: next_steps(status),
        };
        let mut response = match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, title).into_response(),
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An API extractor whose problem becomes a page: `ForPage(Query(q)): ForPage<Query<T>>`.
#[derive(Debug)]
pub struct ForPage<E>(pub E);

impl<S: Send + Sync, E: FromRequestParts<S, Rejection = ApiError>> FromRequestParts<S>
    for ForPage<E>
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        E::from_request_parts(parts, state)
            .await
            .map(ForPage)
            .map_err(PageError::Api)
    }
}

/// A submitted form (`application/x-www-form-urlencoded`); a malformed one is a 400 page.
#[derive(Debug)]
pub struct PageForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, PageError> {
        axum::Form::<T>::from_request(request, state)
            .await
            .map(|axum::Form(form)| PageForm(form))
            .map_err(|rejection: FormRejection| {
                PageError::Api(if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest {
                        field: None,
                        detail: rejection.body_text(),
                    }
                })
            })
    }
}
