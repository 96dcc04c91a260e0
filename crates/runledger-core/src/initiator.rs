//! Who started a run: a user (with a snapshot of their name) or the system.

use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::ids::UserId;

/// The initiator of a run, as the seed's `user_id` + `initiator_name` pair.
///
/// The name is a snapshot taken when the run is queued: renaming the user later does not
/// rewrite history. System and scheduler runs have no user and the name `System`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiator {
    /// The user, when a person started the run.
    pub user_id: Option<UserId>,
    /// The user's name at queue time, or `System`.
    pub name: String,
}

impl Initiator {
    /// The name of runs nobody started by hand.
    pub const SYSTEM_NAME: &'static str = "System";
    /// The longest accepted name, in characters.
    pub const MAX_NAME_CHARS: usize = 200;

    /// A run started by the system or a scheduler.
    pub fn system() -> Self {
        Self {
            user_id: None,
            name: Self::SYSTEM_NAME.to_owned(),
        }
    }

    /// A run started by a user; the name is trimmed and must not be empty.
    ///
    /// # Errors
    /// [`ParseError`] naming `initiator.name` when the name is empty, too long or has control characters.
    pub fn user(user_id: UserId, name: &str) -> Result<Self, ParseError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ParseError::new("initiator.name", "must not be empty"));
        }
        if name.chars().count() > Self::MAX_NAME_CHARS {
            return Err(ParseError::new(
                "initiator.name",
                "must be at most 200 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(ParseError::new(
                "initiator.name",
                "must not contain control characters",
            ));
        }
        Ok(Self {
            user_id: Some(user_id),
            name: name.to_owned(),
        })
    }
}
