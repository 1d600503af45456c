"""Shard Jobs: how many run at once, suspend and resume for pause, which shards are dead.

Pure. Which shards get a Job is decided here; their manifests are built (from the Run and the
shard bodies observe.Reader reads) by `manifests`. Settling a shard no worker runs for anymore
(dead or canceled) is `settle`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from oxygen.api.run import TERMINAL_ITEM_STATUSES, Run
from oxygen.api.runshard import ItemResult, RunShard, RunShardStatus
from oxygen.controllers.run.types import Plan
from oxygen.execution.jobs import WorkerDefaults, shard_job
from oxygen.status.shard import live_items, shard_phase, summarize
from oxygen.status.views import JobView, ShardView


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


def drive(run: Run, shards: Mapping[str, ShardView], jobs: Mapping[str, JobView], cap: int) -> JobsDecision:
    """Suspend every running Job while paused, resume them after; start waiting shards up to the limit."""
    paused = run.spec.paused
    unfinished = [j for j in jobs.values() if not j.finished]
    suspend = [replace(j, suspend=True) for j in unfinished if paused and not j.suspend]
    resume = [j.name for j in unfinished if not paused and j.suspend]
    if paused:
        return JobsDecision(suspend, resume, [])
    room = parallelism(run, cap) - len(unfinished)
    waiting = sorted(
        (s for s in shards.values() if s.execute and not s.done and s.name not in jobs),
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


def dead(shards: Mapping[str, ShardView], jobs: Mapping[str, JobView]) -> list[tuple[str, str]]:
    """Shards whose Job gave up (or ended without finishing the shard), with the reason."""
    out = []
    for shard in shards.values():
        job = jobs.get(shard.name)
        if shard.done or job is None or not job.finished:
            continue
        if job.complete and shard.phase == "Succeeded":
            continue
        reason = job.failure_message or "the worker exited before finishing the shard"
        out.append((shard.name, f"worker Job failed: {reason}"))
    return out


def settle(shard: RunShard, to: str, error: str | None, error_class: str | None, now: str) -> RunShardStatus:
    """A shard no worker runs for anymore: its unfinished items become `to`."""
    items = shard.status.items or [
        ItemResult(id=i.id, row_id=i.row_id, attempt_count=i.attempt_count) for i in shard.spec.items
    ]
    known = {i.id for i in items}
    items += [
        ItemResult(id=i.id, row_id=i.row_id, attempt_count=i.attempt_count)
        for i in shard.spec.items
        if i.id not in known
    ]
    for item in live_items(items):
        if item.status not in TERMINAL_ITEM_STATUSES:
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
