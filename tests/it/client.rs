//! The Rust client (`runledger-client`) against the real router over real HTTP, the token API,
//! and the `runledger` binary beside a running `serve`. Shared set-up lives in `support`.

// The API on a real port with the client's tokens, and a layer that loses answers (503).
pub(crate) mod support;
// Every route through the client; the wire types read every answer whole.
mod routes;
// Retries: an answer lost to an injected 503 is retried with the same key and counts once.
mod retries;
// Worker handles: coalesced progress from 16 handles adds up; a dropped or panicked handle
// fails its run; heartbeats keep a quiet handle's run alive and bring it a cancel; the dispatch
// helper marks a refused hand-over dispatch-failed.
mod worker;
// The token API, service tokens of several tenants, revocation within the staleness.
mod tokens;
// The `runledger` binary: every README CLI line while `serve` runs on the data directory.
mod cli;
