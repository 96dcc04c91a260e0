//! The append bench's harness: N writers that append concurrently for a fixed time, each
//! recording when it appended, so that a test can check the writers really overlapped.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::try_join_all;

/// One writer of a measurement, ready to append (its connection and its stream set up).
pub(super) trait Appender: Send + 'static {
    /// Appends one batch; returns how many events it appended.
    fn append(&mut self) -> impl Future<Output = anyhow::Result<u64>> + Send;
}

/// What one writer did during a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterWindow {
    /// Events it appended.
    pub events: u64,
    /// When its first append began (`None`: it appended nothing).
    pub first_began: Option<Instant>,
    /// When its last append returned.
    pub last_returned: Option<Instant>,
}

/// One measurement: the rate of all writers together, and what each did.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Seconds from the start until the last writer returned.
    pub seconds: f64,
    /// Each writer's events and window, in writer order.
    pub writers: Vec<WriterWindow>,
}

impl Measurement {
    /// Events appended by all writers.
    pub fn events(&self) -> u64 {
        self.writers.iter().map(|w| w.events).sum()
    }

    /// Whether every writer appended and some instant lies in every writer's window: the
    /// latest first append began before the earliest last append returned.
    pub fn writers_overlapped(&self) -> bool {
        let firsts: Option<Vec<Instant>> = self.writers.iter().map(|w| w.first_began).collect();
        let lasts: Option<Vec<Instant>> = self.writers.iter().map(|w| w.last_returned).collect();
        match (firsts, lasts) {
            (Some(firsts), Some(lasts)) => {
                let latest_first = firsts.into_iter().max();
                let earliest_last = lasts.into_iter().min();
                !self.writers.is_empty() && latest_first < earliest_last
            }
            _ => false,
        }
    }
}

/// Runs every appender of `appenders` at once until `duration` has passed.
///
/// The appenders are ready before the clock starts, and every writer's task is spawned before
/// any is awaited, so all of them append during the whole period.
pub(super) async fn measure<A: Appender>(
    appenders: Vec<A>,
    duration: Duration,
) -> anyhow::Result<Measurement> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = appenders
        .into_iter()
        .map(|appender| tokio::spawn(append_until(appender, deadline)))
        .collect();
    let writers = try_join_all(tasks)
        .await
        .context("a bench writer panicked")?
        .into_iter()
        .collect::<anyhow::Result<Vec<WriterWindow>>>()?;
    Ok(Measurement {
        seconds: started.elapsed().as_secs_f64(),
        writers,
    })
}

/// One writer's loop: append batches until `deadline`.
async fn append_until<A: Appender>(
    mut appender: A,
    deadline: Instant,
) -> anyhow::Result<WriterWindow> {
    let mut window = WriterWindow {
        events: 0,
        first_began: None,
        last_returned: None,
    };
    loop {
        let began = Instant::now();
        if began >= deadline {
            return Ok(window);
        }
        window.events += appender.append().await?;
        window.first_began.get_or_insert(began);
        window.last_returned = Some(Instant::now());
    }
}
