//! The append bench's store writer: `EventWriter::append` to a run of its own, as the server
//! appends.

use runledger_core::{RunId, TenantId};
use runledger_store::{AppendOutcome, EventWriter, NewEvent};

use super::harness::Appender;
use crate::log::{progressed, system_run};

/// A store writer: `batch` `Progressed` events per append to its own run.
pub(super) struct StoreAppender {
    writer: EventWriter,
    tenant: TenantId,
    run: RunId,
    version: u64,
    batch: usize,
}

impl StoreAppender {
    /// A writer through `writer` (shared by every writer of a measurement, as the server shares
    /// one), with its run queued.
    pub(super) async fn ready(writer: EventWriter, batch: usize) -> anyhow::Result<Self> {
        let tenant = TenantId::new(1)?;
        let (run, queued) = system_run(tenant, "bench.append")?;
        writer.append(tenant, run, 0, &[queued]).await?;
        Ok(Self {
            writer,
            tenant,
            run,
            version: 1,
            batch,
        })
    }
}

impl Appender for StoreAppender {
    async fn append(&mut self) -> anyhow::Result<u64> {
        let events: Vec<NewEvent> = (0..self.batch).map(|_| progressed()).collect();
        match self
            .writer
            .append(self.tenant, self.run, self.version, &events)
            .await?
        {
            AppendOutcome::Appended(appended) => self.version = appended.version,
            AppendOutcome::Deduplicated { .. } => {
                anyhow::bail!("a progress append cannot deduplicate")
            }
        }
        Ok(self.batch as u64)
    }
}
