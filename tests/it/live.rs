//! Live updates through the process's one hub (docs/adr/0017): many SSE streams on a small
//! pool, slow clients, resumption, read-your-writes without polling, and the runs' `?watch`.

// Many mixed streams on a pool of five, a slow client, a lagging subscriber, resumption.
mod fan_out;
// Read-your-writes waits that wake on the published position, with long poll intervals.
mod positions;
// `?watch=true` on a run and on a filtered list.
mod watch;
