//! The server's default lifecycle limits, per run type and server-wide, and how a queue request's
//! limits are resolved with them before the `Queue` command is built (docs/adr/0021).
//!
//! Each limit resolves on its own: the request's value, else its run type's default, else the
//! server's, else none. The resolved limits go into the command, so the `Queued` event records
//! what the run runs under, whatever the defaults are later.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use runledger_core::{Limit, LimitSeconds, RunLimits, RunType};

/// The defaults a queue request's missing limits take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitDefaults {
    /// For every run type.
    pub server: RunLimits,
    /// For one run type, before the server's; a limit a type leaves out is the server's.
    pub by_type: BTreeMap<RunType, RunLimits>,
}

impl LimitDefaults {
    /// The limits a run of `run_type` is queued with when its request gave `given`.
    pub fn resolve(&self, run_type: &RunType, given: RunLimits) -> RunLimits {
        let of_type = self.by_type.get(run_type).copied().unwrap_or_default();
        let pick = |limit: Limit| {
            given
                .get(limit)
                .or(of_type.get(limit))
                .or(self.server.get(limit))
        };
        RunLimits {
            start_deadline_seconds: pick(Limit::StartDeadline),
            run_deadline_seconds: pick(Limit::RunDeadline),
            heartbeat_timeout_seconds: pick(Limit::HeartbeatTimeout),
        }
    }
}

/// One run type's defaults as an operator writes them:
/// `inventory.sync=start:300,run:3600,heartbeat:60` (any of the three, in any order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLimits {
    /// The run type.
    pub run_type: RunType,
    /// Its defaults.
    pub limits: RunLimits,
}

/// A [`TypeLimits`] that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} (expected e.g. inventory.sync=start:300,run:3600,heartbeat:60)")]
pub struct InvalidTypeLimits(String);

impl FromStr for TypeLimits {
    type Err = InvalidTypeLimits;

    fn from_str(text: &str) -> Result<Self, InvalidTypeLimits> {
        let invalid = |why: String| InvalidTypeLimits(format!("{text:?}: {why}"));
        let (run_type, list) = text
            .split_once('=')
            .ok_or_else(|| invalid("no `=` after the run type".to_owned()))?;
        let run_type = RunType::parse(run_type.trim()).map_err(|e| invalid(e.to_string()))?;
        let mut limits = RunLimits::default();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, seconds) = item
                .split_once(':')
                .ok_or_else(|| invalid(format!("{item:?} is not name:seconds")))?;
            let (slot, limit) = match name.trim() {
                "start" => (&mut limits.start_deadline_seconds, Limit::StartDeadline),
                "run" => (&mut limits.run_deadline_seconds, Limit::RunDeadline),
                "heartbeat" => (
                    &mut limits.heartbeat_timeout_seconds,
                    Limit::HeartbeatTimeout,
                ),
                other => {
                    return Err(invalid(format!(
                        "unknown limit {other:?}: start, run or heartbeat"
                    )));
                }
            };
            let seconds: i64 = seconds
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{item:?}: seconds must be a whole number")))?;
            *slot = Some(
                LimitSeconds::parse(limit.field(), seconds).map_err(|e| invalid(e.to_string()))?,
            );
        }
        if limits == RunLimits::default() {
            return Err(invalid("no limit given".to_owned()));
        }
        Ok(Self { run_type, limits })
    }
}

impl fmt::Display for TypeLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=", self.run_type.as_str())?;
        let parts: Vec<String> = [
            ("start", self.limits.start_deadline_seconds),
            ("run", self.limits.run_deadline_seconds),
            ("heartbeat", self.limits.heartbeat_timeout_seconds),
        ]
        .into_iter()
        .filter_map(|(name, seconds)| Some(format!("{name}:{}", seconds?.get())))
        .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(s: i64) -> Option<LimitSeconds> {
        Some(LimitSeconds::parse("test", s).expect("a valid limit"))
    }

    #[test]
    fn a_type_limit_parses_any_of_its_three_limits_and_prints_back() {
        let parsed: TypeLimits = "inventory.sync=start:300, heartbeat:60".parse().unwrap();
        assert_eq!(parsed.run_type.as_str(), "inventory.sync");
        assert_eq!(
            parsed.limits,
            RunLimits {
                start_deadline_seconds: seconds(300),
                run_deadline_seconds: None,
                heartbeat_timeout_seconds: seconds(60),
            }
        );
        assert_eq!(parsed.to_string(), "inventory.sync=start:300,heartbeat:60");
    }

    #[test]
    fn a_type_limit_that_is_malformed_says_what_is_wrong() {
        for (text, says) in [
            ("inventory.sync", "no `=`"),
            ("Inventory=start:1", "\"Inventory=start:1\""),
            ("inventory.sync=start", "not name:seconds"),
            ("inventory.sync=stop:5", "unknown limit"),
            ("inventory.sync=run:soon", "whole number"),
            ("inventory.sync=run:0", "run_deadline_seconds"),
            ("inventory.sync=", "no limit given"),
        ] {
            let error = text.parse::<TypeLimits>().unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn each_limit_resolves_from_the_request_then_the_type_then_the_server() {
        let sync = RunType::parse("inventory.sync").unwrap();
        let backup = RunType::parse("backup.run").unwrap();
        let defaults = LimitDefaults {
            server: RunLimits {
                start_deadline_seconds: seconds(600),
                run_deadline_seconds: seconds(86_400),
                heartbeat_timeout_seconds: None,
            },
            by_type: BTreeMap::from([(
                sync.clone(),
                RunLimits {
                    start_deadline_seconds: None,
                    run_deadline_seconds: seconds(3600),
                    heartbeat_timeout_seconds: seconds(60),
                },
            )]),
        };
        let given = RunLimits {
            heartbeat_timeout_seconds: seconds(30),
            ..RunLimits::default()
        };
        assert_eq!(
            defaults.resolve(&sync, given),
            RunLimits {
                start_deadline_seconds: seconds(600),
                run_deadline_seconds: seconds(3600),
                heartbeat_timeout_seconds: seconds(30),
            }
        );
        assert_eq!(
            defaults.resolve(&backup, RunLimits::default()),
            defaults.server
        );
        assert_eq!(
            LimitDefaults::default().resolve(&backup, RunLimits::default()),
            RunLimits::default()
        );
    }
}
