//! Anchors: digests of the whole log up to a cursor, hash-chained to each other and stored
//! append-only, so that an exported anchor later proves what the log held (docs/adr/0009).
//!
//! Per tenant, an anchor holds the number of events and runs up to its cursor and a rolling
//! digest over those events' hashes in safe log order ([`LogDigest`], in `digest.rs`). Per-run
//! chains cannot see a deleted tail; anchors can, up to their cursor. Anchors chain to each
//! other by their own hashes ([`Anchor`], [`check_anchor_chain`]: `model.rs`), are stored in
//! the append-only `anchors` table ([`record_anchor`], [`stored_anchors`]: `stored.rs`), and
//! are recorded on a schedule while the ledger serves ([`run_anchoring`]: `schedule.rs`); the
//! JSON of their fields is in `serde_fields.rs`.

mod digest;
mod model;
mod schedule;
mod serde_fields;
mod stored;

pub use digest::{LogDigest, TenantState};
pub use model::{Anchor, AnchorBreak, AnchoredTenant, check_anchor_chain};
pub use schedule::{AnchorOutcome, AnchorPolicy, anchor_if_due, run_anchoring};
pub use stored::{latest_anchor, record_anchor, stored_anchors};
