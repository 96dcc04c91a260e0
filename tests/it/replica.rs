//! Read replicas (issue 15, item 1; docs/adr/0027): the run queries read a real streaming
//! standby of a private primary, through the real router; `min_position` waits for the
//! replica's replay or falls back to the primary; a replica that lags or is stopped is skipped;
//! its lag is a metric.

// Support: a private primary with a standby, the API reading it, the projectors running.
mod support;
// Which server answers: the replica once it has replayed, the primary past the bounds.
mod reads;
