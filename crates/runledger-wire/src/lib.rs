//! The JSON of runledger's HTTP API: the request bodies, query parameters and answers of every
//! route, with their OpenAPI schemas.
//!
//! The server (`runledger-api`) deserializes the requests and serializes the answers from these
//! types, and the client (`runledger-client`) does the reverse, so the two cannot disagree on a
//! field. The crate holds no logic: parsing into domain values is the server's, retrying the
//! client's. It depends on no other runledger crate, so a product's worker builds it without the
//! server's dependencies.
//!
//! # Layout
//! - [`run`]: the OperationRun as the API shows it, with its counts, failures and limits.
//! - [`commands`]: the command routes' bodies and their answer.
//! - [`queries`]: the run list's and count's parameters and answers.
//! - [`notices`]: the notification feed.
//! - [`audit`]: a run's events, its state as of a point, the tenant's log, chain verification,
//!   export parameters.
//! - [`tokens`]: the token API.
//! - [`problem`]: the `application/problem+json` body of every failure.
//! - `time`: the one form of the answers' times (RFC 3339, UTC, microseconds).

pub mod audit;
pub mod commands;
pub mod notices;
pub mod problem;
pub mod queries;
pub mod run;
mod time;
pub mod tokens;

pub use audit::{
    AsOf, AuditEvent, EventPage, InvalidEvent, RunEvents, RunStateAt, RunVerificationBody,
};
pub use commands::{
    CancelBody, CommandAnswer, CompleteBody, DispatchFailedBody, FailureBody, FinalCountsBody,
    HeartbeatAnswer, HeartbeatBody, InitiatorBody, ProgressBody, QueueRunBody, StartBody,
};
pub use notices::{Notice, NoticePage, NoticeQuery};
pub use problem::Problem;
pub use queries::{RunCount, RunCountGroup, RunPage, RunQuery};
pub use run::{FailureEntry, OperationRun, Outcome, RunStatus, SummaryCounts};
pub use tokens::{CreatedToken, NewTokenBody, TokenInfo, TokenList};
