//! A process's reads of changed runs, shared by its live clients: when an event changes a run,
//! the first watcher that asks reads the run's row, and every other watcher of the process gets
//! that same row (each then applies its own filter in memory, [`RunFilter::admits`]). A
//! process's cost per change is one read whatever the number of watched runs and lists.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use runledger_core::{RunId, TenantId};
use runledger_store::LogCursor;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use super::query::{RunFilter, find_run};
use super::row::OperationRunRow;

/// How many recent changes are remembered: far more than the events any watcher is behind
/// the hub's head by (a watcher further behind just reads again).
const REMEMBERED_CHANGES: usize = 4096;

/// One change: the run, and the log cursor just after the event that changed it.
type Change = (TenantId, RunId, LogCursor);

/// The row of a changed run, read at most once per change per process.
type SharedRead = Arc<OnceCell<Option<Arc<OperationRunRow>>>>;

/// The process's shared reads of changed runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ChangedRuns {
    pool: PgPool,
    recent: Arc<Mutex<Recent>>,
}

#[derive(Debug, Default)]
struct Recent {
    reads: HashMap<Change, SharedRead>,
    /// The remembered changes, oldest first, to forget them in that order.
    order: VecDeque<Change>,
}

impl ChangedRuns {
    /// Shared reads over the read model in `pool`.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            recent: Arc::default(),
        }
    }

    /// The run's row once the read model has applied the change that ends just before
    /// `after` (or later: a row read for a change shows at least that change), as one read for
    /// every caller of the process asking about the same change; `None` when the tenant has
    /// no such run. A failed read is not remembered: the next caller reads again.
    ///
    /// # Errors
    /// The database's.
    pub async fn row(
        &self,
        tenant: TenantId,
        run: RunId,
        after: LogCursor,
    ) -> Result<Option<Arc<OperationRunRow>>, sqlx::Error> {
        let read = self.shared_read((tenant, run, after));
        let row = read
            .get_or_try_init(|| async {
                Ok::<_, sqlx::Error>(find_run(&self.pool, tenant, run).await?.map(Arc::new))
            })
            .await?;
        Ok(row.clone())
    }

    /// The row, if it passes `filter`.
    ///
    /// # Errors
    /// The database's.
    pub async fn row_if_listed(
        &self,
        tenant: TenantId,
        run: RunId,
        after: LogCursor,
        filter: &RunFilter,
    ) -> Result<Option<Arc<OperationRunRow>>, sqlx::Error> {
        Ok(self
            .row(tenant, run, after)
            .await?
            .filter(|row| filter.admits(row)))
    }

    fn shared_read(&self, change: Change) -> SharedRead {
        let mut recent = self.recent.lock().expect("the remembered changes");
        if let Some(read) = recent.reads.get(&change) {
            return Arc::clone(read);
        }
        let read = SharedRead::default();
        recent.reads.insert(change, Arc::clone(&read));
        recent.order.push_back(change);
        while recent.order.len() > REMEMBERED_CHANGES {
            if let Some(oldest) = recent.order.pop_front() {
                recent.reads.remove(&oldest);
            }
        }
        read
    }
}
