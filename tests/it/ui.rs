//! The monitoring pages (`/ui`).

// End to end in headless Chromium: sign in, a run appears and completes live, its detail page,
// a notification's link.
mod browser;
