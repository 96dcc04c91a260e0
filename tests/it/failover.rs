//! Primary failover (issue 15, item 2): a primary and a synchronous standby from
//! `runledger-pg`'s replication harness, a spawned `serve` on a multi-host `DATABASE_URL`, the
//! primary killed and the standby promoted under load.

// The promotion under load: 503s, retries with the same Idempotency-Key, nothing acknowledged
// lost, the read model, live stream and anchoring on the new primary.
mod promotion;
