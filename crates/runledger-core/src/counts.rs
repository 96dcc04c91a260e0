//! Summary counts of a run and the increments workers report.

use serde::{Deserialize, Serialize};

use crate::error::RunRejection;

/// The seed's `summary_counts`: `{ "total": 10, "success": 8, "failed": 2, "skipped": 0 }`.
///
/// `total` is absent until a worker reports it. Counts never go backwards, and once a total is
/// known, `success + failed + skipped` never exceeds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryCounts {
    /// How many items the run will process, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Items that succeeded.
    pub success: u64,
    /// Items that failed.
    pub failed: u64,
    /// Items that were skipped.
    pub skipped: u64,
}

/// Increments reported by one worker; many workers may report to one run concurrently,
/// so reports add up instead of overwriting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressDelta {
    /// Items that succeeded since the worker's last report.
    #[serde(default)]
    pub success: u64,
    /// Items that failed since the worker's last report.
    #[serde(default)]
    pub failed: u64,
    /// Items that were skipped since the worker's last report.
    #[serde(default)]
    pub skipped: u64,
}

impl ProgressDelta {
    /// Whether the delta adds nothing.
    pub fn is_zero(&self) -> bool {
        self.success == 0 && self.failed == 0 && self.skipped == 0
    }
}

impl SummaryCounts {
    /// success + failed + skipped, saturating (sums are checked when they are made).
    pub fn processed(&self) -> u64 {
        self.success
            .saturating_add(self.failed)
            .saturating_add(self.skipped)
    }

    /// The counts after a report: the rules of `decide`.
    ///
    /// # Errors
    /// [`RunRejection::TotalDecreased`], [`RunRejection::CountsExceedTotal`] or
    /// [`RunRejection::CountOverflow`] when the report would break the counting rules.
    pub fn checked_apply(
        &self,
        delta: &ProgressDelta,
        total: Option<u64>,
    ) -> Result<SummaryCounts, RunRejection> {
        let total = match (self.total, total) {
            (Some(known), Some(given)) if given < known => {
                return Err(RunRejection::TotalDecreased { known, given });
            }
            (known, given) => given.or(known),
        };
        let add = |a: u64, b: u64| a.checked_add(b).ok_or(RunRejection::CountOverflow);
        let next = SummaryCounts {
            total,
            success: add(self.success, delta.success)?,
            failed: add(self.failed, delta.failed)?,
            skipped: add(self.skipped, delta.skipped)?,
        };
        let processed = add(add(next.success, next.failed)?, next.skipped)?;
        if let Some(total) = total
            && processed > total
        {
            return Err(RunRejection::CountsExceedTotal { total, processed });
        }
        Ok(next)
    }

    /// The counts after a completion's absolute final counts: the rules of progress, with the
    /// final counts turned into the increments they imply.
    ///
    /// # Errors
    /// [`RunRejection::CountDecreased`] when a final count is below the reported one, and the
    /// errors of [`SummaryCounts::checked_apply`].
    pub fn checked_finish(&self, finals: &SummaryCounts) -> Result<SummaryCounts, RunRejection> {
        let rise = |count: &'static str, known: u64, given: u64| {
            given
                .checked_sub(known)
                .ok_or(RunRejection::CountDecreased {
                    count,
                    known,
                    given,
                })
        };
        let delta = ProgressDelta {
            success: rise("success", self.success, finals.success)?,
            failed: rise("failed", self.failed, finals.failed)?,
            skipped: rise("skipped", self.skipped, finals.skipped)?,
        };
        self.checked_apply(&delta, finals.total)
    }

    /// The counts after an accepted report, without checks: used by `evolve`, which holds no rules.
    pub fn apply(&self, delta: &ProgressDelta, total: Option<u64>) -> SummaryCounts {
        SummaryCounts {
            total: total.or(self.total),
            success: self.success.saturating_add(delta.success),
            failed: self.failed.saturating_add(delta.failed),
            skipped: self.skipped.saturating_add(delta.skipped),
        }
    }
}
