//! Signing in to the monitoring pages with an API token, and the session that follows.
//!
//! The browser sends its token once, in the sign-in form; it then carries a random session id
//! in an `HttpOnly`, `SameSite=Strict` cookie (JavaScript cannot read it, other sites cannot
//! send it). Only the id's SHA-256 is stored, beside the token it acts as, so revoking the token
//! ends the session at once. Every state-changing form of a session carries the session's CSRF
//! token; the sign-in form, which has no session yet, carries a value that must match a
//! short-lived cookie of its own (double submit), so no other site can sign a browser in.

use askama::Template;
use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Duration;
use serde::Deserialize;

use super::page_error::{ForPage, PageError, PageForm};
use super::{Nav, runs_url};
use crate::AppState;
use crate::auth::{Caller, TokenRow, caller_of_token, find_caller, token_hash};
use crate::error::ApiError;
use crate::extract::Query;
use crate::rate_limit::ClientAddress;
use crate::tokens::random_secret;

/// The session cookie.
const SESSION_COOKIE: &str = "runledger_session";
/// The sign-in form's double-submit cookie.
const SIGN_IN_COOKIE: &str = "runledger_sign_in";
/// How long a session lasts on the server. The cookies themselves last until the browser
/// closes.
const SESSION_LIFETIME: Duration = Duration::hours(12);

/// The signed-in person of a page: the token's caller and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who the session acts as.
    pub caller: Caller,
    /// Sent back by every form of the session.
    pub csrf: String,
}

impl AsRef<Caller> for Viewer {
    fn as_ref(&self) -> &Caller {
        &self.caller
    }
}

impl Viewer {
    /// The page chrome (navigation, sign-out form) for this viewer.
    pub fn nav(&self, tenant_id: i64) -> Nav {
        Nav {
            tenant_id,
            token_name: self.caller.name.clone(),
            role: self.caller.role.as_str(),
            is_admin: self.caller.role == crate::auth::Role::Admin,
            has_feed: self.caller.user_id.is_some(),
            csrf: self.csrf.clone(),
            unread_notices: None,
        }
    }

    /// Refuses `form` unless it carries this session's CSRF token.
    ///
    /// # Errors
    /// A 403 page.
    pub fn check_form(&self, form: &CsrfForm) -> Result<(), PageError> {
        if form.csrf.as_bytes() == self.csrf.as_bytes() {
            Ok(())
        } else {
            Err(PageError::Api(ApiError::Forbidden))
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        // The pages are nested under `/ui`: the original URI still has the prefix.
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |original| &original.0);
        let next = uri
            .path_and_query()
            .map_or("/ui", |p| p.as_str())
            .to_owned();
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(secret) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
            return Err(PageError::SignIn { next });
        };
        type SessionRow = (
            uuid::Uuid,
            String,
            i64,
            String,
            Option<i64>,
            Vec<i64>,
            bool,
            String,
        );
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT t.id, t.name, t.tenant_id, t.role, t.user_id, t.tenant_ids, t.all_tenants, s.csrf_token \
             FROM ui_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.session_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL",
        )
        .bind(token_hash(&secret).to_vec())
        .fetch_optional(&state.pool)
        .await?;
        let Some((id, name, tenant, role, user, tenants, all_tenants, csrf)) = row else {
            return Err(PageError::SignIn { next });
        };
        let token: TokenRow = (id, name, tenant, role, user, tenants, all_tenants);
        Ok(Viewer {
            caller: caller_of_token(token)?,
            csrf,
        })
    }
}

/// `GET /ui/sign-in` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInQuery {
    /// Where to go once signed in.
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    nav: Option<Nav>,
    next: String,
    csrf: String,
    error: Option<&'static str>,
}

/// The sign-in form, with a fresh double-submit value.
pub async fn sign_in_form(
    ForPage(Query(query)): ForPage<Query<SignInQuery>>,
    jar: CookieJar,
) -> Result<Response, PageError> {
    sign_in_page(jar, StatusCode::OK, query.next.unwrap_or_default(), None)
}

fn sign_in_page(
    jar: CookieJar,
    status: StatusCode,
    next: String,
    error: Option<&'static str>,
) -> Result<Response, PageError> {
    let csrf = random_secret("");
    let cookie = Cookie::build((SIGN_IN_COOKIE, csrf.clone()))
        .path("/ui/sign-in")
        .http_only(true)
        .same_site(SameSite::Strict)
        .build();
    let page = SignInPage {
        nav: None,
        next,
        csrf,
        error,
    };
    Ok((status, jar.add(cookie), Html(page.render()?)).into_response())
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInForm {
    token: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Checks the token, opens a session and goes on to the page asked for (or the runs).
pub async fn sign_in(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    jar: CookieJar,
    PageForm(form): PageForm<SignInForm>,
) -> Result<Response, PageError> {
    // Before the token is looked up: guessing tokens costs attempts, whatever they find.
    state.rate_limits.sign_in(address)?;
    let expected = jar.get(SIGN_IN_COOKIE).map(|c| c.value().to_owned());
    if expected.as_deref() != Some(form.csrf.as_str()) {
        return sign_in_page(
            jar,
            StatusCode::FORBIDDEN,
            form.next,
            Some("The form expired or came from another site: sign in again."),
        );
    }
    let Some(caller) = find_caller(&state.pool, form.token.trim()).await? else {
        return sign_in_page(
            jar,
            StatusCode::UNAUTHORIZED,
            form.next,
            Some("That token is not valid (or it was revoked)."),
        );
    };
    let secret = random_secret("");
    sqlx::query(
        // The database's clock sets the expiry, as it checks it: one clock for a session.
        "INSERT INTO ui_sessions (session_hash, token_id, csrf_token, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(token_hash(&secret).to_vec())
    .bind(caller.token_id)
    .bind(random_secret(""))
    .bind(SESSION_LIFETIME.num_seconds() as f64)
    .execute(&state.pool)
    .await?;
    // Expired sessions are of no use to anyone: each sign-in sweeps them.
    sqlx::query("DELETE FROM ui_sessions WHERE expires_at < now()")
        .execute(&state.pool)
        .await?;
    let session = Cookie::build((SESSION_COOKIE, secret))
        .path("/ui")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Strict)
        .build();
    let jar = jar
        .remove(Cookie::build(SIGN_IN_COOKIE).path("/ui/sign-in"))
        .add(session);
    let to = if is_page_path(&form.next) {
        form.next
    } else {
        runs_url(caller.tenant_id.get())
    };
    Ok((jar, Redirect::to(&to)).into_response())
}

/// A form whose only field is the session's CSRF token: sign-out, and the buttons of the pages
/// (mark as read, rebuild) whose target is in their path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfForm {
    pub(crate) csrf: String,
}

/// Ends the session and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    jar: CookieJar,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_form(&form)?;
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        sqlx::query("DELETE FROM ui_sessions WHERE session_hash = $1")
            .bind(token_hash(cookie.value()).to_vec())
            .execute(&state.pool)
            .await?;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/ui"));
    Ok((jar, Redirect::to("/ui/sign-in")).into_response())
}

/// Whether `next` is one of our pages: a path under `/ui/`, never another site's address
/// (`//host`, `/\host`) that a crafted sign-in link could send the browser to.
fn is_page_path(next: &str) -> bool {
    next.starts_with("/ui/")
        && !next.contains("//")
        && !next.contains('\\')
        && !next.starts_with("/ui/sign-")
}

#[cfg(test)]
mod tests {
    use super::is_page_path;

    #[test]
    fn only_our_own_pages_are_followed_after_sign_in() {
        assert!(is_page_path("/ui/tenants/1/runs?status=running"));
        for elsewhere in [
            "",
            "https://evil.example/ui/",
            "//evil.example/ui/",
            "/ui//evil.example",
            "/ui/\\evil.example",
            "/v1/tenants/1/runs",
            "/ui/sign-out",
        ] {
            assert!(!is_page_path(elsewhere), "{elsewhere:?}");
        }
    }
}
