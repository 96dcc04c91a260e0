//! The auditor's tools (`runledger_audit`, what `runledger verify`, `export`, `replay` and
//! `anchors` run): tampering done as the database superuser, with the append-only triggers off,
//! the way an attacker with database access would. One file per property; shared set-up in
//! `ledger_audit/support.rs`. (The audit HTTP routes of the API issue are tested in `api/audit.rs`.)

// A small ledger, its verification, exports and anchor files as text, and tampering verbs.
mod support;
// Changed payloads, metadata, record times, swapped and deleted events: each named, by the
// library, by one run's verification, and over HTTP.
mod tampering;
// Anchors: recorded, chained, append-only, on schedule; they catch deleted tails and runs that
// the chains cannot see, unless the only anchors are the ones the tamperer could rewrite.
mod anchors;
// Exports: every stored field, a consistent cut under concurrent writes, offline verification
// of whole, filtered and edited exports, over the CLI's code and the HTTP route.
mod export;
// Point-in-time replay, from the database and from an export, against the fold and the read model.
mod replay;
// docs/export-format.md: its worked example and its number rule, checked against the code.
mod export_format;
