"""Shard Jobs: how many run at once, suspend and resume for pause, which shards are dead.

Pure. Which shards get a Job is decided here; their manifests are built (from the Run and the
shard bodies observe.Reader reads) by `manifests`. Settling a shard no worker runs for anymore
(dead or canceled) is `settle`.

A shard whose Job gave up (its pods killed past the backoff limit) gets a replacement Job, at most
MAX_REPLACEMENTS times, each after a longer wait (deaths). Items a dead worker had attempted fail at
each death, as before (their attemptCount is what the provider saw); items it never reached stay
`pending` for the replacement. Once the replacements are used up those are `skipped` with
NEVER_ATTEMPTED (never `failed`: no call was made, nothing is charged; `retryFailed` retries them).
A replacement's name is the shard's with `-j<n>` (see `job_name`), so a restarted operator finds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from oxygen.api.run import TERMINAL_ITEM_STATUSES, Run
from oxygen.api.runshard import ItemResult, RunShard, RunShardStatus
from oxygen.controllers.run.types import Event, Plan
from oxygen.execution.jobs import WorkerDefaults, shard_job
from oxygen.planning.names import MAX_NAME
from oxygen.status.shard import live_items, shard_phase, summarize
from oxygen.status.views import JobView, ShardView
from oxygen.timefmt import epoch

# Replacement Jobs per shard, and the wait before the first (doubled for each next one).
MAX_REPLACEMENTS = 3
REPLACEMENT_DELAY_SECONDS = 5.0
NEVER_ATTEMPTED = "never attempted"
ATTEMPTED_STATUSES = frozenset({"running", "retrying"})


def parallelism(run: Run, cap: int) -> int:
    """Shard Jobs at once: what the run asks, at most the operator's cap."""
    return min(run.spec.parallelism, cap)


def capped_message(run: Run, allowed: int) -> str:
    return (
        f"spec.parallelism {run.spec.parallelism} is above the operator's maximum; "
        f"the run runs at most {allowed} shards at once"
    )


@dataclass(frozen=True)
class JobsDecision:
    suspend: list[JobView]  # as they will be: suspended, pods still running until they stop
    resume: list[str]
    start: list[str]  # shards that get a Job now, in (round, index) order


def drive(
    run: Run, shards: Mapping[str, ShardView], jobs: Mapping[str, JobView], cap: int, *, recorded: int
) -> JobsDecision:
    """Suspend every running Job while paused, resume them after; start waiting shards up to the limit.

    Only shards of the `recorded` rounds (those the Run's status holds) ever get a Job: a shard of a
    round whose recording failed (or that the next pass refused) is a plan nobody admitted; it
    executes only once a recorded round of that number takes it over (see apply.py)."""
    paused = run.spec.paused
    unfinished = [j for j in jobs.values() if not j.finished]
    suspend = [replace(j, suspend=True) for j in unfinished if paused and not j.suspend]
    resume = [j.name for j in unfinished if not paused and j.suspend]
    if paused:
        return JobsDecision(suspend, resume, [])
    # A Job holds its slot until the Job controller marks it finished, though its worker may have
    # written the shard's last result a second before: `parallelism` bounds the unfinished Jobs.
    # (Freeing the slot at the shard's last result cut a million-item run by 9%, and let 4 Jobs of a
    # parallelism-2 run be unfinished at once: test_run_core.)
    room = parallelism(run, cap) - len(unfinished)
    started = set(latest_jobs(shards, jobs))
    waiting = sorted(
        (
            s
            for s in shards.values()
            if s.execute and not s.done and s.name not in started and s.round < recorded
        ),
        key=lambda s: (s.round, s.index),
    )
    return JobsDecision(suspend, resume, [s.name for s in waiting[: max(0, room)]])


def manifests(
    run: Run,
    decision: JobsDecision,
    bodies: Sequence[tuple[RunShard, dict[str, object]]],
    worker: WorkerDefaults,
) -> Plan:
    """The Plan of a JobsDecision; `bodies` are the started shards' (model, raw body) pairs."""
    return Plan(
        suspend_jobs=list(decision.suspend),
        resume_jobs=list(decision.resume),
        create_jobs=[shard_job(run, shard, dict(body), False, worker) for shard, body in bodies],
    )


def job_name(shard: str, attempt: int) -> str:
    """The name of a shard's Job: the shard's own for the first, `<shard>-j<n>` for replacement n.

    Too long for a Job name (its pods' `job-name` label): a digest of the shard name stands in for
    its tail, so the name stays deterministic and within MAX_NAME.
    """
    if attempt == 0:
        return shard
    suffix = f"-j{attempt}"
    if len(shard) + len(suffix) <= MAX_NAME:
        return shard + suffix
    digest = hashlib.sha256(shard.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{shard[:keep].rstrip('-.')}-{digest}{suffix}"


def latest_jobs(
    shards: Mapping[str, ShardView], jobs: Mapping[str, JobView]
) -> dict[str, tuple[int, JobView]]:
    """Each shard's newest Job (attempt number and view); shards without a Job are absent."""
    out: dict[str, tuple[int, JobView]] = {}
    for shard in shards:
        for attempt in range(MAX_REPLACEMENTS, -1, -1):
            job = jobs.get(job_name(shard, attempt))
            if job is not None:
                out[shard] = (attempt, job)
                break
    return out


@dataclass(frozen=True)
class DeadShard:
    """A shard whose newest Job ended without finishing it, and what happens next."""

    shard: str
    reason: str  # "worker Job failed: …"
    attempt: int  # the Job that died: 0 the first, n the n-th replacement
    action: Literal["replace", "wait", "give_up"]

    @property
    def next_job(self) -> str:
        return job_name(self.shard, self.attempt + 1)


def replacement_delay(attempt: int) -> float:
    """Seconds between the death of Job `attempt` and its replacement: 5, 10, 20."""
    return REPLACEMENT_DELAY_SECONDS * float(2**attempt)


def dead(shards: Mapping[str, ShardView], jobs: Mapping[str, JobView], now: float) -> list[DeadShard]:
    """Shards whose newest Job gave up (or ended without finishing the shard), with what to do."""
    out = []
    for name, (attempt, job) in sorted(latest_jobs(shards, jobs).items()):
        shard = shards[name]
        if shard.done or not job.finished or job.deleting:
            continue
        if job.complete and shard.phase == "Succeeded":
            continue
        reason = f"worker Job failed: {job.failure_message or 'the worker exited before finishing the shard'}"
        if attempt >= MAX_REPLACEMENTS:
            action: Literal["replace", "wait", "give_up"] = "give_up"
        else:
            died = epoch(job.failed_at) or 0.0  # no time recorded: do not wait
            # Never two workers on a shard: the dead Job's pods are gone before a replacement starts.
            due = now - died >= replacement_delay(attempt) and not job.has_pods
            action = "replace" if due else "wait"
        out.append(DeadShard(name, reason, attempt, action))
    return out


def after_death(
    run: Run, shard: RunShard, body: dict[str, Any], death: DeadShard, worker: WorkerDefaults, now: str
) -> Plan:
    """What a dead shard's due step writes: its attempted items failed, then a replacement Job or,
    once the replacements are used up, its never-attempted items skipped."""
    if death.action == "wait":
        return Plan()
    failure = death.reason.removeprefix("worker Job failed: ").split(":")[0] or "unknown"
    if death.action == "give_up":
        never = f"{NEVER_ATTEMPTED}: {death.reason} ({MAX_REPLACEMENTS} replacements used)"
        settled = settle(shard, "failed", death.reason, "worker_failed", now, never_attempted=never)
        message = (
            f"shard {death.shard}: worker Job failed ({failure}) after {MAX_REPLACEMENTS} replacements; "
            "its items never attempted are skipped"
        )
        return Plan(
            shard_status=[(death.shard, settled.wire())],
            events=[Event("WorkerJobFailed", message, "Warning")],
        )
    attempted = fail_attempted(shard, death.reason, now)
    if attempted.phase == "Succeeded":  # nothing left that a worker has not reached: no replacement
        return Plan(shard_status=[(death.shard, attempted.wire())])
    # A paused run's replacement waits suspended, like every other Job of the run.
    manifest = shard_job(run, shard, body, run.spec.paused, worker)
    manifest["metadata"]["name"] = death.next_job
    message = (
        f"shard {death.shard}: worker Job failed ({failure}), "
        f"replaced ({death.attempt + 1}/{MAX_REPLACEMENTS}) by Job {death.next_job}"
    )
    return Plan(
        shard_status=[(death.shard, attempted.wire())],
        create_jobs=[manifest],
        events=[Event("WorkerJobReplaced", message, "Warning")],
    )


def _results(shard: RunShard) -> list[ItemResult]:
    """The shard's item results, with a pending result for every item the worker never wrote."""
    items = shard.status.items or [
        ItemResult(id=i.id, row_id=i.row_id, attempt_count=i.attempt_count) for i in shard.spec.items
    ]
    known = {i.id for i in items}
    return items + [
        ItemResult(id=i.id, row_id=i.row_id, attempt_count=i.attempt_count)
        for i in shard.spec.items
        if i.id not in known
    ]


def fail_attempted(shard: RunShard, error: str, now: str) -> RunShardStatus:
    """A dead worker's attempted items fail (as before); the items it never reached stay pending."""
    items = _results(shard)
    for item in live_items(items):
        if item.status in ATTEMPTED_STATUSES:
            item.status = "failed"
            item.error = error
            item.error_class = "worker_failed"
            item.finished_at = now
    phase = shard_phase(items)
    return shard.status.model_copy(
        update={
            "phase": phase,
            "items": items,
            "summary": summarize(items),
            "message": error,
            "finished_at": now if phase == "Succeeded" else shard.status.finished_at,
        }
    )


def settle(
    shard: RunShard,
    to: str,
    error: str | None,
    error_class: str | None,
    now: str,
    never_attempted: str | None = None,
) -> RunShardStatus:
    """A shard no worker runs for anymore: its unfinished items become `to`; with `never_attempted`,
    the items no worker reached (still pending) are skipped with that message instead."""
    items = _results(shard)
    for item in live_items(items):
        if item.status in TERMINAL_ITEM_STATUSES:
            continue
        if never_attempted is not None and item.status == "pending":
            item.status = "skipped"
            item.error = never_attempted
            item.error_class = None
        else:
            item.status = to  # type: ignore[assignment]
            item.error = error
            item.error_class = error_class
        item.finished_at = now
    return RunShardStatus(
        phase="Failed" if to == "failed" else shard_phase(items),
        items=items,
        summary=summarize(items),
        worker=shard.status.worker,
        message=error,
        started_at=shard.status.started_at,
        finished_at=now,
    )
