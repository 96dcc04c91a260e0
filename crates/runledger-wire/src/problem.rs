//! The body of every failure: an RFC 9457 problem (`application/problem+json`), with the
//! extension members the API adds where the client can act on them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A problem: what went wrong, for programs (`type`, `status`, the extensions) and people
/// (`title`, `detail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:runledger:problem:<slug>`, e.g. `urn:runledger:problem:not-found`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The request's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request's id (`x-request-id`), for the server's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The offending input of a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Where the run is, for a 409 `invalid-transition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
    /// The worker holding the run, for a 409 `held-by-another-worker` (`null` when its start
    /// named none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// How the run ended, for a 409 `run-completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Why the run completed, for a 409 `run-completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_reason: Option<String>,
    /// The run's version, for a 412 `version-mismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// The read model's checkpoint, for a 503 `projection-behind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

impl Problem {
    /// The slug of the type: `not-found` for `urn:runledger:problem:not-found`.
    pub fn slug(&self) -> &str {
        self.problem_type
            .strip_prefix("urn:runledger:problem:")
            .unwrap_or(&self.problem_type)
    }
}
