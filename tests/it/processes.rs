//! Several spawned `runledger` processes on one database (issue 10, items 2 and 3): leadership
//! by leases that lapse and fence a stale leader, configuration that cannot fork a projection,
//! and failover when a process is stopped, killed or paused. Shared set-up lives in `support`.

// Spawned `serve` and `project` processes on a throwaway database; runs and their notices.
pub(crate) mod support;
// The store's lease: it lapses when not renewed, a fenced stale leader commits nothing, and
// concurrent contenders never both lead; a sweeper that stops renewing is replaced.
mod lease;
// Two `serve`s with different public URLs and a `project`: with any one of them down (stopped,
// or killed with -9 and kept down), notices still reach the feed within 10 s, two per run.
mod failover;
// A projection this code cannot lead is an error in the API, the metrics, the page and the CLI.
mod cannot_lead;
// The leading process paused (SIGSTOP) under load: another takes over within 15 s; resumed, it
// commits nothing stale, and the read models equal a rebuild.
mod pause;
