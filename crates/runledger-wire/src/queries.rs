//! The run list's and the run count's query parameters, and their answers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::run::{OperationRun, Outcome, RunStatus};

/// The query parameters of the run list and the run count (one struct, so that a misspelled
/// parameter is refused rather than silently ignored).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Exact run type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub run_type: Option<String>,
    /// Run types starting with this prefix (e.g. `inventory.`).
    pub type_prefix: Option<String>,
    /// Status (repeatable).
    #[serde(default)]
    pub status: Vec<String>,
    /// Outcome (repeatable).
    #[serde(default)]
    pub outcome: Vec<String>,
    /// Initiating user.
    pub initiator_user_id: Option<i64>,
    /// The initiator's name, case-insensitive (`ada` finds runs initiated by `Ada`).
    pub initiator_name: Option<String>,
    /// Run ids starting with these hex digits (hyphens allowed), e.g. `4f2a91`.
    pub run_id_prefix: Option<String>,
    /// `key=value`: runs whose context or identity holds this top-level key with this value
    /// (as text, or as the number or boolean it reads as), e.g. `restore_run_id=42`.
    pub attribute: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// List only: `-created_at` (default), `created_at` or `-completed_at`.
    pub sort: Option<String>,
    /// List only: 1–500, default 50.
    pub page_size: Option<u32>,
    /// List only: the `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Count only: comma-separated `status`, `outcome`, or both.
    pub group_by: Option<String>,
    /// Wait until the read model has applied this log position (read-your-writes).
    pub min_position: Option<i64>,
    /// List only: `true` keeps the response open as server-sent events (`entered`, `changed`,
    /// `left`) for the runs entering, changing in and leaving the filter from now on (or after
    /// `Last-Event-ID`); page, sort and count parameters do not apply.
    pub watch: Option<bool>,
}

impl RunQuery {
    /// The parameters as a query string's pairs, repeated parameters repeated (`status=a&
    /// status=b`), absent ones left out: what a client sends.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let mut pairs = Vec::new();
        let mut one = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        };
        one("type", self.run_type.clone());
        one("type_prefix", self.type_prefix.clone());
        one(
            "initiator_user_id",
            self.initiator_user_id.map(|u| u.to_string()),
        );
        one("initiator_name", self.initiator_name.clone());
        one("run_id_prefix", self.run_id_prefix.clone());
        one("attribute", self.attribute.clone());
        one("created_after", self.created_after.as_ref().map(time));
        one("created_before", self.created_before.as_ref().map(time));
        one("sort", self.sort.clone());
        one("page_size", self.page_size.map(|s| s.to_string()));
        one("page_token", self.page_token.clone());
        one("group_by", self.group_by.clone());
        one("min_position", self.min_position.map(|p| p.to_string()));
        one("watch", self.watch.map(|w| w.to_string()));
        pairs.extend(self.status.iter().map(|s| ("status", s.clone())));
        pairs.extend(self.outcome.iter().map(|o| ("outcome", o.clone())));
        pairs
    }
}

/// A page of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    /// The runs, in the requested order.
    pub runs: Vec<OperationRun>,
    /// Pass as `page_token` for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

/// `runs:count`: how many runs match, in all and per group.
///
/// Fields in alphabetical order, the order of the JSON map the server built before this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunCount {
    /// One entry per status and/or outcome present, when `group_by` was given (else empty).
    pub groups: Vec<RunCountGroup>,
    /// Every matching run.
    pub total: i64,
}

/// One group of a count: the runs with one status and/or outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunCountGroup {
    /// How many runs.
    pub count: i64,
    /// The outcome, when grouped by outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The status, when grouped by status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
}
