//! The status and outcome of a run, exactly the enums of the seed (spec 054).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// Lifecycle state: `queued → running → completed`, and `queued → completed` when dispatch fails,
/// the run is cancelled or its start deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker is executing it.
    Running,
    /// Finished; nothing follows.
    Completed,
}

/// Result bucket: `pending` until the run completes, then one of the terminal outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The run has not completed yet.
    Pending,
    /// Every item succeeded.
    Succeeded,
    /// Some items succeeded, some failed.
    PartiallySucceeded,
    /// Nothing succeeded, or dispatch failed.
    Failed,
    /// Cancelled on request: a queued run at once, a running one when its worker acknowledges.
    /// The seed reserved it; only the cancel path produces it.
    Cancelled,
}

/// Declares the stored snake_case names of an enum, with `as_str`, `FromStr` and `Display`.
macro_rules! stored_names {
    ($ty:ident, $field:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// All values, in lifecycle order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stored (and wire) name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(ParseError::new(
                        $field,
                        concat!("must be one of: ", $($name, " "),+).trim_end(),
                    )),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_names!(RunStatus, "status", {
    Queued => "queued",
    Running => "running",
    Completed => "completed",
});

stored_names!(Outcome, "outcome", {
    Pending => "pending",
    Succeeded => "succeeded",
    PartiallySucceeded => "partially_succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl RunStatus {
    /// Queued and running runs are active: they hold their identity's dedupe slot.
    pub const fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// The display label for people.
    pub const fn label(self) -> &'static str {
        match self {
            RunStatus::Queued => "Queued",
            RunStatus::Running => "Running",
            RunStatus::Completed => "Completed",
        }
    }
}

impl Outcome {
    /// The seed's display-only label mapping.
    pub const fn label(self) -> &'static str {
        match self {
            Outcome::Pending => "Pending",
            Outcome::Succeeded => "Succeeded",
            Outcome::PartiallySucceeded => "Partially succeeded",
            Outcome::Failed => "Failed",
            Outcome::Cancelled => "Cancelled",
        }
    }

    /// Whether a `complete` command may ask for this outcome on its own; `cancelled` needs a
    /// cancel request first, and `pending` is never terminal.
    pub const fn is_settable(self) -> bool {
        matches!(
            self,
            Outcome::Succeeded | Outcome::PartiallySucceeded | Outcome::Failed
        )
    }
}
