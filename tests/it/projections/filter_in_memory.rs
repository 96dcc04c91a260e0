//! `RunFilter::admits` (a filter checked on a row in memory, as a process's live lists share one
//! read of each changed run) agrees with the queries' `WHERE` for every row and every filter
//! built from the values the rows hold, over random histories.

use chrono::{DateTime, Utc};
use runledger_core::{Outcome, RunId, RunStatus, RunType, TenantId, UserId};
use runledger_projections::StepOutcome;
use runledger_projections::operation_runs::{
    Attribute, OperationRunRow, RunFilter, RunIdPrefix, TypePrefix, query,
};

use super::support::{drain, random_histories, run_projector};
use crate::helpers::TestStore;

#[tokio::test]
async fn a_filter_in_memory_admits_exactly_the_rows_its_query_lists() {
    let store = TestStore::new().await;
    let ids = random_histories(&store, 7, 60, 2).await;
    assert_eq!(
        drain(&mut run_projector(&store.pool)).await,
        StepOutcome::CaughtUp
    );
    let mut rows: Vec<OperationRunRow> = Vec::new();
    for tenant in 1..=2 {
        let tenant = TenantId::new(tenant).unwrap();
        for id in &ids {
            if let Some(row) = query::find_run(&store.pool, tenant, *id).await.unwrap() {
                rows.push(row);
            }
        }
    }
    assert_eq!(rows.len(), ids.len(), "every run is in the read model");
    let filters = filters(&rows);
    let mut admitted = 0;
    for filter in &filters {
        for row in &rows {
            let tenant = TenantId::new(row.tenant_id).unwrap();
            let run = RunId::from_uuid(row.id);
            let listed = query::run_if_listed(&store.pool, tenant, run, filter)
                .await
                .unwrap()
                .is_some();
            assert_eq!(
                filter.admits(row),
                listed,
                "filter {filter:?} on run {} ({} {} {} user {:?} created {})",
                row.id,
                row.run_type,
                row.status,
                row.outcome,
                row.user_id,
                row.created_at
            );
            admitted += usize::from(listed);
        }
    }
    // The filters are not all trivial: some admit, some refuse.
    assert!(admitted > 0 && admitted < filters.len() * rows.len());
}

/// Every single condition over the values the rows hold (and a value none holds), and pairs of
/// them.
fn filters(rows: &[OperationRunRow]) -> Vec<RunFilter> {
    let mut created: Vec<DateTime<Utc>> = rows.iter().map(|row| row.created_at).collect();
    created.sort_unstable();
    let middle = created[created.len() / 2];
    let mut single = vec![RunFilter::default()];
    for run_type in [
        "inventory.sync",
        "restore.execute",
        "backup.policy_snapshot",
        "none.such",
    ] {
        single.push(RunFilter {
            run_type: Some(RunType::parse(run_type).unwrap()),
            ..RunFilter::default()
        });
    }
    for prefix in ["inventory", "re", "backup.policy_", "b_", ""] {
        single.push(RunFilter {
            type_prefix: Some(TypePrefix::parse(prefix).unwrap()),
            ..RunFilter::default()
        });
    }
    for statuses in [
        vec![RunStatus::Queued],
        vec![RunStatus::Running, RunStatus::Completed],
    ] {
        single.push(RunFilter {
            statuses,
            ..RunFilter::default()
        });
    }
    for outcomes in [
        vec![Outcome::Pending],
        vec![
            Outcome::Succeeded,
            Outcome::PartiallySucceeded,
            Outcome::Failed,
        ],
    ] {
        single.push(RunFilter {
            outcomes,
            ..RunFilter::default()
        });
    }
    for user in [1, 5, 19] {
        single.push(RunFilter {
            initiator: Some(UserId::new(user).unwrap()),
            ..RunFilter::default()
        });
    }
    for name in ["user 5", "USER 19", "System", "Nobody"] {
        single.push(RunFilter {
            initiator_name: Some(name.to_owned()),
            ..RunFilter::default()
        });
    }
    let some_id = rows[rows.len() / 2].id.to_string();
    for prefix in [&some_id[..1], &some_id[..4], &some_id[..], "ffff"] {
        single.push(RunFilter {
            id_prefix: Some(RunIdPrefix::parse(prefix).unwrap()),
            ..RunFilter::default()
        });
    }
    let some_n = rows[0].context["n"].clone();
    for attribute in [
        "source=test".to_owned(),
        "source=TEST".to_owned(),
        format!("n={some_n}"),
        "n=1000".to_owned(),
        format!("run={some_id}"),
    ] {
        single.push(RunFilter {
            attribute: Some(Attribute::parse(&attribute).unwrap()),
            ..RunFilter::default()
        });
    }
    single.push(RunFilter {
        created_after: Some(middle),
        ..RunFilter::default()
    });
    single.push(RunFilter {
        created_before: Some(middle),
        ..RunFilter::default()
    });
    let mut all = single.clone();
    for (index, first) in single.iter().enumerate() {
        for second in &single[index + 1..] {
            all.push(both(first, second));
        }
    }
    all
}

/// The conditions of `first` and of `second` together (where both set one, `second`'s).
fn both(first: &RunFilter, second: &RunFilter) -> RunFilter {
    RunFilter {
        run_type: second.run_type.clone().or(first.run_type.clone()),
        type_prefix: second.type_prefix.clone().or(first.type_prefix.clone()),
        statuses: if second.statuses.is_empty() {
            first.statuses.clone()
        } else {
            second.statuses.clone()
        },
        outcomes: if second.outcomes.is_empty() {
            first.outcomes.clone()
        } else {
            second.outcomes.clone()
        },
        initiator: second.initiator.or(first.initiator),
        initiator_name: second
            .initiator_name
            .clone()
            .or(first.initiator_name.clone()),
        id_prefix: second.id_prefix.clone().or(first.id_prefix.clone()),
        attribute: second.attribute.clone().or(first.attribute.clone()),
        created_after: second.created_after.or(first.created_after),
        created_before: second.created_before.or(first.created_before),
    }
}
