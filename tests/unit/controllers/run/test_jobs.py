"""jobs.py: parallelism (and its cap), suspend/resume for pause, dead shards, settling, manifests."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.controllers.run import jobs
from oxygen.execution.jobs import DEFAULT_WORKER_RESOURCES, WorkerDefaults
from oxygen.status.views import JobView
from tests.support import builders as b

WAITING = b.shards(*(b.shard_view(i, pending=1) for i in range(4)), b.shard_view(0, round_=1, pending=1))


@pytest.mark.parametrize(
    ("spec", "cap", "job_views", "suspend", "resume", "start"),
    [
        ({"parallelism": 2}, 100, {}, [], [], ["leads-r0-0000", "leads-r0-0001"]),
        ({"parallelism": 2}, 100, b.jobs(b.job_view("leads-r0-0000", active=1)), [], [], ["leads-r0-0001"]),
        (
            {"parallelism": 2},
            100,
            b.jobs(b.job_view("leads-r0-0000", complete=True)),
            [],
            [],
            ["leads-r0-0001", "leads-r0-0002"],
        ),
        ({"parallelism": 50}, 1, {}, [], [], ["leads-r0-0000"]),
        (
            {"parallelism": 1},
            100,
            b.jobs(b.job_view("leads-r0-0000"), b.job_view("leads-r0-0001")),
            [],
            [],
            [],
        ),
        (
            {"paused": True},
            100,
            b.jobs(b.job_view("leads-r0-0000", active=1), b.job_view("leads-r0-0001", suspend=True)),
            ["leads-r0-0000"],
            [],
            [],
        ),
        (
            {},
            100,
            b.jobs(
                b.job_view("leads-r0-0000", suspend=True),
                b.job_view("leads-r0-0001", suspend=True, failed=True),
            ),
            [],
            ["leads-r0-0000"],
            ["leads-r0-0002", "leads-r0-0003", "leads-r1-0000"],
        ),
    ],
    ids=[
        "start-up-to-parallelism",
        "count-running",
        "finished-free-a-slot",
        "admin-cap",
        "full",
        "pause",
        "resume",
    ],
)
def test_drive(
    spec: dict[str, Any],
    cap: int,
    job_views: dict[str, JobView],
    suspend: list[str],
    resume: list[str],
    start: list[str],
) -> None:
    decision = jobs.drive(b.run(**spec), WAITING, job_views, cap)
    assert [v.name for v in decision.suspend] == suspend
    assert all(v.suspend for v in decision.suspend)
    assert decision.resume == resume
    assert decision.start == start


def test_suspended_view_keeps_its_pods_until_they_stop() -> None:
    decision = jobs.drive(b.run(paused=True), {}, b.jobs(b.job_view("leads-r0-0000", active=1)), 100)
    assert decision.suspend[0].has_pods


def test_done_and_skipping_shards_get_no_job() -> None:
    views = b.shards(
        b.shard_view(0, phase="Succeeded", succeeded=1), b.shard_view(1, execute=False, skipped=1)
    )
    assert jobs.drive(b.run(), views, {}, 100).start == []


@pytest.mark.parametrize(
    ("phase", "job", "dead"),
    [
        (
            "Running",
            {"failed": True, "failure_message": "BackoffLimitExceeded: x"},
            "worker Job failed: BackoffLimitExceeded: x",
        ),
        ("Running", {"complete": True}, "worker Job failed: the worker exited before finishing the shard"),
        ("Succeeded", {"complete": True}, None),
        ("Running", {"active": 1}, None),
        ("Running", None, None),
        ("Failed", {"failed": True}, None),
    ],
    ids=["job-failed", "job-ended-early", "finished", "still-running", "no-job", "shard-done"],
)
def test_dead(phase: str, job: dict[str, Any] | None, dead: str | None) -> None:
    view = b.shard_view(phase=phase, running=1)
    job_views = b.jobs(b.job_view(view.name, **job)) if job is not None else {}
    assert jobs.dead(b.shards(view), job_views) == ([(view.name, dead)] if dead else [])


@pytest.mark.parametrize(
    ("items", "to", "phase", "statuses"),
    [
        (["succeeded", "running", ""], "failed", "Failed", ["succeeded", "failed", "failed"]),
        (["", "", ""], "skipped", "Succeeded", ["skipped", "skipped", "skipped"]),
        (["failed", "retrying", "succeeded"], "skipped", "Succeeded", ["failed", "skipped", "succeeded"]),
    ],
    ids=["dead-worker", "canceled-before-start", "canceled-midway"],
)
def test_settle(items: list[str], to: str, phase: str, statuses: list[str]) -> None:
    error = "canceled" if to == "skipped" else "worker Job failed: x"
    settled = jobs.settle(b.shard(items=items), to, error, None, b.NOW)
    assert settled.phase == phase
    assert [i.status for i in sorted(settled.items, key=lambda i: i.id)] == statuses
    assert settled.finished_at == b.NOW
    assert settled.message == error


def test_manifests_take_identity_and_labels_from_the_run() -> None:
    owner = b.run_body()
    body = b.shard_body(owner, items=["", ""])
    # What a worker might have written into the shard's spec is not what the Job runs as.
    body["spec"]["runName"] = "ops"
    body["spec"]["runUid"] = "someone-else"
    from oxygen.api.runshard import RunShard

    decision = jobs.JobsDecision([], ["leads-r0-0009"], ["leads-r0-0000"])
    plan = jobs.manifests(b.run(), decision, [(RunShard.model_validate(body), body)], WorkerDefaults())
    assert plan.resume_jobs == ["leads-r0-0009"]
    (job,) = plan.create_jobs
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "leads-worker"
    assert job["metadata"]["labels"]["oxygen.dev/run"] == "leads"
    assert job["metadata"]["labels"]["oxygen.dev/run-uid"] == b.UID
    assert job["metadata"]["namespace"] == b.NS
    assert job["metadata"]["ownerReferences"][0]["kind"] == "RunShard"
    assert job["spec"]["activeDeadlineSeconds"] == 24 * 3600
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert pod["containers"][0]["resources"] == DEFAULT_WORKER_RESOURCES


def test_capped_message_names_both_numbers() -> None:
    message = jobs.capped_message(b.run(parallelism=300), 100)
    assert "300" in message
    assert "100" in message
