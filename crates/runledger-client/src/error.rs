//! `ClientError`: why a call failed, by what the caller can do about it.

use runledger_wire::Problem;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a problem (RFC 9457): a 4xx the request must change for, or a
    /// 5xx that outlasted the retries.
    #[error("{} {}: {}", .problem.status, .problem.title, .problem.detail)]
    Problem {
        /// The problem the server sent.
        problem: Box<Problem>,
        /// The `Retry-After` of a 503 or 429, in seconds.
        retry_after: Option<u64>,
    },
    /// The server could not be reached, or the connection failed before an answer, after the
    /// retries. For a command the outcome is unknown: sending it again with the same
    /// `Idempotency-Key` is safe.
    #[error("the ledger could not be reached: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered something that is not the route's answer (a proxy's error page, a
    /// newer server's incompatible shape).
    #[error("unexpected answer ({status}): {detail}")]
    UnexpectedAnswer {
        /// The HTTP status.
        status: u16,
        /// What did not read.
        detail: String,
    },
    /// The client was set up with an unusable base URL or token.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status of a problem answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem { problem, .. } => Some(problem.status),
            ClientError::UnexpectedAnswer { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem the server sent, if it sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// Whether the resource is missing (or another tenant's, which answers the same).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}
