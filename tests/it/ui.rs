//! The monitoring pages (`/ui`).

// A browser's side of the pages through the router: cookies, forms, pages as text.
pub(crate) mod support;
// Each page: sessions and CSRF, isolation and roles, labels, filters, pages, escaping,
// notifications, projections, a read model that is behind.
mod pages;
// The live updates of the pages: server-sent rows and run articles.
mod live;

// End to end in headless Chromium: sign in, a run appears and completes live, its detail page,
// a notification's link.
mod browser;
