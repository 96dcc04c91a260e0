"""A run's whole lifecycle through the Python client generated from runledger's OpenAPI document.

Run by tests/it/openapi/generated_client.rs against a real server, with the generated package
(`runledger_client`) on PYTHONPATH, unedited. Environment: RUNLEDGER_URL, RUNLEDGER_TOKEN (a
writer's token of tenant RUNLEDGER_TENANT). `send`, `dispatch` and `sync_inventory` are the code
of docs/integration.md's Python section; the checks after them are the test's.
"""

import os
import sys
import time
import uuid

import httpx
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

tenant = int(os.environ["RUNLEDGER_TENANT"])
client = AuthenticatedClient(base_url=os.environ["RUNLEDGER_URL"], token=os.environ["RUNLEDGER_TOKEN"])

# --- docs/integration.md: retries ---
RETRIED = {429, 502, 503, 504}


def send(route, *args, key=None, attempts=6, **kwargs):
    """Sends a command, retrying 429/502/503/504 and connection errors with backoff and
    Retry-After, always with the same Idempotency-Key: a retry never counts twice."""
    key = key or str(uuid.uuid4())
    for attempt in range(attempts):
        try:
            response = route.sync_detailed(*args, client=client, idempotency_key=key, **kwargs)
        except httpx.TransportError:
            response = None  # the outcome is unknown: the same key makes the resend safe
        if response is not None and response.status_code not in RETRIED:
            return response  # 2xx: the model; other 4xx: a Problem, final
        retry_after = response and response.headers.get("retry-after")
        time.sleep(float(retry_after) if retry_after else min(0.2 * 2**attempt, 5))
    raise RuntimeError(f"the ledger stayed unavailable: {response and response.parsed}")


# --- docs/integration.md: the product side ---
def dispatch(my_queue, body):
    queued = send(queue_run, tenant, body=body)
    answer = queued.parsed  # CommandAnswer; 201 a new run, 200 the active one
    if queued.status_code == 201:
        try:
            my_queue.enqueue("sync_inventory", str(answer.run.id))
        except Exception as error:
            return send(  # the run, completed failed
                dispatch_failed,
                tenant,
                answer.run.id,
                body=DispatchFailedBody(code="queue.unavailable", message=str(error)),
            )
    return queued


# --- docs/integration.md: the job side ---
def sync_inventory(job_id, run_id, items, process):
    started = send(start_run, tenant, run_id, body=StartBody(worker=f"rq:{job_id}"))
    if started.status_code != 200:
        return started  # a Problem: not queued, or another worker's
    batch, reports, cancel = ProgressBody(success=0, failed=0, failures=[]), 0, False
    last_sent = time.monotonic()
    for item in items:
        try:
            process(item)
            batch.success += 1
        except Throttled as error:
            batch.failed += 1
            batch.failures.append(FailureBody(code="graph.throttled", message=str(error)))
        gathered = batch.success + batch.failed
        if gathered and (gathered >= 100 or time.monotonic() - last_sent > 1):
            reports += 1
            answer = send(
                report_progress, tenant, run_id, body=batch, key=f"{job_id}:progress:{reports}"
            ).parsed
            batch, last_sent = ProgressBody(success=0, failed=0, failures=[]), time.monotonic()
            cancel = answer.cancel_requested
        elif time.monotonic() - last_sent > 100:  # a third of heartbeat_timeout_seconds
            beat = heartbeat.sync_detailed(tenant, run_id, client=client)
            cancel, last_sent = beat.parsed.cancel_requested, time.monotonic()
        if cancel:
            break
    if batch.success or batch.failed:
        reports += 1
        send(report_progress, tenant, run_id, body=batch, key=f"{job_id}:progress:{reports}")
    outcome = Outcome.CANCELLED.value if cancel else None  # None: from the counts
    return send(
        complete_run, tenant, run_id, body=CompleteBody(outcome=outcome), key=f"{job_id}:complete"
    )


# --- the test's own: a queue, items, and checks ---
class Throttled(Exception):
    pass


class ListQueue:
    def __init__(self, refuse=False):
        self.jobs, self.refuse = [], refuse

    def enqueue(self, name, run_id):
        if self.refuse:
            raise ConnectionError("redis: connection refused")
        self.jobs.append((name, run_id))


def process(item):
    if item == 3:
        raise Throttled("Throttled (retrying)")


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
    with client:
        body = QueueRunBody(
            type_="inventory.sync",
            identity={"connection": 42},
            context={"source": "python"},
            heartbeat_timeout_seconds=300,
        )
        # Queue under an Idempotency-Key: a retry with the same key answers the first answer.
        key = str(uuid.uuid4())
        first = answer(send(queue_run, tenant, body=body, key=key), 201, CommandAnswer)
        check(first.created is True, "a new run")
        check(first.run.status == RunStatus.QUEUED, f"queued: {first.run.status}")
        retried = answer(send(queue_run, tenant, body=body, key=key), 201, CommandAnswer)
        check(retried.run.id == first.run.id, "the retry answers the same run")
        # The same identity while the run is active: that run, not handed over again.
        my_queue = ListQueue()
        again = answer(dispatch(my_queue, body), 200, CommandAnswer)
        check(again.created is False and again.run.id == first.run.id, "the active run")
        check(my_queue.jobs == [], "not handed over again")
        run_id = first.run.id

        # The job: start as a named worker, report progress (increments), complete.
        completed = answer(sync_inventory("job-1", run_id, range(10), process), 200, CommandAnswer)
        check(completed.run.status == RunStatus.COMPLETED, "completed")
        check(completed.run.worker == "rq:job-1", f"the worker: {completed.run.worker}")
        check(
            completed.run.outcome == Outcome.PARTIALLY_SUCCEEDED,
            f"one item failed: {completed.run.outcome}",
        )
        counts = completed.run.summary_counts
        check((counts.success, counts.failed) == (9, 1), f"the counts: {counts}")
        # A re-delivered job: its start is refused (the run is completed), nothing is counted.
        answer(sync_inventory("job-1", run_id, range(10), process), 409, Problem)

        # Progress under a key counts once, however often it is sent; a heartbeat says
        # whether to stop.
        second = answer(
            dispatch(my_queue, QueueRunBody(type_="inventory.sync", identity={"connection": 43})),
            201,
            CommandAnswer,
        )
        check(my_queue.jobs == [("sync_inventory", str(second.run.id))], "handed over")
        answer(send(start_run, tenant, second.run.id), 200, CommandAnswer)
        for _ in range(2):
            progressed = answer(
                send(
                    report_progress,
                    tenant,
                    second.run.id,
                    body=ProgressBody(success=3, total=10),
                    key="job-2:progress:1",
                ),
                200,
                CommandAnswer,
            )
        check(progressed.run.summary_counts.success == 3, "the resend counted once")
        check(progressed.cancel_requested is False, "no cancel request")
        beat = answer(heartbeat.sync_detailed(tenant, second.run.id, client=client), 200, HeartbeatAnswer)
        check(beat.cancel_requested is False, "no cancel request")
        check(beat.run.last_heartbeat_at is not None, "the heartbeat shows")
        done = answer(
            send(complete_run, tenant, second.run.id, body=CompleteBody(outcome="succeeded")),
            200,
            CommandAnswer,
        )

        # Reads: the command's position lets a read see its own write; items are typed.
        shown = answer(
            get_run.sync_detailed(tenant, run_id, client=client, min_position=done.position),
            200,
            OperationRun,
        )
        check(shown.done is True, "done")
        check(shown.failure_summary[0].code == "graph.throttled", "its failure")
        page = answer(
            list_runs.sync_detailed(
                tenant, client=client, type_="inventory.sync", min_position=done.position
            ),
            200,
            RunPage,
        )
        check(
            sorted(str(run.id) for run in page.runs) == sorted([str(run_id), str(second.run.id)]),
            f"the list: {page.runs}",
        )
        check(all(isinstance(run, OperationRun) for run in page.runs), "typed items")

        # A hand-over the queue refused: the run is marked dispatch-failed at once.
        refused = answer(
            dispatch(ListQueue(refuse=True), QueueRunBody(type_="backup.nightly")), 200, CommandAnswer
        )
        check(refused.run.outcome == Outcome.FAILED, f"dispatch failed: {refused.run.outcome}")
        check(refused.run.failure_summary[0].code == "queue.unavailable", "its failure")
        late = answer(send(start_run, tenant, refused.run.id), 409, Problem)
        check(late.current_status == "completed", f"no worker can start it: {late}")

        # Failures are typed problems.
        missing = answer(get_run.sync_detailed(tenant, uuid.uuid4(), client=client), 404, Problem)
        check(missing.type_ == "urn:runledger:problem:not-found", f"a problem: {missing.type_}")
    print("lifecycle.py: the whole lifecycle went through the generated client")


if __name__ == "__main__":
    main()
