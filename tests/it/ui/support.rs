//! A browser's side of the pages, through the real router: it keeps the cookies the pages set,
//! sends forms with their CSRF fields, and reads pages as text.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use regex::Regex;
use tower::ServiceExt;

use crate::api::TestApi;

/// A page as the router answered it.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) html: String,
}

impl Page {
    /// Where a redirect points.
    #[track_caller]
    pub(crate) fn location(&self) -> &str {
        assert!(
            self.status.is_redirection(),
            "{}: {}",
            self.status,
            self.html
        );
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("a Location header")
    }

    /// The value of the first hidden `csrf` field.
    #[track_caller]
    pub(crate) fn csrf(&self) -> String {
        field_value(&self.html, "csrf").expect("a csrf field")
    }

    /// The `Set-Cookie` header for `name`, if the answer set (or cleared) it.
    pub(crate) fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|cookie| cookie.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// Asserts a page (HTML) with `status`.
    #[track_caller]
    pub(crate) fn assert_html(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{}", self.html);
        let media = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(media.starts_with("text/html"), "{media}: {}", self.html);
        &self.html
    }
}

/// The `value` of the input named `name` in `html`.
pub(crate) fn field_value(html: &str, name: &str) -> Option<String> {
    Regex::new(&format!(r#"name="{name}" value="([^"]*)""#))
        .expect("a valid pattern")
        .captures(html)
        .map(|c| c[1].to_owned())
}

/// A browser with its cookies.
pub(crate) struct Browser<'a> {
    api: &'a TestApi,
    cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(api: &'a TestApi) -> Self {
        Self {
            api,
            cookies: Vec::new(),
        }
    }

    /// Signs in with `token` through the sign-in form; panics unless a session began.
    pub(crate) async fn signed_in(api: &'a TestApi, token: &str) -> Self {
        let mut browser = Self::new(api);
        let answer = browser.sign_in(token, "").await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.html);
        assert!(answer.set_cookie("runledger_session").is_some());
        browser
    }

    /// Opens the sign-in form and sends `token` in it.
    pub(crate) async fn sign_in(&mut self, token: &str, next: &str) -> Page {
        let form = self.get("/ui/sign-in").await;
        form.assert_html(StatusCode::OK);
        let csrf = form.csrf();
        self.post_form(
            "/ui/sign-in",
            &[("token", token), ("csrf", &csrf), ("next", next)],
        )
        .await
    }

    /// `GET path`.
    pub(crate) async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a form of `fields`.
    pub(crate) async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(Method::POST, path, Some(body)).await
    }

    /// The request a browser would send (its cookies included), for tests that read the body
    /// themselves.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Request<Body> {
        let mut request = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .expect("a valid request")
    }

    async fn send(&mut self, method: Method, path: &str, body: Option<String>) -> Page {
        let response = self
            .api
            .app
            .clone()
            .oneshot(self.request(method, path, body))
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("read the page").to_bytes();
        let page = Page {
            status: parts.status,
            headers: parts.headers,
            html: String::from_utf8(bytes.to_vec()).expect("a page is UTF-8"),
        };
        self.keep_cookies(&page.headers);
        page
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for cookie in headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = cookie.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            self.cookies.retain(|(kept, _)| kept != name);
            // A removal sets an empty value that has already expired.
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }
}

/// The text a browser shows for `html`'s character references (those a template writes).
pub(crate) fn unescaped(html: &str) -> String {
    [
        ("&#60;", "<"),
        ("&#62;", ">"),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(html.to_owned(), |text, (reference, character)| {
        text.replace(reference, character)
    })
}
