//! The process's one listener and one follower of the log: every live reader of a process (the
//! projectors, the API's log tails, the live pages) subscribes to one [`LogHub`] instead of
//! holding a connection, a `LISTEN` and reads of its own (docs/adr/0017).
//!
//! The hub's listener is one `PgListener` on the append channel (and on any other channel the
//! process asks for, such as the projections' positions). It reconnects by itself, and it bumps
//! the wake counter on every append notification, on every reconnect (notifications sent while
//! it was away are lost) and at least once per poll interval: the fallback costs one read per
//! process, whatever the number of subscribers.
//!
//! The hub's follower reads the whole log once per wake, in safe order from where the hub
//! started, and broadcasts each batch. A subscriber ([`LogHub::follow`]) first catches up from
//! its own cursor with short reads straight from the log (the log before the hub started, or a
//! browser's `Last-Event-ID`), then takes the broadcast batches, skipping what it already has:
//! every event the follower broadcast before the subscription was readable before the catch-up
//! ended, so the two meet without a gap or a repeat. A subscriber that falls behind the
//! broadcast (a slow client) loses its place there and catches up again the same way; it never
//! holds the follower or the other subscribers back.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::Stream;
use runledger_core::TenantId;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::EVENTS_CHANNEL;
use crate::error::StoreError;
use crate::read::{EventReader, LogCursor};
use crate::schema::RecordedEvent;

/// How many events one read of the follower, or of a subscriber catching up, fetches.
const BATCH: u32 = 500;

/// The first pause before the follower looks again at committed events its last read could not
/// pass (an open transaction held them back); it doubles while they stay held back, up to the
/// poll interval. Nothing announces such a transaction's end unless it appends.
const HELD_BACK_PAUSE: Duration = Duration::from_millis(5);

/// The longest pause between attempts to reconnect the listener, or to read again after a failed
/// read.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How a hub runs.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The longest the hub goes without looking at the log when no notification came (they can
    /// be lost).
    pub poll: Duration,
    /// Channels besides the append channel whose notifications the hub passes on as
    /// [`Notice`]s.
    pub channels: Vec<String>,
    /// How many batches (and notices) the broadcast keeps for subscribers that are behind;
    /// one further behind catches up from the log.
    pub capacity: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            channels: Vec::new(),
            capacity: 256,
        }
    }
}

/// A notification on one of [`HubConfig::channels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Its channel.
    pub channel: String,
    /// Its payload.
    pub payload: String,
}

/// The process's listener and log follower (see the module documentation). Cheap to clone;
/// its tasks stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct LogHub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    reader: EventReader,
    wakes: watch::Receiver<u64>,
    batches: broadcast::Sender<Arc<[RecordedEvent]>>,
    notices: broadcast::Sender<Notice>,
    poll: Duration,
    /// True once the follower knows where it starts: a subscriber catches up only after that,
    /// so its catch-up covers everything before the follower's start.
    follower_started: watch::Sender<bool>,
    listener: JoinHandle<()>,
    /// Started by the first subscriber: a process that only wakes projectors reads nothing.
    follower: OnceLock<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.listener.abort();
        if let Some(follower) = self.follower.get() {
            follower.abort();
        }
    }
}

impl LogHub {
    /// Starts the hub's listener over `reader`'s database. Its follower starts with the first
    /// subscriber, at the log's horizon then: subscribers read anything older themselves.
    pub fn start(reader: EventReader, config: HubConfig) -> Self {
        let (wake, wakes) = watch::channel(0);
        let (batches, _) = broadcast::channel(config.capacity.max(1));
        let (notices, _) = broadcast::channel(config.capacity.max(1));
        let (follower_started, _) = watch::channel(false);
        let listener = tokio::spawn(listen(
            reader.clone(),
            config.channels.clone(),
            config.poll,
            wake,
            notices.clone(),
        ));
        Self {
            shared: Arc::new(Shared {
                reader,
                wakes,
                batches,
                notices,
                poll: config.poll,
                follower_started,
                listener,
                follower: OnceLock::new(),
            }),
        }
    }

    /// A counter that changes whenever something may have been appended: an append's
    /// notification, a reconnect of the listener, or the poll interval passing. Projectors wait
    /// on it instead of listening themselves.
    pub fn wakes(&self) -> watch::Receiver<u64> {
        self.shared.wakes.clone()
    }

    /// The notifications of the hub's other channels from now on.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    /// Every event after `from` (of `tenant`, if given), in safe order, forever: caught up from
    /// the log with short reads (holding a connection only while one runs), then from the
    /// follower's broadcast. A subscriber that falls behind the broadcast catches up from the
    /// log again, from its own cursor, so it misses and repeats nothing.
    ///
    /// The stream ends after yielding an error (a failed catch-up read).
    pub fn follow(
        &self,
        from: LogCursor,
        tenant: Option<TenantId>,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + use<> {
        let hub = self.clone();
        async_stream::try_stream! {
            // Subscribed before the first read: every batch broadcast from now on arrives, and
            // every one broadcast before is in what the catch-up reads.
            let mut batches = hub.shared.batches.subscribe();
            let shared = &hub.shared;
            let mut follower_started = shared.follower_started.subscribe();
            shared.follower.get_or_init(|| {
                tokio::spawn(follow_log(
                    shared.reader.clone(),
                    shared.wakes.clone(),
                    shared.batches.clone(),
                    shared.poll,
                    shared.follower_started.clone(),
                ))
            });
            // Everything the follower will not broadcast lies before its start, and was
            // committed when it read its start: the catch-up below, read later, has it.
            let _ = follower_started.wait_for(|started| *started).await;
            let mut cursor = from;
            loop {
                loop {
                    let read = hub.shared.reader.read_log(cursor, BATCH, tenant).await?;
                    let caught_up = read.len() < BATCH as usize;
                    for event in read {
                        cursor = LogCursor::after(&event);
                        yield event;
                    }
                    if caught_up {
                        break;
                    }
                }
                loop {
                    match batches.recv().await {
                        Ok(batch) => {
                            for event in batch.iter() {
                                if LogCursor::after(event) > cursor
                                    && tenant.is_none_or(|tenant| event.tenant_id == tenant)
                                {
                                    cursor = LogCursor::after(event);
                                    yield event.clone();
                                }
                            }
                        }
                        // Too slow for the broadcast: catch up from the log again.
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        }
    }
}

fn bump(wake: &watch::Sender<u64>) {
    wake.send_modify(|count| *count = count.wrapping_add(1));
}

/// The listener: wakes on every append notification, every reconnect and every poll interval;
/// passes on the other channels' notifications.
async fn listen(
    reader: EventReader,
    channels: Vec<String>,
    poll: Duration,
    wake: watch::Sender<u64>,
    notices: broadcast::Sender<Notice>,
) {
    let mut listener: Option<PgListener> = None;
    loop {
        let Some(connected) = listener.as_mut() else {
            match connect(&reader, &channels).await {
                Ok(connected) => listener = Some(connected),
                Err(error) => {
                    tracing::warn!(%error, "the live hub could not listen; polling until it can");
                    tokio::time::sleep(poll.min(RETRY_PAUSE)).await;
                }
            }
            // Anything sent while no connection listened was lost: look once.
            bump(&wake);
            continue;
        };
        match tokio::time::timeout(poll, connected.try_recv()).await {
            Ok(Ok(Some(notification))) if notification.channel() == EVENTS_CHANNEL => bump(&wake),
            Ok(Ok(Some(notification))) => {
                let _ = notices.send(Notice {
                    channel: notification.channel().to_owned(),
                    payload: notification.payload().to_owned(),
                });
            }
            // The connection was lost; the next call reconnects. What was sent meanwhile is
            // lost: look once.
            Ok(Ok(None)) => bump(&wake),
            Ok(Err(error)) => {
                tracing::warn!(%error, "the live hub's listener failed; reconnecting");
                listener = None;
                bump(&wake);
            }
            // The poll interval passed without a notification.
            Err(_) => bump(&wake),
        }
    }
}

async fn connect(reader: &EventReader, channels: &[String]) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&reader.pool).await?;
    let mut all = vec![EVENTS_CHANNEL];
    all.extend(channels.iter().map(String::as_str));
    listener.listen_all(all).await?;
    Ok(listener)
}

/// The follower: reads the whole log from the horizon at its start, once per wake, and
/// broadcasts each batch.
async fn follow_log(
    reader: EventReader,
    mut wakes: watch::Receiver<u64>,
    batches: broadcast::Sender<Arc<[RecordedEvent]>>,
    poll: Duration,
    started: watch::Sender<bool>,
) {
    let start = loop {
        match reader.horizon().await {
            // Every event of a transaction below the horizon is before this cursor, and every
            // later one after it.
            Ok(horizon) => {
                break LogCursor {
                    tx_id: horizon.tx_id,
                    position: 0,
                };
            }
            Err(error) => {
                tracing::warn!(%error, "the live hub could not read the log's horizon; retrying");
                tokio::time::sleep(poll.min(RETRY_PAUSE)).await;
            }
        }
    };
    started.send_replace(true);
    let mut walk = reader.walk(start, None, BATCH);
    let mut held_back_pause = HELD_BACK_PAUSE;
    loop {
        // Seen before the read: a wake from now on leads to another one.
        wakes.borrow_and_update();
        match walk.next_batch().await {
            Ok(Some(batch)) => {
                held_back_pause = HELD_BACK_PAUSE;
                let _ = batches.send(batch.into());
                if !walk.is_caught_up() {
                    continue;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "the live hub could not read the log; retrying");
                // The walk stays where it was: the next call reads the same batch again.
                tokio::time::sleep(poll.min(RETRY_PAUSE)).await;
                continue;
            }
        }
        let wait = match walk.has_held_back_events().await {
            Ok(true) => {
                let wait = held_back_pause.min(poll);
                held_back_pause = held_back_pause.saturating_mul(2);
                wait
            }
            Ok(false) | Err(_) => {
                held_back_pause = HELD_BACK_PAUSE;
                poll
            }
        };
        // A wake or the pause: both lead to one more read. (Without a listener, which only
        // happens while the hub is dropped, the pause alone.)
        if let Ok(Err(_)) = tokio::time::timeout(wait, wakes.changed()).await {
            tokio::time::sleep(wait).await;
        }
    }
}
