//! Robustness (issue 10, items 4–6): the server degrades fast and clearly while its database is
//! down and recovers by itself; it runs as an application role that cannot change the log; and
//! floods and bad input get typed answers (415, 429, 400), never a 500.

// Support: a private cluster the test can stop and start, and `runledger` spawned on it.
pub(crate) mod support;
// The database stopped under load, with a spawned `serve`: 503s within bounds, recovery, nothing
// acknowledged lost, live streams resumed.
mod database_down;
// The application role: what it may not do to `events`; `serve` as it on an unmigrated database.
mod privileges;
// Rate limits per token, per tenant and per sign-in address: 429 with Retry-After.
mod rate_limits;
// Bad input found by probing: a command body that is not JSON (415); another list's page token.
mod bad_input;
