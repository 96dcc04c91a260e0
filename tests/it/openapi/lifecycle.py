"""A run's whole lifecycle through the Python client generated from runledger's OpenAPI document.

Run by tests/it/openapi/generated_client.rs against a real server, with the generated package
(`runledger_client`) on PYTHONPATH, unedited. Environment: RUNLEDGER_URL, RUNLEDGER_TOKEN (a
writer's token of tenant RUNLEDGER_TENANT). docs/integration.md shows the same calls.
"""

import os
import sys
import uuid

from runledger_client import AuthenticatedClient
from runledger_client.api.commands import (
    complete_run,
    dispatch_failed,
    heartbeat,
    queue_run,
    report_progress,
    start_run,
)
from runledger_client.api.queries import get_run, list_runs
from runledger_client.models import (
    CommandAnswer,
    CompleteBody,
    DispatchFailedBody,
    FailureBody,
    HeartbeatAnswer,
    OperationRun,
    Outcome,
    Problem,
    ProgressBody,
    QueueRunBody,
    RunPage,
    RunStatus,
    StartBody,
)


def check(condition, what):
    if not condition:
        sys.exit(f"lifecycle.py: {what}")


def answer(response, status, kind):
    """The parsed answer of `response`, asserting its status and type."""
    check(
        response.status_code == status,
        f"expected {status}, got {response.status_code}: {response.content!r}",
    )
    check(isinstance(response.parsed, kind), f"expected a {kind.__name__}: {response.parsed!r}")
    return response.parsed


def main():
    tenant = int(os.environ["RUNLEDGER_TENANT"])
    client = AuthenticatedClient(
        base_url=os.environ["RUNLEDGER_URL"],
        token=os.environ["RUNLEDGER_TOKEN"],
        raise_on_unexpected_status=True,
    )
    with client:
        # Queue, under an Idempotency-Key: a retry with the same key answers the first answer.
        key = str(uuid.uuid4())
        body = QueueRunBody(
            type_="inventory.sync",
            identity={"connection": 42},
            context={"source": "python"},
            heartbeat_timeout_seconds=300,
        )
        queued = answer(
            queue_run.sync_detailed(tenant, client=client, body=body, idempotency_key=key),
            201,
            CommandAnswer,
        )
        check(queued.created is True, "a new run")
        check(queued.run.status == RunStatus.QUEUED, f"queued: {queued.run.status}")
        retried = answer(
            queue_run.sync_detailed(tenant, client=client, body=body, idempotency_key=key),
            201,
            CommandAnswer,
        )
        check(retried.run.id == queued.run.id, "the retry answers the same run")
        run_id = queued.run.id

        # Start, naming the worker: a re-delivered start by the same worker is idempotent.
        started = answer(
            start_run.sync_detailed(
                tenant, run_id, client=client, body=StartBody(worker="py-worker-1")
            ),
            200,
            CommandAnswer,
        )
        check(started.run.status == RunStatus.RUNNING, f"running: {started.run.status}")
        check(started.run.worker == "py-worker-1", f"the worker: {started.run.worker}")

        # Progress as increments, each report under a key of its own: a resend counts once.
        report = ProgressBody(
            success=3,
            failed=1,
            total=10,
            failures=[FailureBody(code="graph.throttled", message="Throttled (retrying)")],
        )
        report_key = str(uuid.uuid4())
        for _ in range(2):
            progressed = answer(
                report_progress.sync_detailed(
                    tenant, run_id, client=client, body=report, idempotency_key=report_key
                ),
                200,
                CommandAnswer,
            )
        check(progressed.run.summary_counts.success == 3, "the resend counted once")
        check(progressed.cancel_requested is False, "no cancel request")
        more = answer(
            report_progress.sync_detailed(
                tenant,
                run_id,
                client=client,
                body=ProgressBody(success=6),
                idempotency_key=str(uuid.uuid4()),
            ),
            200,
            CommandAnswer,
        )
        check(more.run.summary_counts.success == 9, f"3 + 6: {more.run.summary_counts}")

        # A heartbeat (not an event) says whether to stop.
        beat = answer(heartbeat.sync_detailed(tenant, run_id, client=client), 200, HeartbeatAnswer)
        check(beat.cancel_requested is False, "no cancel request")
        check(beat.run.last_heartbeat_at is not None, "the heartbeat shows")

        # Complete: the outcome follows from the counts (one failed item).
        completed = answer(
            complete_run.sync_detailed(
                tenant,
                run_id,
                client=client,
                body=CompleteBody(),
                idempotency_key=str(uuid.uuid4()),
            ),
            200,
            CommandAnswer,
        )
        check(completed.run.status == RunStatus.COMPLETED, "completed")
        check(
            completed.run.outcome == Outcome.PARTIALLY_SUCCEEDED,
            f"partially succeeded: {completed.run.outcome}",
        )

        # Read it back: the read model catches up with the command's position.
        shown = answer(
            get_run.sync_detailed(
                tenant, run_id, client=client, min_position=completed.position
            ),
            200,
            OperationRun,
        )
        check(shown.done is True, "done")
        check(shown.summary_counts.failed == 1, f"one failed: {shown.summary_counts}")
        check(shown.failure_summary[0].code == "graph.throttled", "its failure")
        page = answer(
            list_runs.sync_detailed(
                tenant, client=client, type_="inventory.sync", min_position=completed.position
            ),
            200,
            RunPage,
        )
        check([run.id for run in page.runs] == [run_id], f"the list: {page.runs}")
        check(isinstance(page.runs[0], OperationRun), "typed items")

        # A job the queue refused: the run is marked dispatch-failed.
        other = answer(
            queue_run.sync_detailed(
                tenant, client=client, body=QueueRunBody(type_="backup.nightly")
            ),
            201,
            CommandAnswer,
        )
        marked = answer(
            dispatch_failed.sync_detailed(
                tenant,
                other.run.id,
                client=client,
                body=DispatchFailedBody(code="queue.unavailable", message="redis: connection refused"),
            ),
            200,
            CommandAnswer,
        )
        check(marked.run.outcome == Outcome.FAILED, "dispatch failed")

        # Failures are typed problems.
        missing = answer(
            get_run.sync_detailed(tenant, uuid.uuid4(), client=client), 404, Problem
        )
        check(missing.type_ == "urn:runledger:problem:not-found", f"a problem: {missing.type_}")
        refused = answer(
            start_run.sync_detailed(tenant, run_id, client=client, body=StartBody(worker="w2")),
            409,
            Problem,
        )
        check(refused.current_status == "completed", f"the run's status: {refused}")
    print("lifecycle.py: the whole lifecycle went through the generated client")


if __name__ == "__main__":
    main()
