//! Anchors: digests of the whole log up to a cursor, hash-chained to each other and stored
//! append-only, so that an exported anchor later proves what the log held (docs/adr/0009).
//!
//! Per tenant, an anchor holds the number of events and runs up to its cursor and a rolling
//! digest over those events' hashes in safe log order:
//! `digest = SHA-256(digest ‖ hash)`, starting from 32 zero bytes. Deleting any event up to the
//! cursor (a middle one, the newest of a run, a whole run), inserting one, reordering or
//! rewriting one changes its tenant's digest. Per-run chains cannot see a deleted tail; anchors
//! can, up to their cursor.
//!
//! An anchor's own `hash = SHA-256(prev_hash ‖ JCS({sequence, cursor, event_count, run_count,
//! tenants, recorded_at}))`, `prev_hash` being the previous anchor's hash (zeros for the first).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runledger_core::TenantId;
use runledger_core::identity::canonical_json;
use runledger_store::chain::GENESIS;
use runledger_store::{EventReader, LogCursor, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool};

use crate::error::AuditError;
use crate::format::{json_line, rfc3339};
use crate::walk::{Horizon, LogWalk};

/// One tenant's part of the log up to a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantState {
    /// How many events.
    pub events: u64,
    /// How many runs (events of version 1).
    pub runs: u64,
    /// The rolling digest of the events' hashes, in safe log order.
    pub digest: [u8; 32],
}

impl Default for TenantState {
    fn default() -> Self {
        TenantState {
            events: 0,
            runs: 0,
            digest: GENESIS,
        }
    }
}

impl TenantState {
    fn apply(&mut self, event: &RecordedEvent) {
        self.events += 1;
        if event.version == 1 {
            self.runs += 1;
        }
        let mut hasher = Sha256::new();
        hasher.update(self.digest);
        hasher.update(event.hash);
        self.digest = hasher.finalize().into();
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events in {} runs (digest {}…)",
            self.events,
            self.runs,
            &hex::encode(self.digest)[..12]
        )
    }
}

/// Every tenant's state up to a cursor: what an anchor records, built event by event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDigest {
    tenants: BTreeMap<TenantId, TenantState>,
    cursor: LogCursor,
}

impl LogDigest {
    /// The state an anchor records (to continue from it).
    pub fn of_anchor(anchor: &Anchor) -> Self {
        LogDigest {
            tenants: anchor
                .tenants
                .iter()
                .map(|tenant| (tenant.tenant_id, tenant.state()))
                .collect(),
            cursor: anchor.cursor,
        }
    }

    /// Adds the next event of the log.
    pub fn apply(&mut self, event: &RecordedEvent) {
        self.tenants
            .entry(event.tenant_id)
            .or_default()
            .apply(event);
        self.cursor = LogCursor::after(event);
    }

    /// The cursor of the last event applied.
    pub fn cursor(&self) -> LogCursor {
        self.cursor
    }

    /// One tenant's state (empty when it has no events yet).
    pub fn tenant(&self, tenant: TenantId) -> TenantState {
        self.tenants.get(&tenant).copied().unwrap_or_default()
    }

    /// Every tenant with events, in id order.
    pub fn tenants(&self) -> impl Iterator<Item = (TenantId, TenantState)> + '_ {
        self.tenants.iter().map(|(tenant, state)| (*tenant, *state))
    }
}

/// One tenant's entry in an anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchoredTenant {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its events up to the anchor's cursor.
    pub events: u64,
    /// Its runs up to the anchor's cursor.
    pub runs: u64,
    /// The rolling digest of those events' hashes, lowercase hex.
    #[serde(with = "hex32")]
    pub digest: [u8; 32],
}

impl AnchoredTenant {
    /// The state this entry records.
    pub fn state(&self) -> TenantState {
        TenantState {
            events: self.events,
            runs: self.runs,
            digest: self.digest,
        }
    }
}

/// A digest of the whole log up to `cursor`, chained to the anchor before it. Exported as one
/// line of JSON with these fields (docs/export-format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// 1, 2, 3…
    pub sequence: u64,
    /// The last event the anchor covers, in safe log order.
    #[serde(with = "as_text")]
    pub cursor: LogCursor,
    /// Events up to the cursor, every tenant.
    pub event_count: u64,
    /// Runs up to the cursor, every tenant.
    pub run_count: u64,
    /// Every tenant with events up to the cursor, in id order.
    pub tenants: Vec<AnchoredTenant>,
    /// The database clock when the anchor was recorded.
    #[serde(with = "micros")]
    pub recorded_at: DateTime<Utc>,
    /// The previous anchor's hash, lowercase hex (zeros for the first).
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// This anchor's hash, lowercase hex.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

impl Anchor {
    /// The anchor of `digest`, following `previous` (or the first one).
    pub fn new(previous: Option<&Anchor>, digest: &LogDigest, recorded_at: DateTime<Utc>) -> Self {
        let tenants: Vec<AnchoredTenant> = digest
            .tenants()
            .map(|(tenant_id, state)| AnchoredTenant {
                tenant_id,
                events: state.events,
                runs: state.runs,
                digest: state.digest,
            })
            .collect();
        let mut anchor = Anchor {
            sequence: previous.map_or(1, |p| p.sequence + 1),
            cursor: digest.cursor(),
            event_count: tenants.iter().map(|t| t.events).sum(),
            run_count: tenants.iter().map(|t| t.runs).sum(),
            tenants,
            // The hash covers the time as stored: microseconds.
            recorded_at: micros::truncate(recorded_at),
            prev_hash: previous.map_or(GENESIS, |p| p.hash),
            hash: GENESIS,
        };
        anchor.hash = anchor.computed_hash();
        anchor
    }

    /// The hash this anchor's fields give.
    pub fn computed_hash(&self) -> [u8; 32] {
        let document = json!({
            "sequence": self.sequence,
            "cursor": self.cursor.to_string(),
            "event_count": self.event_count,
            "run_count": self.run_count,
            "tenants": self.tenants,
            "recorded_at": rfc3339(self.recorded_at),
        });
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash);
        hasher.update(canonical_json(&document));
        hasher.finalize().into()
    }

    /// The entry of `tenant` (empty when the tenant had no events by then).
    pub fn tenant(&self, tenant: TenantId) -> TenantState {
        self.tenants
            .iter()
            .find(|entry| entry.tenant_id == tenant)
            .map_or_else(TenantState::default, AnchoredTenant::state)
    }

    /// The anchor as one line of the anchor file.
    pub fn to_line(&self) -> String {
        json_line(self)
    }

    /// Reads a line of an anchor file.
    ///
    /// # Errors
    /// A description of what is wrong with it.
    pub fn parse_line(line: &str) -> Result<Anchor, String> {
        serde_json::from_str(line).map_err(|e| format!("not an anchor: {e}"))
    }
}

/// What is wrong with an anchor's own record: the anchors' chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorBreak {
    /// The anchor's fields do not give its hash: the anchor was edited.
    HashMismatch,
    /// `prev_hash` is not the previous anchor's hash: an anchor before it was removed or replaced.
    BrokenLink,
    /// Sequences are not consecutive: an anchor is missing.
    SequenceGap {
        /// The sequence that should be here.
        expected: u64,
    },
}

impl fmt::Display for AnchorBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnchorBreak::HashMismatch => {
                f.write_str("its fields do not give its hash (the anchor was edited)")
            }
            AnchorBreak::BrokenLink => f.write_str(
                "its prev_hash is not the previous anchor's hash (an anchor was replaced)",
            ),
            AnchorBreak::SequenceGap { expected } => {
                write!(f, "anchor #{expected} is missing")
            }
        }
    }
}

/// Walks a run of anchors in sequence order; returns each anchor with what is wrong with it.
/// The first anchor's `prev_hash` is taken as given unless it is anchor #1, so a file that holds
/// only the newest anchors still verifies.
pub fn check_anchor_chain(anchors: &[Anchor]) -> Vec<(u64, AnchorBreak)> {
    let mut breaks = Vec::new();
    let mut previous: Option<&Anchor> = None;
    for anchor in anchors {
        if anchor.computed_hash() != anchor.hash {
            breaks.push((anchor.sequence, AnchorBreak::HashMismatch));
        } else if let Some(previous) = previous {
            if anchor.sequence != previous.sequence + 1 {
                breaks.push((
                    anchor.sequence,
                    AnchorBreak::SequenceGap {
                        expected: previous.sequence + 1,
                    },
                ));
            } else if anchor.prev_hash != previous.hash {
                breaks.push((anchor.sequence, AnchorBreak::BrokenLink));
            }
        } else if anchor.sequence == 1 && anchor.prev_hash != GENESIS {
            breaks.push((anchor.sequence, AnchorBreak::BrokenLink));
        }
        previous = Some(anchor);
    }
    breaks
}

/// The columns of `anchors`, as [`AnchorRow`] reads them.
macro_rules! anchor_columns {
    () => {
        "sequence, cursor_tx_id, cursor_position, event_count, run_count, tenants, recorded_at, \
         prev_hash, hash"
    };
}

#[derive(sqlx::FromRow)]
struct AnchorRow {
    sequence: i64,
    cursor_tx_id: i64,
    cursor_position: i64,
    event_count: i64,
    run_count: i64,
    tenants: Value,
    recorded_at: DateTime<Utc>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl TryFrom<AnchorRow> for Anchor {
    type Error = AuditError;
    fn try_from(row: AnchorRow) -> Result<Self, AuditError> {
        let corrupt = |what: &str| AuditError::CorruptAnchor {
            sequence: row.sequence,
            reason: what.to_owned(),
        };
        let bytes32 = |bytes: &[u8], what: &str| -> Result<[u8; 32], AuditError> {
            bytes.try_into().map_err(|_| corrupt(what))
        };
        Ok(Anchor {
            sequence: row.sequence.unsigned_abs(),
            cursor: LogCursor {
                tx_id: row.cursor_tx_id.unsigned_abs(),
                position: row.cursor_position,
            },
            event_count: row.event_count.unsigned_abs(),
            run_count: row.run_count.unsigned_abs(),
            tenants: serde_json::from_value(row.tenants.clone())
                .map_err(|e| corrupt(&format!("tenants: {e}")))?,
            recorded_at: row.recorded_at,
            prev_hash: bytes32(&row.prev_hash, "prev_hash is not 32 bytes")?,
            hash: bytes32(&row.hash, "hash is not 32 bytes")?,
        })
    }
}

/// Every stored anchor, in sequence order.
///
/// # Errors
/// On a database failure, or a row that is not an anchor.
pub async fn stored_anchors(executor: impl PgExecutor<'_>) -> Result<Vec<Anchor>, AuditError> {
    let rows: Vec<AnchorRow> = sqlx::query_as(concat!(
        "SELECT ",
        anchor_columns!(),
        " FROM anchors ORDER BY sequence"
    ))
    .fetch_all(executor)
    .await?;
    rows.into_iter().map(Anchor::try_from).collect()
}

/// The newest stored anchor.
///
/// # Errors
/// On a database failure, or a row that is not an anchor.
pub async fn latest_anchor(executor: impl PgExecutor<'_>) -> Result<Option<Anchor>, AuditError> {
    let row: Option<AnchorRow> = sqlx::query_as(concat!(
        "SELECT ",
        anchor_columns!(),
        " FROM anchors ORDER BY sequence DESC LIMIT 1"
    ))
    .fetch_optional(executor)
    .await?;
    row.map(Anchor::try_from).transpose()
}

/// Records an anchor of the log as of now, unless the log has not moved past the newest anchor.
///
/// The anchor continues the newest one's digests from its cursor, so it reads only the events
/// after it. Anchorers in several processes take turns (a transaction-scoped advisory lock), so
/// each anchor chains on the one before it.
///
/// # Errors
/// On a database failure.
#[tracing::instrument(skip_all)]
pub async fn record_anchor(pool: &PgPool) -> Result<Option<Anchor>, AuditError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('runledger'), hashtext('anchors'))")
        .execute(&mut *tx)
        .await?;
    let previous = latest_anchor(&mut *tx).await?;
    let mut digest = previous
        .as_ref()
        .map(LogDigest::of_anchor)
        .unwrap_or_default();
    let horizon = Horizon::now(pool).await?;
    let mut walk = LogWalk::new(
        EventReader::new(pool.clone()),
        digest.cursor(),
        None,
        horizon,
    );
    let mut moved = false;
    while let Some(batch) = walk.next_batch().await? {
        moved = true;
        for event in &batch {
            digest.apply(event);
        }
    }
    if !moved {
        return Ok(None);
    }
    let recorded_at: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    let anchor = Anchor::new(previous.as_ref(), &digest, recorded_at);
    sqlx::query(
        "INSERT INTO anchors (sequence, cursor_tx_id, cursor_position, event_count, run_count, \
                              tenants, recorded_at, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(as_i64(anchor.sequence))
    .bind(as_i64(anchor.cursor.tx_id))
    .bind(anchor.cursor.position)
    .bind(as_i64(anchor.event_count))
    .bind(as_i64(anchor.run_count))
    .bind(serde_json::to_value(&anchor.tenants).unwrap_or_else(|e| unreachable!("{e}")))
    .bind(anchor.recorded_at)
    .bind(anchor.prev_hash.to_vec())
    .bind(anchor.hash.to_vec())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        sequence = anchor.sequence,
        cursor = %anchor.cursor,
        events = anchor.event_count,
        "recorded an anchor"
    );
    Ok(Some(anchor))
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// How many events lie after `cursor`, counting no further than `limit`.
pub(crate) async fn events_after(
    pool: &PgPool,
    cursor: LogCursor,
    limit: u64,
) -> Result<u64, AuditError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM events \
         WHERE (tx_id, position) > ($1::text::xid8, $2) LIMIT $3) AS after_cursor",
    )
    .bind(cursor.tx_id.to_string())
    .bind(cursor.position)
    .bind(as_i64(limit))
    .fetch_one(pool)
    .await?;
    Ok(count.unsigned_abs())
}

/// When the ledger records anchors: after `every_events` new events, or `every` after the last
/// anchor if any event came since. Zero turns a trigger off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorPolicy {
    /// Events since the newest anchor that call for a new one.
    pub every_events: u64,
    /// Time since the last anchor after which any new event calls for one.
    pub every: Duration,
}

/// How often the anchoring task looks at the log.
const ANCHOR_POLL: Duration = Duration::from_secs(1);

/// What one look at the log did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorOutcome {
    /// An anchor was recorded.
    Recorded(Box<Anchor>),
    /// Nothing called for one yet.
    NotDue,
}

/// Records an anchor if the policy calls for one, `since_last` after the last anchor.
///
/// # Errors
/// On a database failure.
pub async fn anchor_if_due(
    pool: &PgPool,
    policy: AnchorPolicy,
    since_last: Duration,
) -> Result<AnchorOutcome, AuditError> {
    let after = latest_anchor(pool)
        .await?
        .map_or(LogCursor::START, |anchor| anchor.cursor);
    let moved = events_after(pool, after, policy.every_events.max(1)).await?;
    let due = (policy.every_events > 0 && moved >= policy.every_events)
        || (!policy.every.is_zero() && since_last >= policy.every && moved > 0);
    if !due {
        return Ok(AnchorOutcome::NotDue);
    }
    Ok(match record_anchor(pool).await? {
        Some(anchor) => AnchorOutcome::Recorded(Box::new(anchor)),
        None => AnchorOutcome::NotDue,
    })
}

/// Records anchors as `policy` says until `shutdown` completes. A failed attempt is logged and
/// retried at the next look: anchoring never stops the ledger.
pub async fn run_anchoring(pool: PgPool, policy: AnchorPolicy, shutdown: impl Future<Output = ()>) {
    if policy.every_events == 0 && policy.every.is_zero() {
        return;
    }
    tokio::pin!(shutdown);
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(ANCHOR_POLL) => {}
        }
        match anchor_if_due(&pool, policy, last.elapsed()).await {
            Ok(AnchorOutcome::Recorded(_)) => last = tokio::time::Instant::now(),
            Ok(AnchorOutcome::NotDue) => {}
            Err(error) => {
                tracing::warn!(error.cause_chain = ?error, error.message = %error, "anchoring failed; retrying");
            }
        }
    }
}

/// Serde of a value as its `Display`/`FromStr` text.
mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(super) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Serde of 32 bytes as lowercase hex.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &[u8; 32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0; 32];
        hex::decode_to_slice(&text, &mut bytes)
            .map_err(|_| serde::de::Error::custom("expected 64 hex digits"))?;
        Ok(bytes)
    }
}

/// Serde of a time as RFC 3339 with microseconds, the precision the database stores.
mod micros {
    use chrono::{DateTime, DurationRound, TimeDelta, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn truncate(time: DateTime<Utc>) -> DateTime<Utc> {
        time.duration_trunc(TimeDelta::microseconds(1))
            .unwrap_or(time)
    }

    pub(super) fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::format::rfc3339(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
