"""kopf glue of the Run controller: the indexes of a run's children, a work queue of Runs, wake-ups.

Only stateless handler kinds are used (indexes and event handlers): kopf writes no diff-base or
progress annotations on Runs and none on their children, and no finalizer of its own on Runs. The
indexes map (namespace, run uid) to compact views of a run's RunShards and Jobs, so a pass reads
memory, not the API server. A shard is indexed only under the Run that controls it
(observe.shard_run); a Job under the run its label names, and counted only when one of that run's
shards controls it (observe.owned_jobs).

Passes are driven by a work queue (queue.py), not by a task per Run: an event of a Run, or one of
its RunShards or Jobs whose view changed, queues the Run's key; WORKERS tasks drain the queue, each
pass in a thread pool of the same size. A pass that must look again (the run is active, a status
write was held back, a replacement Job is due, a backoff) requeues itself after the interval it
returns; a finished Run is not requeued: it costs no task, timer or poll until an event of its own.

Peering: a replica that kopf pauses (another is active) must not pass: its watch streams and so its
indexes stop. kopf stops its own daemons then, and tells nobody else; the pause is read from the
toggle kopf hands its daemon killer (`_capture_pause`). While paused the queue is dropped and every
run's memory forgotten; kopf's re-listing after the pause queues each run again with fresh bodies.
"""

from __future__ import annotations

import asyncio
import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf
from kopf._core.engines import daemons as kopf_daemons

from oxygen import metrics
from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_RUN_UID
from oxygen.api.run import TERMINAL_PHASES
from oxygen.controllers import runtime
from oxygen.controllers.run import deletion
from oxygen.controllers.run.guard import DaemonMemory, backoff
from oxygen.controllers.run.observe import job_run, resource_version, shard_run
from oxygen.controllers.run.queue import WorkQueue
from oxygen.controllers.run.reconcile import RunController
from oxygen.settings import SettingsError
from oxygen.status.views import JobView, ShardView, job_view, shard_view

# Passes at once (asyncio workers, and the threads their passes run in).
WORKERS = int(os.environ.get("OXYGEN_RUN_WORKERS", os.environ.get("OXYGEN_MAX_WORKERS", "16")))
# A Run's passes start at least this far apart: the echoes of one pass's writes become one pass.
PASS_SPACING = 0.2


class _Run:
    """What the controller keeps of one Run between passes: its latest body and its memory.

    A finished Run is kept packed (`pack`): its body as compressed JSON, its memory dropped, as if the
    operator had just restarted for it. Its next pass (an event of its own or of a child) rebuilds
    both from the body, as every pass after a restart does. Unpacked, a Run's body, its RunState and
    the body kept to stop it with took ~50 KB: 5,000 finished Runs held 530 MiB."""

    def __init__(self, namespace: str, body: dict[str, Any]) -> None:
        self.namespace = namespace
        self._body: dict[str, Any] | None = body
        self._packed = b""
        self.memory = DaemonMemory()

    @property
    def body(self) -> dict[str, Any]:
        if self._body is None:
            self._body = json.loads(zlib.decompress(self._packed))
            self._packed = b""
        return self._body

    @body.setter
    def body(self, value: dict[str, Any]) -> None:
        self._body, self._packed = value, b""

    @property
    def packed(self) -> bool:
        return self._body is None

    def pack(self) -> None:
        if self._body is not None:
            self._packed = zlib.compress(json.dumps(self._body, separators=(",", ":")).encode(), 1)
            self._body = None
        self.memory = DaemonMemory()


@dataclass
class _Controller:
    """The queue, its workers and what they read: the Runs seen, and kopf's indexes."""

    run: RunController
    queue: WorkQueue
    pool: ThreadPoolExecutor
    runs: dict[str, _Run] = field(default_factory=dict)
    indexes: dict[str, kopf.Index[Any, Any]] = field(default_factory=dict)
    # The last view of each child (by uid) and its run: only a changed view wakes the run.
    children: dict[str, tuple[str, ShardView | JobView]] = field(default_factory=dict)
    workers: list[asyncio.Task[None]] = field(default_factory=list)


_controller: _Controller | None = None

# kopf's toggle set, on while peering pauses this replica (None until kopf starts its daemon killer).
_paused: Any = None
_kopf_daemon_killer = kopf_daemons.daemon_killer


async def _capture_pause(**kwargs: Any) -> None:
    global _paused
    _paused = kwargs["operator_paused"]
    await _kopf_daemon_killer(**kwargs)


setattr(kopf_daemons, "daemon_killer", _capture_pause)  # noqa: B010 (read at kopf.run, not import)


async def pass_ended(uid: str, timeout: float | None = None) -> bool:
    """Returns once no pass of this Run is in flight (none starts for a Run being deleted): True, or
    False when `timeout` seconds passed first."""
    waited = 0.0
    while _controller is not None and _controller.queue.processing(uid):
        if timeout is not None and waited >= timeout:
            return False
        await asyncio.sleep(0.1)
        waited += 0.1
    return True


@kopf.on.startup()
async def start_run_controller(memo: kopf.Memo, **_: Any) -> None:
    global _controller
    try:
        settings = runtime.settings(memo)
    except SettingsError as err:  # a bad chart value: stop, saying which, rather than retry forever
        raise kopf.PermanentError(str(err)) from None
    memo.run_controller = RunController(runtime.kube(memo), settings)
    controller = _Controller(
        run=memo.run_controller,
        queue=WorkQueue(spacing=PASS_SPACING),
        pool=ThreadPoolExecutor(WORKERS, thread_name_prefix="run-pass"),
    )
    controller.workers = [asyncio.create_task(_work(controller)) for _ in range(WORKERS)]
    controller.workers.append(asyncio.create_task(_follow_peering(controller)))
    _controller = controller


async def _follow_peering(controller: _Controller) -> None:
    """Paused by peering: no pass until resumed; what this replica knew is stale by then."""
    while _paused is None:
        await asyncio.sleep(0.5)
    while True:
        await _paused.wait_for(True)
        for key, run in list(controller.runs.items()):
            controller.queue.forget(key)
            run.memory = DaemonMemory()
        await _paused.wait_for(False)


@kopf.on.cleanup()
async def stop_run_controller(**_: Any) -> None:
    global _controller
    controller, _controller = _controller, None
    if controller is None:
        return
    for task in controller.workers:
        task.cancel()
    await asyncio.gather(*controller.workers, return_exceptions=True)
    controller.pool.shutdown(wait=False, cancel_futures=True)


def _wake_for_child(uid: str, run_uid: str | None, view: ShardView | JobView | None) -> None:
    """A child's event: its run's key is queued when the view a pass reads changed (or it went)."""
    controller = _controller
    if controller is None:
        return
    seen = controller.children.get(uid)
    if view is None:
        controller.children.pop(uid, None)
    elif run_uid is not None:
        controller.children[uid] = (run_uid, view)
    else:
        controller.children.pop(uid, None)
    if seen is not None and seen[1] == view and seen[0] == run_uid:
        return
    for key in {run_uid, seen[0] if seen is not None else None}:
        if key is not None and key in controller.runs:
            controller.queue.add(key)


@kopf.on.event(GROUP, VERSION, "runshards")
async def shard_event(event: kopf.RawEvent, body: kopf.Body, uid: str, **_: Any) -> None:
    if event["type"] == "DELETED":
        metrics.forget_shard(uid)
        _wake_for_child(uid, None, None)
        return
    raw = dict(body)
    metrics.observe_shard(raw)
    _wake_for_child(uid, shard_run(raw), shard_view(raw))


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_RUN_UID: kopf.PRESENT})
async def job_event(event: kopf.RawEvent, body: kopf.Body, uid: str, **_: Any) -> None:
    if event["type"] == "DELETED":
        _wake_for_child(uid, None, None)
        return
    raw = dict(body)
    _wake_for_child(uid, job_run(raw), job_view(raw))


@kopf.index(GROUP, VERSION, "runshards")
async def shards_by_run(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    raw = dict(body)
    run_uid = shard_run(raw)
    if run_uid is None:
        # No Run controls it (or its spec names another run): no run counts it. An empty mapping,
        # not None, so an entry from before an edit is dropped too.
        return {}
    return {(namespace, run_uid): (resource_version(raw), shard_view(raw))}


@kopf.index("batch", "v1", "jobs", labels={LABEL_RUN_UID: kopf.PRESENT})
async def jobs_by_run(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    raw = dict(body)
    run_uid = job_run(raw)
    return {} if run_uid is None else {(namespace, run_uid): job_view(raw)}


@kopf.index(GROUP, VERSION, "providers")
async def providers_by_namespace(name: str, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """The Providers that exist, by namespace: a run whose Provider is deleted fails (provider_gone.py)."""
    return {namespace: name}


@kopf.on.event(GROUP, VERSION, "providers")
async def provider_event(event: kopf.RawEvent, namespace: str | None, **_: Any) -> None:
    """A Provider deleted (or back): the unfinished runs of its namespace look at once."""
    controller = _controller
    if controller is None or event["type"] != "DELETED":
        return
    for key, run in list(controller.runs.items()):
        if run.namespace == namespace and not _finished(run):
            controller.queue.add(key)


def _finished(run: _Run) -> bool:
    state = run.memory.state
    if state is None:
        return run.packed  # only a finished Run is packed
    return state.status.phase in TERMINAL_PHASES


@kopf.on.event(GROUP, VERSION, "runs")  # type: ignore[arg-type]
async def run_changed(
    event: kopf.RawEvent,
    body: kopf.Body,
    uid: str,
    name: str,
    namespace: str | None,
    shards_by_run: kopf.Index[Any, Any],
    jobs_by_run: kopf.Index[Any, Any],
    providers_by_namespace: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    controller = _controller
    if event["type"] == "DELETED":
        metrics.forget_run(namespace or "", name, uid)
        if controller is not None:
            controller.runs.pop(uid, None)
            controller.queue.forget(uid)
        return
    raw = dict(body)
    metrics.observe_run(raw)
    if controller is None:
        return
    if not controller.indexes:  # the same objects for the operator's life
        controller.indexes = {
            "shards": shards_by_run,
            "jobs": jobs_by_run,
            "providers": providers_by_namespace,
        }
    known = controller.runs.get(uid)
    if known is None:
        controller.runs[uid] = _Run(namespace=namespace or "", body=raw)
    else:
        known.body = raw
    controller.queue.add(uid)


async def _work(controller: _Controller) -> None:
    """One worker: a key at a time, first in first out."""
    while True:
        key = await controller.queue.get()
        if _paused is not None and _paused.is_on():
            controller.queue.forget(key)  # kopf's re-listing after the pause queues it again
            controller.queue.done(key)
            await _paused.wait_for(False)
            continue
        try:
            await _pass(controller, key)
        except Exception as err:  # never lose a worker; the run is retried with backoff
            run = controller.runs.get(key)
            if run is not None:
                controller.queue.add_after(key, backoff(run.memory, err, f"run {run.namespace}/{key}"))
        finally:
            controller.queue.done(key)
            metrics.set_queue_depth(len(controller.queue))


async def _pass(controller: _Controller, key: str) -> None:
    run = controller.runs.get(key)
    if run is None:
        return
    raw = run.body
    if (raw.get("metadata") or {}).get("deletionTimestamp"):
        return  # run_deleting drives a deleted run's passes
    index_key = (run.namespace, key)
    shards = list(controller.indexes["shards"].get(index_key, []))
    jobs = list(controller.indexes["jobs"].get(index_key, []))
    providers = frozenset(controller.indexes["providers"].get(run.namespace, []))
    loop = asyncio.get_running_loop()
    with metrics.reconcile_timer():
        interval = await loop.run_in_executor(
            controller.pool, controller.run.guarded, raw, shards, jobs, run.memory, providers
        )
    if controller.runs.get(key) is not run:
        return  # deleted meanwhile
    if _finished(run) and run.memory.errors == 0:
        run.pack()
        return  # nothing to poll: only an event of its own (a retry, a deletion) brings it back
    controller.queue.add_after(key, interval)


@kopf.on.event(GROUP, VERSION, "runs")  # type: ignore[arg-type]
async def run_deleting(
    event: kopf.RawEvent,
    body: kopf.Body,
    uid: str,
    namespace: str,
    shards_by_run: kopf.Index[Any, Any],
    jobs_by_run: kopf.Index[Any, Any],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A metered Run deleted mid-flight: stopped like a cancel, then marked Settled (deletion.py).

    The work queue skips a Run being deleted, so the passes run here; this Run's later events wait
    (they are batched), and its account sees the Settled status once this returns."""
    raw = dict(body)
    if event["type"] == "DELETED" or not deletion.must_stop(raw):
        return
    controller: RunController = memo.run_controller
    # A pass that started before the deletion ends first: two passes must not overlap.
    await pass_ended(uid)
    memory = DaemonMemory()
    key = (namespace, uid)
    while True:
        shards = list(shards_by_run.get(key, []))
        jobs = list(jobs_by_run.get(key, []))
        try:
            interval = await asyncio.to_thread(deletion.stop, controller, raw, shards, jobs, memory)
        except Exception as err:  # keep stopping: the Run cannot go before its credits are final
            interval = backoff(memory, err, f"run {namespace}/{uid}")
        if interval is None:
            return
        await asyncio.sleep(interval)
