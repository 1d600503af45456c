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
    decision = jobs.drive(b.run(**spec), WAITING, job_views, cap, recorded=2)
    assert [v.name for v in decision.suspend] == suspend
    assert all(v.suspend for v in decision.suspend)
    assert decision.resume == resume
    assert decision.start == start


def test_suspended_view_keeps_its_pods_until_they_stop() -> None:
    running = b.jobs(b.job_view("leads-r0-0000", active=1))
    decision = jobs.drive(b.run(paused=True), {}, running, 100, recorded=1)
    assert decision.suspend[0].has_pods


def test_done_and_skipping_shards_get_no_job() -> None:
    views = b.shards(
        b.shard_view(0, phase="Succeeded", succeeded=1), b.shard_view(1, execute=False, skipped=1)
    )
    assert jobs.drive(b.run(), views, {}, 100, recorded=1).start == []


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
    found = jobs.dead(b.shards(view), job_views, DIED + 3600)
    assert [(d.shard, d.reason) for d in found] == ([(view.name, dead)] if dead else [])


DIED = 1_767_225_600.0  # b.NOW as epoch seconds: the dead Jobs' failedAt
FAILED = {"failed": True, "failure_message": "BackoffLimitExceeded: x", "failed_at": b.NOW}


@pytest.mark.parametrize(
    ("attempt", "after", "pods", "action", "next_job"),
    [
        (0, 4.9, 0, "wait", "leads-r0-0000-j1"),
        (0, 5.0, 0, "replace", "leads-r0-0000-j1"),
        (0, 60.0, 1, "wait", "leads-r0-0000-j1"),
        (1, 9.0, 0, "wait", "leads-r0-0000-j2"),
        (1, 10.0, 0, "replace", "leads-r0-0000-j2"),
        (2, 20.0, 0, "replace", "leads-r0-0000-j3"),
        (3, 0.0, 0, "give_up", "leads-r0-0000-j4"),
    ],
    ids=[
        "first-backoff",
        "first-due",
        "old-pod-terminating",
        "second-backoff",
        "second-due",
        "third",
        "exhausted",
    ],
)
def test_a_dead_job_is_replaced_with_backoff_then_given_up(
    attempt: int, after: float, pods: int, action: str, next_job: str
) -> None:
    view = b.shard_view(phase="Running", running=1)
    older = [b.job_view(jobs.job_name(view.name, n), **FAILED) for n in range(attempt)]
    newest = b.job_view(jobs.job_name(view.name, attempt), terminating=pods, **FAILED)
    (death,) = jobs.dead(b.shards(view), b.jobs(*older, newest), DIED + after)
    assert (death.attempt, death.action, death.next_job) == (attempt, action, next_job)
    assert death.reason == "worker Job failed: BackoffLimitExceeded: x"


def test_a_running_replacement_is_not_dead_and_its_shard_gets_no_second_job() -> None:
    view = b.shard_view(phase="Running", running=1)
    views = b.jobs(b.job_view(view.name, **FAILED), b.job_view(f"{view.name}-j1", active=1))
    assert jobs.dead(b.shards(view), views, DIED + 3600) == []
    assert jobs.drive(b.run(), b.shards(view), views, 100, recorded=1).start == []


def test_replacement_names_are_deterministic_and_fit_a_job_name() -> None:
    long = "x" * 50 + "-r0-0000"
    names = [jobs.job_name(long, n) for n in range(4)]
    assert names[0] == long
    assert all(len(n) <= 63 for n in names)
    assert len(set(names)) == 4
    assert names == [jobs.job_name(long, n) for n in range(4)]
    assert jobs.latest_jobs({long: b.shard_view()}, b.jobs(*(b.job_view(n) for n in names[:3])))[long][0] == 2


def _death(action: str, attempt: int = 0) -> jobs.DeadShard:
    return jobs.DeadShard("leads-r0-0000", "worker Job failed: BackoffLimitExceeded: x", attempt, action)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("items", "action", "statuses", "job", "event"),
    [
        # attempted (running, retrying) fail; never reached (pending, no status) wait for the replacement
        (
            ["succeeded", "running", "retrying", "pending", ""],
            "replace",
            ["succeeded", "failed", "failed", "pending", "pending"],
            "leads-r0-0000-j1",
            "WorkerJobReplaced",
        ),
        # every item reached: nothing for a replacement to do
        (["succeeded", "running"], "replace", ["succeeded", "failed"], None, None),
        # replacements used up: the never-attempted are skipped, not failed
        (
            ["succeeded", "running", "pending", ""],
            "give_up",
            ["succeeded", "failed", "skipped", "skipped"],
            None,
            "WorkerJobFailed",
        ),
        (["running", "pending"], "wait", None, None, None),
    ],
    ids=["replace", "nothing-left", "give-up", "wait"],
)
def test_after_death(
    items: list[str], action: str, statuses: list[str] | None, job: str | None, event: str | None
) -> None:
    owner = b.run_body()
    body = b.shard_body(owner, items=items, attempt_count=1)
    from oxygen.api.runshard import RunShard

    plan = jobs.after_death(
        b.run(), RunShard.model_validate(body), body, _death(action), WorkerDefaults(), b.NOW
    )
    assert [j["metadata"]["name"] for j in plan.create_jobs] == ([job] if job else [])
    assert [e.reason for e in plan.events] == ([event] if event else [])
    if statuses is None:
        assert plan.shard_status == []
        return
    ((_, wire),) = plan.shard_status
    settled = sorted(wire["items"], key=lambda i: i["id"])
    assert [i["status"] for i in settled] == statuses
    for item, before in zip(settled, items, strict=True):
        if item["status"] == "failed":
            assert item["errorClass"] == "worker_failed"
            assert item["attemptCount"] == 1  # exact: what the provider saw, not bumped
        if item["status"] == "skipped":
            assert item["error"].startswith("never attempted: worker Job failed: BackoffLimitExceeded")
            assert item.get("errorClass") is None
        if item["status"] == "pending":
            assert before in ("pending", "")
    if job:
        (manifest,) = plan.create_jobs
        assert manifest["metadata"]["labels"]["oxygen.dev/shard"] == "leads-r0-0000"
        assert manifest["metadata"]["ownerReferences"][0]["kind"] == "RunShard"


def test_a_paused_runs_replacement_starts_suspended() -> None:
    body = b.shard_body(b.run_body(), items=["running", "pending"])
    from oxygen.api.runshard import RunShard

    plan = jobs.after_death(
        b.run(paused=True), RunShard.model_validate(body), body, _death("replace"), WorkerDefaults(), b.NOW
    )
    assert [j["spec"]["suspend"] for j in plan.create_jobs] == [True]


def test_never_attempted_items_are_retried_by_a_retry_bump() -> None:
    from oxygen.controllers.run import rounds

    shard = b.shard(items=["skipped", "skipped", "failed"])
    shard.status.items[0].error = "never attempted: worker Job failed: x"
    shard.status.items[1].error = "canceled"
    assert [rounds.retryable(i, shard) for i in shard.status.items] == [True, False, True]


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


@pytest.mark.parametrize(
    ("recorded", "start"),
    [
        (0, []),  # round 0 created, its recording failed: nothing runs
        (1, ["leads-r0-0000", "leads-r0-0001", "leads-r0-0002", "leads-r0-0003"]),
        (2, ["leads-r0-0000", "leads-r0-0001", "leads-r0-0002", "leads-r0-0003", "leads-r1-0000"]),
    ],
    ids=["none-recorded", "round-1-unrecorded", "both-recorded"],
)
def test_only_shards_of_recorded_rounds_get_a_job(recorded: int, start: list[str]) -> None:
    assert jobs.drive(b.run(parallelism=10), WAITING, {}, 100, recorded=recorded).start == start
